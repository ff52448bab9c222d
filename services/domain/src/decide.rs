//! The decider: what a command means for a case in its current state.
//!
//! A command that was already carried out yields no events, so a redelivered message or a
//! second worker racing the first changes nothing. A command that cannot apply to the case
//! at all is a [`Refusal`]: a bug or a poison message, never a retry.

use crate::case::{Attempts, Case, CaseStatus};
use crate::event::*;
use crate::followup::{DeadlineRule, FollowupPolicy, PlatformAnswer};
use crate::ids::NoticeId;
use crate::notice::{Notice, NoticePolicy};
use crate::police::PoliceReferral;
use crate::taxonomy::ContentClass;
use chrono::{DateTime, Duration, Utc};

// A command lives for one decision and is never stored in bulk; boxing its largest variant
// would only add an allocation per decision.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ReceiveReport(ReportReceived),
    /// A new report of this case's location; refused once the case is finished.
    ReportAgain(ReportedAgain),
    /// A finished case's location was reported again and `new_case_id` took it over.
    RecordReappearance(Reappeared),
    /// The classify stage's lookups: who holds the location, what the evidence says, and
    /// whether routing hands the case to another country's hotline.
    Classify {
        host: Option<HostResolved>,
        classification: Option<Classified>,
        forward_to: Option<ForwardedToHotline>,
        /// The police-first rule that asks an analyst to consider referring the case to the
        /// police before anything else; the case goes to review instead of on.
        police_first: Option<String>,
    },
    /// Takes a case from the review queue for `lease`; only its holder decides meanwhile.
    ClaimReview {
        analyst_id: String,
        lease: Duration,
    },
    DecideReview {
        analyst_id: String,
        verdict: Verdict,
        explanation: String,
        /// Policy: an actionable verdict on this class needs a second analyst.
        four_eyes: bool,
        /// The host as resolved at the time of the decision: recorded when the case's host
        /// was unknown, so a case classified by an analyst can still get its notice.
        host: Option<HostResolved>,
        /// Refer the case to the police before any notice (an actionable verdict only).
        police_referral: Option<PoliceReferral>,
    },
    /// Withdraws the classification (e.g. its hash was delisted).
    Retract {
        reason: String,
    },
    /// Withdraws the classification if it rests on this hash-list entry, which was delisted.
    /// The condition is decided on the case as it is when the events are appended, so a
    /// change that lands meanwhile makes the delisting decide again, never miss the case.
    RetractDelisted {
        list: String,
        value: String,
        reason: String,
    },
    IssueNotice {
        notice_id: NoticeId,
        policy: NoticePolicy,
    },
    /// Starts the next attempt: the first, a retry that came due, or a new one in place of
    /// an attempt without an outcome for `lost_after` (presumed lost with the process that
    /// was sending it; the notice id keeps it one notice at the platform).
    /// `channels` are the platform's, in its order of preference; `pace` holds the attempt
    /// back when the platform must not be sent to yet.
    StartDispatch {
        lost_after: Duration,
        policy: DispatchPolicy,
        channels: Vec<Channel>,
        pace: Option<Deferral>,
    },
    RecordDispatchOutcome {
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        channels: Vec<Channel>,
    },
    /// Starts the withdrawal a retracted case owes the platform (or its next attempt), on
    /// the channel the notice went by.
    StartWithdrawal {
        lost_after: Duration,
        policy: DispatchPolicy,
    },
    RecordWithdrawalOutcome {
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
    },
    /// An analyst submitted the notice by hand (a web form, or after dispatch gave up), or
    /// withdrew it by hand once the case was retracted.
    RecordManualSubmission {
        analyst_id: String,
        /// What the platform's form answered, e.g. its ticket number.
        reference: Option<String>,
    },
    /// The follow-up stage's check of the location; it also climbs the chase ladder when
    /// a round is due.
    RecordRemovalCheck {
        observation: Observation,
        policy: FollowupPolicy,
    },
    /// Records the deadline of the delivered notice (policy by class and platform kind;
    /// the catch-all default when no rule fits).
    SetDeadline {
        rule: Option<DeadlineRule>,
    },
    /// A receipt, decision or refusal the platform sent; the same answer twice is recorded once.
    RecordPlatformAnswer(PlatformAnswer),
    /// Starts the chase follow-up asked for (or its next attempt) on `channel`.
    StartChase {
        lost_after: Duration,
        policy: DispatchPolicy,
        channel: Option<Channel>,
    },
    RecordChaseOutcome {
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
    },
    /// An analyst's assessment of the platform's refusal (or decision to leave the content
    /// up): upheld closes the case as rejected, contested takes it to the competent authority.
    AssessRejection {
        analyst_id: String,
        upheld: bool,
        explanation: String,
    },
    /// Starts the forward to the hotline of the hosting country (or its next attempt) on
    /// `channel`, the hotline's API; without one an analyst forwards it.
    StartForward {
        lost_after: Duration,
        policy: DispatchPolicy,
        channel: Option<Channel>,
    },
    /// `confirm_within`: how long the hotline has to confirm it acts, once it took the case.
    RecordForwardOutcome {
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        confirm_within: Duration,
    },
    /// The hotline confirmed it acts on the forwarded case; `recorded_by` is the hotline
    /// itself or the analyst who received its confirmation.
    ConfirmForward {
        recorded_by: String,
        reference: Option<String>,
        note: Option<String>,
    },
    /// Closes a forwarded case whose hotline did not confirm within its window.
    CloseForward,
    /// Starts the referral to the police (or its next attempt) on `channel`, the police
    /// partner's API or e-mail; without one an analyst refers it by other means.
    StartReferral {
        lost_after: Duration,
        policy: DispatchPolicy,
        channel: Option<Channel>,
    },
    /// `hold_for`: how long the police have, from receipt, before an analyst asks them.
    RecordReferralOutcome {
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        hold_for: Duration,
    },
    /// An analyst referred the case to the police by other means.
    RecordManualReferral {
        analyst_id: String,
        reference: Option<String>,
        hold_for: Duration,
    },
    /// The police need the hold until `until`; `recorded_by` is the police partner or an
    /// analyst.
    ExtendPoliceHold {
        until: DateTime<Utc>,
        recorded_by: String,
        note: Option<String>,
    },
    /// Marks a hold that ran out for an analyst's attention.
    LapsePoliceHold,
    /// The police allow (or forbid again) status checks of the location while they hold it.
    AllowHeldChecks {
        allowed: bool,
        recorded_by: String,
    },
    /// Follow-up's status check of a held location, where the police allow it.
    RecordHeldCheck {
        observation: Observation,
        recheck_every: Duration,
    },
    /// Ends the hold: the normal path goes on.
    ReleaseFromPoliceHold {
        recorded_by: String,
        note: Option<String>,
    },
    /// An analyst records the decision of the authority an escalated case went to.
    RecordRegulatorDecision {
        analyst_id: String,
        decision: String,
        reference: Option<String>,
    },
}

