//! Sending: one message per notice, or one for a group of notices to one platform under
//! one legal regime (its grouping window). Every notice of a group records its own
//! outcome, with the message's id.

use crate::email::{Outgoing, Part};
use crate::registry::PlatformRoute;
use crate::render::Subject;
use crate::telemetry::NoticesSent;
use crate::{pace, DispatchStage};
use chrono::{DateTime, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::notice::Illegality;
use dijkwacht_domain::{AfterFailure, CaseId, Channel, Command, DispatchOutcome, Notice, NoticeId};
use dijkwacht_runtime::telemetry::events::InternalEvent;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The body of an API notice: the notice's fields, and its text in the platform's language.
#[derive(Serialize)]
struct ApiNotice<'a> {
    #[serde(flatten)]
    notice: &'a Notice,
    language: &'a str,
    subject: &'a str,
    message: &'a str,
}

/// The body of a grouped API message: every notice, and their text in one message.
#[derive(Serialize)]
struct ApiGroup<'a> {
    message_id: &'a str,
    notices: Vec<&'a Notice>,
    language: &'a str,
    subject: &'a str,
    message: &'a str,
}

/// An attempt started in this decision, to be sent.
pub struct Attempt {
    pub case_id: CaseId,
    pub route: Arc<PlatformRoute>,
    pub in_flight: InFlight,
    pub notice: Notice,
}

/// Which attempts travel in one message: those to a platform that groups, on one channel,
/// of one class under one provision (or the platform's terms). Any other attempt is alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageKey {
    Alone(NoticeId),
    Grouped {
        platform_id: String,
        channel: String,
        class: &'static str,
        regime: String,
    },
}

impl MessageKey {
    pub fn of(route: &PlatformRoute, channel: &Channel, notice: &Notice) -> Self {
        if route.pace.grouping_window_secs <= 0 {
            return Self::Alone(notice.notice_id);
        }
        Self::Grouped {
            platform_id: route.platform_id.clone(),
            channel: serde_json::to_string(channel).expect("a channel serialises"),
            class: notice.content_class.as_str(),
            regime: match &notice.illegality {
                Illegality::Illegal { legal_ground } => legal_ground.provision.clone(),
                Illegality::IncompatibleWithTerms => "terms".into(),
            },
        }
    }
}

/// `items` in runs of at most `size`.
pub fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(size).collect());
    }
    chunks
}

/// A group's id, from the notices it lists: the same group sent again is the same message.
fn group_id(notices: &[&Notice]) -> String {
    let mut ids: Vec<String> = notices.iter().map(|n| n.notice_id.to_string()).collect();
    ids.sort();
    let digest = Sha256::digest(ids.join(",").as_bytes());
    format!("group-{}", &hex::encode(digest)[..32])
}

/// One line per location: what a desk's parser reads beside the human text.
fn locations_csv(notices: &[&Notice]) -> Vec<u8> {
    let mut csv = String::from("notice_id,url,class,legal_ground\n");
    for notice in notices {
        let ground = match &notice.illegality {
            Illegality::Illegal { legal_ground } => legal_ground.provision.as_str(),
            Illegality::IncompatibleWithTerms => "terms and conditions",
        };
        for location in &notice.locations {
            let quoted = |value: &str| format!("\"{}\"", value.replace('"', "\"\""));
            csv.push_str(&format!(
                "{},{},{},{}\n",
                notice.notice_id,
                quoted(&location.url),
                notice.content_class.as_str(),
                quoted(ground)
            ));
        }
    }
    csv.into_bytes()
}

