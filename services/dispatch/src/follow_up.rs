//! Messages about a notice already delivered: the withdrawal of a retracted case's notice,
//! a reminder to a platform that did not act by its deadline, and the notice to the hosting
//! provider behind it. Each is recorded as started before it leaves and goes on the channel
//! recorded then, under an idempotency key of its own.

use crate::email::{Outgoing, Part};
use crate::registry::PlatformRoute;
use crate::render::{FollowUp, NoticeTimes, Rendered};
use crate::DispatchStage;
use chrono::{DateTime, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::event::Location;
use dijkwacht_domain::notice::TrustedFlaggerMarking;
use dijkwacht_domain::{AfterFailure, Case, CaseId, Channel, Chase, Command, DispatchOutcome, Notice, NoticeId};
use serde::Serialize;
use std::sync::Arc;

/// The body of a follow-up message, by API and attached to its e-mail.
#[derive(Serialize)]
struct FollowUpBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The notice withdrawn (for a withdrawal).
    #[serde(skip_serializing_if = "Option::is_none")]
    withdraws: Option<NoticeId>,
    /// The notice followed up (for a reminder or an escalation).
    #[serde(skip_serializing_if = "Option::is_none")]
    notice_id: Option<NoticeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_reference: Option<&'a str>,
    locations: &'a [Location],
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_at: Option<DateTime<Utc>>,
    trusted_flagger: &'a TrustedFlaggerMarking,
    language: &'a str,
    subject: &'a str,
    message: &'a str,
    /// The notice itself, for a hosting provider who never saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<&'a Notice>,
}