/// An analyst's review decision, as the command carries it.
struct Decision {
    analyst_id: String,
    verdict: Verdict,
    explanation: String,
    police_referral: Option<PoliceReferral>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    Delivered {
        platform_reference: Option<String>,
        message_id: Option<String>,
    },
    /// The platform refused the notice itself (HTTP 409/422 or an explicit refusal).
    Rejected {
        reason: String,
        answer: Option<String>,
    },
    Failed {
        reason: String,
        next: AfterFailure,
    },
}

/// Not before `until`, because of `reason` (our rate limit towards the platform, or its
/// open circuit breaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// What a failed attempt calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Transient (5xx, time-out, 429): the same channel again after the back-off, and not
    /// before the platform asked (`Retry-After`).
    Retry { not_before: Option<DateTime<Utc>> },
    /// This channel cannot take the notice (credentials refused, endpoint moved): the next.
    NextChannel,
    /// Nothing automatic can help (the message would lack an Art. 16(2) element): an analyst.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchPolicy {
    /// Attempts per channel before the next channel is tried.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles with every further attempt, of which a
    /// random-looking half is taken off so that retries of many notices spread out.
    pub first_backoff: Duration,
}

impl DispatchPolicy {
    /// Exponential back-off with "equal jitter". The jitter is drawn from the message's id
    /// (a notice's, or the case's for a forward) and the attempt, so a decision stays a
    /// pure function of its inputs.
    pub fn backoff(&self, message: uuid::Uuid, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        let full = (self.first_backoff * 2_i32.pow(doublings)).num_milliseconds();
        let seed = message.as_u128() as u64 ^ (message.as_u128() >> 64) as u64 ^ u64::from(attempt);
        let fraction = (splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64;
        Duration::milliseconds(full / 2 + (full as f64 / 2.0 * fraction) as i64)
    }

    /// When the retry after `attempt` is due: after its back-off, and not before the
    /// recipient asked (`Retry-After`).
    pub fn retry_at(
        &self,
        message: uuid::Uuid,
        attempt: u32,
        not_before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let backed_off = now + self.backoff(message, attempt);
        not_before.map_or(backed_off, |asked| asked.max(backed_off))
    }

    /// When a message sent attempt by attempt on one channel (a withdrawal, a forward, a
    /// referral) is tried again after `attempt` failed: after its back-off when the failure
    /// is transient and attempts are left; never (`None`: an analyst takes over) otherwise.
    pub(crate) fn retry_after(
        &self,
        message: uuid::Uuid,
        attempt: u32,
        next: AfterFailure,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match next {
            AfterFailure::Retry { not_before } if attempt < self.max_attempts => {
                Some(self.retry_at(message, attempt, not_before, now))
            }
            _ => None,
        }
    }

    /// The event one attempt's `outcome` records for a message sent attempt by attempt (a
    /// withdrawal, a forward, a referral): `delivered` with the receiver's reference and
    /// message id; a refusal, said as `refused` and never tried again; a failure, tried
    /// again as [`DispatchPolicy::retry_after`] says.
    pub(crate) fn settle(
        &self,
        (message, attempt): (uuid::Uuid, u32),
        outcome: DispatchOutcome,
        refused: &str,
        now: DateTime<Utc>,
        delivered: impl FnOnce(Option<String>, Option<String>) -> CaseEvent,
        failed: impl FnOnce(String, Option<DateTime<Utc>>) -> CaseEvent,
    ) -> CaseEvent {
        match outcome {
            DispatchOutcome::Delivered {
                platform_reference,
                message_id,
            } => delivered(platform_reference, message_id),
            DispatchOutcome::Rejected { reason, .. } => failed(format!("{refused}: {reason}"), None),
            DispatchOutcome::Failed { reason, next } => failed(reason, self.retry_after(message, attempt, next, now)),
        }
    }
}

/// What a message sent attempt by attempt (a withdrawal, a chase) calls for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NextAttempt {
    /// An attempt is in flight and not yet presumed lost, or the retry is not yet due.
    Wait,
    Start(u32),
    /// The attempt in flight is presumed lost with the process that was sending it: it is
    /// recorded as failed, and another follows unless the attempts are used up.
    Lost {
        attempt: u32,
        reason: String,
        retry: bool,
    },
}

