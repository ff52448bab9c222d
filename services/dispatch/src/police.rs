//! A referral to the police: the facts of a police-first case — the location, its hashes,
//! what we assessed and why we refer it — never media. By API under the case id as
//! `Idempotency-Key`, or by e-mail with the facts attached; the police release or extend the
//! hold on our API.

use crate::email::{Outgoing, Part};
use crate::registry::{ChannelConfig, PoliceRoute};
use crate::render::Rendered;
use crate::DispatchStage;
use chrono::{DateTime, SecondsFormat, Utc};
use dijkwacht_domain::case::InFlight;
use dijkwacht_domain::{AfterFailure, Case, CaseId, Channel, Command, DispatchOutcome, ReferralFacts};
use serde::Serialize;
use std::sync::Arc;

/// The body of a referral.
#[derive(Debug, Serialize)]
pub struct ReferralBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub facts: &'a ReferralFacts,
    /// Where, on our API, the police read the case again, release it or extend the hold.
    pub referral_url: String,
}

impl DispatchStage {
    /// The channel a referral goes by: the police partner's API or e-mail.
    pub(crate) fn referral_channel(&self, case: &Case) -> Option<Channel> {
        let held = case.police.held.as_ref()?;
        let route = self.directory.police(&held.partner_id.0)?;
        (!matches!(route.channel, ChannelConfig::Manual { .. })).then(|| route.channel.channel())
    }

    pub(crate) async fn refer(
        &self,
        case: &Case,
        route: Arc<PoliceRoute>,
        in_flight: InFlight,
        now: DateTime<Utc>,
    ) -> (CaseId, Command) {
        let outcome = match ReferralFacts::of(case) {
            Some(facts) => self.send_referral(&route, &in_flight.channel, &facts, now).await,
            None => DispatchOutcome::Failed {
                reason: "the case is not held for the police".into(),
                next: AfterFailure::Stop,
            },
        };
        if let DispatchOutcome::Failed { reason, .. } | DispatchOutcome::Rejected { reason, .. } = &outcome {
            tracing::warn!(case_id = %case.id, partner_id = %route.partner_id, attempt = in_flight.attempt, %reason, "referral not delivered");
        }
        let command = Command::RecordReferralOutcome {
            attempt: in_flight.attempt,
            outcome,
            policy: self.policy,
            hold_for: route.hold_for,
        };
        (case.id, command)
    }

    async fn send_referral(
        &self,
        route: &PoliceRoute,
        channel: &Channel,
        facts: &ReferralFacts,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let body = ReferralBody {
            kind: "police_referral",
            facts,
            referral_url: format!("/v1/police/referrals/{}", facts.case_id),
        };
        let body = serde_json::to_vec(&body).expect("a referral serialises");
        let key = format!("referral-{}", facts.case_id);
        match (channel, &route.channel) {
            (Channel::Http { endpoint }, ChannelConfig::Api { auth, .. }) => {
                self.api.send(endpoint, auth, &key, body, now).await
            }
            (Channel::Email { to }, _) => {
                let rendered = referral_message(facts);
                let outgoing = Outgoing {
                    to,
                    message_id: self.email.message_id(&key),
                    in_reply_to: None,
                    rendered: &rendered,
                    attachments: vec![Part {
                        name: "referral.json".into(),
                        content_type: "application/json",
                        body,
                    }],
                };
                self.email.send(outgoing).await
            }
            _ => DispatchOutcome::Failed {
                reason: "the police partner's channel changed in the registry since the attempt started".into(),
                next: AfterFailure::Stop,
            },
        }
    }
}

/// The referral as an e-mail: in Dutch and English, the facts in the text and attached.
fn referral_message(facts: &ReferralFacts) -> Rendered {
    let day = |at: Option<DateTime<Utc>>| at.map_or("-".to_owned(), |at| at.to_rfc3339_opts(SecondsFormat::Secs, true));
    let mut text = format!(
        "Politie eerst / Police first: doorverwijzing / referral {case}\n\n\
         Wij verwijzen deze zaak naar u door voordat er een verwijderverzoek uitgaat. Zolang u\n\
         haar vasthoudt, gaat er geen verzoek uit en raken wij de locatie niet aan.\n\
         We refer this case to you before any removal notice. While you hold it, no notice\n\
         goes out and we do not touch the location.\n\n\
         Reden / reasons: {reasons}\n\
         Gemeld / reported: {reported}\n\
         Beoordeeld / assessed: {assessed}\n\
         Soort / class: {class}\n",
        case = facts.case_id,
        reasons = facts
            .reasons
            .iter()
            .map(|reason| reason.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        reported = day(facts.reported_at),
        assessed = day(facts.assessed_at),
        class = facts.content_class.map_or("-", |class| class.as_str()),
    );
    if let Some(note) = &facts.note {
        text.push_str(&format!("Toelichting / note: {note}\n"));
    }
    text.push_str("\nLocaties / locations:\n");
    for location in &facts.locations {
        text.push_str(&format!("- {}\n", location.url));
        for hash in &location.hashes {
            text.push_str(&format!("  {}:{}\n", hash.algorithm.as_str(), hash.value));
        }
    }
    if let Some(host) = &facts.host {
        text.push_str(&format!("\nHost: {} ({})\n", host.platform_name, host.country));
    }
    text.push_str(&format!(
        "\nVrijgeven of verlengen / release or extend: /v1/police/referrals/{}\n",
        facts.case_id
    ));
    let html = format!(
        "<pre>{}</pre>",
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    Rendered {
        language: "nl".into(),
        subject: format!("Politie eerst / Police first: referral {}", facts.case_id),
        text,
        html: Some(html),
    }
}
