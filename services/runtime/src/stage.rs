//! The one loop every stage runs (DESIGN.md §3): consume a batch, load its cases in one
//! query, decide purely, append in one transaction, act on the durable decision, and only
//! then store the offsets. Redelivery is harmless because deciding looks at the current
//! state; what cannot be decoded or decided goes to the dead-letter topic.

use crate::clock::SharedClock;
use crate::health::Health;
use crate::kafka;
use crate::shutdown::Shutdown;
use crate::store::{EventStore, LoadedCase, Metadata, NewEvents, RecordedEvent, StoreError};
use crate::timers;
use crate::topics::{Topic, TopicNames};
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::{Case, CaseId, Command};
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientContext;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What went wrong while handling work, and what the loop should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The world is temporarily unavailable (database, broker, a lookup): try the batch again.
    #[error("retryable: {0}")]
    Retryable(String),
    /// This message can never be handled: dead-letter it and move on.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<StoreError> for StageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt { .. } => StageError::Permanent(error.to_string()),
            other => StageError::Retryable(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for StageError {
    fn from(error: sqlx::Error) -> Self {
        StageError::Retryable(error.to_string())
    }
}

/// A stage: which events it consumes and what it makes of them. Implementations hold
/// their own lookups and policies; the loop does everything else.
pub trait Stage: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    fn topics(&self) -> &'static [Topic];

    /// The command this stage issues for a consumed event, or `None` when the event is not
    /// for it. May look things up; must not change anything. Runs concurrently with the
    /// other lookups of its batch, on the case as loaded for the batch.
    fn command_for(
        &self,
        event: &RecordedEvent,
        case: &Case,
    ) -> impl Future<Output = Result<Option<Command>, StageError>> + Send;

    /// Side effects that may only follow a durable decision (sending a notice, updating a
    /// read model), for all cases of a batch at once. Runs for every case the batch
    /// touched, so it must look at the state, not at what just happened. Returned commands
    /// are decided and appended next, and their cases offered to this hook again.
    fn after_commit(
        &self,
        _cases: &[&Case],
    ) -> impl Future<Output = Result<Vec<(CaseId, Command)>, StageError>> + Send {
        async { Ok(vec![]) }
    }

    /// When this stage wants to see the case again, by the clock.
    fn wake_at(&self, _case: &Case) -> Option<DateTime<Utc>> {
        None
    }

    /// The command for a case whose timer came due.
    fn on_wake(&self, _case: &Case) -> impl Future<Output = Result<Option<Command>, StageError>> + Send {
        async { Ok(None) }
    }

    /// Whether the loop should poll this stage's timers.
    fn uses_timers(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first message arrived.
    pub linger: Duration,
    /// How often due timers are looked for.
    pub timer_poll: Duration,
    /// How long a claimed timer is hidden from other processes.
    pub timer_lease: TimeDelta,
    pub group_prefix: String,
}

impl Default for LoopSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            linger: Duration::from_millis(20),
            timer_poll: Duration::from_millis(500),
            timer_lease: TimeDelta::seconds(60),
            group_prefix: "dijkwacht.".into(),
        }
    }
}

const MAX_CONFLICT_RETRIES: usize = 8;
/// `command_for` calls in flight at once within a batch (they may query the database).
const CONCURRENT_LOOKUPS: usize = 16;
const MAX_FOLLOW_UPS: usize = 4;

/// Everything a stage loop needs besides the stage.
#[derive(Clone)]
pub struct StageRuntime {
    pub store: EventStore,
    pub clock: SharedClock,
    pub topics: TopicNames,
    pub bootstrap_servers: String,
    pub producer: FutureProducer,
    pub health: Health,
    pub settings: LoopSettings,
}

pub struct StageLoop<S: Stage> {
    stage: Arc<S>,
    runtime: StageRuntime,
    ready: Arc<AtomicBool>,
}

struct ReadinessContext {
    ready: Arc<AtomicBool>,
    stage: &'static str,
}

impl ClientContext for ReadinessContext {}

impl ConsumerContext for ReadinessContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(
                    stage = self.stage,
                    partitions = partitions.count(),
                    "joined consumer group"
                );
                self.ready.store(true, Ordering::Release);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(stage = self.stage, %error, "rebalance failed"),
        }
    }
}

/// A message that could not be handled, on its way to the dead-letter topic.
struct DeadLetter {
    index: usize,
    reason: String,
}

