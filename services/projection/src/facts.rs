//! The facts of each case's notice that the compliance statistics count, one row per case
//! on a known platform, from the case's state alone (and so from its events alone).

use chrono::{DateTime, Utc};
use dijkwacht_domain::Case;
use sqlx::PgConnection;

/// Writes the fact rows of many cases in one statement, each unless a newer version is
/// already there. A case without a platform or a class has nothing to count yet.
pub async fn upsert(db: &mut PgConnection, cases: &[&Case], table: &str) -> Result<(), sqlx::Error> {
    let mut rows = FactColumns::default();
    for case in cases {
        rows.push(case);
    }
    if rows.case_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (case_id, version, platform_id, content_class, counted_at, notice_id, issued_at, \
             delivered_at, deadline_at, receipt_at, decided_at, decisions, rejection_reason, rejection_upheld, removed_at, \
             reminders, escalations, reappeared, police_held_at, police_released_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[], $6::uuid[], \
             $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], \
             $12::jsonb[], $13::text[], $14::bool[], $15::timestamptz[], $16::int4[], $17::int4[], $18::bool[], \
             $19::timestamptz[], $20::timestamptz[]) \
         ON CONFLICT (case_id) DO UPDATE SET version = EXCLUDED.version, platform_id = EXCLUDED.platform_id, \
             content_class = EXCLUDED.content_class, counted_at = EXCLUDED.counted_at, notice_id = EXCLUDED.notice_id, \
             issued_at = EXCLUDED.issued_at, delivered_at = EXCLUDED.delivered_at, deadline_at = EXCLUDED.deadline_at, \
             receipt_at = EXCLUDED.receipt_at, decided_at = EXCLUDED.decided_at, decisions = EXCLUDED.decisions, \
             rejection_reason = EXCLUDED.rejection_reason, rejection_upheld = EXCLUDED.rejection_upheld, \
             removed_at = EXCLUDED.removed_at, reminders = EXCLUDED.reminders, escalations = EXCLUDED.escalations, \
             reappeared = EXCLUDED.reappeared, police_held_at = EXCLUDED.police_held_at, \
             police_released_at = EXCLUDED.police_released_at \
         WHERE {table}.version < EXCLUDED.version"
    ))
    .bind(&rows.case_ids)
    .bind(&rows.versions)
    .bind(&rows.platform_ids)
    .bind(&rows.classes)
    .bind(&rows.counted_at)
    .bind(&rows.notice_ids)
    .bind(&rows.issued_at)
    .bind(&rows.delivered_at)
    .bind(&rows.deadline_at)
    .bind(&rows.receipt_at)
    .bind(&rows.decided_at)
    .bind(&rows.decisions)
    .bind(&rows.rejection_reasons)
    .bind(&rows.rejection_upheld)
    .bind(&rows.removed_at)
    .bind(&rows.reminders)
    .bind(&rows.escalations)
    .bind(&rows.reappeared)
    .bind(&rows.police_held_at)
    .bind(&rows.police_released_at)
    .execute(db)
    .await?;
    Ok(())
}

type Times = Vec<Option<DateTime<Utc>>>;

/// One array per column of `notice_facts`, for a multi-row upsert.
#[derive(Default)]
struct FactColumns {
    case_ids: Vec<uuid::Uuid>,
    versions: Vec<i32>,
    platform_ids: Vec<String>,
    classes: Vec<&'static str>,
    counted_at: Vec<DateTime<Utc>>,
    notice_ids: Vec<Option<uuid::Uuid>>,
    issued_at: Times,
    delivered_at: Times,
    deadline_at: Times,
    receipt_at: Times,
    decided_at: Times,
    decisions: Vec<serde_json::Value>,
    rejection_reasons: Vec<Option<String>>,
    rejection_upheld: Vec<Option<bool>>,
    removed_at: Times,
    reminders: Vec<i32>,
    escalations: Vec<i32>,
    reappeared: Vec<bool>,
    police_held_at: Times,
    police_released_at: Times,
}

impl FactColumns {
    fn push(&mut self, case: &Case) {
        let (Some(host), Some(classification), Some(received_at)) =
            (&case.host, &case.classification, case.received_at)
        else {
            return;
        };
        let followup = &case.followup;
        let issued_at = case.notice.as_ref().map(|notice| notice.issued_at);
        // A refusal answers the notice: it reached the platform even when no attempt was
        // recorded as delivered (a 422 to the attempt itself).
        let delivered_at = case.dispatch.delivered_at.or(case.dispatch.rejected_at);
        self.case_ids.push(case.id.0);
        self.versions.push(case.version as i32);
        self.platform_ids.push(host.platform_id.0.clone());
        self.classes.push(classification.class.as_str());
        self.counted_at.push(delivered_at.or(issued_at).unwrap_or(received_at));
        self.notice_ids
            .push(case.notice.as_ref().map(|notice| notice.notice_id.0));
        self.issued_at.push(issued_at);
        self.delivered_at.push(delivered_at);
        self.deadline_at
            .push(followup.deadline.as_ref().map(|deadline| deadline.due_at));
        self.receipt_at.push(followup.receipt_at);
        self.decided_at.push(followup.decided_at);
        let decisions: Vec<&str> = followup
            .decision
            .iter()
            .flat_map(|decision| {
                decision.decision_visibility.iter().map(String::as_str).chain(
                    [
                        &decision.decision_account,
                        &decision.decision_provision,
                        &decision.decision_monetary,
                    ]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
                )
            })
            .collect();
        self.decisions.push(serde_json::json!(decisions));
        let rejection = match (&case.dispatch.rejected, &followup.decision) {
            (Some(rejected), _) => Some(rejected.reason.clone()),
            (None, Some(decision)) if case.platform_declined() => Some(decision.decision_ground.clone()),
            _ => None,
        };
        self.rejection_reasons.push(rejection);
        self.rejection_upheld
            .push(followup.rejection_assessed.as_ref().map(|assessed| assessed.upheld));
        self.removed_at.push(case.removal.verified_at);
        self.reminders.push(followup.reminders_sent as i32);
        self.escalations.push(followup.escalations as i32);
        self.reappeared.push(case.reappeared_as.is_some());
        self.police_held_at.push(case.police.held_at);
        self.police_released_at.push(case.police.released_at);
    }
}
