//! Typed telemetry: one struct per observable event of the runtime, which writes its log
//! line and its metric together (as Vector's `internal_events` do), so the two never
//! disagree. A part's own events live in its crate and use [`Metric`] the same way.

use super::metrics::{registry, Kind, Metric};
use dijkwacht_domain::CaseId;

/// Something worth telling an operator: emitting it logs and counts it.
pub trait InternalEvent {
    fn emit(self);
}

pub const CONSUMED: Metric = Metric {
    name: "dijkwacht_stage_consumed_total",
    help: "Messages a stage consumed, by topic.",
    kind: Kind::Counter,
    labels: &["stage", "topic"],
};
pub const DECIDED: Metric = Metric {
    name: "dijkwacht_stage_decided_total",
    help: "Commands a stage decided on (from messages, wake-ups and side effects).",
    kind: Kind::Counter,
    labels: &["stage"],
};
pub const APPENDED: Metric = Metric {
    name: "dijkwacht_stage_appended_total",
    help: "Events a stage appended to the event store.",
    kind: Kind::Counter,
    labels: &["stage"],
};
pub const CONFLICTS: Metric = Metric {
    name: "dijkwacht_command_conflicts_retried_total",
    help: "Decisions made again because another writer changed a case first, by who decided.",
    kind: Kind::Counter,
    labels: &["by"],
};
pub const DEAD_LETTERED: Metric = Metric {
    name: "dijkwacht_stage_dead_lettered_total",
    help: "Messages a stage could not read or decide, sent to the dead-letter topic.",
    kind: Kind::Counter,
    labels: &["stage", "topic"],
};
pub const TIMERS_FIRED: Metric = Metric {
    name: "dijkwacht_stage_timers_fired_total",
    help: "Case wake-ups that came due (the sweep of cases whose message was lost or whose time ran out), by whether they moved the case on.",
    kind: Kind::Counter,
    labels: &["stage", "outcome"],
};
pub const SET_APART: Metric = Metric {
    name: "dijkwacht_operator_queue_added_total",
    help: "Cases set apart for operators, by stage and reason.",
    kind: Kind::Counter,
    labels: &["stage", "reason"],
};
pub const RELAY_PUBLISHED: Metric = Metric {
    name: "dijkwacht_relay_published_total",
    help: "Outbox rows the broker acknowledged.",
    kind: Kind::Counter,
    labels: &[],
};
pub const RELAY_QUARANTINED: Metric = Metric {
    name: "dijkwacht_relay_quarantined_total",
    help: "Outbox rows set apart because they can never be published.",
    kind: Kind::Counter,
    labels: &[],
};
pub const RELAY_BACKLOG: Metric = Metric {
    name: "dijkwacht_relay_backlog_rows",
    help: "Outbox rows waiting to be published.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const RELAY_OLDEST: Metric = Metric {
    name: "dijkwacht_relay_oldest_unpublished_seconds",
    help: "How long the oldest outbox row waiting to be published has waited.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const CONSUMER_LAG: Metric = Metric {
    name: "dijkwacht_consumer_lag_messages",
    help: "Messages a stage's consumer group has yet to read, per partition.",
    kind: Kind::Gauge,
    labels: &["stage", "topic", "partition"],
};

#[derive(Debug)]
pub struct Consumed<'a> {
    pub stage: &'static str,
    pub topic: &'a str,
    pub count: usize,
}

impl InternalEvent for Consumed<'_> {
    fn emit(self) {
        tracing::trace!(stage = self.stage, topic = self.topic, count = self.count, "consumed");
        registry().add(&CONSUMED, &[self.stage, self.topic], self.count as u64);
    }
}

#[derive(Debug)]
pub struct Decided {
    pub stage: &'static str,
    pub commands: usize,
    pub appended: usize,
}

impl InternalEvent for Decided {
    fn emit(self) {
        tracing::trace!(
            stage = self.stage,
            commands = self.commands,
            appended = self.appended,
            "decided"
        );
        registry().add(&DECIDED, &[self.stage], self.commands as u64);
        registry().add(&APPENDED, &[self.stage], self.appended as u64);
    }
}

#[derive(Debug)]
pub struct ConflictRetried<'a> {
    /// `stage:<name>` for a stage, the kind of actor otherwise (`partner`, `analyst`).
    pub by: &'a str,
}

impl InternalEvent for ConflictRetried<'_> {
    fn emit(self) {
        tracing::debug!(by = self.by, "a case changed under the decision; deciding again");
        registry().add(&CONFLICTS, &[self.by], 1);
    }
}

#[derive(Debug)]
pub struct DeadLettered<'a> {
    pub stage: &'static str,
    pub topic: &'a str,
    pub offset: i64,
    pub reason: &'a str,
}

impl InternalEvent for DeadLettered<'_> {
    fn emit(self) {
        tracing::warn!(
            stage = self.stage,
            topic = self.topic,
            offset = self.offset,
            reason = self.reason,
            "dead-lettered"
        );
        registry().add(&DEAD_LETTERED, &[self.stage, self.topic], 1);
    }
}

#[derive(Debug)]
pub struct TimerFired {
    pub stage: &'static str,
    pub moved_on: bool,
}

impl InternalEvent for TimerFired {
    fn emit(self) {
        let outcome = if self.moved_on { "moved_on" } else { "no_progress" };
        tracing::debug!(stage = self.stage, outcome, "wake-up fired");
        registry().add(&TIMERS_FIRED, &[self.stage, outcome], 1);
    }
}

#[derive(Debug)]
pub struct SetApart<'a> {
    pub stage: &'static str,
    pub case_id: CaseId,
    pub reason: &'a str,
    pub detail: &'a str,
}

impl InternalEvent for SetApart<'_> {
    fn emit(self) {
        tracing::warn!(stage = self.stage, case_id = %self.case_id, reason = self.reason, detail = self.detail, "case set apart for operators");
        registry().add(&SET_APART, &[self.stage, self.reason], 1);
    }
}

#[derive(Debug)]
pub struct RelayPublished {
    pub acknowledged: usize,
    pub quarantined: usize,
}

impl InternalEvent for RelayPublished {
    fn emit(self) {
        tracing::trace!(
            acknowledged = self.acknowledged,
            quarantined = self.quarantined,
            "relay published"
        );
        registry().add(&RELAY_PUBLISHED, &[], self.acknowledged as u64);
        registry().add(&RELAY_QUARANTINED, &[], self.quarantined as u64);
    }
}

#[derive(Debug)]
pub struct RelayBacklog {
    pub rows: i64,
    pub oldest_seconds: f64,
}

impl InternalEvent for RelayBacklog {
    fn emit(self) {
        tracing::debug!(rows = self.rows, oldest_seconds = self.oldest_seconds, "relay backlog");
        registry().set(&RELAY_BACKLOG, &[], self.rows as f64);
        registry().set(&RELAY_OLDEST, &[], self.oldest_seconds);
    }
}

#[derive(Debug)]
pub struct ConsumerLag<'a> {
    pub stage: &'static str,
    pub topic: &'a str,
    pub partition: i32,
    pub lag: i64,
}

impl InternalEvent for ConsumerLag<'_> {
    fn emit(self) {
        tracing::trace!(
            stage = self.stage,
            topic = self.topic,
            partition = self.partition,
            lag = self.lag,
            "consumer lag"
        );
        let partition = self.partition.to_string();
        registry().set(&CONSUMER_LAG, &[self.stage, self.topic, &partition], self.lag as f64);
    }
}
