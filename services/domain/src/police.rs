//! Police first: new material that may show a child still in danger goes to the police
//! before anything else. While a case is held for the police no notice is composed and
//! nothing touches the location — a notice or a removal check could alert the uploader and
//! destroy the trail to a victim. The hold ends only with the police's (or an analyst's)
//! release; when it runs out, an analyst asks the police, never an automatic notice.

use crate::case::{Attempts, Case, CaseStatus};
use crate::decide::{DispatchOutcome, DispatchPolicy, NextAttempt, Observation, Refusal};
use crate::event::*;
use crate::ids::PartnerId;
use crate::taxonomy::ContentClass;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why analysts refer a case to the police first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferralReason {
    /// The material is in no hash list: nobody has seen this victim before.
    NewMaterial,
    /// The material suggests abuse that is going on, or a victim at risk.
    VictimInDanger,
    /// A place, a person or another clue could lead to a victim or an offender.
    IdentifiablePlaceOrPerson,
}

impl ReferralReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMaterial => "new_material",
            Self::VictimInDanger => "victim_in_danger",
            Self::IdentifiablePlaceOrPerson => "identifiable_place_or_person",
        }
    }
}

/// An analyst's referral, part of the review decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoliceReferral {
    /// The law-enforcement partner it goes to.
    pub partner_id: PartnerId,
    /// At least one.
    pub reasons: Vec<ReferralReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A rule that asks an analyst whether the police must see a case first (for example: CSAM
/// that no hash list knows, reported by given partners). It never refers by itself: the case
/// goes to review, and the analyst decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliceFirstRule {
    pub id: String,
    /// The classes it applies to, as found or as the reporter claimed them.
    pub classes: Vec<ContentClass>,
    /// Only new material: none that a hash list, an earlier decision or an earlier case knows.
    #[serde(default)]
    pub new_material_only: bool,
    /// Only reports from these partners; from every reporter when empty.
    #[serde(default)]
    pub partners: Vec<PartnerId>,
}

impl PoliceFirstRule {
    /// Whether the rule asks for this report, given what classification found (if anything).
    pub fn asks(&self, report: &ReportReceived, found: Option<&Classified>) -> bool {
        let class = found.map(|classified| classified.class).or(report.claimed_class);
        let known_material = found.is_some_and(|classified| {
            matches!(
                classified.evidence,
                Evidence::HashListMatch { .. } | Evidence::PriorDecision { .. } | Evidence::Reappearance { .. }
            )
        });
        let from_partner = self.partners.is_empty()
            || report
                .reporter
                .partner_id()
                .is_some_and(|partner| self.partners.contains(partner));
        class.is_some_and(|class| self.classes.contains(&class))
            && !(self.new_material_only && known_material)
            && from_partner
    }

    /// The first of `rules` that asks for this report.
    pub fn first_asking<'r>(
        rules: &'r [PoliceFirstRule],
        report: &ReportReceived,
        found: Option<&Classified>,
    ) -> Option<&'r PoliceFirstRule> {
        rules.iter().find(|rule| rule.asks(report, found))
    }
}

/// The police side of a case: the referral, its sending, and the hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoliceState {
    pub held: Option<HeldForPolice>,
    pub held_at: Option<DateTime<Utc>>,
    pub sending: Attempts,
    pub referred: Option<ReferredToPolice>,
    pub referred_at: Option<DateTime<Utc>>,
    /// An analyst must refer it by other means; the last failure says why.
    pub gave_up_reason: Option<String>,
    pub hold_until: Option<DateTime<Utc>>,
    /// The hold ran out: an analyst's task until it is released or extended.
    pub lapsed: bool,
    pub released: Option<PoliceReleased>,
    pub released_at: Option<DateTime<Utc>>,
    /// The police allow status checks of the location while they hold the case.
    pub checks_allowed: bool,
    pub next_check_at: Option<DateTime<Utc>>,
    pub last_check: Option<HeldCheck>,
}

