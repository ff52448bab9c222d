//! The state of one case: the fold of its events.

use crate::event::*;
use crate::ids::CaseId;
use crate::notice::Notice;
use crate::police::PoliceState;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a case stands; derived from its events, shown to partners and regulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// No events yet: the stream does not exist.
    New,
    Received,
    AwaitingReview,
    Classified,
    /// Referred to the police before any notice: nothing is sent and nothing touches the
    /// location until they release it.
    HeldForPolice,
    NoticeIssued,
    NoticeDelivered,
    /// Dispatch gave up: no channel of the platform took the notice.
    DispatchFailed,
    /// The platform refused the notice.
    Rejected,
    /// With the competent authority: checked until removed or until an analyst records
    /// the authority's decision.
    Escalated,
    /// Verified removed; watched for a while in case it comes back.
    Removed,
    /// Handed to the hotline of the hosting country.
    Forwarded,
    /// The classification was withdrawn; nothing more is sent.
    Retracted,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Received => "received",
            Self::AwaitingReview => "awaiting_review",
            Self::Classified => "classified",
            Self::HeldForPolice => "held_for_police",
            Self::NoticeIssued => "notice_issued",
            Self::NoticeDelivered => "notice_delivered",
            Self::DispatchFailed => "dispatch_failed",
            Self::Rejected => "rejected",
            Self::Escalated => "escalated",
            Self::Removed => "removed",
            Self::Forwarded => "forwarded",
            Self::Retracted => "retracted",
            Self::Closed => "closed",
        }
    }
}

impl CaseStatus {
    /// The status as reporting partners see it: until a notice (or a forward) goes out a
    /// case is "in progress", whatever it waits for — so a case with the police looks like
    /// any other not yet acted on, never "with the police".
    pub fn as_reporter_sees_it(self) -> &'static str {
        match self {
            Self::New | Self::Received | Self::AwaitingReview | Self::Classified | Self::HeldForPolice => "in_progress",
            status => status.as_str(),
        }
    }
}

impl CaseEvent {
    /// Whether the event tells of the police: shown to analysts, the police and
    /// regulators only.
    pub fn concerns_police(&self) -> bool {
        matches!(
            self,
            Self::HeldForPolice(_)
                | Self::ReferralStarted(_)
                | Self::ReferredToPolice(_)
                | Self::ReferralFailed(_)
                | Self::PoliceHoldExtended(_)
                | Self::PoliceHoldLapsed(_)
                | Self::PoliceReleased(_)
                | Self::PoliceChecksAllowed(_)
                | Self::HeldLocationChecked(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub channel: Channel,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchState {
    /// Attempts started so far, on every channel.
    pub attempts: u32,
    /// The channel of the latest attempt, and how many attempts in a row went to it.
    pub channel: Option<Channel>,
    pub channel_attempts: u32,
    /// Channels done with: the next attempt goes to the platform's first other channel.
    pub exhausted: Vec<Channel>,
    /// Why dispatch gave up, for the analyst who takes over.
    pub gave_up_reason: Option<String>,
    pub rejected: Option<PlatformRejected>,
    /// When the platform first refused the notice.
    pub rejected_at: Option<DateTime<Utc>>,
    /// Until when our pace held the next attempt back; the slot is the case's when it wakes.
    pub deferred_until: Option<DateTime<Utc>>,
    /// How the delivered notice is known at the platform: for a withdrawal to refer to it.
    pub delivered_message_id: Option<String>,
    pub platform_reference: Option<String>,
    /// The attempt recorded as started whose outcome is not yet recorded.
    pub in_flight: Option<InFlight>,
    pub retry_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub gave_up: bool,
}

/// A message sent attempt by attempt besides the notice itself (a withdrawal, a chase, a
/// forward): how many attempts started, the one whose outcome is not yet recorded, and when
/// the next is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    pub attempts: u32,
    pub in_flight: Option<InFlight>,
    pub retry_at: Option<DateTime<Utc>>,
}

impl Attempts {
    pub(crate) fn start(&mut self, attempt: u32, at: DateTime<Utc>, channel: &Channel) {
        self.attempts = attempt;
        self.retry_at = None;
        self.in_flight = Some(InFlight {
            attempt,
            started_at: at,
            channel: channel.clone(),
        });
    }

    /// The attempt in flight has its outcome; the next is due at `retry_at`, if at all.
    pub(crate) fn end(&mut self, retry_at: Option<DateTime<Utc>>) {
        self.in_flight = None;
        self.retry_at = retry_at;
    }

    /// When the sender must look again: once the attempt in flight is presumed lost (after
    /// `lost_after`), when the retry comes due, or else at once (`since`).
    pub fn due_at(&self, lost_after: chrono::Duration, since: DateTime<Utc>) -> DateTime<Utc> {
        match (&self.in_flight, self.retry_at) {
            (Some(in_flight), _) => in_flight.started_at + lost_after,
            (None, Some(retry_at)) => retry_at,
            (None, None) => since,
        }
    }
}

/// The withdrawal of a notice that reached the platform before the case was retracted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WithdrawalState {
    pub sending: Attempts,
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// An analyst must withdraw it by hand; the last failure says why.
    pub gave_up_reason: Option<String>,
}

/// What follow-up knows after delivery: the deadline, the platform's answers, the chase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowupState {
    pub deadline: Option<DeadlineSet>,
    pub receipt_at: Option<DateTime<Utc>>,
    pub decision: Option<PlatformDecided>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The platform's ids of the answers recorded, so an answer sent twice counts once.
    pub answer_ids: std::collections::BTreeSet<String>,
    /// Rounds of the chase asked for so far (reminders, skipped rounds, escalations).
    pub rounds: u32,
    pub reminders_sent: u32,
    /// Escalation steps taken (asked for, for one that sends a message).
    pub escalations: u32,
    pub regulator: Option<Authority>,
    pub chase: ChaseState,
    /// An analyst's assessment of the platform's refusal or decision to leave it up.
    pub rejection_assessed: Option<RejectionAssessed>,
    pub regulator_decided: Option<RegulatorDecided>,
}

/// The chase message dispatch is sending, attempt by attempt, as it sends a notice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaseState {
    pub pending: Option<Chase>,
    pub sending: Attempts,
}