impl NextAttempt {
    pub(crate) fn of(sending: &Attempts, lost_after: Duration, max_attempts: u32, now: DateTime<Utc>) -> Self {
        match &sending.in_flight {
            Some(in_flight) if in_flight.started_at + lost_after > now => Self::Wait,
            Some(in_flight) => Self::Lost {
                attempt: in_flight.attempt,
                reason: format!(
                    "no outcome {} s after it started: presumed lost",
                    lost_after.num_seconds()
                ),
                retry: in_flight.attempt < max_attempts,
            },
            None if sending.retry_at.is_some_and(|at| at > now) => Self::Wait,
            None => Self::Start(sending.attempts + 1),
        }
    }

    /// The events for it: `failed(attempt, reason, retry_at)` and `start(attempt)`.
    pub(crate) fn events(
        self,
        now: DateTime<Utc>,
        failed: impl Fn(u32, String, Option<DateTime<Utc>>) -> CaseEvent,
        start: impl Fn(u32) -> CaseEvent,
    ) -> Vec<CaseEvent> {
        match self {
            Self::Wait => vec![],
            Self::Start(attempt) => vec![start(attempt)],
            Self::Lost {
                attempt,
                reason,
                retry: true,
            } => vec![failed(attempt, reason, Some(now)), start(attempt + 1)],
            Self::Lost { attempt, reason, .. } => vec![failed(attempt, reason, None)],
        }
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a removal check saw: the status of the location, never its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Gone { http_status: u16 },
    Online { http_status: u16 },
    Unreachable,
}

impl Observation {
    /// The HTTP status seen; none when the host could not be reached.
    pub fn http_status(self) -> Option<u16> {
        match self {
            Self::Gone { http_status } | Self::Online { http_status } => Some(http_status),
            Self::Unreachable => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the case already exists")]
    CaseAlreadyExists,
    #[error("no report was received for this case")]
    NoSuchCase,
    #[error("the case is not classified")]
    NotClassified,
    #[error("the case's host is unknown")]
    HostUnknown,
    #[error("{0} needs a legal ground and none was recorded")]
    NoLegalGround(ContentClass),
    #[error("no notice was issued for this case")]
    NoNotice,
    #[error("the notice was not delivered")]
    NotDelivered,
    #[error("the case is closed or retracted")]
    CaseClosed,
    #[error("the case is still open")]
    CaseOpen,
    #[error("the case is not waiting for review")]
    NotInReview,
    #[error("the case is claimed by analyst {0}")]
    ClaimedByOther(String),
    #[error("an automatic delivery attempt is in flight")]
    DispatchInFlight,
    #[error("the four-eyes rule needs a second analyst; {0} made the first decision")]
    SameAnalyst(String),
    #[error("the platform has neither refused the notice nor decided to leave the content up")]
    NothingToAssess,
    #[error("the case was not escalated to an authority")]
    NotEscalated,
    #[error("the content is back online: a new case takes it over")]
    ContentBack,
    #[error("the case was not forwarded to a hotline")]
    NotForwarded,
    #[error("the case is not held for the police")]
    NotHeldForPolice,
    #[error("a hold cannot end in the past")]
    HoldEndsInThePast,
}

impl Case {
    pub fn decide(&self, command: Command, now: DateTime<Utc>) -> Result<Vec<CaseEvent>, Refusal> {
        if self.status == CaseStatus::New && !matches!(command, Command::ReceiveReport(_)) {
            return Err(Refusal::NoSuchCase);
        }
        match command {
            Command::ReceiveReport(report) => {
                if self.status != CaseStatus::New {
                    return Err(Refusal::CaseAlreadyExists);
                }
                Ok(vec![CaseEvent::ReportReceived(report)])
            }
            Command::ReportAgain(again) => self.report_again(again),
            Command::RecordReappearance(reappeared) => self.record_reappearance(reappeared),
            Command::Classify {
                host,
                classification,
                forward_to,
                police_first,
            } => Ok(self.classify(host, classification, forward_to, police_first)),
            Command::ClaimReview { analyst_id, lease } => self.claim_review(analyst_id, lease, now),
            Command::DecideReview {
                analyst_id,
                verdict,
                explanation,
                four_eyes,
                host,
                police_referral,
            } => {
                if let Some(holder) = self.claim_holder(now).filter(|holder| *holder != analyst_id) {
                    return Err(Refusal::ClaimedByOther(holder.to_owned()));
                }
                let decision = Decision {
                    analyst_id,
                    verdict,
                    explanation,
                    police_referral,
                };
                self.decide_review(decision, four_eyes, host)
            }
            Command::Retract { reason } => Ok(self.retract(reason)),
            Command::RetractDelisted { list, value, reason } => {
                let rests_on_it = matches!(
                    self.classification.as_ref().map(|c| &c.evidence),
                    Some(Evidence::HashListMatch { list: l, value: v, .. }) if *l == list && *v == value
                );
                Ok(match rests_on_it {
                    true => self.retract(reason),
                    false => vec![],
                })
            }
            Command::IssueNotice { notice_id, policy } => self.issue_notice(notice_id, &policy, now),
            Command::StartDispatch {
                lost_after,
                policy,
                channels,
                pace,
            } => self.start_dispatch(lost_after, policy, &channels, pace, now),
            Command::RecordDispatchOutcome {
                attempt,
                outcome,
                policy,
                channels,
            } => Ok(self.record_dispatch_outcome(attempt, outcome, policy, &channels, now)),
            Command::StartWithdrawal { lost_after, policy } => Ok(self.start_withdrawal(lost_after, policy, now)),
            Command::RecordWithdrawalOutcome {
                attempt,
                outcome,
                policy,
            } => Ok(self.record_withdrawal_outcome(attempt, outcome, policy, now)),
            Command::RecordManualSubmission { analyst_id, reference } if self.owes_withdrawal() => {
                Ok(self.record_manual_withdrawal(analyst_id, reference))
            }
            Command::RecordManualSubmission { analyst_id, reference } => {
                self.record_manual_submission(analyst_id, reference)
            }
            Command::RecordRemovalCheck { observation, policy } => self.record_removal_check(observation, &policy, now),
            Command::SetDeadline { rule } => self.set_deadline(rule),
            Command::RecordPlatformAnswer(answer) => self.record_platform_answer(answer),
            Command::StartChase {
                lost_after,
                policy,
                channel,
            } => Ok(self.start_chase(lost_after, policy, channel, now)),
            Command::RecordChaseOutcome {
                attempt,
                outcome,
                policy,
            } => Ok(self.record_chase_outcome(attempt, outcome, policy, now)),
            Command::StartForward {
                lost_after,
                policy,
                channel,
            } => Ok(self.start_forward(lost_after, policy, channel, now)),
            Command::RecordForwardOutcome {
                attempt,
                outcome,
                policy,
                confirm_within,
            } => Ok(self.record_forward_outcome(attempt, outcome, policy, confirm_within, now)),
            Command::ConfirmForward {
                recorded_by,
                reference,
                note,
            } => self.confirm_forward(recorded_by, reference, note),
            Command::CloseForward => Ok(self.close_forward(now)),
            Command::AssessRejection {
                analyst_id,
                upheld,
                explanation,
            } => self.assess_rejection(analyst_id, upheld, explanation),
            Command::RecordRegulatorDecision {
                analyst_id,
                decision,
                reference,
            } => self.record_regulator_decision(analyst_id, decision, reference),
            Command::StartReferral {
                lost_after,
                policy,
                channel,
            } => Ok(self.start_referral(lost_after, policy, channel, now)),
            Command::RecordReferralOutcome {
                attempt,
                outcome,
                policy,
                hold_for,
            } => Ok(self.record_referral_outcome(attempt, outcome, policy, hold_for, now)),
            Command::RecordManualReferral {
                analyst_id,
                reference,
                hold_for,
            } => self.record_manual_referral(analyst_id, reference, hold_for, now),
            Command::ExtendPoliceHold {
                until,
                recorded_by,
                note,
            } => self.extend_police_hold(until, recorded_by, note, now),
            Command::LapsePoliceHold => Ok(self.lapse_police_hold(now)),
            Command::AllowHeldChecks { allowed, recorded_by } => self.allow_held_checks(allowed, recorded_by),
            Command::RecordHeldCheck {
                observation,
                recheck_every,
            } => Ok(self.record_held_check(observation, recheck_every, now)),
            Command::ReleaseFromPoliceHold { recorded_by, note } => self.release_from_police_hold(recorded_by, note),
        }
    }

    /// A finished case (closed, or retracted) and a removed one take no more reports: a new
    /// report of the location opens a new case, to be classified afresh.
    fn report_again(&self, mut again: ReportedAgain) -> Result<Vec<CaseEvent>, Refusal> {
        if !self.takes_reports() {
            return Err(Refusal::CaseClosed);
        }
        let known = self
            .report
            .as_ref()
            .map(|r| r.location.hashes.as_slice())
            .unwrap_or_default();
        again.new_hashes.retain(|hash| !known.contains(hash));
        Ok(vec![CaseEvent::ReportedAgain(again)])
    }

    fn classify(
        &self,
        host: Option<HostResolved>,
        classification: Option<Classified>,
        forward_to: Option<ForwardedToHotline>,
        police_first: Option<String>,
    ) -> Vec<CaseEvent> {
        if self.status != CaseStatus::Received {
            return vec![];
        }
        let review = |reason| {
            CaseEvent::ReviewRequested(ReviewRequested {
                reason,
                police_first: police_first.clone(),
            })
        };
        let Some(host) = host else {
            return vec![review(ReviewReason::UnknownHost)];
        };
        // Police first: not even a forward before an analyst has decided.
        if police_first.is_some() {
            return vec![CaseEvent::HostResolved(host), review(ReviewReason::PoliceFirst)];
        }
        let Some(classified) = classification else {
            return vec![CaseEvent::HostResolved(host), review(ReviewReason::NoAutomatedMatch)];
        };
        let mut events = vec![CaseEvent::HostResolved(host), CaseEvent::Classified(classified)];
        events.extend(forward_to.map(CaseEvent::ForwardedToHotline));
        events
    }

    /// A claim lasts `lease`; its holder claiming again renews it, anyone else waits until
    /// it lapses.
    fn claim_review(&self, analyst_id: String, lease: Duration, now: DateTime<Utc>) -> Result<Vec<CaseEvent>, Refusal> {
        if self.status != CaseStatus::AwaitingReview {
            return Err(Refusal::NotInReview);
        }
        match self.claim_holder(now) {
            Some(holder) if holder != analyst_id => Err(Refusal::ClaimedByOther(holder.to_owned())),
            _ => Ok(vec![CaseEvent::ReviewClaimed(ReviewClaimed {
                analyst_id,
                expires_at: Some(now + lease),
            })]),
        }
    }

    /// Four eyes: an actionable verdict that needs confirmation stands only when a different
    /// analyst reaches the same verdict; a different verdict starts the count again.
    /// A referral to the police goes with an actionable verdict; the hold starts when the
    /// verdict stands, if either analyst referred the case.
    fn decide_review(
        &self,
        decision: Decision,
        four_eyes: bool,
        host: Option<HostResolved>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.status != CaseStatus::AwaitingReview {
            return Err(Refusal::NotInReview);
        }
        let Decision {
            analyst_id,
            verdict,
            explanation,
            police_referral,
        } = decision;
        let Verdict::Actionable { class, legal_ground } = verdict.clone() else {
            return Ok(vec![
                CaseEvent::AnalystDecided(AnalystDecided {
                    analyst_id,
                    verdict,
                    explanation,
                    awaiting_confirmation: false,
                    police_referral: None,
                }),
                CaseEvent::CaseClosed(CaseClosed {
                    outcome: CaseOutcome::NotActionable,
                }),
            ]);
        };
        let confirmed = match &self.pending_decision {
            Some(first) if first.verdict == verdict && first.analyst_id == analyst_id => {
                return Err(Refusal::SameAnalyst(analyst_id));
            }
            Some(first) if first.verdict == verdict => Some(first.analyst_id.clone()),
            _ => None,
        };
        let decided = |awaiting_confirmation| {
            CaseEvent::AnalystDecided(AnalystDecided {
                analyst_id: analyst_id.clone(),
                verdict: verdict.clone(),
                explanation: explanation.clone(),
                awaiting_confirmation,
                police_referral: police_referral.clone(),
            })
        };
        if four_eyes && confirmed.is_none() {
            return Ok(vec![decided(true)]);
        }
        let analysts: Vec<String> = confirmed.into_iter().chain([analyst_id.clone()]).collect();
        let newly_resolved = host.filter(|_| self.host.is_none()).map(CaseEvent::HostResolved);
        let hold = self.hold_on_decision(police_referral.clone(), &analysts);
        let mut events = vec![decided(false)];
        events.extend(newly_resolved);
        events.push(CaseEvent::Classified(Classified {
            class,
            legal_ground,
            evidence: Evidence::AnalystReview { analysts },
            automated: false,
        }));
        events.extend(hold);
        Ok(events)
    }

    fn issue_notice(
        &self,
        notice_id: NoticeId,
        policy: &NoticePolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.notice.is_some() || self.is_finished() || self.forwarded.is_some() || self.held_for_police() {
            return Ok(vec![]);
        }
        if self.status != CaseStatus::Classified {
            return Err(Refusal::NotClassified);
        }
        let notice = Notice::compose(self, policy, notice_id, now)?;
        Ok(vec![CaseEvent::NoticeIssued(NoticeIssued {
            notice: Box::new(notice),
        })])
    }

    /// The platform's first channel that is not done with.
    fn next_channel<'c>(&self, channels: &'c [Channel], also_done: Option<&Channel>) -> Option<&'c Channel> {
        channels
            .iter()
            .find(|channel| !self.dispatch.exhausted.contains(channel) && Some(*channel) != also_done)
    }