impl<S: Stage> StageLoop<S> {
    pub fn new(stage: S, runtime: StageRuntime) -> Self {
        let ready = runtime.health.register(stage.name());
        Self {
            stage: Arc::new(stage),
            runtime,
            ready,
        }
    }

    /// Consumes until shutdown; runs the timer loop beside it when the stage uses timers.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StageError> {
        let name = self.stage.name();
        let ready = self.ready.clone();
        let group = format!("{}{}", self.runtime.settings.group_prefix, name);
        let consumer = kafka::consumer(
            &self.runtime.bootstrap_servers,
            &group,
            ReadinessContext { ready, stage: name },
        )
        .map_err(|e| StageError::Permanent(format!("creating the {name} consumer: {e}")))?;
        let topics: Vec<String> = self.stage.topics().iter().map(|t| self.runtime.topics.of(*t)).collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(|e| StageError::Permanent(format!("subscribing {name} to {topics:?}: {e}")))?;
        tracing::info!(stage = name, ?topics, %group, "stage started");

        let this = Arc::new(self);
        let timer_task = this
            .stage
            .uses_timers()
            .then(|| tokio::spawn(this.clone().run_timers(shutdown.clone())));
        this.consume(&consumer, shutdown).await;
        if let Some(task) = timer_task {
            let _ = task.await;
        }
        tracing::info!(stage = name, "stage stopped");
        Ok(())
    }

    async fn consume(&self, consumer: &StreamConsumer<ReadinessContext>, mut shutdown: Shutdown) {
        while let Some(batch) = self.next_batch(consumer, &mut shutdown).await {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.handle_batch(&batch).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(stage = self.stage.name(), %error, ?backoff, "batch failed; retrying");
                        // Offsets were not stored, but the consumer has moved on: the batch is
                        // retried here until it succeeds, never skipped.
                        if shutdown.sleep_or_stop(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            if let Err(error) = store_offsets(consumer, &batch) {
                tracing::warn!(stage = self.stage.name(), %error, "storing offsets failed; the batch may be redelivered");
            }
        }
    }

    async fn next_batch(
        &self,
        consumer: &StreamConsumer<ReadinessContext>,
        shutdown: &mut Shutdown,
    ) -> Option<Vec<OwnedMessage>> {
        let settings = &self.runtime.settings;
        let first = loop {
            tokio::select! {
                message = consumer.recv() => match message {
                    Ok(message) => break message.detach(),
                    Err(error) => tracing::warn!(stage = self.stage.name(), %error, "consumer error"),
                },
                _ = shutdown.wait() => return None,
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.linger;
        while batch.len() < settings.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => {
                    tracing::warn!(stage = self.stage.name(), %error, "consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Handles one batch completely; safe to call again with the same batch.
    async fn handle_batch(&self, batch: &[OwnedMessage]) -> Result<(), StageError> {
        let mut dead = Vec::new();
        let mut decoded = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match decode(message) {
                Ok(event) => decoded.push((index, event)),
                Err(reason) => dead.push(DeadLetter { index, reason }),
            }
        }
        let touched = self.decide_and_append(&decoded, &mut dead).await?;
        self.settle(touched).await?;
        self.dead_letter(batch, &dead).await
    }

    /// Decides every decoded message against the current state and appends the result in
    /// one transaction. On a conflict, everything is reloaded and decided again.
    async fn decide_and_append(
        &self,
        decoded: &[(usize, RecordedEvent)],
        dead: &mut Vec<DeadLetter>,
    ) -> Result<HashMap<CaseId, LoadedCase>, StageError> {
        let mut ids: Vec<CaseId> = decoded.iter().map(|(_, event)| event.case_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let refusals_before = dead.len();
        for _ in 0..MAX_CONFLICT_RETRIES {
            dead.truncate(refusals_before);
            let mut cases = self.runtime.store.load(&ids).await?;
            let now = self.runtime.clock.now();
            let mut pending: BTreeMap<CaseId, NewEvents> = BTreeMap::new();
            // Lookups for the whole batch run concurrently, each on the case as loaded;
            // deciding stays sequential, so a later message sees what an earlier one decided
            // and a command made stale by it decides to nothing.
            let commands = self.commands_for(decoded, &cases).await;
            for ((index, event), command) in decoded.iter().zip(commands) {
                let loaded = cases
                    .get_mut(&event.case_id)
                    .expect("every case in the batch was loaded");
                let command = match command {
                    Ok(Some(command)) => command,
                    Ok(None) => continue,
                    Err(StageError::Permanent(reason)) => {
                        dead.push(DeadLetter { index: *index, reason });
                        continue;
                    }
                    Err(retryable) => return Err(retryable),
                };
                match loaded.case.decide(command, now) {
                    Ok(events) => {
                        let new = pending.entry(event.case_id).or_insert_with(|| NewEvents {
                            case_id: event.case_id,
                            expected_version: loaded.case.version,
                            head_hash: loaded.head_hash,
                            events: Vec::new(),
                        });
                        let metadata = self.metadata(&loaded.case).caused_by(event.position);
                        for new_event in events {
                            loaded.case.apply(&new_event, now);
                            new.events.push((new_event, metadata.clone()));
                        }
                    }
                    Err(refusal) => dead.push(DeadLetter {
                        index: *index,
                        reason: format!("refused: {refusal}"),
                    }),
                }
            }
            let appends: Vec<NewEvents> = pending.into_values().filter(|new| !new.events.is_empty()).collect();
            match self.runtime.store.append(&appends, now).await {
                Ok(_) => return Ok(cases),
                Err(StoreError::Conflict) => {
                    tracing::debug!(stage = self.stage.name(), "append conflict; deciding again");
                    continue;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(StageError::Retryable(
            "conflicts persisted; will retry the batch".into(),
        ))
    }

    async fn commands_for(
        &self,
        decoded: &[(usize, RecordedEvent)],
        cases: &HashMap<CaseId, LoadedCase>,
    ) -> Vec<Result<Option<Command>, StageError>> {
        // A loop, not a closure: closures here trip the compiler's proof that the stage's
        // future is `Send` (rust-lang/rust#102211).
        let mut lookups = Vec::with_capacity(decoded.len());
        for (_, event) in decoded {
            lookups.push(self.stage.command_for(event, &cases[&event.case_id].case));
        }
        futures::stream::iter(lookups)
            .buffered(CONCURRENT_LOOKUPS)
            .collect()
            .await
    }

    /// After a durable decision: side effects, their follow-up commands, then timers.
    async fn settle(&self, cases: HashMap<CaseId, LoadedCase>) -> Result<(), StageError> {
        let cases = self
            .follow_up(cases.into_values().map(|loaded| loaded.case).collect())
            .await?;
        let timers: Vec<_> = cases.iter().map(|case| (case.id, self.stage.wake_at(case))).collect();
        timers::set(self.runtime.store.pool(), self.stage.name(), &timers).await?;
        Ok(())
    }

    /// Runs the stage's side effects and the commands they return, round after round, for
    /// the cases that got a command; returns every case as it ends up.
    async fn follow_up(&self, cases: Vec<Case>) -> Result<Vec<Case>, StageError> {
        let mut cases: BTreeMap<CaseId, Case> = cases.into_iter().map(|case| (case.id, case)).collect();
        let mut offered: Vec<CaseId> = cases.keys().copied().collect();
        for _ in 0..MAX_FOLLOW_UPS {
            if offered.is_empty() {
                break;
            }
            let round: Vec<&Case> = offered.iter().filter_map(|id| cases.get(id)).collect();
            let commands = self.stage.after_commit(&round).await?;
            offered = commands.iter().map(|(id, _)| *id).collect();
            cases.extend(self.execute(commands).await?);
        }
        Ok(cases.into_values().collect())
    }

    /// Decides commands for several cases and appends the results in one transaction,
    /// deciding again on conflict; returns the cases as they are afterwards. A refused
    /// command is logged and skipped: a side effect's outcome cannot be dead-lettered.
    async fn execute(&self, commands: Vec<(CaseId, Command)>) -> Result<BTreeMap<CaseId, Case>, StageError> {
        if commands.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut ids: Vec<CaseId> = commands.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut loaded = self.runtime.store.load(&ids).await?;
            let now = self.runtime.clock.now();
            let mut appends: BTreeMap<CaseId, NewEvents> = BTreeMap::new();
            for (id, command) in &commands {
                let case = loaded.get_mut(id).expect("every commanded case was loaded");
                let events = match case.case.decide(command.clone(), now) {
                    Ok(events) => events,
                    Err(refusal) => {
                        tracing::warn!(stage = self.stage.name(), case_id = %id, %refusal, "follow-up command refused");
                        continue;
                    }
                };
                let metadata = self.metadata(&case.case);
                let append = appends.entry(*id).or_insert_with(|| NewEvents {
                    case_id: *id,
                    expected_version: case.case.version,
                    head_hash: case.head_hash,
                    events: Vec::new(),
                });
                for event in events {
                    case.case.apply(&event, now);
                    append.events.push((event, metadata.clone()));
                }
            }
            let appends: Vec<NewEvents> = appends.into_values().filter(|a| !a.events.is_empty()).collect();
            match self.runtime.store.append(&appends, now).await {
                Ok(_) => return Ok(loaded.into_iter().map(|(id, l)| (id, l.case)).collect()),
                Err(StoreError::Conflict) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(StageError::Retryable("follow-up cases kept changing".into()))
    }

    fn metadata(&self, case: &Case) -> Metadata {
        let metadata = Metadata::actor(format!("stage:{}", self.stage.name()));
        match &case.report {
            Some(report) => metadata.correlated_with(report.report_id.0),
            None => metadata,
        }
    }

    async fn dead_letter(&self, batch: &[OwnedMessage], dead: &[DeadLetter]) -> Result<(), StageError> {
        let topic = self.runtime.topics.of(Topic::DeadLetter);
        for letter in dead {
            let message = &batch[letter.index];
            tracing::warn!(stage = self.stage.name(), topic = message.topic(), offset = message.offset(), reason = %letter.reason, "dead-lettered");
            let offset = message.offset().to_string();
            let partition = message.partition().to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "dijkwacht-stage",
                    value: Some(self.stage.name()),
                })
                .insert(Header {
                    key: "dijkwacht-reason",
                    value: Some(letter.reason.as_str()),
                })
                .insert(Header {
                    key: "dijkwacht-source-topic",
                    value: Some(message.topic()),
                })
                .insert(Header {
                    key: "dijkwacht-source-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "dijkwacht-source-offset",
                    value: Some(offset.as_str()),
                });
            let mut record = FutureRecord::<[u8], [u8]>::to(&topic)
                .payload(message.payload().unwrap_or_default())
                .headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            self.runtime
                .producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(error, _)| StageError::Retryable(format!("dead-letter publish: {error}")))?;
        }
        Ok(())
    }

    async fn run_timers(self: Arc<Self>, mut shutdown: Shutdown) {
        let settings = self.runtime.settings.clone();
        loop {
            let pause = match self.fire_due_timers().await {
                Ok(fired) if fired >= settings.batch_size => Duration::ZERO,
                Ok(_) => settings.timer_poll,
                Err(error) => {
                    tracing::warn!(stage = self.stage.name(), %error, "timers failed; retrying");
                    settings.timer_poll.max(Duration::from_secs(1))
                }
            };
            if shutdown.sleep_or_stop(pause).await {
                return;
            }
        }
    }

    /// Handles every due timer once; returns how many fired.
    pub async fn fire_due_timers(&self) -> Result<usize, StageError> {
        let now = self.runtime.clock.now();
        let lease_until = now + self.runtime.settings.timer_lease;
        let due = timers::claim_due(
            self.runtime.store.pool(),
            self.stage.name(),
            now,
            lease_until,
            self.runtime.settings.batch_size as i64,
        )
        .await?;
        for id in &due {
            let mut case = self.runtime.store.load_one(*id).await?.case;
            if let Some(command) = self.stage.on_wake(&case).await? {
                if let Some(decided) = self.execute(vec![(*id, command)]).await?.remove(id) {
                    case = decided;
                }
            }
            let case = self
                .follow_up(vec![case])
                .await?
                .pop()
                .expect("follow-up keeps every case");
            // A wake time not in the future would fire again at once: wait out the lease instead.
            let next = self
                .stage
                .wake_at(&case)
                .map(|at| if at <= now { lease_until } else { at });
            timers::set(self.runtime.store.pool(), self.stage.name(), &[(*id, next)]).await?;
        }
        Ok(due.len())
    }
}

fn decode(message: &OwnedMessage) -> Result<RecordedEvent, String> {
    let payload = message.payload().ok_or("the message has no payload")?;
    serde_json::from_slice(payload).map_err(|e| format!("undecodable event: {e}"))
}

fn store_offsets<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    batch: &[OwnedMessage],
) -> rdkafka::error::KafkaResult<()> {
    let mut highest: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let offset = highest
            .entry((message.topic(), message.partition()))
            .or_insert(message.offset());
        *offset = (*offset).max(message.offset());
    }
    for ((topic, partition), offset) in highest {
        // librdkafka commits the stored offset + 1: the next message to read.
        consumer.store_offset(topic, partition, offset)?;
    }
    Ok(())
}
