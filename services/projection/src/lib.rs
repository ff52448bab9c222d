//! The projection: read models built from the events, and the compliance statistics a
//! regulator asks for. Rebuilt per case from its whole stream, so the order in which topics
//! deliver events does not matter and replaying them changes nothing.

use dijkwacht_domain::{Case, Command, PlatformId};
use dijkwacht_runtime::{RecordedEvent, Stage, StageError, Topic};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub struct ProjectionStage {
    pool: PgPool,
}

impl ProjectionStage {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Stage for ProjectionStage {
    fn name(&self) -> &'static str {
        "projection"
    }

    fn topics(&self) -> &'static [Topic] {
        &Topic::EVENTS
    }

    async fn command_for(&self, _event: &RecordedEvent, _case: &Case) -> Result<Option<Command>, StageError> {
        Ok(None)
    }

    async fn after_commit(&self, case: &Case) -> Result<Option<Command>, StageError> {
        upsert_summary(&self.pool, case).await?;
        Ok(None)
    }
}

/// Writes the case's summary row unless a newer version is already there.
pub async fn upsert_summary(pool: &PgPool, case: &Case) -> Result<(), sqlx::Error> {
    let (Some(report), Some(received_at)) = (&case.report, case.received_at) else {
        return Ok(());
    };
    let partner_id = report.reporter.partner_id().map(|p| p.0.as_str());
    sqlx::query(
        "INSERT INTO case_summaries (case_id, version, status, partner_id, url, content_class, platform_id, received_at, \
             notice_issued_at, notice_delivered_at, removal_verified_at, closed_at, claimed_class, review_reason, claimed_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (case_id) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status, \
             content_class = EXCLUDED.content_class, platform_id = EXCLUDED.platform_id, \
             notice_issued_at = EXCLUDED.notice_issued_at, notice_delivered_at = EXCLUDED.notice_delivered_at, \
             removal_verified_at = EXCLUDED.removal_verified_at, closed_at = EXCLUDED.closed_at, \
             claimed_class = EXCLUDED.claimed_class, review_reason = EXCLUDED.review_reason, claimed_by = EXCLUDED.claimed_by \
         WHERE case_summaries.version < EXCLUDED.version",
    )
    .bind(case.id.0)
    .bind(case.version as i32)
    .bind(case.status.as_str())
    .bind(partner_id)
    .bind(&report.location.url)
    .bind(case.classification.as_ref().map(|c| c.class.as_str()))
    .bind(case.host.as_ref().map(|h| h.platform_id.0.as_str()))
    .bind(received_at)
    .bind(case.notice.as_ref().map(|n| n.issued_at))
    .bind(case.dispatch.delivered_at)
    .bind(case.removal.verified_at)
    .bind(case.closed_at)
    .bind(report.claimed_class.map(|c| c.as_str()))
    .bind(case.review.as_ref().map(|r| r.reason.as_str()))
    .bind(case.claimed_by.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// How one platform handles our notices: the evidence a regulator acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlatformCompliance {
    pub platform_id: PlatformId,
    pub platform_name: String,
    /// Notices issued to the platform.
    pub notices_issued: i64,
    /// Notices the platform accepted delivery of.
    pub notices_sent: i64,
    /// Locations verified gone after a notice.
    pub removals_verified: i64,
    /// Delivered notices whose content was still online at the last check.
    pub awaiting_removal: i64,
    /// Median time from delivery to verified removal; absent before the first removal.
    pub median_seconds_to_removal: Option<f64>,
    /// Share of delivered notices whose content is verified removed.
    pub removal_rate: Option<f64>,
}

/// Compliance figures for one platform, or `None` when the platform is not registered.
pub async fn platform_compliance(pool: &PgPool, platform_id: &str) -> Result<Option<PlatformCompliance>, sqlx::Error> {
    let row: Option<(String, i64, i64, i64, i64, Option<f64>)> = sqlx::query_as(
        "SELECT p.name, \
             count(s.notice_issued_at), \
             count(s.notice_delivered_at), \
             count(s.removal_verified_at), \
             count(s.notice_delivered_at) FILTER (WHERE s.removal_verified_at IS NULL), \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.removal_verified_at - s.notice_delivered_at)) \
                 FILTER (WHERE s.removal_verified_at IS NOT NULL AND s.notice_delivered_at IS NOT NULL) \
         FROM platforms p LEFT JOIN case_summaries s ON s.platform_id = p.platform_id \
         WHERE p.platform_id = $1 GROUP BY p.name",
    )
    .bind(platform_id)
    .fetch_optional(pool)
    .await?;
    Ok(
        row.map(|(name, issued, sent, removed, awaiting, median)| PlatformCompliance {
            platform_id: PlatformId(platform_id.to_owned()),
            platform_name: name,
            notices_issued: issued,
            notices_sent: sent,
            removals_verified: removed,
            awaiting_removal: awaiting,
            median_seconds_to_removal: median,
            removal_rate: (sent > 0).then(|| removed as f64 / sent as f64),
        }),
    )
}
