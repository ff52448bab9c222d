//! The one loop every stage runs (DESIGN.md §3): consume a batch, load its cases in one
//! query, decide purely and append through the one command path (events, outbox rows and
//! wake-ups in one transaction), act on the durable decision, and only then store the
//! offsets. Beside it, the stage fires its due wake-ups, which move a case on when its
//! message was lost. Redelivery is harmless because deciding looks at the current state;
//! what cannot be read or decided goes to the dead-letter topic and the operator queue.

mod error;

pub use error::{Cause, StageError};

use crate::clock::SharedClock;
use crate::commands::{CaseCommand, Rejection};
use crate::health::{Health, Readiness};
use crate::kafka;
use crate::operator;
use crate::shutdown::{self, Shutdown};
use crate::store::{EventStore, Loaded, Metadata, RecordedEvent};
use crate::telemetry::events::{self, InternalEvent};
use crate::telemetry::trace::{self, TraceParent};
use crate::timers::{self, DueTimer};
use crate::topics::{Topic, TopicNames, WaitsFor};
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::{Case, CaseId, Command};
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientContext;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// A stage: which events it consumes and what it makes of them. Implementations hold
/// their own lookups and policies; the loop does everything else.
pub trait Stage: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// The events this stage acts on; its subscriptions follow from them, and no other
    /// event reaches [`Stage::command_for`].
    fn waits_for(&self) -> WaitsFor;

    /// The command this stage issues for an event it waits for, or `None` when the case
    /// needs nothing from it now. May look things up; must not change anything. Runs concurrently with the
    /// other lookups of its batch, on the case as loaded for the batch.
    fn command_for(
        &self,
        event: &RecordedEvent,
        case: &Case,
    ) -> impl Future<Output = Result<Option<Command>, StageError>> + Send;

    /// Runs once before the lookups of a batch, of messages or of wake-ups: where a stage
    /// brings up to date what its lookups read (the platform registry), so that a batch
    /// reads it once rather than once per case.
    fn before_lookups(&self) -> impl Future<Output = Result<(), StageError>> + Send {
        async { Ok(()) }
    }

    /// The command for a case whose wake-up came due: the case waits for this stage (by
    /// [`Case::wait`]) and no message moved it on in time, or its own clock ran out.
    fn on_wake(&self, _case: &Case) -> impl Future<Output = Result<Option<Command>, StageError>> + Send {
        async { Ok(None) }
    }

    /// Side effects that may only follow a durable decision (sending a notice, updating a
    /// read model), for all cases of a batch at once. Runs for every case the batch
    /// touched, so it must look at the state, not at what just happened. Returned commands
    /// are decided and appended next, at the clock's reading when the hook returned, and
    /// their cases offered to this hook again. What is sent for a case continues its trace
    /// in `traces`.
    fn after_commit(
        &self,
        _cases: &[&Case],
        _traces: &CaseTraces,
        _now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(CaseId, Command)>, StageError>> + Send {
        async { Ok(vec![]) }
    }
}

#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first message arrived. Zero takes what
    /// has arrived: under load, messages gather while a batch is handled, so batches fill by
    /// themselves, and a lone message is not kept waiting.
    pub linger: Duration,
    /// How often due timers are looked for.
    pub timer_poll: Duration,
    /// How long a claimed timer is hidden from other processes; also the first pause after
    /// a timer fired without moving its case on.
    pub timer_lease: TimeDelta,
    pub group_prefix: String,
}

impl Default for LoopSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            linger: Duration::ZERO,
            timer_poll: Duration::from_millis(500),
            timer_lease: TimeDelta::seconds(60),
            group_prefix: "dijkwacht.".into(),
        }
    }
}

/// The trace each case of a batch continues: that of the message or wake-up that moved it.
#[derive(Debug, Clone, Default)]
pub struct CaseTraces(HashMap<CaseId, TraceParent>);

impl CaseTraces {
    pub fn of(&self, case_id: CaseId) -> Option<&TraceParent> {
        self.0.get(&case_id)
    }

