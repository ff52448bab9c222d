//! The follow-up part: each delivered notice's deadline, the platform's answers (a signed
//! route of its own), removal checks on the clock, and the chase of a platform that does
//! not act — reminders, then the hosting provider, then the competent authority's queue.
//! A check looks at the HTTP status of the location only; the content is never read.

pub mod analysts;
pub mod answers;
pub mod forwards;
mod part;
pub mod reappearance;
pub mod settings;

pub use crate::part::Followup;

use crate::settings::FollowupSettings;
use chrono::TimeDelta;
use dijkwacht_domain::followup::{deadline_for, DeadlineRule, PlatformKind};
use dijkwacht_domain::{Case, CaseStatus, Command, Observation};
use dijkwacht_http::{DocumentedRouter, Edge, Limits};
use dijkwacht_runtime::outbound::AddressPolicy;
use dijkwacht_runtime::{EventStore, RecordedEvent, SharedClock, Stage, StageError, WaitsFor};
use reqwest::StatusCode;
use std::time::Duration;

/// The state of the follow-up part's routes.
#[derive(Clone)]
pub struct FollowupApi {
    pub store: EventStore,
    pub clock: SharedClock,
    pub limits: Limits,
    /// How far a signature's timestamp may be from our clock.
    pub answer_window: TimeDelta,
}

impl Edge for FollowupApi {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The follow-up part's routes with their OpenAPI description: platforms' signed answers,
/// hotlines' confirmations of forwarded cases, and analysts' decisions on refusals and
/// authorities' decisions.
pub fn documented() -> DocumentedRouter<FollowupApi> {
    forwards::routes(analysts::routes(answers::routes(DocumentedRouter::new())))
}

pub struct FollowupStage {
    http: reqwest::Client,
    settings: FollowupSettings,
    deadlines: Vec<DeadlineRule>,
    /// Platforms established here are "national" for their deadline.
    home_country: String,
    addresses: AddressPolicy,
    /// For a reappearance, which opens a case besides changing this one.
    store: EventStore,
    clock: SharedClock,
}

impl FollowupStage {
    pub fn new(
        settings: FollowupSettings,
        home_country: String,
        addresses: AddressPolicy,
        (store, clock): (EventStore, SharedClock),
    ) -> Result<Self, reqwest::Error> {
        let http = addresses
            .client_builder(5)
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("dijkwacht-removal-check/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            deadlines: settings.deadline_rules(),
            settings,
            home_country,
            addresses,
            store,
            clock,
        })
    }

    /// The rule for the case's class and platform; the decider falls back to the catch-all.
    fn set_deadline(&self, case: &Case) -> Command {
        let rule = match (&case.classification, &case.host) {
            (Some(classification), Some(host)) => deadline_for(
                &self.deadlines,
                classification.class,
                PlatformKind::of(host, &self.home_country),
            )
            .cloned(),
            _ => None,
        };
        Command::SetDeadline { rule }
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

    fn waits_for(&self) -> WaitsFor {
        WaitsFor::Events(&["NoticeDelivered"])
    }

    /// A delivery sets the notice's deadline; checks happen in `on_wake`.
    async fn command_for(&self, _event: &RecordedEvent, case: &Case) -> Result<Option<Command>, StageError> {
        Ok(Some(self.set_deadline(case)))
    }

    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        let Some(report) = &case.report else {
            return Ok(None);
        };
        // A held case's location is looked at only where the police allow it; a hold that
        // ran out is an analyst's task, never a notice.
        if case.held_for_police() {
            if !case.police.check_due(self.clock.now()) {
                return Ok(Some(Command::LapsePoliceHold));
            }
            let class = case.classification.as_ref().map(|c| c.class);
            return Ok(Some(Command::RecordHeldCheck {
                observation: self.observe(&report.location.url).await,
                recheck_every: self.settings.policy_for(class).recheck_every,
            }));
        }
        // A forward's window for the hotline's confirmation has passed.
        if case.status == CaseStatus::Forwarded {
            return Ok(Some(Command::CloseForward));
        }
        let watched = case.status == CaseStatus::Removed;
        if !case.awaits_removal() && !watched {
            return Ok(None);
        }
        if case.dispatch.delivered_at.is_some() && case.followup.deadline.is_none() {
            return Ok(Some(self.set_deadline(case)));
        }
        let observation = self.observe(&report.location.url).await;
        if watched && matches!(observation, Observation::Online { .. }) {
            let reappearance = reappearance::Reappearance { of: case.id };
            let (opened, _) = self.store.transact(&reappearance, self.clock.now()).await?;
            if let Some(new_case_id) = opened {
                tracing::info!(case_id = %case.id, %new_case_id, "removed content is back online: a new case takes it over");
            }
            return Ok(None);
        }
        let class = case.classification.as_ref().map(|c| c.class);
        Ok(Some(Command::RecordRemovalCheck {
            observation,
            policy: self.settings.policy_for(class),
        }))
    }
}
