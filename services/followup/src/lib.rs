//! The follow-up stage: checks, on the clock, whether delivered notices led to removal.
//! A check looks at the HTTP status of the location only; the content is never read.

use chrono::TimeDelta;
use dijkwacht_domain::{Case, Command, Observation};
use dijkwacht_runtime::outbound::AddressPolicy;
use dijkwacht_runtime::{RecordedEvent, Stage, StageError, Topic};
use reqwest::StatusCode;
use std::time::Duration;

/// When checks happen; the first one, counted from delivery, is a wait limit of the case
/// (`WaitLimits::first_check_after`).
#[derive(Debug, Clone, Copy)]
pub struct FollowupPolicy {
    /// Between checks while the content stays online.
    pub recheck_after: TimeDelta,
}

pub struct FollowupStage {
    http: reqwest::Client,
    policy: FollowupPolicy,
    addresses: AddressPolicy,
}

impl FollowupStage {
    pub fn new(policy: FollowupPolicy, addresses: AddressPolicy) -> Result<Self, reqwest::Error> {
        let http = addresses
            .client_builder(5)
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("dijkwacht-removal-check/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            policy,
            addresses,
        })
    }

    /// The status of a location: HEAD first, GET (headers only) where HEAD is not allowed.
    /// A location at a refused address is never contacted, and counts as unreachable.
    pub async fn observe(&self, url: &str) -> Observation {
        let literal_refused = reqwest::Url::parse(url).map(|url| self.addresses.check_url(&url));
        if let Ok(Err(refused)) = literal_refused {
            tracing::warn!(%url, %refused, "removal check refused");
            return Observation::Unreachable;
        }
        let status = match self.http.head(url).send().await {
            Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                // Dropping the response unread closes the connection: the body is never fetched.
                self.http.get(url).send().await.map(|response| response.status())
            }
            Ok(response) => Ok(response.status()),
            Err(error) => Err(error),
        };
        match status {
            Ok(status) if is_gone(status) => Observation::Gone {
                http_status: status.as_u16(),
            },
            Ok(status) => Observation::Online {
                http_status: status.as_u16(),
            },
            Err(error) => {
                tracing::info!(%url, %error, "removal check could not reach the location");
                Observation::Unreachable
            }
        }
    }
}

/// 404 Not Found, 410 Gone and 451 Unavailable For Legal Reasons count as removed.
fn is_gone(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 410 | 451)
}

impl Stage for FollowupStage {
    fn name(&self) -> &'static str {
        "followup"
    }

    fn topics(&self) -> &'static [Topic] {
        &[Topic::Dispatches]
    }

    /// Deliveries only start the clock; checks happen in `on_wake`.
    async fn command_for(&self, _event: &RecordedEvent, _case: &Case) -> Result<Option<Command>, StageError> {
        Ok(None)
    }

    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        let (Some(report), Some(_)) = (&case.report, case.dispatch.delivered_at) else {
            return Ok(None);
        };
        if case.is_finished() {
            return Ok(None);
        }
        let observation = self.observe(&report.location.url).await;
        Ok(Some(Command::RecordRemovalCheck {
            observation,
            recheck_after: self.policy.recheck_after,
        }))
    }
}