/// What the last status check of a held case's location saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeldCheck {
    pub checked_at: DateTime<Utc>,
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

impl PoliceState {
    pub(crate) fn apply(&mut self, event: &CaseEvent, at: DateTime<Utc>) {
        match event {
            CaseEvent::HeldForPolice(held) => {
                self.held = Some(held.clone());
                self.held_at = Some(at);
            }
            CaseEvent::ReferralStarted(started) => self.sending.start(started.attempt, at, &started.channel),
            CaseEvent::ReferredToPolice(referred) => {
                self.sending.end(None);
                self.referred = Some(referred.clone());
                self.referred_at = Some(at);
                self.hold_until = Some(referred.hold_until);
            }
            CaseEvent::ReferralFailed(failed) => {
                self.sending.end(failed.retry_at);
                if failed.retry_at.is_none() {
                    self.gave_up_reason = Some(failed.reason.clone());
                }
            }
            CaseEvent::PoliceHoldExtended(extended) => {
                self.hold_until = Some(extended.until);
                self.lapsed = false;
            }
            CaseEvent::PoliceHoldLapsed(_) => self.lapsed = true,
            CaseEvent::PoliceReleased(released) => {
                self.released = Some(released.clone());
                self.released_at = Some(at);
            }
            // Allowed, the first check is due at once.
            CaseEvent::PoliceChecksAllowed(allowed) => {
                self.checks_allowed = allowed.allowed;
                self.next_check_at = allowed.allowed.then_some(at);
            }
            CaseEvent::HeldLocationChecked(checked) => {
                self.next_check_at = Some(checked.next_check_at);
                self.last_check = Some(HeldCheck {
                    checked_at: at,
                    online: checked.online,
                    http_status: checked.http_status,
                });
            }
            _ => {}
        }
    }

    /// When follow-up must look next: the end of the hold, or an allowed check before it.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        let check = self.next_check_at.filter(|_| self.checks_allowed);
        match (self.hold_until, check) {
            (Some(until), Some(check)) => Some(until.min(check)),
            (until, check) => until.or(check),
        }
    }

    /// An allowed status check of the location is due.
    pub fn check_due(&self, now: DateTime<Utc>) -> bool {
        self.checks_allowed && self.next_check_at.is_some_and(|at| at <= now)
    }
}

impl Case {
    /// Held for the police: no notice, no removal check, until released.
    pub fn held_for_police(&self) -> bool {
        self.status == CaseStatus::HeldForPolice
    }

    /// The referral still has to leave: held, not referred, not given up.
    pub fn referral_owed(&self) -> bool {
        self.held_for_police() && self.police.referred.is_none() && self.police.gave_up_reason.is_none()
    }

    /// The hold that a confirmed review decision starts, if either analyst referred the case.
    pub(crate) fn hold_on_decision(&self, referral: Option<PoliceReferral>, analysts: &[String]) -> Option<CaseEvent> {
        let pending = self
            .pending_decision
            .as_ref()
            .and_then(|first| first.police_referral.clone());
        referral.or(pending).map(|referral| {
            CaseEvent::HeldForPolice(HeldForPolice {
                partner_id: referral.partner_id,
                reasons: referral.reasons,
                note: referral.note,
                analysts: analysts.to_vec(),
            })
        })
    }