    fn dispatch_is_over(&self) -> bool {
        let dispatch = &self.dispatch;
        dispatch.delivered_at.is_some() || dispatch.gave_up || dispatch.rejected.is_some() || self.is_finished()
    }

    fn start_dispatch(
        &self,
        lost_after: Duration,
        policy: DispatchPolicy,
        channels: &[Channel],
        pace: Option<Deferral>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let notice = self.notice.as_ref().ok_or(Refusal::NoNotice)?;
        if self.dispatch_is_over() {
            return Ok(vec![]);
        }
        let deferred = |deferral: Deferral| {
            CaseEvent::DispatchDeferred(DispatchDeferred {
                notice_id: notice.notice_id,
                until: deferral.until,
                reason: deferral.reason,
            })
        };
        let pace = pace.filter(|deferral| deferral.until > now);
        let notice_id = notice.notice_id;
        let dispatch = &self.dispatch;
        let start_or_abandon = |attempt, also_done| match self.next_channel(channels, also_done) {
            Some(channel) => CaseEvent::DispatchStarted(DispatchStarted {
                notice_id,
                attempt,
                channel: channel.clone(),
            }),
            None => CaseEvent::DispatchAbandoned(DispatchAbandoned {
                notice_id,
                reason: match channels {
                    [] => "the platform has no channel for notices in the registry".to_owned(),
                    _ => "every channel of the platform was tried without success".to_owned(),
                },
            }),
        };
        if let Some(in_flight) = &dispatch.in_flight {
            // A hand submission waits for its analyst, however long it takes.
            if matches!(in_flight.channel, Channel::Manual { .. }) || in_flight.started_at + lost_after > now {
                return Ok(vec![]);
            }
            // Every attempt gets an outcome: this one is recorded as lost, and the next
            // starts at once, on the next channel once this one's attempts are used up.
            let exhausted = dispatch.channel_attempts >= policy.max_attempts;
            let lost = CaseEvent::DispatchFailed(DispatchFailed {
                notice_id,
                attempt: in_flight.attempt,
                reason: format!(
                    "no outcome {} s after it started: presumed lost with the process sending it",
                    lost_after.num_seconds()
                ),
                retry_at: Some(now),
                channel_exhausted: exhausted,
            });
            let also_done = exhausted.then_some(&in_flight.channel);
            let next = match pace {
                Some(deferral) => deferred(deferral),
                None => start_or_abandon(in_flight.attempt + 1, also_done),
            };
            return Ok(vec![lost, next]);
        }
        if dispatch.retry_at.is_some_and(|at| at > now) {
            return Ok(vec![]);
        }
        Ok(vec![match pace {
            Some(deferral) => deferred(deferral),
            None => start_or_abandon(dispatch.attempts + 1, None),
        }])
    }

