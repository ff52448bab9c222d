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
pub mod email;
pub mod pace;
pub mod registry;
pub mod render;
pub mod routes;
pub mod secret;
pub mod settings;

use crate::api::ApiSender;
use crate::email::{EmailSender, Outgoing};
use crate::pace::Pacer;
use crate::registry::{ApiAuth, ChannelConfig, Directory, PlatformRoute};
use crate::render::{RenderError, Rendered, Subject, Templates};
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::{
    AfterFailure, Case, CaseEvent, CaseId, Channel, Command, DispatchOutcome, DispatchPolicy, Notice, NoticeId,
};
use dijkwacht_runtime::{RecordedEvent, SharedClock, Stage, StageError, Topic};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;

/// Notices in flight at once per process.
const CONCURRENT_SENDS: usize = 16;

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

/// The body of a withdrawal, by API and attached to its e-mail.
#[derive(Serialize)]
struct Withdrawal<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The notice withdrawn.
    withdraws: NoticeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_reference: Option<&'a str>,
    locations: &'a [dijkwacht_domain::event::Location],
    reason: &'a str,
    trusted_flagger: &'a dijkwacht_domain::notice::TrustedFlaggerMarking,
    language: &'a str,
    subject: &'a str,
    message: &'a str,
}

/// The body of an API notice: the notice's fields, and its text in the platform's language.
#[derive(Serialize)]
struct ApiNotice<'a> {
    #[serde(flatten)]
    notice: &'a Notice,
    language: &'a str,
    subject: &'a str,
    message: &'a str,
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

    /// Counts the outcome towards the platform's breaker; a change is written for operators.
    async fn pace_outcome(&self, route: &PlatformRoute, outcome: &DispatchOutcome, now: DateTime<Utc>) {
        let failed = match outcome {
            DispatchOutcome::Failed {
                next: AfterFailure::Retry { .. },
                ..
            } => true,
            // Our own refusal or a wrong address says nothing about the platform's health.
            DispatchOutcome::Failed { .. } => return,
            DispatchOutcome::Delivered { .. } | DispatchOutcome::Rejected { .. } => false,
        };
        if let Some(change) = self.pacer.record(&route.platform_id, &route.pace, failed, now) {
            tracing::warn!(platform = %change.platform_id, state = ?change.state, failures = change.failures, "circuit breaker changed");
            if let Err(error) = pace::save(&self.pool, &change, now).await {
                tracing::warn!(%error, "saving the circuit breaker's state failed");
            }
        }
    }

    /// The message for `notice` in the platform's language, complete or refused.
    pub fn render(&self, route: &PlatformRoute, channel: &Channel, notice: &Notice) -> Result<Rendered, RenderError> {
        let subject = Subject {
            notices: &[notice],
            platform_name: &route.name,
        };
        self.templates
            .render(subject, channel.kind(), &route.language, route.templates_dir.as_deref())
    }

    async fn send(
        &self,
        route: &PlatformRoute,
        channel: &Channel,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let rendered = match self.render(route, channel, notice) {
            Ok(rendered) => rendered,
            // An incomplete message, or a platform template that does not render: nothing
            // is sent, and an analyst sees why.
            Err(error) => {
                return DispatchOutcome::Failed {
                    reason: format!("not sent: {error}"),
                    next: AfterFailure::Stop,
                }
            }
        };
        let notice_json = serde_json::to_vec(notice).expect("a notice serialises");
        match channel {
            Channel::Http { endpoint } => {
                let auth = match route.config_of(channel) {
                    Some(ChannelConfig::Api { auth, .. }) => auth.clone(),
                    _ => ApiAuth::None,
                };
                let body = ApiNotice {
                    notice,
                    language: &rendered.language,
                    subject: &rendered.subject,
                    message: &rendered.text,
                };
                let body = serde_json::to_vec(&body).expect("a notice serialises");
                self.api
                    .send(endpoint, &auth, &notice.notice_id.to_string(), body, now)
                    .await
            }
            Channel::Email { to } => {
                let outgoing = Outgoing {
                    to,
                    message_id: self.email.message_id(&format!("notice-{}", notice.notice_id)),
                    in_reply_to: None,
                    rendered: &rendered,
                    attachment_name: "notice.json",
                    attachment: notice_json,
                };
                self.email.send(outgoing).await
            }
            Channel::Manual { .. } => unreachable!("hand submissions are not sent by the stage"),
        }
    }

    /// Sends the withdrawal of a retracted case's notice on `channel`.
    async fn send_withdrawal(
        &self,
        route: &PlatformRoute,
        channel: &Channel,
        case: &Case,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let Some(notice) = &case.notice else {
            return DispatchOutcome::Failed {
                reason: "the case has no notice".into(),
                next: AfterFailure::Stop,
            };
        };
        let reason = case
            .retracted
            .as_ref()
            .map_or("", |retracted| retracted.reason.as_str());
        let rendered = match self.templates.render_withdrawal(notice, &route.language, reason) {
            Ok(rendered) => rendered,
            Err(error) => {
                return DispatchOutcome::Failed {
                    reason: format!("not sent: {error}"),
                    next: AfterFailure::Stop,
                }
            }
        };
        let body = Withdrawal {
            kind: "withdrawal",
            withdraws: notice.notice_id,
            platform_reference: case.dispatch.platform_reference.as_deref(),
            locations: &notice.locations,
            reason,
            trusted_flagger: &notice.trusted_flagger,
            language: &rendered.language,
            subject: &rendered.subject,
            message: &rendered.text,
        };
        let body = serde_json::to_vec(&body).expect("a withdrawal serialises");
        let key = format!("withdrawal-{}", notice.notice_id);
        match channel {
            Channel::Http { endpoint } => {
                let auth = match route.config_of(channel) {
                    Some(ChannelConfig::Api { auth, .. }) => auth.clone(),
                    _ => ApiAuth::None,
                };
                self.api.send(endpoint, &auth, &key, body, now).await
            }
            Channel::Email { to } => {
                let outgoing = Outgoing {
                    to,
                    message_id: self.email.message_id(&key),
                    in_reply_to: case.dispatch.delivered_message_id.clone(),
                    rendered: &rendered,
                    attachment_name: "withdrawal.json",
                    attachment: body,
                };
                self.email.send(outgoing).await
            }
            Channel::Manual { .. } => unreachable!("hand withdrawals are not sent by the stage"),
        }
    }

    async fn withdraw(
        &self,
        case: &Case,
        route: Arc<PlatformRoute>,
        in_flight: InFlight,
        now: DateTime<Utc>,
    ) -> (CaseId, Command) {
        let outcome = self.send_withdrawal(&route, &in_flight.channel, case, now).await;
        if let DispatchOutcome::Failed { reason, .. } | DispatchOutcome::Rejected { reason, .. } = &outcome {
            tracing::warn!(case_id = %case.id, attempt = in_flight.attempt, %reason, "withdrawal not delivered");
        }
        let command = Command::RecordWithdrawalOutcome {
            attempt: in_flight.attempt,
            outcome,
            policy: self.policy,
        };
        (case.id, command)
    }

    /// One delivery attempt and the command that records its outcome.
    async fn attempt(
        &self,
        case_id: CaseId,
        route: Arc<PlatformRoute>,
        in_flight: InFlight,
        notice: Notice,
        now: DateTime<Utc>,
    ) -> (CaseId, Command) {
        let outcome = self.send(&route, &in_flight.channel, &notice, now).await;
        dijkwacht_runtime::crash::point("dispatch.after-post");
        self.pace_outcome(&route, &outcome, now).await;
        match &outcome {
            DispatchOutcome::Failed { reason, .. } => {
                tracing::warn!(%case_id, attempt = in_flight.attempt, channel = in_flight.channel.kind(), %reason, "notice not delivered")
            }
            DispatchOutcome::Rejected { reason, .. } => {
                tracing::warn!(%case_id, attempt = in_flight.attempt, channel = in_flight.channel.kind(), %reason, "platform rejected the notice")
            }
            DispatchOutcome::Delivered { .. } => {}
        }
        let command = Command::RecordDispatchOutcome {
            attempt: in_flight.attempt,
            outcome,
            policy: self.policy,
            channels: route.channel_list(),
        };
        (case_id, command)
    }
}

