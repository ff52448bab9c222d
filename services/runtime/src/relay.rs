//! The outbox relay: publishes committed events to Kafka and deletes each outbox row only
//! after the broker acknowledged it. A row that can never be published (it cannot be read,
//! or the broker refuses it for good) is quarantined with the reason and the rest go on. A
//! producer that hit a fatal error is replaced. Readiness says when the relay cannot
//! publish or falls behind, and why.

use crate::clock::SharedClock;
use crate::health::Readiness;
use crate::kafka::{self, ProducerSettings};
use crate::shutdown::{self, Shutdown};
use crate::store::{recorded_event_json, Metadata};
use crate::telemetry::events::{self, InternalEvent};
use crate::telemetry::trace::{self, TraceParent};
use crate::topics::{Topic, TopicNames};
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

/// Only one relay publishes at a time, so events of one case leave in commit order even
/// when several processes run a relay.
const RELAY_LOCK: i64 = 0x646a_6b77_7265_6c61; // "djkwrela"
/// How often the age of the oldest unpublished row is looked at.
const LAG_CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub batch_size: i64,
    /// The pause when there is nothing to publish.
    pub idle: Duration,
    /// Readiness fails while the oldest unpublished row is older than this.
    pub max_lag: TimeDelta,
}

/// What one round of publishing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub acknowledged: usize,
    pub quarantined: usize,
    /// Rows left for the next round, and the last reason.
    pub failed: usize,
    pub last_error: Option<String>,
}

