//! Per-stage timers: when a stage wants to look at a case again.

use chrono::{DateTime, Utc};
use dijkwacht_domain::CaseId;
use sqlx::PgPool;
use uuid::Uuid;

/// Sets (or, with `None`, clears) the timers of many cases in two statements.
pub async fn set(pool: &PgPool, stage: &str, timers: &[(CaseId, Option<DateTime<Utc>>)]) -> Result<(), sqlx::Error> {
    let (mut due_ids, mut due_at, mut cleared) = (Vec::new(), Vec::new(), Vec::new());
    for (case_id, at) in timers {
        match at {
            Some(at) => {
                due_ids.push(case_id.0);
                due_at.push(*at);
            }
            None => cleared.push(case_id.0),
        }
    }
    if !due_ids.is_empty() {
        sqlx::query(
            "INSERT INTO stage_timers (stage, case_id, due_at) SELECT $1, * FROM UNNEST($2::uuid[], $3::timestamptz[]) \
             ON CONFLICT (stage, case_id) DO UPDATE SET due_at = EXCLUDED.due_at",
        )
        .bind(stage)
        .bind(&due_ids)
        .bind(&due_at)
        .execute(pool)
        .await?;
    }
    if !cleared.is_empty() {
        sqlx::query("DELETE FROM stage_timers WHERE stage = $1 AND case_id = ANY($2)")
            .bind(stage)
            .bind(&cleared)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Claims up to `limit` due timers by pushing them `lease_until`, so that a concurrent
/// process skips them and a crashed one's claims come due again.
pub async fn claim_due(
    pool: &PgPool,
    stage: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<CaseId>, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE stage_timers SET due_at = $3 WHERE stage = $1 AND case_id IN ( \
             SELECT case_id FROM stage_timers WHERE stage = $1 AND due_at <= $2 \
             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING case_id",
    )
    .bind(stage)
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(CaseId).collect())
}