    fn record_dispatch_outcome(
        &self,
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        channels: &[Channel],
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let (Some(in_flight), Some(notice)) = (&self.dispatch.in_flight, &self.notice) else {
            return vec![];
        };
        if in_flight.attempt != attempt {
            return vec![];
        }
        let notice_id = notice.notice_id;
        vec![match outcome {
            DispatchOutcome::Delivered {
                platform_reference,
                message_id,
            } => CaseEvent::NoticeDelivered(NoticeDelivered {
                notice_id,
                attempt,
                platform_reference,
                message_id,
                submitted_by: None,
            }),
            DispatchOutcome::Rejected { reason, answer } => CaseEvent::PlatformRejected(PlatformRejected {
                notice_id,
                platform_event_id: None,
                attempt: Some(attempt),
                reason,
                answer,
            }),
            DispatchOutcome::Failed { mut reason, next } => {
                let exhausted = match next {
                    AfterFailure::Retry { .. } => self.dispatch.channel_attempts >= policy.max_attempts,
                    AfterFailure::NextChannel | AfterFailure::Stop => true,
                };
                let retry_at = match next {
                    AfterFailure::Stop => None,
                    AfterFailure::Retry { not_before } if !exhausted => {
                        Some(policy.retry_at(notice_id.0, self.dispatch.channel_attempts, not_before, now))
                    }
                    _ => self.next_channel(channels, Some(&in_flight.channel)).map(|_| now),
                };
                if retry_at.is_none() && next != AfterFailure::Stop {
                    reason.push_str("; no other channel is left to try");
                }
                CaseEvent::DispatchFailed(DispatchFailed {
                    notice_id,
                    attempt,
                    reason,
                    retry_at,
                    channel_exhausted: exhausted,
                })
            }
        }]
    }

