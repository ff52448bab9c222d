//! The dispatch stage: delivers issued notices to platforms over the channels the platform
//! registry gives them, in order of preference — HTTPS API, e-mail, or a web form an
//! analyst fills in.
//!
//! The attempt is recorded (`DispatchStarted`) before the message leaves and its outcome
//! after; the notice id travels as `Idempotency-Key` (and in the e-mail's Message-ID), so a
//! retry after a crash reaches the platform as the same notice, never a second one. Every
//! message is rendered in the platform's language and checked for the DSA Art. 16(2)
//! elements before it leaves; an incomplete one never does.

pub mod api;
pub mod delivery;
pub mod email;
pub mod follow_up;
pub mod forward;
pub mod pace;
mod part;
pub mod police;
pub mod registry;
pub mod render;
pub mod routes;
pub mod settings;
mod smtp;
pub mod telemetry;

pub use crate::part::Dispatch;

use crate::api::ApiSender;
use crate::delivery::{chunked, Attempt, MessageKey};
use crate::email::EmailSender;
use crate::pace::Pacer;
use crate::registry::{ApiAuth, ChannelConfig, Directory, PlatformRoute};
use crate::render::{RenderError, Templates};
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::{Case, CaseId, CaseStatus, Channel, Command, DispatchPolicy};
use dijkwacht_runtime::telemetry::trace;
use dijkwacht_runtime::{CaseTraces, RecordedEvent, SharedClock, Stage, StageError, WaitsFor};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::Instrument;

/// Messages in flight at once per process.
const CONCURRENT_SENDS: usize = 16;
/// Notices one grouped message lists at most.
const MAX_GROUP: usize = 100;

pub struct DispatchStage {
    api: ApiSender,
    email: EmailSender,
    templates: Templates,
    directory: Directory,
    pacer: Pacer,
    /// Where breaker changes are written for operators, and the clock pacing runs on.
    pool: sqlx::PgPool,
    clock: SharedClock,
    policy: DispatchPolicy,
    /// An attempt older than this with no recorded outcome is presumed lost and re-sent
    /// (the same limit the case's wake-up is set by).
    in_flight_limit: TimeDelta,
}

/// What the stage is built from.
pub struct DispatchParts {
    pub policy: DispatchPolicy,
    pub in_flight_limit: TimeDelta,
    pub api: ApiSender,
    pub email: EmailSender,
    pub directory: Directory,
    pub pool: sqlx::PgPool,
    pub clock: SharedClock,
}

impl DispatchStage {
    pub fn new(parts: DispatchParts) -> Result<Self, RenderError> {
        Ok(Self {
            api: parts.api,
            email: parts.email,
            templates: Templates::built_in()?,
            directory: parts.directory,
            pacer: Pacer::default(),
            pool: parts.pool,
            clock: parts.clock,
            policy: parts.policy,
            in_flight_limit: parts.in_flight_limit,
        })
    }

    /// The platform's channels; a platform missing from the registry keeps the notice
    /// endpoint recorded when its host was resolved.
    fn route_of(&self, case: &Case) -> Option<Arc<PlatformRoute>> {
        let host = case.host.as_ref()?;
        self.directory.get(&host.platform_id.0).or_else(|| {
            (!host.notice_endpoint.is_empty()).then(|| {
                Arc::new(PlatformRoute {
                    platform_id: host.platform_id.to_string(),
                    name: host.platform_name.clone(),
                    language: "en".into(),
                    channels: vec![ChannelConfig::Api {
                        endpoint: host.notice_endpoint.clone(),
                        auth: ApiAuth::None,
                    }],
                    templates_dir: None,
                    pace: Default::default(),
                })
            })
        })
    }

    fn start(&self, case: &Case) -> Command {
        let route = self.route_of(case);
        let now = self.clock.now();
        let holds_slot = case.dispatch.deferred_until.is_some_and(|until| until <= now);
        let pace = route
            .as_ref()
            .and_then(|route| self.pacer.admit(&route.platform_id, &route.pace, now, holds_slot));
        Command::StartDispatch {
            lost_after: self.in_flight_limit,
            policy: self.policy,
            channels: route.map(|route| route.channel_list()).unwrap_or_default(),
            pace,
        }
    }
}