pub struct Relay {
    pool: PgPool,
    producer_settings: ProducerSettings,
    producer: FutureProducer,
    topics: TopicNames,
    clock: SharedClock,
    readiness: Readiness,
    settings: RelaySettings,
    /// Appends in this process wake the relay before its pause is over.
    appended: Arc<Notify>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        producer_settings: ProducerSettings,
        topics: TopicNames,
        clock: SharedClock,
        readiness: Readiness,
        settings: RelaySettings,
    ) -> Result<Self, KafkaError> {
        let producer = kafka::producer(&producer_settings)?;
        Ok(Self {
            pool,
            producer_settings,
            producer,
            topics,
            clock,
            readiness,
            settings,
            appended: Arc::new(Notify::new()),
        })
    }

    /// Publishes as soon as `store` commits an append in this process, not only at the
    /// next poll (which still finds what other processes appended).
    pub fn woken_by(mut self, store: &crate::EventStore) -> Self {
        self.appended = store.appended();
        self
    }

    /// Publishes up to one batch of unpublished events.
    pub async fn publish_batch(&self) -> Result<Published, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(Published::default());
        }
        let rows = sqlx::query(
            "SELECT o.id AS outbox_id, o.topic, e.position, e.stream_id, e.stream_version, e.event_type, \
                    e.payload::text AS payload, e.metadata::text AS metadata, e.recorded_at \
             FROM (SELECT id, position, topic FROM outbox WHERE quarantined_at IS NULL ORDER BY id LIMIT $1) o \
             JOIN events e ON e.position = o.position ORDER BY o.id",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(Published::default());
        }
        let mut quarantine: Vec<(i64, String)> = Vec::new();
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let outbox_id: i64 = row.try_get("outbox_id")?;
            match self.message(row) {
                Ok(message) => messages.push((outbox_id, message)),
                Err(reason) => quarantine.push((outbox_id, reason)),
            }
        }
        // All sends are in flight at once; the idempotent producer keeps per-partition order.
        let deliveries = join_all(messages.iter().map(|(_, message)| {
            let record = FutureRecord::to(&message.topic)
                .key(&message.key)
                .payload(&message.payload)
                .headers(kafka::event_headers(&message.event_type, message.traceparent.as_ref()));
            self.producer.send(record, self.producer_settings.message_timeout)
        }))
        .await;
        let mut published = Published::default();
        let mut acknowledged = Vec::with_capacity(messages.len());
        for ((outbox_id, Message { topic, key, .. }), delivery) in messages.iter().zip(deliveries) {
            match delivery {
                Ok(_) => acknowledged.push(*outbox_id),
                Err((error, _)) if refused_for_good(&error) => {
                    quarantine.push((*outbox_id, format!("the broker refused it for good: {error}")));
                }
                Err((error, _)) => {
                    tracing::warn!(%topic, case_id = %key, %error, "publish failed; will retry");
                    published.failed += 1;
                    published.last_error = Some(error.to_string());
                }
            }
        }
        crate::crash::point("relay.before-mark");
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&acknowledged)
            .execute(&mut *tx)
            .await?;
        if !quarantine.is_empty() {
            let (ids, reasons): (Vec<i64>, Vec<String>) = quarantine.into_iter().unzip();
            for (id, reason) in ids.iter().zip(&reasons) {
                tracing::error!(outbox_id = id, %reason, "outbox row quarantined");
            }
            sqlx::query(
                "UPDATE outbox o SET quarantined_at = now(), quarantine_reason = q.reason \
                 FROM UNNEST($1::int8[], $2::text[]) AS q (id, reason) WHERE o.id = q.id",
            )
            .bind(&ids)
            .bind(&reasons)
            .execute(&mut *tx)
            .await?;
            published.quarantined = ids.len();
        }
        tx.commit().await?;
        published.acknowledged = acknowledged.len();
        events::RelayPublished {
            acknowledged: published.acknowledged,
            quarantined: published.quarantined,
        }
        .emit();
        Ok(published)
    }

    /// The message of an outbox row, or why it can never be published. An event decided
    /// within a trace is published within it: the relay's span, finished when the batch is
    /// acknowledged, is the parent of the consumers' work.
    fn message(&self, row: &sqlx::postgres::PgRow) -> Result<Message, String> {
        let topic: String = row.try_get("topic").map_err(|e| e.to_string())?;
        if !Topic::EVENTS.iter().any(|known| known.name() == topic) {
            return Err(format!("unknown topic {topic:?}"));
        }
        fn unreadable(error: impl std::fmt::Display) -> String {
            format!("the event cannot be read: {error}")
        }
        let case_id: Uuid = row.try_get("stream_id").map_err(unreadable)?;
        let event_type: String = row.try_get("event_type").map_err(unreadable)?;
        let metadata: &str = row.try_get("metadata").map_err(unreadable)?;
        let payload = recorded_event_json(
            row.try_get("position").map_err(unreadable)?,
            case_id,
            row.try_get("stream_version").map_err(unreadable)?,
            row.try_get("recorded_at").map_err(unreadable)?,
            &event_type,
            row.try_get("payload").map_err(unreadable)?,
            metadata,
        )
        .map_err(unreadable)?;
        let parent = serde_json::from_str::<Metadata>(metadata)
            .map_err(unreadable)?
            .traceparent;
        let (span, traceparent) = match &parent {
            Some(parent) => {
                let span = tracing::info_span!(
                    "publish",
                    otel.name = %format_args!("relay {event_type}"),
                    otel.kind = "producer",
                    %case_id,
                    topic,
                    trace_id = tracing::field::Empty,
                );
                let continued = trace::continue_trace(&span, Some(parent));
                (Some(span), continued)
            }
            None => (None, None),
        };
        Ok(Message {
            topic: self.topics.qualify(&topic),
            key: case_id.to_string(),
            payload,
            event_type,
            traceparent,
            _span: span,
        })
    }

    /// How long the oldest row waiting to be published has waited; also tells the
    /// operators how many rows wait. The oldest is the first in the outbox's order, found by
    /// its index: joining a backlog of a hundred thousand rows to the events to find it took
    /// 20 ms a second, while the relay fell behind.
    pub async fn lag(&self, now: DateTime<Utc>) -> Result<Option<TimeDelta>, sqlx::Error> {
        let (rows, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox WHERE quarantined_at IS NULL), \
                    (SELECT e.recorded_at FROM outbox o JOIN events e ON e.position = o.position \
                     WHERE o.quarantined_at IS NULL ORDER BY o.id LIMIT 1)",
        )
        .fetch_one(&self.pool)
        .await?;
        let lag = oldest.map(|at| now - at);
        events::RelayBacklog {
            rows,
            oldest_seconds: lag.map_or(0.0, |lag| lag.num_milliseconds() as f64 / 1000.0),
        }
        .emit();
        Ok(lag)
    }

    /// A producer that hit a fatal error (the idempotent producer's guarantees broke) sends
    /// nothing more: replace it. Unacknowledged rows are simply published again.
    fn replace_producer_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else {
            return;
        };
        tracing::error!(?code, %reason, "the Kafka producer failed fatally; creating a new one");
        match kafka::producer(&self.producer_settings) {
            Ok(producer) => self.producer = producer,
            Err(error) => tracing::error!(%error, "creating a new Kafka producer failed; retrying"),
        }
    }

    /// Publishes until shutdown: at once while there is a backlog, every `idle` otherwise.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut last_lag_check: Option<Instant> = None;
        loop {
            // Abandoned after a grace at shutdown: unacknowledged rows stay in the outbox.
            let Some(round) = shutdown.within_grace(shutdown::GRACE, self.publish_batch()).await else {
                return;
            };
            self.replace_producer_if_fatal();
            let full = matches!(&round, Ok(p) if p.acknowledged as i64 >= self.settings.batch_size);
            match &round {
                Err(error) => {
                    tracing::error!(%error, "outbox relay failed; retrying");
                    self.readiness
                        .not_ready(format!("the relay cannot read the outbox: {error}"));
                }
                Ok(published) if published.acknowledged == 0 && published.failed > 0 => {
                    let error = published.last_error.as_deref().unwrap_or("unknown");
                    self.readiness.not_ready(format!("the relay cannot publish: {error}"));
                }
                Ok(_) if last_lag_check.is_none_or(|at| at.elapsed() >= LAG_CHECK_EVERY) => {
                    last_lag_check = Some(Instant::now());
                    self.check_lag().await;
                }
                Ok(_) => {}
            }
            let pause = match round {
                Ok(_) if full => Duration::ZERO,
                Ok(_) => self.settings.idle,
                Err(_) => self.settings.idle.max(Duration::from_secs(1)),
            };
            tokio::select! {
                stop = shutdown.sleep_or_stop(pause) => if stop {
                    return;
                },
                _ = self.appended.notified(), if !pause.is_zero() => {}
            }
        }
    }

    async fn check_lag(&self) {
        match self.lag(self.clock.now()).await {
            Ok(Some(lag)) if lag > self.settings.max_lag => self.readiness.not_ready(format!(
                "the oldest unpublished event has waited {} s (more than {} s)",
                lag.num_seconds(),
                self.settings.max_lag.num_seconds()
            )),
            Ok(_) => self.readiness.ready(),
            Err(error) => self
                .readiness
                .not_ready(format!("the relay cannot read the outbox: {error}")),
        }
    }
}