    fn start_withdrawal(&self, lost_after: Duration, policy: DispatchPolicy, now: DateTime<Utc>) -> Vec<CaseEvent> {
        let (Some(notice), Some(channel)) = (&self.notice, &self.dispatch.channel) else {
            return vec![];
        };
        let withdrawal = &self.withdrawal;
        if !self.owes_withdrawal() || withdrawal.gave_up_reason.is_some() {
            return vec![];
        }
        let start = |attempt| {
            CaseEvent::WithdrawalStarted(WithdrawalStarted {
                notice_id: notice.notice_id,
                attempt,
                channel: channel.clone(),
            })
        };
        if withdrawal
            .sending
            .in_flight
            .as_ref()
            .is_some_and(|in_flight| matches!(in_flight.channel, Channel::Manual { .. }))
        {
            return vec![];
        }
        let failed = |attempt, reason, retry_at| {
            CaseEvent::WithdrawalFailed(WithdrawalFailed {
                notice_id: notice.notice_id,
                attempt,
                reason,
                retry_at,
            })
        };
        NextAttempt::of(&withdrawal.sending, lost_after, policy.max_attempts, now).events(now, failed, start)
    }

    fn record_withdrawal_outcome(
        &self,
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let (Some(in_flight), Some(notice)) = (&self.withdrawal.sending.in_flight, &self.notice) else {
            return vec![];
        };
        if in_flight.attempt != attempt {
            return vec![];
        }
        let notice_id = notice.notice_id;
        let failed = |reason, retry_at| {
            CaseEvent::WithdrawalFailed(WithdrawalFailed {
                notice_id,
                attempt,
                reason,
                retry_at,
            })
        };
        let withdrawn = |platform_reference, message_id| {
            CaseEvent::NoticeWithdrawn(NoticeWithdrawn {
                notice_id,
                attempt,
                platform_reference,
                message_id,
                submitted_by: None,
            })
        };
        let refused = "the platform refused the withdrawal";
        vec![policy.settle((notice_id.0, attempt), outcome, refused, now, withdrawn, failed)]
    }

