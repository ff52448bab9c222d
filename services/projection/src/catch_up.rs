//! What makes the read models complete. Messages are the fast path to them; every few
//! seconds the projection also looks at the cases with events since the position it last
//! caught up to, and projects those its read models show at an older version: a message
//! the broker lost (an ephemeral broker restarted, a topic recreated) reaches the read
//! models all the same. This replaces a wake-up row per append, which cost two writes of
//! every change of every case.

use crate::project;
use dijkwacht_domain::{Case, CaseId};
use dijkwacht_runtime::store::StoreError;
use dijkwacht_runtime::{EventStore, Shutdown};
use std::time::Duration;
use uuid::Uuid;

/// How often the projection catches up. Each time, appends wait for a moment until none
/// is in flight ([`EventStore::committed_through`]).
pub const EVERY: Duration = Duration::from_secs(5);

/// Positions looked at per query, so that a long backlog is read in steps.
const STEP: i64 = 50_000;

/// Catches up every [`EVERY`] until shutdown.
pub async fn keep_up(store: EventStore, mut shutdown: Shutdown) {
    loop {
        if shutdown.sleep_or_stop(EVERY).await {
            return;
        }
        // What it did not finish, the next start does.
        let Some(result) = shutdown.within_grace(Duration::ZERO, catch_up(&store)).await else {
            return;
        };
        match result {
            Ok(0) => {}
            Ok(projected) => tracing::debug!(
                projected,
                "the projection caught up on cases its messages had not brought"
            ),
            Err(error) => tracing::warn!(%error, "the projection's catch-up failed; trying again"),
        }
    }
}

/// Projects every case with events after the position caught up to last whose read models
/// show an older version, up to the position every event is committed through; returns
/// how many it projected. Safe to run in several processes at once.
pub async fn catch_up(store: &EventStore) -> Result<usize, StoreError> {
    let pool = store.pool();
    let mut from: i64 = sqlx::query_scalar("SELECT position FROM projection_position")
        .fetch_one(pool)
        .await?;
    let through = store.committed_through().await?;
    let mut projected = 0;
    while from < through {
        let to = through.min(from + STEP);
        let behind: Vec<Uuid> = sqlx::query_scalar(
            "SELECT e.stream_id FROM ( \
                 SELECT stream_id, max(stream_version) AS version FROM events \
                 WHERE position > $1 AND position <= $2 GROUP BY stream_id) e \
             LEFT JOIN case_summaries s ON s.case_id = e.stream_id \
             WHERE s.version IS NULL OR s.version < e.version",
        )
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for chunk in behind.chunks(500) {
            let ids: Vec<CaseId> = chunk.iter().copied().map(CaseId).collect();
            // An unreadable case is set apart by the stage when its message arrives.
            let loaded = store.load(&ids).await?;
            let cases: Vec<&Case> = loaded.cases.values().map(|loaded| loaded.case.as_ref()).collect();
            project(pool, &cases).await?;
            projected += cases.len();
        }
        // Only from where this process started: another one may have moved on meanwhile.
        sqlx::query("UPDATE projection_position SET position = $2 WHERE position = $1")
            .bind(from)
            .bind(to)
            .execute(pool)
            .await?;
        from = to;
    }
    Ok(projected)
}
