//! The dispatch stage: delivers issued notices to platforms.
//!
//! The attempt is recorded (`DispatchStarted`) before the request leaves and its outcome
//! after; the notice id travels as `Idempotency-Key`, so a retry after a crash reaches the
//! platform as the same notice, never a second one.

use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::event::Channel;
use dijkwacht_domain::{Case, CaseEvent, CaseId, Command, DispatchOutcome, DispatchPolicy, Notice};
use dijkwacht_runtime::{RecordedEvent, Stage, StageError, Topic};
use futures::StreamExt;
use serde::Deserialize;
use std::time::Duration;

/// Notices in flight at once per process.
const CONCURRENT_SENDS: usize = 16;

pub struct DispatchStage {
    http: reqwest::Client,
    policy: DispatchPolicy,
    /// An attempt older than this with no recorded outcome is presumed lost and re-sent.
    stale_after: TimeDelta,
}

/// What a platform may answer to a notice.
#[derive(Debug, Deserialize)]
struct Receipt {
    notice_reference: Option<String>,
}

impl DispatchStage {
    pub fn new(policy: DispatchPolicy, request_timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .user_agent(concat!("dijkwacht/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            policy,
            stale_after: TimeDelta::from_std(request_timeout * 2).unwrap_or(TimeDelta::minutes(1)),
        })
    }

    async fn send(&self, channel: &Channel, notice: &Notice) -> DispatchOutcome {
        let Channel::Http { endpoint } = channel;
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
                return DispatchOutcome::Failed {
                    reason: format!("request to {endpoint} failed: {error}"),
                    retryable: true,
                }
            }
        };
        let status = response.status();
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
    /// One delivery attempt and the command that records its outcome.
    async fn attempt(&self, case_id: CaseId, in_flight: InFlight, notice: Notice) -> (CaseId, Command) {
        let outcome = self.send(&in_flight.channel, &notice).await;
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
        Ok(matches!(event.event, CaseEvent::NoticeIssued(_)).then_some(Command::StartDispatch))
    }

    /// Sends whatever attempt is recorded as started and not finished, including one a
    /// crashed process left behind; several platforms are contacted at once.
    async fn after_commit(&self, cases: &[&Case]) -> Result<Vec<(CaseId, Command)>, StageError> {
        let pending: Vec<(CaseId, InFlight, Notice)> = cases
            .iter()
            .filter_map(|case| Some((case.id, case.dispatch.in_flight.clone()?, case.notice.clone()?)))
            .collect();
        let sends = pending
            .into_iter()
            .map(|(case_id, in_flight, notice)| self.attempt(case_id, in_flight, notice));
        Ok(futures::stream::iter(sends)
            .buffer_unordered(CONCURRENT_SENDS)
            .collect()
            .await)
    }

    fn wake_at(&self, case: &Case) -> Option<DateTime<Utc>> {
        let dispatch = &case.dispatch;
        match &dispatch.in_flight {
            Some(in_flight) => Some(in_flight.started_at + self.stale_after),
            None => dispatch.retry_at,
        }
    }

    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        let retry_due = case.dispatch.in_flight.is_none() && case.dispatch.retry_at.is_some();
        Ok(retry_due.then_some(Command::StartDispatch))
    }

    fn uses_timers(&self) -> bool {
        true
    }
}
