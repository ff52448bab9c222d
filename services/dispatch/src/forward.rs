//! A case for the hotline of the hosting country: the facts it needs to act under its own
//! law — the location, the hashes, what we assessed and on what evidence, who hosts it —
//! never the media. Sent to the hotline's API under the case id as `Idempotency-Key`; the
//! hotline confirms at the `confirm_url` that it acts.

use crate::registry::{ChannelConfig, HotlineRoute};
use crate::DispatchStage;
use chrono::{DateTime, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::event::{Evidence, HostResolved, Location};
use dijkwacht_domain::{AfterFailure, Case, CaseId, Command, ContentClass, DispatchOutcome, LegalGround};
use serde::Serialize;
use std::sync::Arc;

/// The body of a forward.
#[derive(Debug, Serialize)]
pub struct ForwardBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Our reference for the case; also the `Idempotency-Key`.
    pub case_id: CaseId,
    pub locations: Vec<&'a Location>,
    pub content_class: Option<ContentClass>,
    pub legal_ground: Option<&'a LegalGround>,
    pub evidence: Option<&'a Evidence>,
    pub host: Option<&'a HostResolved>,
    pub reported_at: Option<DateTime<Utc>>,
    pub assessed_at: Option<DateTime<Utc>>,
    /// Where the hotline confirms, on our API, that it acts on the case.
    pub confirm_url: String,
}

impl<'a> ForwardBody<'a> {
    pub fn of(case: &'a Case) -> Self {
        let classification = case.classification.as_ref();
        Self {
            kind: "forward",
            case_id: case.id,
            locations: case.report.iter().map(|report| &report.location).collect(),
            content_class: classification.map(|c| c.class),
            legal_ground: classification.and_then(|c| c.legal_ground.as_ref()),
            evidence: classification.map(|c| &c.evidence),
            host: case.host.as_ref(),
            reported_at: case.received_at,
            assessed_at: case.classified_at,
            confirm_url: format!("/v1/forwards/{}/confirmation", case.id),
        }
    }
}

impl DispatchStage {
    /// The channel a forward goes by: the hotline's API, if the registry gives it one.
    pub(crate) fn forward_channel(&self, case: &Case) -> Option<dijkwacht_domain::Channel> {
        let forwarded = case.forwarded.as_ref()?;
        let route = self.directory.hotline(&forwarded.partner_id.0)?;
        matches!(route.channel, ChannelConfig::Api { .. }).then(|| route.channel.channel())
    }

    pub(crate) async fn forward(
        &self,
        case: &Case,
        route: Arc<HotlineRoute>,
        in_flight: InFlight,
        now: DateTime<Utc>,
    ) -> (CaseId, Command) {
        let outcome = match &route.channel {
            ChannelConfig::Api { endpoint, auth } => {
                let body = serde_json::to_vec(&ForwardBody::of(case)).expect("a forward serialises");
                self.api
                    .send(endpoint, auth, &format!("forward-{}", case.id), body, now)
                    .await
            }
            _ => DispatchOutcome::Failed {
                reason: "the hotline's channel is no API".into(),
                next: AfterFailure::Stop,
            },
        };
        if let DispatchOutcome::Failed { reason, .. } | DispatchOutcome::Rejected { reason, .. } = &outcome {
            tracing::warn!(case_id = %case.id, partner_id = %route.partner_id, attempt = in_flight.attempt, %reason, "forward not delivered");
        }
        let command = Command::RecordForwardOutcome {
            attempt: in_flight.attempt,
            outcome,
            policy: self.policy,
            confirm_within: route.confirm_within,
        };
        (case.id, command)
    }
}