/// The forward of a case to the hotline of the hosting country, attempt by attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardState {
    pub sending: Attempts,
    pub sent: Option<ForwardSent>,
    /// An analyst must forward it by other means; the last failure says why.
    pub gave_up_reason: Option<String>,
    pub confirmed: Option<ForwardConfirmed>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalState {
    pub checks: u32,
    pub next_check_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    /// Checks of the reappearance watch that found it still gone.
    pub watch_checks: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: CaseId,
    /// Number of events folded in; the version an append must expect.
    pub version: u32,
    pub status: CaseStatus,
    /// When the last event was recorded: what a waiting state's time limit counts from.
    pub updated_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub report: Option<ReportReceived>,
    pub host: Option<HostResolved>,
    pub classification: Option<Classified>,
    /// When the current classification was recorded.
    pub classified_at: Option<DateTime<Utc>>,
    pub review: Option<ReviewRequested>,
    pub claimed_by: Option<String>,
    /// When the claim lapses and another analyst may take the case.
    pub claim_expires_at: Option<DateTime<Utc>>,
    /// A decision waiting for a second analyst under the four-eyes rule.
    pub pending_decision: Option<AnalystDecided>,
    /// The explanation of the analyst decision that classified the case, which its notice
    /// quotes as the evidence.
    pub assessment: Option<String>,
    pub forwarded: Option<ForwardedToHotline>,
    pub forward: ForwardState,
    pub police: PoliceState,
    pub retracted: Option<Retracted>,
    pub notice: Option<Notice>,
    pub dispatch: DispatchState,
    pub withdrawal: WithdrawalState,
    pub removal: RemovalState,
    pub followup: FollowupState,
    pub closed_at: Option<DateTime<Utc>>,
    /// Reports of this location after the first, while the case was open.
    pub repeat_reports: u32,
    /// The case that took over after the content reappeared.
    pub reappeared_as: Option<crate::ids::CaseId>,
}

