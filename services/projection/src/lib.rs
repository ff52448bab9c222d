//! The projection: read models built from the events — case summaries, analysts' prior
//! decisions, the facts of each notice — and the regulators' API over them: compliance
//! statistics within each regulator's remit, the evidence of every notice, the access audit.
//!
//! Rebuilt per case from its whole stream, so the order in which topics deliver events does
//! not matter and replaying them changes nothing. Messages are the fast path; a message the
//! broker lost reaches the read models all the same by the catch-up ([`catch_up`]).

pub mod annual;
pub mod catch_up;
pub mod dashboard;
pub mod dossier;
mod facts;
mod prior_decisions;
pub mod rebuild;
pub mod regulator;
pub mod remit;
pub mod settings;
pub mod statistics;

use chrono::{DateTime, Utc};
use dijkwacht_domain::{Case, CaseId, CaseStatus, Command};
use dijkwacht_runtime::{CaseTraces, RecordedEvent, Stage, StageError, WaitsFor};
use sqlx::{PgConnection, PgPool};

/// The projection's name as a part and as a stage.
pub const PROJECTION: &str = "projection";

pub struct ProjectionStage {
    pool: PgPool,
}

impl ProjectionStage {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The projection part: its stage, and the regulators' routes over what it builds.
pub struct Projection;

impl dijkwacht_runtime::Part for Projection {
    fn name(&self) -> &'static str {
        PROJECTION
    }

    fn runs_stage(&self) -> bool {
        true
    }

    fn sections(&self) -> &'static [&'static str] {
        &[settings::SECTION]
    }

    fn check(&self, settings: &dijkwacht_runtime::config::Settings) -> anyhow::Result<()> {
        settings::RegulatorSettings::from_settings(settings)?.key()?;
        Ok(())
    }

    fn start<'a>(
        &'a self,
        process: &'a mut dijkwacht_runtime::Process,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            process.spawn_stage(ProjectionStage::new(process.pool().clone()));
            process.spawn(catch_up::keep_up(process.store.clone(), process.shutdown.clone()));
            let section = settings::RegulatorSettings::from_settings(&process.settings)?;
            let every = std::time::Duration::from_secs(section.checkpoint_every_secs);
            if let Some(key) = section.key()? {
                let (pool, clock, shutdown) = (process.pool().clone(), process.clock.clone(), process.shutdown.clone());
                let key = std::sync::Arc::new(key);
                process.spawn(dijkwacht_runtime::checkpoint::keep_taking(
                    pool, key, clock, every, shutdown,
                ));
            }
            Ok(())
        })
    }

    fn api<'a>(
        &'a self,
        process: &'a mut dijkwacht_runtime::Process,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<Option<axum::Router>>> {
        Box::pin(async move {
            let section = settings::RegulatorSettings::from_settings(&process.settings)?;
            let dossiers = section.key()?.map(|key| dossier::requests::Builder {
                key: std::sync::Arc::new(key),
                applicant: std::sync::Arc::new(process.settings.notice_policy()),
                settings: std::sync::Arc::new(section),
            });
            if let Some(builder) = &dossiers {
                let shutdown = process.shutdown.clone();
                process.spawn(
                    builder
                        .clone()
                        .run(process.pool().clone(), process.clock.clone(), shutdown),
                );
            }
            let api = regulator::RegulatorApi {
                store: process.store.clone(),
                clock: process.clock.clone(),
                limits: process.shared::<dijkwacht_http::Limits>().await?,
                dossiers,
                secure_cookies: !process.settings.demo,
            };
            Ok(Some(regulator::router(api.clone()).merge(dashboard::router(api))))
        })
    }

    fn openapi(&self, version: &str) -> Vec<serde_json::Value> {
        vec![regulator::documented().into_parts("", version).1]
    }
}

impl Stage for ProjectionStage {
    fn name(&self) -> &'static str {
        PROJECTION
    }

    fn waits_for(&self) -> WaitsFor {
        WaitsFor::Everything
    }

    async fn command_for(&self, _event: &RecordedEvent, _case: &Case) -> Result<Option<Command>, StageError> {
        Ok(None)
    }

    async fn after_commit(
        &self,
        cases: &[&Case],
        _traces: &CaseTraces,
        _now: DateTime<Utc>,
    ) -> Result<Vec<(CaseId, Command)>, StageError> {
        project(&self.pool, cases).await?;
        Ok(vec![])
    }
}

/// The tables of the read models: the live ones, or those a rebuild fills before it swaps
/// them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadModels {
    pub summaries: &'static str,
    pub facts: &'static str,
    pub prior_decisions: &'static str,
}

impl ReadModels {
    pub const LIVE: Self = Self {
        summaries: "case_summaries",
        facts: "notice_facts",
        prior_decisions: "prior_decisions",
    };
    pub const NEXT: Self = Self {
        summaries: "case_summaries_next",
        facts: "notice_facts_next",
        prior_decisions: "prior_decisions_next",
    };

    /// The live table and its counterpart in `self`, for each read model.
    pub fn pairs(self) -> [(&'static str, &'static str); 3] {
        [
            (Self::LIVE.summaries, self.summaries),
            (Self::LIVE.facts, self.facts),
            (Self::LIVE.prior_decisions, self.prior_decisions),
        ]
    }
}

/// Every read model of these cases, from their states; idempotent.
pub async fn project(pool: &PgPool, cases: &[&Case]) -> Result<(), sqlx::Error> {
    project_into(pool, cases, ReadModels::LIVE).await
}