/// An outbox row the relay set apart, and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, sqlx::FromRow)]
pub struct QuarantinedRow {
    pub outbox_id: i64,
    /// The event's global position.
    pub position: i64,
    pub topic: String,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
}

/// The quarantined rows, oldest first.
pub async fn quarantined(pool: &PgPool, limit: i64) -> Result<Vec<QuarantinedRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id AS outbox_id, position, topic, coalesce(quarantine_reason, '') AS reason, quarantined_at FROM outbox \
         WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Errors no retry can fix: the message itself is wrong for the broker.
fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// One outbox row on its way to the broker.
struct Message {
    topic: String,
    key: String,
    payload: Vec<u8>,
    /// Lets a consumer pass over what it does not wait for without parsing it.
    event_type: String,
    traceparent: Option<TraceParent>,
    /// Open while the message is in flight.
    _span: Option<tracing::Span>,
}

/// The relay as a part of a process (`run --only relay`); several may run, one publishes.
pub struct RelayPart;

impl crate::Part for RelayPart {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn check(&self, _settings: &crate::config::Settings) -> anyhow::Result<()> {
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut crate::Process) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let settings = &process.settings;
            let relay = Relay::new(
                process.pool().clone(),
                settings.producer_settings(&process.stages.bootstrap_servers),
                process.stages.topics.clone(),
                process.clock.clone(),
                process.health.register("relay", "it has not published yet"),
                RelaySettings {
                    batch_size: settings.batch_size as i64,
                    idle: Duration::from_millis(settings.relay_idle_ms),
                    max_lag: TimeDelta::seconds(settings.relay_max_lag_secs),
                },
            )?
            .woken_by(&process.store);
            let shutdown = process.shutdown.clone();
            process.spawn(relay.run(shutdown));
            Ok(())
        })
    }
}