impl Case {
    pub fn new(id: CaseId) -> Self {
        Self {
            id,
            version: 0,
            status: CaseStatus::New,
            updated_at: None,
            received_at: None,
            report: None,
            host: None,
            classification: None,
            classified_at: None,
            review: None,
            claimed_by: None,
            claim_expires_at: None,
            pending_decision: None,
            assessment: None,
            forwarded: None,
            forward: ForwardState::default(),
            police: PoliceState::default(),
            retracted: None,
            notice: None,
            dispatch: DispatchState::default(),
            withdrawal: WithdrawalState::default(),
            removal: RemovalState::default(),
            followup: FollowupState::default(),
            closed_at: None,
            repeat_reports: 0,
            reappeared_as: None,
        }
    }

    /// Folds events recorded at the given times.
    pub fn from_events<'a>(id: CaseId, events: impl IntoIterator<Item = (&'a CaseEvent, DateTime<Utc>)>) -> Self {
        let mut case = Self::new(id);
        for (event, at) in events {
            case.apply(event, at);
        }
        case
    }

    /// Evolves the state by one event. Total: every event applies to every state, because
    /// events are facts that already happened.
    pub fn apply(&mut self, event: &CaseEvent, at: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = Some(at);
        match event {
            CaseEvent::ReportReceived(report) => {
                self.report = Some(report.clone());
                self.received_at = Some(at);
                self.status = CaseStatus::Received;
            }
            CaseEvent::ReportedAgain(again) => {
                self.repeat_reports += 1;
                if let Some(report) = &mut self.report {
                    report.location.hashes.extend(again.new_hashes.iter().cloned());
                }
            }
            CaseEvent::Reappeared(reappeared) => self.reappeared_as = Some(reappeared.new_case_id),
            CaseEvent::HostResolved(host) => self.host = Some(host.clone()),
            CaseEvent::Classified(classified) => {
                self.classification = Some(classified.clone());
                self.classified_at = Some(at);
                self.status = CaseStatus::Classified;
            }
            CaseEvent::ReviewRequested(review) => {
                self.review = Some(review.clone());
                self.status = CaseStatus::AwaitingReview;
            }
            CaseEvent::ReviewClaimed(claimed) => {
                self.claimed_by = Some(claimed.analyst_id.clone());
                self.claim_expires_at = claimed.expires_at;
            }
            // A decision ends the claim, so a second analyst can take the case under four eyes.
            CaseEvent::AnalystDecided(decided) => {
                self.pending_decision = decided.awaiting_confirmation.then(|| decided.clone());
                if !decided.awaiting_confirmation {
                    self.assessment = Some(decided.explanation.clone());
                }
                self.claimed_by = None;
                self.claim_expires_at = None;
            }
            CaseEvent::ForwardedToHotline(forwarded) => {
                self.forwarded = Some(forwarded.clone());
                self.status = CaseStatus::Forwarded;
            }
            CaseEvent::ForwardStarted(started) => self.forward.sending.start(started.attempt, at, &started.channel),
            CaseEvent::ForwardSent(sent) => {
                self.forward.sending.end(None);
                self.forward.sent = Some(sent.clone());
            }
            CaseEvent::ForwardFailed(failed) => {
                self.forward.sending.end(failed.retry_at);
                if failed.retry_at.is_none() {
                    self.forward.gave_up_reason = Some(failed.reason.clone());
                }
            }
            CaseEvent::ForwardConfirmed(confirmed) => self.forward.confirmed = Some(confirmed.clone()),
            CaseEvent::Retracted(retracted) => {
                self.retracted = Some(retracted.clone());
                self.status = CaseStatus::Retracted;
            }
            CaseEvent::NoticeIssued(issued) => {
                self.notice = Some((*issued.notice).clone());
                self.status = CaseStatus::NoticeIssued;
            }
            CaseEvent::DispatchStarted(started) => {
                let dispatch = &mut self.dispatch;
                if dispatch.channel.as_ref() == Some(&started.channel) {
                    dispatch.channel_attempts += 1;
                } else {
                    dispatch.channel = Some(started.channel.clone());
                    dispatch.channel_attempts = 1;
                }
                self.dispatch.attempts = started.attempt;
                self.dispatch.retry_at = None;
                self.dispatch.deferred_until = None;
                self.dispatch.in_flight = Some(InFlight {
                    attempt: started.attempt,
                    started_at: at,
                    channel: started.channel.clone(),
                });
            }
            // The outcome of an attempt that was in flight when the case was retracted is
            // still recorded, but does not bring the case back.
            CaseEvent::NoticeDelivered(delivered) => {
                self.dispatch.in_flight = None;
                self.dispatch.delivered_at = Some(at);
                self.dispatch.delivered_message_id = delivered.message_id.clone();
                self.dispatch.platform_reference = delivered.platform_reference.clone();
                if !self.is_finished() {
                    self.status = CaseStatus::NoticeDelivered;
                }
            }
            CaseEvent::DispatchFailed(failed) => {
                let dispatch = &mut self.dispatch;
                let channel = dispatch.in_flight.take().map(|in_flight| in_flight.channel);
                dispatch.retry_at = failed.retry_at;
                if let Some(channel) = channel.filter(|_| failed.channel_exhausted) {
                    dispatch.exhausted.push(channel);
                }
                if failed.retry_at.is_none() {
                    self.give_up(&failed.reason);
                }
            }
            CaseEvent::DispatchAbandoned(abandoned) => self.give_up(&abandoned.reason),
            CaseEvent::DispatchDeferred(deferred) => {
                self.dispatch.retry_at = Some(deferred.until);
                self.dispatch.deferred_until = Some(deferred.until);
            }
            CaseEvent::PlatformRejected(rejected) => {
                if let Some(id) = &rejected.platform_event_id {
                    self.followup.answer_ids.insert(id.clone());
                }
                if rejected
                    .attempt
                    .is_some_and(|attempt| attempt == self.dispatch.attempts)
                {
                    self.dispatch.in_flight = None;
                }
                self.dispatch.rejected = Some(rejected.clone());
                self.dispatch.rejected_at.get_or_insert(at);
                if !self.is_finished() {
                    self.status = CaseStatus::Rejected;
                }
            }
            CaseEvent::WithdrawalStarted(started) => {
                self.withdrawal.sending.start(started.attempt, at, &started.channel)
            }
            CaseEvent::NoticeWithdrawn(_) => {
                self.withdrawal.sending.end(None);
                self.withdrawal.withdrawn_at = Some(at);
            }
            CaseEvent::WithdrawalFailed(failed) => {
                self.withdrawal.sending.end(failed.retry_at);
                if failed.retry_at.is_none() {
                    self.withdrawal.gave_up_reason = Some(failed.reason.clone());
                }
            }
            CaseEvent::ReceiptAcknowledged(receipt) => {
                self.followup.answer_ids.insert(receipt.platform_event_id.clone());
                self.followup.receipt_at.get_or_insert(at);
            }
            CaseEvent::PlatformDecided(decided) => {
                self.followup.answer_ids.insert(decided.platform_event_id.clone());
                self.followup.decision = Some(decided.clone());
                self.followup.decided_at = Some(at);
                // The platform says it is gone: see for ourselves at once.
                if decided.removes_content() && self.awaits_removal() {
                    self.removal.next_check_at = Some(at);
                }
            }
            CaseEvent::DeadlineSet(deadline) => {
                self.followup.deadline = Some(deadline.clone());
                if self.removal.next_check_at.is_none_or(|at| at > deadline.due_at) {
                    self.removal.next_check_at = Some(deadline.due_at);
                }
            }
            CaseEvent::ChaseRequested(requested) => {
                self.followup.rounds += 1;
                if let Chase::HostingProvider { .. } = requested.chase {
                    self.followup.escalations += 1;
                }
                if requested.chase != Chase::Skipped {
                    self.followup.chase = ChaseState {
                        pending: Some(requested.chase.clone()),
                        ..ChaseState::default()
                    };
                }
            }
            CaseEvent::ChaseStarted(started) => {
                self.followup.chase.sending.start(started.attempt, at, &started.channel)
            }
            CaseEvent::ReminderSent(_) => {
                self.followup.reminders_sent += 1;
                self.followup.chase = ChaseState::default();
            }
            CaseEvent::Escalated(escalated) => match &escalated.to {
                EscalationTarget::HostingProvider { .. } => self.followup.chase = ChaseState::default(),
                EscalationTarget::Regulator { authority } => {
                    self.followup.rounds += 1;
                    self.followup.escalations += 1;
                    self.followup.regulator = Some(*authority);
                    if !self.is_finished() {
                        self.status = CaseStatus::Escalated;
                    }
                    // A refused notice was never checked: the authority's case starts with one.
                    self.removal.next_check_at.get_or_insert(at);
                }
            },
            CaseEvent::ChaseFailed(failed) => {
                self.followup.chase.sending.end(failed.retry_at);
                if failed.retry_at.is_none() {
                    self.followup.chase = ChaseState::default();
                }
            }
            CaseEvent::StillOnline(still) => {
                self.removal.checks += 1;
                self.removal.next_check_at = Some(still.next_check_at);
            }
            CaseEvent::RemovalVerified(verified) => {
                self.removal.checks += 1;
                self.removal.next_check_at = verified.next_check_at;
                self.removal.verified_at = Some(at);
                if verified.next_check_at.is_some() && !self.is_finished() {
                    self.status = CaseStatus::Removed;
                }
            }
            CaseEvent::StillRemoved(still) => {
                self.removal.watch_checks += 1;
                self.removal.next_check_at = still.next_check_at;
            }
            CaseEvent::RejectionAssessed(assessed) => self.followup.rejection_assessed = Some(assessed.clone()),
            CaseEvent::RegulatorDecided(decided) => self.followup.regulator_decided = Some(decided.clone()),
            CaseEvent::HeldForPolice(_)
            | CaseEvent::ReferralStarted(_)
            | CaseEvent::ReferredToPolice(_)
            | CaseEvent::ReferralFailed(_)
            | CaseEvent::PoliceHoldExtended(_)
            | CaseEvent::PoliceHoldLapsed(_)
            | CaseEvent::PoliceReleased(_)
            | CaseEvent::PoliceChecksAllowed(_)
            | CaseEvent::HeldLocationChecked(_) => {
                self.police.apply(event, at);
                match event {
                    CaseEvent::HeldForPolice(_) if !self.is_finished() => self.status = CaseStatus::HeldForPolice,
                    CaseEvent::PoliceReleased(_) if self.held_for_police() => self.status = CaseStatus::Classified,
                    _ => {}
                }
            }
            CaseEvent::CaseClosed(_) => {
                self.closed_at = Some(at);
                self.status = CaseStatus::Closed;
            }
        }
    }

    fn give_up(&mut self, reason: &str) {
        self.dispatch.retry_at = None;
        self.dispatch.gave_up = true;
        self.dispatch.gave_up_reason = Some(reason.to_owned());
        if !self.is_finished() {
            self.status = CaseStatus::DispatchFailed;
        }
    }

    /// The analyst holding an unexpired claim on the case, if any.
    pub fn claim_holder(&self, now: DateTime<Utc>) -> Option<&str> {
        let live = self.claim_expires_at.is_none_or(|expires_at| expires_at > now);
        self.claimed_by.as_deref().filter(|_| live)
    }

    pub fn is_closed(&self) -> bool {
        self.status == CaseStatus::Closed
    }

    /// Retracted after its notice reached the platform, and not yet withdrawn there.
    pub fn owes_withdrawal(&self) -> bool {
        self.status == CaseStatus::Retracted
            && self.dispatch.delivered_at.is_some()
            && self.withdrawal.withdrawn_at.is_none()
    }

    /// Closed or retracted: nothing more is sent or checked.
    pub fn is_finished(&self) -> bool {
        matches!(self.status, CaseStatus::Closed | CaseStatus::Retracted)
    }

    /// A new report of the location opens a new case instead of adding to this one: the case
    /// is finished, or its content was removed and a report says it is back.
    pub fn takes_reports(&self) -> bool {
        !self.is_finished() && self.status != CaseStatus::Removed
    }

    /// Follow-up checks the location until it is gone: after delivery, and while the
    /// competent authority has the case.
    pub fn awaits_removal(&self) -> bool {
        matches!(self.status, CaseStatus::NoticeDelivered | CaseStatus::Escalated)
    }
}