impl Stage for DispatchStage {
    fn name(&self) -> &'static str {
        "dispatch"
    }

    fn waits_for(&self) -> WaitsFor {
        WaitsFor::Events(&["NoticeIssued"])
    }

    async fn command_for(&self, _event: &RecordedEvent, case: &Case) -> Result<Option<Command>, StageError> {
        Ok(Some(self.start(case)))
    }

    /// Sends the attempts this very decision started (their start time is `now`). An
    /// attempt started earlier belongs to the process that started it; if that process died,
    /// the decider replaces the attempt once it is presumed lost, and it is sent from here.
    /// A web-form attempt waits for its analyst.
    async fn after_commit(
        &self,
        cases: &[&Case],
        traces: &CaseTraces,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CaseId, Command)>, StageError> {
        let started_now = |in_flight: &Option<InFlight>| {
            in_flight
                .clone()
                .filter(|in_flight| in_flight.started_at == now && !matches!(in_flight.channel, Channel::Manual { .. }))
        };
        let mut messages: BTreeMap<MessageKey, Vec<Attempt>> = BTreeMap::new();
        let mut follow_ups = Vec::new();
        let mut forwards = Vec::new();
        let mut referrals = Vec::new();
        for case in cases {
            let police = case
                .police
                .held
                .as_ref()
                .and_then(|held| self.directory.police(&held.partner_id.0));
            if let (Some(in_flight), Some(route)) = (started_now(&case.police.sending.in_flight), police) {
                referrals.push(self.refer(case, route, in_flight, now).instrument(send_span(
                    "referral",
                    traces,
                    &[case.id],
                )));
            }
            let hotline = case
                .forwarded
                .as_ref()
                .and_then(|forwarded| self.directory.hotline(&forwarded.partner_id.0));
            if let (Some(in_flight), Some(route)) = (started_now(&case.forward.sending.in_flight), hotline) {
                forwards.push(self.forward(case, route, in_flight, now).instrument(send_span(
                    "forward",
                    traces,
                    &[case.id],
                )));
            }
            if let (Some(in_flight), Some(chase)) = (
                started_now(&case.followup.chase.sending.in_flight),
                &case.followup.chase.pending,
            ) {
                if let Some(route) = self.chase_route(case, chase) {
                    follow_ups.push(futures::future::Either::Left(
                        self.chase(case, route, chase.clone(), in_flight, now)
                            .instrument(send_span("chase", traces, &[case.id])),
                    ));
                }
            }
            let Some(route) = self.route_of(case) else {
                continue;
            };
            if let (Some(in_flight), Some(notice)) = (started_now(&case.dispatch.in_flight), &case.notice) {
                let key = MessageKey::of(&route, &in_flight.channel, notice);
                messages.entry(key).or_default().push(Attempt {
                    case_id: case.id,
                    route: route.clone(),
                    in_flight,
                    notice: notice.clone(),
                });
            }
            if let Some(in_flight) = started_now(&case.withdrawal.sending.in_flight) {
                follow_ups.push(futures::future::Either::Right(
                    self.withdraw(case, route, in_flight, now)
                        .instrument(send_span("withdrawal", traces, &[case.id])),
                ));
            }
        }
        let sends = messages
            .into_values()
            .flat_map(|attempts| chunked(attempts, MAX_GROUP))
            .map(|group| {
                let cases: Vec<CaseId> = group.iter().map(|attempt| attempt.case_id).collect();
                self.deliver(group, now).instrument(send_span("notice", traces, &cases))
            });
        let mut commands: Vec<(CaseId, Command)> = futures::stream::iter(sends)
            .buffer_unordered(CONCURRENT_SENDS)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        commands.extend(
            futures::stream::iter(follow_ups)
                .buffer_unordered(CONCURRENT_SENDS)
                .collect::<Vec<_>>()
                .await,
        );
        commands.extend(
            futures::stream::iter(forwards)
                .buffer_unordered(CONCURRENT_SENDS)
                .collect::<Vec<_>>()
                .await,
        );
        commands.extend(
            futures::stream::iter(referrals)
                .buffer_unordered(CONCURRENT_SENDS)
                .collect::<Vec<_>>()
                .await,
        );
        Ok(commands)
    }

    /// A retry that came due, a notice whose message never arrived, an attempt presumed
    /// lost, the next channel, a withdrawal, a chase, a forward or a referral to the police:
    /// the decider tells which.
    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        if case.held_for_police() {
            return Ok(Some(Command::StartReferral {
                lost_after: self.in_flight_limit,
                policy: self.policy,
                channel: self.referral_channel(case),
            }));
        }
        if case.status == CaseStatus::Forwarded {
            return Ok(Some(Command::StartForward {
                lost_after: self.in_flight_limit,
                policy: self.policy,
                channel: self.forward_channel(case),
            }));
        }
        if let Some(chase) = &case.followup.chase.pending {
            return Ok(Some(Command::StartChase {
                lost_after: self.in_flight_limit,
                policy: self.policy,
                channel: self.chase_channel(case, chase),
            }));
        }
        if case.owes_withdrawal() {
            return Ok(Some(Command::StartWithdrawal {
                lost_after: self.in_flight_limit,
                policy: self.policy,
            }));
        }
        Ok(Some(self.start(case)))
    }
}

/// The span of sending one message for `cases`: in the first case's trace, linked to the
/// traces of the others (a grouped notice serves them all).
fn send_span(what: &'static str, traces: &CaseTraces, cases: &[CaseId]) -> tracing::Span {
    let span = tracing::info_span!(
        "send",
        otel.name = %format_args!("dispatch send {what}"),
        otel.kind = "client",
        case_id = %cases.first().map(ToString::to_string).unwrap_or_default(),
        cases = cases.len(),
        trace_id = tracing::field::Empty,
    );
    let mut parents = cases.iter().filter_map(|id| traces.of(*id));
    trace::continue_trace(&span, parents.next());
    trace::link(&span, &parents.collect::<Vec<_>>());
    span
}