/// [`project`] into the given tables, in one transaction (one commit, not three). Rows are
/// written in the order of their case ids, so that two projections of the same cases (a
/// batch and the catch-up, two processes) take their row locks in the same order.
pub async fn project_into(pool: &PgPool, cases: &[&Case], tables: ReadModels) -> Result<(), sqlx::Error> {
    let mut cases = cases.to_vec();
    cases.sort_unstable_by_key(|case| case.id);
    let mut tx = pool.begin().await?;
    upsert_summaries(&mut tx, &cases, tables.summaries).await?;
    facts::upsert(&mut tx, &cases, tables.facts).await?;
    prior_decisions::upsert(&mut tx, &cases, tables.prior_decisions).await?;
    tx.commit().await
}

/// Writes the summary rows of many cases in one statement, each unless a newer version is
/// already there.
pub async fn upsert_summaries(db: &mut PgConnection, cases: &[&Case], table: &str) -> Result<(), sqlx::Error> {
    let mut rows = SummaryColumns::default();
    for case in cases {
        rows.push(case);
    }
    if rows.case_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (case_id, version, status, partner_id, url, content_class, platform_id, received_at, \
             notice_issued_at, notice_delivered_at, removal_verified_at, closed_at, claimed_class, review_reason, claimed_by, \
             police_partner_id, police_held_at, police_released_at, review_queued_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], \
             $13::text[], $14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::timestamptz[], \
             $19::timestamptz[]) \
         ON CONFLICT (case_id) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status, \
             content_class = EXCLUDED.content_class, platform_id = EXCLUDED.platform_id, \
             notice_issued_at = EXCLUDED.notice_issued_at, notice_delivered_at = EXCLUDED.notice_delivered_at, \
             removal_verified_at = EXCLUDED.removal_verified_at, closed_at = EXCLUDED.closed_at, \
             claimed_class = EXCLUDED.claimed_class, review_reason = EXCLUDED.review_reason, claimed_by = EXCLUDED.claimed_by, \
             police_partner_id = EXCLUDED.police_partner_id, police_held_at = EXCLUDED.police_held_at, \
             police_released_at = EXCLUDED.police_released_at, review_queued_at = EXCLUDED.review_queued_at \
         WHERE {table}.version < EXCLUDED.version"
    ))
    .bind(&rows.case_ids)
    .bind(&rows.versions)
    .bind(&rows.statuses)
    .bind(&rows.partner_ids)
    .bind(&rows.urls)
    .bind(&rows.classes)
    .bind(&rows.platform_ids)
    .bind(&rows.received_at)
    .bind(&rows.notice_issued_at)
    .bind(&rows.notice_delivered_at)
    .bind(&rows.removal_verified_at)
    .bind(&rows.closed_at)
    .bind(&rows.claimed_classes)
    .bind(&rows.review_reasons)
    .bind(&rows.claimed_by)
    .bind(&rows.police_partner_ids)
    .bind(&rows.police_held_at)
    .bind(&rows.police_released_at)
    .bind(&rows.review_queued_at)
    .execute(db)
    .await?;
    Ok(())
}

/// One array per column of `case_summaries`, for a multi-row upsert.
#[derive(Default)]
struct SummaryColumns {
    case_ids: Vec<uuid::Uuid>,
    versions: Vec<i32>,
    statuses: Vec<&'static str>,
    partner_ids: Vec<Option<String>>,
    urls: Vec<String>,
    classes: Vec<Option<&'static str>>,
    platform_ids: Vec<Option<String>>,
    received_at: Vec<DateTime<Utc>>,
    notice_issued_at: Vec<Option<DateTime<Utc>>>,
    notice_delivered_at: Vec<Option<DateTime<Utc>>>,
    removal_verified_at: Vec<Option<DateTime<Utc>>>,
    closed_at: Vec<Option<DateTime<Utc>>>,
    claimed_classes: Vec<Option<&'static str>>,
    review_reasons: Vec<Option<&'static str>>,
    claimed_by: Vec<Option<String>>,
    police_partner_ids: Vec<Option<String>>,
    police_held_at: Vec<Option<DateTime<Utc>>>,
    police_released_at: Vec<Option<DateTime<Utc>>>,
    /// When the case came in, while it waits for an analyst: the review queue's order, in a
    /// column of its own so that the queue's index changes only when a case enters or
    /// leaves it (an index on the status would change with every event).
    review_queued_at: Vec<Option<DateTime<Utc>>>,
}

impl SummaryColumns {
    /// Adds a case that has a report; a case without one has nothing to summarise.
    fn push(&mut self, case: &Case) {
        let (Some(report), Some(received_at)) = (&case.report, case.received_at) else {
            return;
        };
        self.case_ids.push(case.id.0);
        self.versions.push(case.version as i32);
        self.statuses.push(case.status.as_str());
        self.partner_ids.push(report.reporter.partner_id().map(|p| p.0.clone()));
        self.urls.push(report.location.url.clone());
        self.classes
            .push(case.classification.as_ref().map(|c| c.class.as_str()));
        self.platform_ids
            .push(case.host.as_ref().map(|h| h.platform_id.0.clone()));
        self.received_at.push(received_at);
        self.notice_issued_at.push(case.notice.as_ref().map(|n| n.issued_at));
        self.notice_delivered_at.push(case.dispatch.delivered_at);
        self.removal_verified_at.push(case.removal.verified_at);
        self.closed_at.push(case.closed_at);
        self.claimed_classes.push(report.claimed_class.map(|c| c.as_str()));
        self.review_reasons
            .push(case.review.as_ref().map(|r| r.reason.as_str()));
        self.claimed_by.push(case.claimed_by.clone());
        let police = &case.police;
        self.police_partner_ids
            .push(police.held.as_ref().map(|held| held.partner_id.0.clone()));
        self.police_held_at.push(police.held_at);
        self.police_released_at.push(police.released_at);
        self.review_queued_at
            .push((case.status == CaseStatus::AwaitingReview).then_some(received_at));
    }
}