    fn insert(&mut self, case_id: CaseId, traceparent: Option<TraceParent>) {
        if let Some(traceparent) = traceparent {
            self.0.insert(case_id, traceparent);
        }
    }
}

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
    /// The in-process broker, held until the stage's consumer has closed: a consumer whose
    /// broker vanished first waits out its session before it lets go. `None` for a cluster.
    pub embedded_broker: Option<Arc<crate::kafka::EmbeddedBroker>>,
}

pub struct StageLoop<S: Stage> {
    stage: Arc<S>,
    runtime: StageRuntime,
    ready: Readiness,
    /// Taken by a batch of messages and by a batch of wake-ups alike: one batch at a time
    /// per stage and process. Both decide on a case at the same clock reading, and a
    /// stage's side effects follow what was decided at that reading (see
    /// [`Stage::after_commit`]): two batches at once could both act on one decision.
    turn: tokio::sync::Mutex<()>,
}

struct ReadinessContext {
    ready: Readiness,
    stage: &'static str,
}

impl ClientContext for ReadinessContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, state) in &statistics.topics {
            for (partition, partition_state) in &state.partitions {
                // Partition -1 is librdkafka's internal one; a lag of -1 is not known yet.
                if *partition >= 0 && partition_state.consumer_lag >= 0 {
                    events::ConsumerLag {
                        stage: self.stage,
                        topic,
                        partition: *partition,
                        lag: partition_state.consumer_lag,
                    }
                    .emit();
                }
            }
        }
    }
}