impl DispatchStage {
    pub(crate) async fn withdraw(
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

    pub(crate) async fn chase(
        &self,
        case: &Case,
        route: Arc<PlatformRoute>,
        chase: Chase,
        in_flight: InFlight,
        now: DateTime<Utc>,
    ) -> (CaseId, Command) {
        let outcome = self.send_chase(&route, &in_flight.channel, case, &chase, now).await;
        if let DispatchOutcome::Failed { reason, .. } | DispatchOutcome::Rejected { reason, .. } = &outcome {
            tracing::warn!(case_id = %case.id, attempt = in_flight.attempt, ?chase, %reason, "chase not delivered");
        }
        let command = Command::RecordChaseOutcome {
            attempt: in_flight.attempt,
            outcome,
            policy: self.policy,
        };
        (case.id, command)
    }

    /// The route a chase goes to: the platform for a reminder, the hosting provider for an
    /// escalation.
    pub(crate) fn chase_route(&self, case: &Case, chase: &Chase) -> Option<Arc<PlatformRoute>> {
        match chase {
            Chase::HostingProvider { provider_id, .. } => self.directory.get(&provider_id.0),
            Chase::Reminder { .. } | Chase::Skipped => self.route_of(case),
        }
    }

    /// The channel a chase goes by: a reminder the way the notice went, an escalation the
    /// provider's first channel that needs no analyst.
    pub(crate) fn chase_channel(&self, case: &Case, chase: &Chase) -> Option<Channel> {
        match chase {
            Chase::HostingProvider { .. } => self
                .chase_route(case, chase)?
                .channel_list()
                .into_iter()
                .find(|channel| !matches!(channel, Channel::Manual { .. })),
            Chase::Reminder { .. } | Chase::Skipped => case.dispatch.channel.clone(),
        }
    }

    async fn send_withdrawal(
        &self,
        route: &PlatformRoute,
        channel: &Channel,
        case: &Case,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let Some(notice) = &case.notice else {
            return no_notice();
        };
        let reason = case
            .retracted
            .as_ref()
            .map_or("", |retracted| retracted.reason.as_str());
        let rendered =
            match self
                .templates
                .render_follow_up(notice, FollowUp::Withdrawal { reason }, times(case), &route.language)
            {
                Ok(rendered) => rendered,
                Err(error) => return not_rendered(error),
            };
        let body = FollowUpBody {
            kind: "withdrawal",
            withdraws: Some(notice.notice_id),
            reason: Some(reason),
            ..FollowUpBody::about(case, notice, &rendered)
        };
        let key = format!("withdrawal-{}", notice.notice_id);
        self.send_about(route, channel, case, &key, &rendered, ("withdrawal.json", body), now)
            .await
    }

    async fn send_chase(
        &self,
        route: &PlatformRoute,
        channel: &Channel,
        case: &Case,
        chase: &Chase,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let Some(notice) = &case.notice else {
            return no_notice();
        };
        let platform = case.host.as_ref().map_or("", |host| host.platform_name.as_str());
        let (follow_up, key) = match chase {
            Chase::Reminder { number } => (
                FollowUp::Reminder { number: *number },
                format!("reminder-{number}-{}", notice.notice_id),
            ),
            Chase::HostingProvider { step, .. } => (
                FollowUp::Escalation { platform },
                format!("escalation-{step}-{}", notice.notice_id),
            ),
            Chase::Skipped => {
                return DispatchOutcome::Failed {
                    reason: "a skipped round sends nothing".into(),
                    next: AfterFailure::Stop,
                }
            }
        };
        let rendered = match self
            .templates
            .render_follow_up(notice, follow_up, times(case), &route.language)
        {
            Ok(rendered) => rendered,
            Err(error) => return not_rendered(error),
        };
        let body = match chase {
            Chase::Reminder { number } => FollowUpBody {
                kind: "reminder",
                number: Some(*number),
                ..FollowUpBody::about(case, notice, &rendered)
            },
            _ => FollowUpBody {
                kind: "escalation",
                platform_reference: None,
                notice: Some(notice),
                ..FollowUpBody::about(case, notice, &rendered)
            },
        };
        self.send_about(route, channel, case, &key, &rendered, ("follow-up.json", body), now)
            .await
    }

    /// Sends a message about the case's notice on `channel`: by API the body, by e-mail the
    /// text with the body attached, in reply to the notice's own message where it is the
    /// same recipient.
    #[allow(clippy::too_many_arguments)]
    async fn send_about(
        &self,
        route: &PlatformRoute,
        channel: &Channel,
        case: &Case,
        key: &str,
        rendered: &Rendered,
        (attachment, body): (&str, FollowUpBody<'_>),
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let same_recipient = body.notice.is_none();
        let body = serde_json::to_vec(&body).expect("a follow-up message serialises");
        match channel {
            Channel::Http { endpoint } => {
                let auth = route.api_auth(channel);
                self.api.send(endpoint, &auth, key, body, now).await
            }
            Channel::Email { to } => {
                let outgoing = Outgoing {
                    to,
                    message_id: self.email.message_id(key),
                    in_reply_to: case.dispatch.delivered_message_id.clone().filter(|_| same_recipient),
                    rendered,
                    attachments: vec![Part {
                        name: attachment.into(),
                        content_type: "application/json",
                        body,
                    }],
                };
                self.email.send(outgoing).await
            }
            Channel::Manual { .. } => DispatchOutcome::Failed {
                reason: "a web form is filled in by an analyst".into(),
                next: AfterFailure::Stop,
            },
        }
    }
}

impl<'a> FollowUpBody<'a> {
    fn about(case: &'a Case, notice: &'a Notice, rendered: &'a Rendered) -> Self {
        Self {
            kind: "",
            withdraws: None,
            notice_id: Some(notice.notice_id),
            number: None,
            platform_reference: case.dispatch.platform_reference.as_deref(),
            locations: &notice.locations,
            reason: None,
            due_at: case.followup.deadline.as_ref().map(|deadline| deadline.due_at),
            trusted_flagger: &notice.trusted_flagger,
            language: &rendered.language,
            subject: &rendered.subject,
            message: &rendered.text,
            notice: None,
        }
    }
}

fn times(case: &Case) -> NoticeTimes {
    NoticeTimes {
        delivered_at: case.dispatch.delivered_at,
        due_at: case.followup.deadline.as_ref().map(|deadline| deadline.due_at),
    }
}

fn no_notice() -> DispatchOutcome {
    DispatchOutcome::Failed {
        reason: "the case has no notice".into(),
        next: AfterFailure::Stop,
    }
}

fn not_rendered(error: crate::render::RenderError) -> DispatchOutcome {
    DispatchOutcome::Failed {
        reason: format!("not sent: {error}"),
        next: AfterFailure::Stop,
    }
}