    /// Starts the referral (or its next attempt) on `channel`, the police partner's API or
    /// e-mail; without one an analyst refers it by other means.
    pub(crate) fn start_referral(
        &self,
        lost_after: Duration,
        policy: DispatchPolicy,
        channel: Option<Channel>,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let Some(held) = self.police.held.as_ref().filter(|_| self.referral_owed()) else {
            return vec![];
        };
        let sending = &self.police.sending;
        let failed = |attempt, reason: String, retry_at| {
            CaseEvent::ReferralFailed(ReferralFailed {
                partner_id: held.partner_id.clone(),
                attempt,
                reason,
                retry_at,
            })
        };
        let Some(channel) = channel.filter(|channel| !matches!(channel, Channel::Manual { .. })) else {
            return vec![failed(
                sending.attempts,
                format!(
                    "police partner {} has no channel for referrals in the registry: refer it by other means",
                    held.partner_id
                ),
                None,
            )];
        };
        let start = |attempt| {
            CaseEvent::ReferralStarted(ReferralStarted {
                partner_id: held.partner_id.clone(),
                attempt,
                channel: channel.clone(),
            })
        };
        NextAttempt::of(sending, lost_after, policy.max_attempts, now).events(now, failed, start)
    }

    /// `hold_for`: how long the police have before an analyst asks them, from receipt.
    pub(crate) fn record_referral_outcome(
        &self,
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        hold_for: Duration,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let (Some(held), Some(in_flight)) = (&self.police.held, &self.police.sending.in_flight) else {
            return vec![];
        };
        if in_flight.attempt != attempt || !self.held_for_police() {
            return vec![];
        }
        let partner_id = held.partner_id.clone();
        let failed = |reason, retry_at| {
            CaseEvent::ReferralFailed(ReferralFailed {
                partner_id: partner_id.clone(),
                attempt,
                reason,
                retry_at,
            })
        };
        let referred = |reference, message_id| {
            CaseEvent::ReferredToPolice(ReferredToPolice {
                partner_id: partner_id.clone(),
                attempt,
                reference,
                message_id,
                hold_until: self.hold_until_from(now, hold_for),
                submitted_by: None,
            })
        };
        let refused = "the police refused the referral";
        vec![policy.settle((self.id.0, attempt), outcome, refused, now, referred, failed)]
    }

    /// An analyst referred the case by other means (after the automatic referral gave up,
    /// or instead of waiting for its retry).
    pub(crate) fn record_manual_referral(
        &self,
        analyst_id: String,
        reference: Option<String>,
        hold_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let held = self.police.held.as_ref().ok_or(Refusal::NotHeldForPolice)?;
        if self.police.referred.is_some() {
            return Ok(vec![]);
        }
        if !self.held_for_police() {
            return Err(Refusal::NotHeldForPolice);
        }
        if self.police.sending.in_flight.is_some() {
            return Err(Refusal::DispatchInFlight);
        }
        Ok(vec![CaseEvent::ReferredToPolice(ReferredToPolice {
            partner_id: held.partner_id.clone(),
            attempt: self.police.sending.attempts + 1,
            reference,
            message_id: None,
            hold_until: self.hold_until_from(now, hold_for),
            submitted_by: Some(analyst_id),
        })])
    }

    /// An extension recorded before the referral arrived is kept when it is the later.
    fn hold_until_from(&self, now: DateTime<Utc>, hold_for: Duration) -> DateTime<Utc> {
        let from_receipt = now + hold_for;
        self.police
            .hold_until
            .map_or(from_receipt, |until| until.max(from_receipt))
    }

    pub(crate) fn extend_police_hold(
        &self,
        until: DateTime<Utc>,
        recorded_by: String,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if !self.held_for_police() {
            return Err(Refusal::NotHeldForPolice);
        }
        if until <= now {
            return Err(Refusal::HoldEndsInThePast);
        }
        if self.police.hold_until == Some(until) && !self.police.lapsed {
            return Ok(vec![]);
        }
        Ok(vec![CaseEvent::PoliceHoldExtended(PoliceHoldExtended {
            until,
            recorded_by,
            note,
        })])
    }

    pub(crate) fn lapse_police_hold(&self, now: DateTime<Utc>) -> Vec<CaseEvent> {
        let police = &self.police;
        match police.hold_until {
            Some(hold_until)
                if self.held_for_police() && police.referred.is_some() && !police.lapsed && hold_until <= now =>
            {
                vec![CaseEvent::PoliceHoldLapsed(PoliceHoldLapsed { hold_until })]
            }
            _ => vec![],
        }
    }