impl ConsumerContext for ReadinessContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(
                    stage = self.stage,
                    partitions = partitions.count(),
                    "joined consumer group"
                );
                self.ready.ready();
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
        let ready = runtime
            .health
            .register(stage.name(), "its consumer has not joined its group yet");
        Self {
            stage: Arc::new(stage),
            runtime,
            ready,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Consumes until shutdown, with the timer loop beside it.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StageError> {
        let name = self.stage.name();
        let ready = self.ready.clone();
        let group = format!("{}{}", self.runtime.settings.group_prefix, name);
        let consumer = kafka::consumer(
            &self.runtime.bootstrap_servers,
            &group,
            ReadinessContext { ready, stage: name },
        )
        .map_err(|e| StageError::permanent(format!("creating the {name} consumer: {e}")))?;
        let topics: Vec<String> = self
            .stage
            .waits_for()
            .topics()
            .map_err(|mistake| StageError::permanent(format!("{name} waits for {mistake}")))?
            .into_iter()
            .map(|topic| self.runtime.topics.of(topic))
            .collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(|e| StageError::permanent(format!("subscribing {name} to {topics:?}: {e}")))?;
        tracing::info!(stage = name, ?topics, %group, "stage started");

        let this = Arc::new(self);
        let timer_task = tokio::spawn(this.clone().run_timers(shutdown.clone()));
        this.consume(&consumer, shutdown).await;
        let _ = timer_task.await;
        tracing::info!(stage = name, "stage stopped");
        Ok(())
    }

    async fn consume(&self, consumer: &StreamConsumer<ReadinessContext>, mut shutdown: Shutdown) {
        while let Some(batch) = self.next_batch(consumer, &mut shutdown).await {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(handled) = shutdown.within_grace(shutdown::GRACE, self.handle_batch(&batch)).await else {
                    tracing::info!(
                        stage = self.stage.name(),
                        "batch abandoned at shutdown; it is redelivered after a restart"
                    );
                    return;
                };
                match handled {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(stage = self.stage.name(), %error, ?backoff, "batch failed; retrying");
                        // Offsets were not stored, but the consumer has moved on: the batch is
                        // retried here until it succeeds or the process stops (then the
                        // uncommitted offsets and the cases' wake-ups bring it back).
                        if shutdown.sleep_or_stop(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            self.crash_point("before-offsets");
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
        let _turn = self.turn.lock().await;
        let mut dead = Vec::new();
        let mut decoded = Vec::with_capacity(batch.len());
        self.count_consumed(batch);
        let waits_for = self.stage.waits_for();
        for (index, message) in batch.iter().enumerate() {
            // Another stage's event on a shared topic, passed over by its header unparsed.
            if kafka::event_type_of(message).is_some_and(|event_type| !waits_for.includes(event_type)) {
                continue;
            }
            match decode(message) {
                Ok(event) if waits_for.includes(event.event.type_name()) => decoded.push((index, event)),
                // Another stage's event on a shared topic.
                Ok(_) => {}
                Err(reason) => dead.push(DeadLetter { index, reason }),
            }
        }
        let now = self.runtime.clock.now();
        let (cases, traces) = self.decide_and_append(batch, &decoded, &mut dead, now).await?;
        self.crash_point("after-append");
        self.follow_up(cases, &traces, now).await?;
        self.crash_point("after-follow-up-append");
        self.dead_letter(batch, &dead).await
    }

    fn count_consumed(&self, batch: &[OwnedMessage]) {
        let mut per_topic: BTreeMap<&str, usize> = BTreeMap::new();
        for message in batch {
            *per_topic.entry(message.topic()).or_default() += 1;
        }
        for (topic, count) in per_topic {
            events::Consumed {
                stage: self.stage.name(),
                topic,
                count,
            }
            .emit();
        }
    }

    /// Decides what the batch's messages mean for their cases and appends it through the
    /// command path; returns every case the batch named, as it is now, and the trace each
    /// continues.
    async fn decide_and_append(
        &self,
        batch: &[OwnedMessage],
        decoded: &[(usize, RecordedEvent)],
        dead: &mut Vec<DeadLetter>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Arc<Case>>, CaseTraces), StageError> {
        let mut ids: Vec<CaseId> = decoded.iter().map(|(_, event)| event.case_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let loaded = self.runtime.store.load(&ids).await?;
        let readable: Vec<&(usize, RecordedEvent)> = decoded
            .iter()
            .filter(|(index, event)| match loaded.unreadable.get(&event.case_id) {
                Some(reason) => {
                    dead.push(DeadLetter {
                        index: *index,
                        reason: format!("unreadable case: {reason}"),
                    });
                    false
                }
                None => true,
            })
            .collect();
        // Lookups for the whole batch run concurrently, each on the case as loaded; the
        // command path decides in order, so a later message sees what an earlier one decided
        // and a command made stale by it decides to nothing.
        let spans: Vec<(tracing::Span, Option<TraceParent>)> = readable
            .iter()
            .map(|(index, event)| {
                let parent = kafka::traceparent_of(&batch[*index]).or_else(|| event.metadata.traceparent.clone());
                self.span("handle", event.case_id, event.event.type_name(), parent.as_ref())
            })
            .collect();
        self.stage.before_lookups().await?;
        let lookups = self.commands_for(&readable, &spans, &loaded).await;
        let mut commands = Vec::new();
        let mut sources = Vec::new();
        let mut traces = CaseTraces::default();
        for (((index, event), lookup), (_, traceparent)) in readable.iter().zip(lookups).zip(spans) {
            traces.insert(event.case_id, traceparent.clone());
            match lookup {
                Ok(Some(command)) => {
                    let case = &loaded.cases[&event.case_id].case;
                    commands.push(CaseCommand::new(
                        event.case_id,
                        command,
                        self.metadata(case).caused_by(event.position).traced(traceparent),
                    ));
                    sources.push(*index);
                }
                Ok(None) => {}
                Err(error @ StageError::Permanent(_)) => dead.push(DeadLetter {
                    index: *index,
                    reason: error::chain(error.cause()),
                }),
                Err(retryable) => return Err(retryable),
            }
        }
        let (cases, rejections) = self.execute(&commands, Some(loaded), now).await?;
        for (index, rejection) in sources.into_iter().zip(rejections) {
            if let Some(rejection) = rejection {
                dead.push(DeadLetter {
                    index,
                    reason: rejection.to_string(),
                });
            }
        }
        Ok((cases, traces))
    }

    /// The span of this stage's work on one case, continuing `parent`'s trace; and the
    /// traceparent that continues it from here.
    fn span(
        &self,
        work: &'static str,
        case_id: CaseId,
        what: &str,
        parent: Option<&TraceParent>,
    ) -> (tracing::Span, Option<TraceParent>) {
        let stage = self.stage.name();
        let span = tracing::info_span!(
            "stage",
            otel.name = %format_args!("{stage} {work} {what}"),
            otel.kind = "consumer",
            stage,
            %case_id,
            trace_id = tracing::field::Empty,
        );
        let traceparent = trace::continue_trace(&span, parent);
        (span, traceparent)
    }

    /// Executes `commands` through the command path, on `loaded` first if given; returns
    /// every case named or loaded as it is now, and per command its rejection, if any. A
    /// rejected command's case, and a loaded case that cannot be read, go to the operator
    /// queue.
    async fn execute(
        &self,
        commands: &[CaseCommand],
        loaded: Option<Loaded>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Arc<Case>>, Vec<Option<Rejection>>), StageError> {
        if let Some(loaded) = &loaded {
            for (case_id, reason) in &loaded.unreadable {
                self.set_apart(*case_id, 0, "unreadable", reason, now).await?;
            }
        }
        let executed = self.runtime.store.execute_loaded(commands, loaded, now).await?;
        events::Decided {
            stage: self.stage.name(),
            commands: commands.len(),
            appended: executed.recorded.len(),
        }
        .emit();
        let mut rejections = Vec::with_capacity(commands.len());
        for (command, outcome) in commands.iter().zip(executed.outcomes) {
            let rejection = outcome.err();
            if let Some(rejection) = &rejection {
                let version = executed.cases.get(&command.case_id).map_or(0, |case| case.version);
                let reason = match rejection {
                    Rejection::Unreadable(_) => "unreadable",
                    Rejection::Refused(_) | Rejection::VersionChanged { .. } => "refused",
                };
                let detail = format!("{}: {rejection}", self.stage.name());
                self.set_apart(command.case_id, version, reason, &detail, now).await?;
            }
            rejections.push(rejection);
        }
        Ok((executed.cases.into_values().collect(), rejections))
    }

    async fn commands_for(
        &self,
        decoded: &[&(usize, RecordedEvent)],
        spans: &[(tracing::Span, Option<TraceParent>)],
        loaded: &Loaded,
    ) -> Vec<Result<Option<Command>, StageError>> {
        // A loop, not a closure: closures here trip the compiler's proof that the stage's
        // future is `Send` (rust-lang/rust#102211).
        let mut lookups = Vec::with_capacity(decoded.len());
        for ((_, event), (span, _)) in decoded.iter().zip(spans) {
            let lookup = self.stage.command_for(event, &loaded.cases[&event.case_id].case);
            lookups.push(lookup.instrument(span.clone()));
        }
        futures::stream::iter(lookups)
            .buffered(CONCURRENT_LOOKUPS)
            .collect()
            .await
    }

    /// Runs the stage's side effects and the commands they return, round after round, for
    /// the cases that got a command; returns every case as it ends up. What a side effect
    /// returns is recorded at the clock's reading when it returned: a notice is delivered
    /// when the platform answered, not when the batch that sent it began (a slow platform
    /// would otherwise have its deadline start, and the evidence say it had the notice,
    /// seconds early).
    async fn follow_up(
        &self,
        cases: Vec<Arc<Case>>,
        traces: &CaseTraces,
        mut now: DateTime<Utc>,
    ) -> Result<Vec<Arc<Case>>, StageError> {
        let mut cases: BTreeMap<CaseId, Arc<Case>> = cases.into_iter().map(|case| (case.id, case)).collect();
        let mut offered: Vec<CaseId> = cases.keys().copied().collect();
        for _ in 0..MAX_FOLLOW_UPS {
            if offered.is_empty() {
                break;
            }
            let round: Vec<&Case> = offered.iter().filter_map(|id| cases.get(id).map(Arc::as_ref)).collect();
            let commands: Vec<CaseCommand> = self
                .stage
                .after_commit(&round, traces, now)
                .await?
                .into_iter()
                .map(|(id, command)| {
                    let metadata = self.metadata(&cases[&id]).traced(traces.of(id).cloned());
                    CaseCommand::new(id, command, metadata)
                })
                .collect();
            offered = commands.iter().map(|c| c.case_id).collect();
            now = self.runtime.clock.now();
            let (changed, _) = self.execute(&commands, None, now).await?;
            cases.extend(changed.into_iter().map(|case| (case.id, case)));
        }
        Ok(cases.into_values().collect())
    }

    async fn set_apart(
        &self,
        case_id: CaseId,
        version: u32,
        reason: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StageError> {
        events::SetApart {
            stage: self.stage.name(),
            case_id,
            reason,
            detail,
        }
        .emit();
        operator::flag(self.runtime.store.pool(), case_id, version, reason, detail, now).await?;
        Ok(())
    }

    /// `{stage}.{point}`: see [`crate::crash`].
    fn crash_point(&self, point: &str) {
        crate::crash::point(&format!("{}.{point}", self.stage.name()));
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
            events::DeadLettered {
                stage: self.stage.name(),
                topic: message.topic(),
                offset: message.offset(),
                reason: &letter.reason,
            }
            .emit();
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
                .map_err(|(error, _)| StageError::retryable(format!("dead-letter publish: {error}")))?;
        }
        Ok(())
    }

    async fn run_timers(self: Arc<Self>, mut shutdown: Shutdown) {
        let settings = self.runtime.settings.clone();
        loop {
            let Some(fired) = shutdown.within_grace(shutdown::GRACE, self.fire_due_timers()).await else {
                return;
            };
            let pause = match fired {
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

    /// Fires every due wake-up of this stage once, as one batch; returns how many fired.
    /// A claimed timer is leased: if this process dies, it comes due again.
    pub async fn fire_due_timers(&self) -> Result<usize, StageError> {
        let _turn = self.turn.lock().await;
        let now = self.runtime.clock.now();
        let settings = &self.runtime.settings;
        let pool = self.runtime.store.pool();
        let due = timers::claim_due(
            pool,
            self.stage.name(),
            now,
            now + settings.timer_lease,
            settings.batch_size as i64,
        )
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        self.crash_point("after-claim");
        let ids: Vec<CaseId> = due.iter().map(|timer| timer.case_id).collect();
        let loaded = self.runtime.store.load(&ids).await?;
        let before: HashMap<CaseId, u32> = loaded.cases.iter().map(|(id, l)| (*id, l.case.version)).collect();
        self.stage.before_lookups().await?;
        let mut commands = Vec::new();
        let mut traces = CaseTraces::default();
        for timer in &due {
            let Some(case) = loaded.cases.get(&timer.case_id) else {
                continue;
            };
            // A wake-up continues the trace of the case's latest event, even after a restart.
            let (span, traceparent) = self.span("wake", timer.case_id, case.case.status.as_str(), case.trace.as_ref());
            traces.insert(timer.case_id, traceparent.clone());
            if let Some(command) = self.stage.on_wake(&case.case).instrument(span).await? {
                let metadata = self.metadata(&case.case).traced(traceparent);
                commands.push(CaseCommand::new(timer.case_id, command, metadata));
            }
        }
        let (cases, _) = self.execute(&commands, Some(loaded), now).await?;
        let after: HashMap<CaseId, u32> = self
            .follow_up(cases, &traces, now)
            .await?
            .into_iter()
            .map(|case| (case.id, case.version))
            .collect();
        for timer in &due {
            let moved_on = after.get(&timer.case_id) > before.get(&timer.case_id);
            events::TimerFired {
                stage: self.stage.name(),
                moved_on,
            }
            .emit();
            if !moved_on {
                self.fired_without_progress(*timer, now).await?;
            }
        }
        Ok(due.len())
    }

    async fn fired_without_progress(&self, timer: DueTimer, now: DateTime<Utc>) -> Result<(), StageError> {
        let pool = self.runtime.store.pool();
        let pause = self.runtime.settings.timer_lease;
        if timers::fired_without_progress(pool, self.stage.name(), timer, pause, now).await? {
            events::SetApart {
                stage: self.stage.name(),
                case_id: timer.case_id,
                reason: "stuck",
                detail: "its wake-ups keep firing without effect",
            }
            .emit();
        }
        Ok(())
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