    /// An analyst withdrew the notice by hand: the web-form attempt waiting for it, or one
    /// of its own after the automatic withdrawal gave up.
    fn record_manual_withdrawal(&self, analyst_id: String, reference: Option<String>) -> Vec<CaseEvent> {
        let Some(notice) = &self.notice else {
            return vec![];
        };
        let withdrawn = |attempt| {
            CaseEvent::NoticeWithdrawn(NoticeWithdrawn {
                notice_id: notice.notice_id,
                attempt,
                platform_reference: reference.clone(),
                message_id: None,
                submitted_by: Some(analyst_id.clone()),
            })
        };
        match &self.withdrawal.sending.in_flight {
            Some(in_flight) => vec![withdrawn(in_flight.attempt)],
            None => {
                let attempt = self.withdrawal.sending.attempts + 1;
                vec![
                    CaseEvent::WithdrawalStarted(WithdrawalStarted {
                        notice_id: notice.notice_id,
                        attempt,
                        channel: Channel::Manual { form_url: None },
                    }),
                    withdrawn(attempt),
                ]
            }
        }
    }

    /// Records a notice an analyst submitted by hand: the web-form attempt waiting for it,
    /// or, after dispatch gave up, a hand delivery of its own.
    fn record_manual_submission(
        &self,
        analyst_id: String,
        reference: Option<String>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let notice = self.notice.as_ref().ok_or(Refusal::NoNotice)?;
        if self.is_finished() {
            return Err(Refusal::CaseClosed);
        }
        if self.dispatch.delivered_at.is_some() {
            return Ok(vec![]);
        }
        let delivered = |attempt| {
            CaseEvent::NoticeDelivered(NoticeDelivered {
                notice_id: notice.notice_id,
                attempt,
                platform_reference: reference.clone(),
                message_id: None,
                submitted_by: Some(analyst_id.clone()),
            })
        };
        match &self.dispatch.in_flight {
            Some(in_flight) if matches!(in_flight.channel, Channel::Manual { .. }) => {
                Ok(vec![delivered(in_flight.attempt)])
            }
            Some(_) => Err(Refusal::DispatchInFlight),
            None => {
                let attempt = self.dispatch.attempts + 1;
                Ok(vec![
                    CaseEvent::DispatchStarted(DispatchStarted {
                        notice_id: notice.notice_id,
                        attempt,
                        channel: Channel::Manual { form_url: None },
                    }),
                    delivered(attempt),
                ])
            }
        }
    }
}

impl Case {
    fn retract(&self, reason: String) -> Vec<CaseEvent> {
        match self.is_finished() {
            true => vec![],
            false => vec![CaseEvent::Retracted(Retracted { reason })],
        }
    }
}
