//! The outbox relay: publishes committed events to Kafka and marks each outbox row only
//! after the broker acknowledged it.

use crate::shutdown::Shutdown;
use crate::store::{StoreError, StoredRow};
use crate::topics::TopicNames;
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgPool, Row};
use std::time::Duration;

/// Only one relay publishes at a time, so events of one case leave in commit order even
/// when several processes run a relay.
const RELAY_LOCK: i64 = 0x646a_6b77_7265_6c61; // "djkwrela"

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    topics: TopicNames,
    batch_size: i64,
}

impl Relay {
    pub fn new(pool: PgPool, producer: FutureProducer, topics: TopicNames, batch_size: i64) -> Self {
        Self {
            pool,
            producer,
            topics,
            batch_size,
        }
    }

    /// Publishes up to one batch of unpublished events; returns how many were acknowledged.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT o.id AS outbox_id, o.topic, e.position, e.stream_id, e.stream_version, e.event_type, e.schema_version, \
                    e.payload, e.metadata, e.recorded_at, e.prev_hash, e.hash \
             FROM outbox o JOIN events e ON e.position = o.position \
             WHERE o.published_at IS NULL ORDER BY o.id LIMIT $1",
        )
        .bind(self.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let outbox_id: i64 = row.try_get("outbox_id")?;
            let topic: String = row.try_get("topic")?;
            let recorded = StoredRow::from_row(row)?.decode()?;
            let payload = serde_json::to_vec(&recorded).expect("recorded events serialize");
            messages.push((
                outbox_id,
                self.topics.qualify(&topic),
                recorded.case_id.to_string(),
                payload,
            ));
        }
        // All sends are in flight at once; the idempotent producer keeps per-partition order.
        let deliveries = join_all(messages.iter().map(|(_, topic, key, payload)| {
            self.producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
        }))
        .await;
        let mut acknowledged = Vec::with_capacity(messages.len());
        for ((outbox_id, topic, key, _), delivery) in messages.iter().zip(deliveries) {
            match delivery {
                Ok(_) => acknowledged.push(*outbox_id),
                Err((error, _)) => tracing::warn!(%topic, case_id = %key, %error, "publish failed; will retry"),
            }
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&acknowledged)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(acknowledged.len())
    }

    /// Publishes until shutdown: at once while there is a backlog, every `idle` otherwise.
    pub async fn run(self, idle: Duration, mut shutdown: Shutdown) {
        loop {
            let pause = match self.publish_batch().await {
                Ok(n) if n as i64 >= self.batch_size => Duration::ZERO,
                Ok(_) => idle,
                Err(error) => {
                    tracing::error!(%error, "outbox relay failed; retrying");
                    idle.max(Duration::from_secs(1))
                }
            };
            if shutdown.sleep_or_stop(pause).await {
                return;
            }
        }
    }
}
