//! The dispatch stage: delivers issued notices to platforms.
//!
//! The attempt is recorded (`DispatchStarted`) before the request leaves and its outcome
//! after; the notice id travels as `Idempotency-Key`, so a retry after a crash reaches the
//! platform as the same notice, never a second one.

use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::event::Channel;
use dijkwacht_domain::{Case, CaseEvent, CaseId, Command, DispatchOutcome, DispatchPolicy, Notice};
use dijkwacht_runtime::outbound::{self, AddressPolicy, Refused};
use dijkwacht_runtime::{RecordedEvent, Stage, StageError, Topic};
use futures::StreamExt;
use serde::Deserialize;
use std::time::Duration;

/// Notices in flight at once per process.
const CONCURRENT_SENDS: usize = 16;

pub struct DispatchStage {
    http: reqwest::Client,
    policy: DispatchPolicy,
    /// An attempt older than this with no recorded outcome is presumed lost and re-sent
    /// (the same limit the case's wake-up is set by).
    in_flight_limit: TimeDelta,
    /// Which addresses a notice may go to.
    addresses: AddressPolicy,
}

/// What a platform may answer to a notice.
#[derive(Debug, Deserialize)]
struct Receipt {
    notice_reference: Option<String>,
}

impl DispatchStage {
    pub fn new(
        policy: DispatchPolicy,
        request_timeout: Duration,
        in_flight_limit: TimeDelta,
        addresses: AddressPolicy,
    ) -> Result<Self, reqwest::Error> {
        // No redirects: one would turn the POST into a GET whose 200 says nothing about the
        // notice, so every 3xx is a failed attempt, with the Location recorded.
        let http = addresses
            .client_builder(0)
            .timeout(request_timeout)
            .user_agent(concat!("dijkwacht/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            policy,
            in_flight_limit,
            addresses,
        })
    }

    async fn send(&self, channel: &Channel, notice: &Notice) -> DispatchOutcome {
        let Channel::Http { endpoint } = channel;
        let refused = |refused: &Refused| DispatchOutcome::Failed {
            reason: format!("not sent: {refused}"),
            retryable: false,
        };
        match reqwest::Url::parse(endpoint) {
            Ok(url) => {
                if let Err(why) = self.addresses.check_url(&url) {
                    return refused(&why);
                }
            }
            Err(error) => {
                return DispatchOutcome::Failed {
                    reason: format!("the endpoint {endpoint:?} is not a URL: {error}"),
                    retryable: false,
                }
            }
        }
        let response = self
            .http
            .post(endpoint)
            .header("Idempotency-Key", notice.notice_id.to_string())
            .json(notice)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                if let Some(why) = outbound::refusal(&error) {
                    return refused(why);
                }
                return DispatchOutcome::Failed {
                    reason: format!("request to {endpoint} failed: {error}"),
                    retryable: true,
                };
            }
        };
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("(none)");
            // The endpoint moved: sending again to the same address cannot help, an operator
            // must correct the platform's registry entry.
            return DispatchOutcome::Failed {
                reason: format!("{endpoint} answered {status} redirecting to {location}; redirects are not followed"),
                retryable: false,
            };
        }
        if status.is_success() {
            let receipt = response.json::<Receipt>().await.ok();
            return DispatchOutcome::Delivered {
                platform_reference: receipt.and_then(|r| r.notice_reference),
            };
        }
        let body: String = response.text().await.unwrap_or_default().chars().take(500).collect();
        DispatchOutcome::Failed {
            reason: format!("{endpoint} answered {status}: {body}"),
            retryable: status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429,
        }
    }
}

impl DispatchStage {
    fn start(&self) -> Command {
        Command::StartDispatch {
            lost_after: self.in_flight_limit,
            policy: self.policy,
        }
    }

    /// One delivery attempt and the command that records its outcome.
    async fn attempt(&self, case_id: CaseId, in_flight: InFlight, notice: Notice) -> (CaseId, Command) {
        let outcome = self.send(&in_flight.channel, &notice).await;
        dijkwacht_runtime::crash::point("dispatch.after-post");
        if let DispatchOutcome::Failed { reason, .. } = &outcome {
            tracing::warn!(%case_id, attempt = in_flight.attempt, %reason, "notice not delivered");
        }
        let command = Command::RecordDispatchOutcome {
            attempt: in_flight.attempt,
            outcome,
            policy: self.policy,
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

    async fn command_for(&self, event: &RecordedEvent, _case: &Case) -> Result<Option<Command>, StageError> {
        Ok(matches!(event.event, CaseEvent::NoticeIssued(_)).then(|| self.start()))
    }

    /// Sends the attempts this very decision started (their start time is `now`). An
    /// attempt started earlier belongs to the process that started it; if that process died,
    /// the decider replaces the attempt once it is presumed lost, and it is sent from here.
    async fn after_commit(&self, cases: &[&Case], now: DateTime<Utc>) -> Result<Vec<(CaseId, Command)>, StageError> {
        let pending: Vec<(CaseId, InFlight, Notice)> = cases
            .iter()
            .filter_map(|case| Some((case.id, case.dispatch.in_flight.clone()?, case.notice.clone()?)))
            .filter(|(_, in_flight, _)| in_flight.started_at == now)
            .collect();
        let sends = pending
            .into_iter()
            .map(|(case_id, in_flight, notice)| self.attempt(case_id, in_flight, notice));
        Ok(futures::stream::iter(sends)
            .buffer_unordered(CONCURRENT_SENDS)
            .collect()
            .await)
    }

    /// A retry that came due, a notice whose message never arrived, or an attempt presumed
    /// lost: the decider tells which.
    async fn on_wake(&self, _case: &Case) -> Result<Option<Command>, StageError> {
        Ok(Some(self.start()))
    }
}
