//! Rebuilding what is derived from the events alone — the read models, and each case's
//! wake-ups and operator-queue entry: after a bug fix, after restoring a backup, after an
//! upgrade from before wake-ups, and in tests as the reference the projection must equal.

use crate::project;
use chrono::{DateTime, Utc};
use dijkwacht_domain::{Case, CaseId};
use dijkwacht_runtime::{EventStore, StoreError};

/// Cases loaded and projected per round.
const CHUNK: i64 = 500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub cases: usize,
    /// Cases whose stream cannot be read; they are left out and listed by `verify`.
    pub unreadable: usize,
}

/// Empties the read models and projects every case again, chunk by chunk (a reader sees
/// the tables fill up; nothing else writes them meanwhile but the projection stage, whose
/// upserts are idempotent); rewrites every case's wake-ups as of `now`.
pub async fn rebuild(store: &EventStore, now: DateTime<Utc>) -> Result<Rebuilt, StoreError> {
    let pool = store.pool();
    sqlx::query("TRUNCATE case_summaries, prior_decisions, notice_facts")
        .execute(pool)
        .await?;
    let mut rebuilt = Rebuilt::default();
    let mut after = uuid::Uuid::nil();
    loop {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT stream_id FROM events WHERE stream_id > $1 ORDER BY stream_id LIMIT $2",
        )
        .bind(after)
        .bind(CHUNK)
        .fetch_all(pool)
        .await?;
        let Some(last) = ids.last() else { break };
        after = *last;
        let ids: Vec<CaseId> = ids.into_iter().map(CaseId).collect();
        let loaded = store.load(&ids).await?;
        let cases: Vec<&Case> = loaded.cases.values().map(|loaded| &loaded.case).collect();
        project(pool, &cases).await?;
        store.rewrite_waits(&cases, now).await?;
        rebuilt.cases += cases.len();
        rebuilt.unreadable += loaded.unreadable.len();
    }
    Ok(rebuilt)
}