    pub(crate) fn allow_held_checks(&self, allowed: bool, recorded_by: String) -> Result<Vec<CaseEvent>, Refusal> {
        if !self.held_for_police() {
            return Err(Refusal::NotHeldForPolice);
        }
        if self.police.checks_allowed == allowed {
            return Ok(vec![]);
        }
        Ok(vec![CaseEvent::PoliceChecksAllowed(PoliceChecksAllowed {
            allowed,
            recorded_by,
        })])
    }

    /// A status check of the held location, when the police allow one and it is due.
    pub(crate) fn record_held_check(
        &self,
        observation: Observation,
        recheck_every: Duration,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        if !self.held_for_police() || self.police.referred.is_none() || !self.police.check_due(now) {
            return vec![];
        }
        vec![CaseEvent::HeldLocationChecked(HeldLocationChecked {
            online: matches!(observation, Observation::Online { .. }),
            http_status: observation.http_status(),
            next_check_at: now + recheck_every,
        })]
    }

    /// The release is recorded once; released before, it changes nothing.
    pub(crate) fn release_from_police_hold(
        &self,
        recorded_by: String,
        note: Option<String>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.police.released.is_some() {
            return Ok(vec![]);
        }
        if !self.held_for_police() {
            return Err(Refusal::NotHeldForPolice);
        }
        Ok(vec![CaseEvent::PoliceReleased(PoliceReleased { recorded_by, note })])
    }
}

/// Where a referral stands, as the police and analysts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    /// Decided; the referral has not reached the police yet.
    Referring,
    /// With the police, held until `hold_until`.
    Held,
    /// The hold ran out; an analyst asks the police.
    Lapsed,
    /// Released: the normal path goes on.
    Released,
    /// The case was retracted or closed while held.
    Ended,
}

/// What the police receive and can read of a referred case: the location, its hashes, what
/// we assessed and on what evidence, who hosts it, and the hold — never media, never the
/// reporter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReferralFacts {
    pub case_id: crate::ids::CaseId,
    pub partner_id: PartnerId,
    pub state: HoldState,
    pub reasons: Vec<ReferralReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub locations: Vec<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_class: Option<ContentClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_ground: Option<crate::taxonomy::LegalGround>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostResolved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessed_at: Option<DateTime<Utc>>,
    pub held_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
    /// Whether the police allow status checks of the location while they hold the case.
    pub removal_checks_allowed: bool,
    /// What the last such check saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<HeldCheck>,
}

impl ReferralFacts {
    /// The facts of a case that was held for the police; `None` for any other case.
    pub fn of(case: &Case) -> Option<Self> {
        let police = &case.police;
        let (held, held_at) = (police.held.as_ref()?, police.held_at?);
        let state = match case.status {
            _ if police.released.is_some() => HoldState::Released,
            CaseStatus::HeldForPolice if police.lapsed => HoldState::Lapsed,
            CaseStatus::HeldForPolice if police.referred.is_some() => HoldState::Held,
            CaseStatus::HeldForPolice => HoldState::Referring,
            _ => HoldState::Ended,
        };
        let classification = case.classification.as_ref();
        Some(Self {
            case_id: case.id,
            partner_id: held.partner_id.clone(),
            state,
            reasons: held.reasons.clone(),
            note: held.note.clone(),
            locations: case.report.iter().map(|report| report.location.clone()).collect(),
            content_class: classification.map(|c| c.class),
            legal_ground: classification.and_then(|c| c.legal_ground.clone()),
            evidence: classification.map(|c| c.evidence.clone()),
            host: case.host.clone(),
            reported_at: case.received_at,
            assessed_at: case.classified_at,
            held_at,
            referred_at: police.referred_at,
            hold_until: police.hold_until,
            released_at: police.released_at,
            removal_checks_allowed: police.checks_allowed,
            last_check: police.last_check.clone(),
        })
    }
}