impl Stage for DispatchStage {
    fn name(&self) -> &'static str {
        "dispatch"
    }

    fn topics(&self) -> &'static [Topic] {
        &[Topic::Notices]
    }

    async fn command_for(&self, event: &RecordedEvent, case: &Case) -> Result<Option<Command>, StageError> {
        Ok(matches!(event.event, CaseEvent::NoticeIssued(_)).then(|| self.start(case)))
    }

    /// Sends the attempts this very decision started (their start time is `now`). An
    /// attempt started earlier belongs to the process that started it; if that process died,
    /// the decider replaces the attempt once it is presumed lost, and it is sent from here.
    /// A web-form attempt waits for its analyst.
    async fn after_commit(&self, cases: &[&Case], now: DateTime<Utc>) -> Result<Vec<(CaseId, Command)>, StageError> {
        let started_now = |in_flight: &Option<InFlight>| {
            in_flight
                .clone()
                .filter(|in_flight| in_flight.started_at == now && !matches!(in_flight.channel, Channel::Manual { .. }))
        };
        let mut notices = Vec::new();
        let mut withdrawals = Vec::new();
        for case in cases {
            let Some(route) = self.route_of(case) else {
                continue;
            };
            if let (Some(in_flight), Some(notice)) = (started_now(&case.dispatch.in_flight), &case.notice) {
                notices.push(self.attempt(case.id, route.clone(), in_flight, notice.clone(), now));
            }
            if let Some(in_flight) = started_now(&case.withdrawal.in_flight) {
                withdrawals.push(self.withdraw(case, route, in_flight, now));
            }
        }
        let mut commands: Vec<(CaseId, Command)> = futures::stream::iter(notices)
            .buffer_unordered(CONCURRENT_SENDS)
            .collect()
            .await;
        commands.extend(
            futures::stream::iter(withdrawals)
                .buffer_unordered(CONCURRENT_SENDS)
                .collect::<Vec<_>>()
                .await,
        );
        Ok(commands)
    }

    /// A retry that came due, a notice whose message never arrived, an attempt presumed
    /// lost, or the next channel: the decider tells which.
    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        if case.owes_withdrawal() {
            return Ok(Some(Command::StartWithdrawal {
                lost_after: self.in_flight_limit,
                policy: self.policy,
            }));
        }
        Ok(Some(self.start(case)))
    }
}