impl DispatchStage {
    /// Sends one message for `attempts` (one, or a group) and returns each attempt's outcome.
    pub(crate) async fn deliver(&self, attempts: Vec<Attempt>, now: DateTime<Utc>) -> Vec<(CaseId, Command)> {
        let route = attempts[0].route.clone();
        let channel = attempts[0].in_flight.channel.clone();
        let notices: Vec<&Notice> = attempts.iter().map(|attempt| &attempt.notice).collect();
        let mut outcome = self.send(&route, &channel, &notices, now).await;
        dijkwacht_runtime::crash::point("dispatch.after-post");
        self.pace_outcome(&route, &outcome, now).await;
        NoticesSent {
            platform: &route.platform_id,
            channel: channel.kind(),
            notices: attempts.len(),
            outcome: &outcome,
        }
        .emit();
        // A group is retried as a group: every notice of it waits the full back-off of the
        // group's latest attempt, so they come due together (a notice's own jittered back-off
        // is never longer).
        if let DispatchOutcome::Failed {
            next: AfterFailure::Retry { not_before },
            ..
        } = &mut outcome
        {
            if attempts.len() > 1 {
                let latest = attempts.iter().map(|a| a.in_flight.attempt).max().unwrap_or(1);
                let full = self.policy.first_backoff * 2_i32.pow(latest.saturating_sub(1).min(16));
                *not_before = Some(not_before.map_or(now + full, |asked| asked.max(now + full)));
            }
        }
        let channels = route.channel_list();
        attempts
            .into_iter()
            .map(|attempt| {
                let command = Command::RecordDispatchOutcome {
                    attempt: attempt.in_flight.attempt,
                    outcome: outcome.clone(),
                    policy: self.policy,
                    channels: channels.clone(),
                };
                (attempt.case_id, command)
            })
            .collect()
    }

    async fn send(
        &self,
        route: &PlatformRoute,
        channel: &Channel,
        notices: &[&Notice],
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let subject = Subject {
            notices,
            platform_name: &route.name,
        };
        let rendered =
            match self
                .templates
                .render(subject, channel.kind(), &route.language, route.templates_dir.as_deref())
            {
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
        let single = match notices {
            [notice] => Some(*notice),
            _ => None,
        };
        let key = match single {
            Some(notice) => notice.notice_id.to_string(),
            None => group_id(notices),
        };
        match channel {
            Channel::Http { endpoint } => {
                let auth = route.api_auth(channel);
                let body = match single {
                    Some(notice) => serde_json::to_vec(&ApiNotice {
                        notice,
                        language: &rendered.language,
                        subject: &rendered.subject,
                        message: &rendered.text,
                    }),
                    None => serde_json::to_vec(&ApiGroup {
                        message_id: &key,
                        notices: notices.to_vec(),
                        language: &rendered.language,
                        subject: &rendered.subject,
                        message: &rendered.text,
                    }),
                }
                .expect("a notice serialises");
                let outcome = self.api.send(endpoint, &auth, &key, body, now).await;
                match outcome {
                    DispatchOutcome::Delivered { platform_reference, .. } if single.is_none() => {
                        DispatchOutcome::Delivered {
                            platform_reference,
                            message_id: Some(key),
                        }
                    }
                    outcome => outcome,
                }
            }
            Channel::Email { to } => {
                let json = |notice: &Notice| serde_json::to_vec(notice).expect("a notice serialises");
                let attachments = match single {
                    Some(notice) => vec![Part {
                        name: "notice.json".into(),
                        content_type: "application/json",
                        body: json(notice),
                    }],
                    None => notices
                        .iter()
                        .map(|notice| Part {
                            name: format!("notice-{}.json", notice.notice_id),
                            content_type: "application/json",
                            body: json(notice),
                        })
                        .chain([Part {
                            name: "locations.csv".into(),
                            content_type: "text/csv",
                            body: locations_csv(notices),
                        }])
                        .collect(),
                };
                let key = match single {
                    Some(notice) => format!("notice-{}", notice.notice_id),
                    None => key,
                };
                let outgoing = Outgoing {
                    to,
                    message_id: self.email.message_id(&key),
                    in_reply_to: None,
                    rendered: &rendered,
                    attachments,
                };
                self.email.send(outgoing).await
            }
            Channel::Manual { .. } => unreachable!("hand submissions are not sent by the stage"),
        }
    }

    /// Counts the outcome towards the platform's breaker; a change is written for operators.
    pub(crate) async fn pace_outcome(&self, route: &PlatformRoute, outcome: &DispatchOutcome, now: DateTime<Utc>) {
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
}
