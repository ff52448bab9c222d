//! Wake-ups: when a stage must look at a case again. Every append rewrites the wake-ups of
//! the cases it changed from their new states ([`Case::wait`]), in the same transaction,
//! so a case never waits without a timer or an operator-queue entry that will move it on.
//! Messages on the broker are the fast path; these rows are the guarantee.

use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::{AnalystTask, Case, CaseId, Wait, WaitLimits};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A stage that fires its timer this many times without moving the case on hands the case
/// to an operator (and keeps trying, less often).
pub const FRUITLESS_LIMIT: i32 = 5;
/// The longest pause between fruitless tries.
const LONGEST_BACKOFF: TimeDelta = TimeDelta::hours(1);

/// Replaces the wake-ups, operator-queue entries and analyst tasks of `cases` with those
/// their states imply.
pub(crate) async fn write_waits(
    tx: &mut PgConnection,
    cases: &[&Case],
    limits: &WaitLimits,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = cases.iter().map(|case| case.id.0).collect();
    let (mut stages, mut timer_ids, mut due, mut versions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut not_waiting_for_a_stage = Vec::new();
    let (mut stuck, mut tasks) = (Entries::default(), Entries::default());
    for case in cases {
        let version = case.version as i32;
        let wait = case.wait(limits);
        if !matches!(wait, Wait::Stage { .. }) {
            not_waiting_for_a_stage.push(case.id.0);
        }
        match wait {
            Wait::Stage { stage, due_at } => {
                stages.push(stage.name());
                timer_ids.push(case.id.0);
                due.push(due_at);
                versions.push(version);
            }
            Wait::Operator(reason) => stuck.push(case.id, reason.as_str(), version),
            // The review queue is read from the case summaries; every other task is listed here.
            Wait::Analyst(AnalystTask::Review) | Wait::Done => {}
            Wait::Analyst(task) => tasks.push(case.id, task.as_str(), version),
        }
    }
    // One statement for what every append writes, not four: with a few cases per append
    // (reports sent one by one) the round trips cost more than the rows. A case has one
    // wake-up at most, so the new ones replace the old in place; the wake-ups of cases that
    // wait for no stage now are deleted, and both queues are cleared. Their new entries,
    // which few cases have, follow.
    sqlx::query(
        "WITH waits_ended AS ( \
             DELETE FROM stage_timers t USING UNNEST($6::uuid[]) AS c (id) WHERE t.case_id = c.id), \
         operator_cleared AS (DELETE FROM operator_queue WHERE case_id = ANY($1)), \
         tasks_cleared AS (DELETE FROM analyst_tasks WHERE case_id = ANY($1)) \
         INSERT INTO stage_timers (stage, case_id, due_at, version) \
         SELECT * FROM UNNEST($2::text[], $3::uuid[], $4::timestamptz[], $5::int4[]) \
         ON CONFLICT (case_id) DO UPDATE \
             SET stage = EXCLUDED.stage, due_at = EXCLUDED.due_at, version = EXCLUDED.version, fired = 0",
    )
    .bind(&ids)
    .bind(&stages)
    .bind(&timer_ids)
    .bind(&due)
    .bind(&versions)
    .bind(&not_waiting_for_a_stage)
    .execute(&mut *tx)
    .await?;
    stuck.insert(tx, "operator_queue", "reason", now).await?;
    tasks.insert(tx, "analyst_tasks", "task", now).await?;
    Ok(())
}

/// Rows of a queue a case waits in (the operator queue, the analyst tasks): case, why, and
/// the case version they are about.
#[derive(Default)]
struct Entries {
    ids: Vec<Uuid>,
    labels: Vec<&'static str>,
    versions: Vec<i32>,
}

impl Entries {
    fn push(&mut self, case_id: CaseId, label: &'static str, version: i32) {
        self.ids.push(case_id.0);
        self.labels.push(label);
        self.versions.push(version);
    }

    /// Adds these entries to `table`, where their cases have none.
    async fn insert(
        &self,
        tx: &mut PgConnection,
        table: &'static str,
        label: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {table} (case_id, {label}, version, since) \
             SELECT c, l, v, $4 FROM UNNEST($1::uuid[], $2::text[], $3::int4[]) AS s (c, l, v)"
        ))
        .bind(&self.ids)
        .bind(&self.labels)
        .bind(&self.versions)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// A timer claimed for firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueTimer {
    pub case_id: CaseId,
    /// The case version the timer was set at.
    pub version: u32,
    /// How often it fired before without moving the case on.
    pub fired: i32,
}

/// Claims up to `limit` due timers by pushing them `lease_until`, so that a concurrent
/// process skips them and a crashed one's claims come due again.
pub async fn claim_due(
    pool: &PgPool,
    stage: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueTimer>, sqlx::Error> {
    let rows: Vec<(Uuid, i32, i32)> = sqlx::query_as(
        "UPDATE stage_timers SET due_at = $3 WHERE stage = $1 AND case_id IN ( \
             SELECT case_id FROM stage_timers WHERE stage = $1 AND due_at <= $2 \
             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING case_id, version, fired",
    )
    .bind(stage)
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(case_id, version, fired)| DueTimer {
            case_id: CaseId(case_id),
            version: version as u32,
            fired,
        })
        .collect())
}

/// A timer fired and the case did not change: try again later, each time later, and after
/// [`FRUITLESS_LIMIT`] tries put the case in the operator queue with the stage's reason.
/// Returns whether the case went to the operator queue just now.
pub async fn fired_without_progress(
    pool: &PgPool,
    stage: &str,
    timer: DueTimer,
    first_pause: TimeDelta,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let fired = timer.fired + 1;
    let pause = (first_pause * 2_i32.pow(fired.min(16) as u32)).min(LONGEST_BACKOFF);
    let mut tx = pool.begin().await?;
    // Only the timer as it was claimed: an append since then has set a newer one.
    let updated = sqlx::query(
        "UPDATE stage_timers SET due_at = $4, fired = $5 WHERE stage = $1 AND case_id = $2 AND version = $3",
    )
    .bind(stage)
    .bind(timer.case_id.0)
    .bind(timer.version as i32)
    .bind(now + pause)
    .bind(fired)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let stuck = updated == 1 && fired == FRUITLESS_LIMIT;
    if stuck {
        crate::operator::flag_in(
            &mut tx,
            timer.case_id,
            timer.version,
            "stage_made_no_progress",
            &format!("the {stage} stage fired {fired} times without moving the case on; it keeps trying every hour"),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(stuck)
}
