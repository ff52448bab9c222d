//! The sweeper: finds cases that wait for a stage longer than they should and publishes
//! their last event again. A message lost in the broker, an embedded broker that restarted
//! empty, or a bug fixed later all heal without an operator; redelivery is harmless because
//! every stage decides on the current state.

use crate::clock::SharedClock;
use crate::shutdown::Shutdown;
use crate::topics::Topic;
use chrono::TimeDelta;
use sqlx::PgPool;
use std::time::Duration;

/// Events after which a stage must act, and the topic that stage reads.
const WAITING: [(&str, Topic); 4] = [
    ("ReportReceived", Topic::Reports),
    ("ReportedAgain", Topic::Reports),
    ("Classified", Topic::Classifications),
    ("NoticeIssued", Topic::Notices),
];

#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// A case whose last event is older than this, and of a waiting kind, is stuck.
    pub stale_after: TimeDelta,
    /// Older cases are left to operators: the sweep's cost stays bounded.
    pub horizon: TimeDelta,
    pub batch_size: i64,
}

pub struct Sweeper {
    pool: PgPool,
    clock: SharedClock,
    settings: SweepSettings,
}

impl Sweeper {
    pub fn new(pool: PgPool, clock: SharedClock, settings: SweepSettings) -> Self {
        Self { pool, clock, settings }
    }

    /// Re-publishes one batch of stuck cases' last events; returns how many.
    pub async fn sweep_once(&self) -> Result<usize, sqlx::Error> {
        let now = self.clock.now();
        let stale_before = now - self.settings.stale_after;
        let types: Vec<&str> = WAITING.iter().map(|(kind, _)| *kind).collect();
        let mut tx = self.pool.begin().await?;
        let stuck: Vec<(i64, String)> = sqlx::query_as(
            "SELECT e.position, e.event_type FROM events e \
             WHERE e.event_type = ANY($1) AND e.recorded_at < $2 AND e.recorded_at > $3 \
               AND NOT EXISTS (SELECT 1 FROM events later WHERE later.stream_id = e.stream_id AND later.stream_version > e.stream_version) \
               AND NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.position = e.position AND s.swept_at > $2) \
             ORDER BY e.recorded_at LIMIT $4 FOR UPDATE SKIP LOCKED",
        )
        .bind(&types)
        .bind(stale_before)
        .bind(now - self.settings.horizon)
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if stuck.is_empty() {
            return Ok(0);
        }
        let positions: Vec<i64> = stuck.iter().map(|(position, _)| *position).collect();
        let topics: Vec<&str> = stuck
            .iter()
            .map(|(_, kind)| {
                WAITING
                    .iter()
                    .find(|(waiting, _)| waiting == kind)
                    .map_or(Topic::Reports.name(), |(_, topic)| topic.name())
            })
            .collect();
        sqlx::query("INSERT INTO outbox (position, topic) SELECT * FROM UNNEST($1::int8[], $2::text[])")
            .bind(&positions)
            .bind(&topics)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sweeps (position, swept_at) SELECT p, $2 FROM UNNEST($1::int8[]) AS p \
             ON CONFLICT (position) DO UPDATE SET swept_at = EXCLUDED.swept_at",
        )
        .bind(&positions)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(cases = stuck.len(), "sweeper re-published stuck cases");
        Ok(stuck.len())
    }

    pub async fn run(self, every: Duration, mut shutdown: Shutdown) {
        loop {
            if shutdown.sleep_or_stop(every).await {
                return;
            }
            if let Err(error) = self.sweep_once().await {
                tracing::warn!(%error, "sweep failed");
            }
        }
    }
}
