//! What a case waits for. Every status that is not final names who must move the case on
//! and by when; the event store writes that wake-up in the same transaction as the events
//! that led to it, so no case can wait without something that will move it on.

use crate::case::{Case, CaseStatus};
use crate::event::Channel;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The stages that move cases on by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Classify,
    Notices,
    Dispatch,
    Followup,
}

impl StageKind {
    pub const ALL: [StageKind; 4] = [Self::Classify, Self::Notices, Self::Dispatch, Self::Followup];

    pub fn name(self) -> &'static str {
        match self {
            Self::Classify => "classify",
            Self::Notices => "notices",
            Self::Dispatch => "dispatch",
            Self::Followup => "followup",
        }
    }
}

/// How long each kind of waiting may last; configuration, not law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    /// How long a stage may take to act on the event it was sent before its timer acts
    /// instead (a lost message, a broker that restarted empty, a crashed process).
    pub stage_stale_after: Duration,
    /// How long a dispatch attempt may stay without an outcome before it is presumed lost
    /// and sent again under the same idempotency key.
    pub dispatch_in_flight: Duration,
}

impl Default for WaitLimits {
    fn default() -> Self {
        Self {
            stage_stale_after: Duration::minutes(5),
            dispatch_in_flight: Duration::minutes(1),
        }
    }
}

/// Why a case cannot move on without an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StuckReason {
    /// Classified, but nobody is known to send the notice to: register the host.
    HostUnknown,
}

impl StuckReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostUnknown => "host_unknown",
        }
    }

    pub fn explain(self) -> &'static str {
        match self {
            Self::HostUnknown => "the case is classified but its host is unknown; register the host",
        }
    }
}

/// What an analyst must do for the case to move on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnalystTask {
    /// Classify it: the review queue.
    Review,
    /// The platform takes notices through a web form only: paste the notice, then record it.
    SubmitNotice,
    /// No channel took the notice (or its message would have been incomplete): deliver it
    /// by other means, or correct the registry.
    DeliverByHand,
    /// The platform refused the notice, or decided to leave the content up: assess its
    /// reason.
    AssessRejection,
    /// The notice must be withdrawn and no channel did it (or it went by web form).
    WithdrawByHand,
    /// The hotline of the hosting country could not be reached by its API (or has none):
    /// forward it by other means and record the hotline's confirmation.
    ForwardByHand,
    /// The police partner could not be reached by its channel (or has none): refer the case
    /// by other means and record it.
    ReferByHand,
    /// The police hold ran out without a word from the police: ask them, then release or
    /// extend it.
    PoliceHoldLapsed,
}

impl AnalystTask {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::SubmitNotice => "submit_notice",
            Self::DeliverByHand => "deliver_by_hand",
            Self::AssessRejection => "assess_rejection",
            Self::WithdrawByHand => "withdraw_by_hand",
            Self::ForwardByHand => "forward_by_hand",
            Self::ReferByHand => "refer_by_hand",
            Self::PoliceHoldLapsed => "police_hold_lapsed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `stage` must act by `due_at`; a message usually reaches it sooner, the timer is the
    /// guarantee.
    Stage { stage: StageKind, due_at: DateTime<Utc> },
    /// An analyst must act; the review queue or the dispatch tasks show it.
    Analyst(AnalystTask),
    /// Nothing will move the case on by itself.
    Operator(StuckReason),
    /// Final: nothing more happens.
    Done,
}

impl Case {
    /// What this case waits for, from its state alone. Total over every status, so a new
    /// status cannot be added without saying what moves it on.
    pub fn wait(&self, limits: &WaitLimits) -> Wait {
        let since = self.updated_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
        let stage = |stage, due_at| Wait::Stage { stage, due_at };
        match self.status {
            // No message tells dispatch of a retraction, a forward or a chase: its wake-up
            // does, at once, and again when an attempt is presumed lost or a retry is due.
            CaseStatus::Retracted if self.owes_withdrawal() => {
                let withdrawal = &self.withdrawal;
                let by_hand = withdrawal
                    .sending
                    .in_flight
                    .as_ref()
                    .is_some_and(|in_flight| matches!(in_flight.channel, Channel::Manual { .. }));
                if withdrawal.gave_up_reason.is_some() || by_hand {
                    return Wait::Analyst(AnalystTask::WithdrawByHand);
                }
                stage(
                    StageKind::Dispatch,
                    withdrawal.sending.due_at(limits.dispatch_in_flight, since),
                )
            }
            CaseStatus::Forwarded => match &self.forward.sent {
                // The window for the hotline's confirmation is follow-up's to close.
                Some(sent) => stage(StageKind::Followup, sent.confirm_by),
                None if self.forward.gave_up_reason.is_some() => Wait::Analyst(AnalystTask::ForwardByHand),
                None => stage(
                    StageKind::Dispatch,
                    self.forward.sending.due_at(limits.dispatch_in_flight, since),
                ),
            },
            // The referral leaves by dispatch; the hold's end is follow-up's to notice. Nothing
            // else happens to a held case.
            CaseStatus::HeldForPolice => {
                let police = &self.police;
                if police.lapsed {
                    Wait::Analyst(AnalystTask::PoliceHoldLapsed)
                } else if police.referred.is_some() {
                    // The end of the hold, or a status check the police allow before it.
                    stage(StageKind::Followup, police.due_at().unwrap_or(since))
                } else if police.gave_up_reason.is_some() {
                    Wait::Analyst(AnalystTask::ReferByHand)
                } else {
                    stage(
                        StageKind::Dispatch,
                        police.sending.due_at(limits.dispatch_in_flight, since),
                    )
                }
            }
            CaseStatus::New | CaseStatus::Retracted | CaseStatus::Closed => Wait::Done,
            CaseStatus::Received => stage(StageKind::Classify, since + limits.stage_stale_after),
            CaseStatus::AwaitingReview => Wait::Analyst(AnalystTask::Review),
            CaseStatus::Classified if self.host.is_none() => Wait::Operator(StuckReason::HostUnknown),
            CaseStatus::Classified => stage(StageKind::Notices, since + limits.stage_stale_after),
            CaseStatus::NoticeIssued => {
                let dispatch = &self.dispatch;
                let due_at = match (&dispatch.in_flight, dispatch.retry_at) {
                    (Some(in_flight), _) if matches!(in_flight.channel, Channel::Manual { .. }) => {
                        return Wait::Analyst(AnalystTask::SubmitNotice)
                    }
                    (Some(in_flight), _) => in_flight.started_at + limits.dispatch_in_flight,
                    (None, Some(retry_at)) => retry_at,
                    (None, None) => since + limits.stage_stale_after,
                };
                stage(StageKind::Dispatch, due_at)
            }
            CaseStatus::NoticeDelivered => {
                let chase = &self.followup.chase;
                if chase.pending.is_some() {
                    return stage(
                        StageKind::Dispatch,
                        chase.sending.due_at(limits.dispatch_in_flight, since),
                    );
                }
                if self.platform_declined() {
                    return Wait::Analyst(AnalystTask::AssessRejection);
                }
                let due_at = match (self.removal.next_check_at, &self.followup.deadline) {
                    (Some(next_check_at), _) => next_check_at,
                    (None, Some(deadline)) => deadline.due_at,
                    // The deadline is follow-up's to record, on the delivery's message.
                    (None, None) => since + limits.stage_stale_after,
                };
                stage(StageKind::Followup, due_at)
            }
            // The authority's decision comes through an analyst; meanwhile follow-up checks.
            CaseStatus::Escalated | CaseStatus::Removed => stage(
                StageKind::Followup,
                self.removal.next_check_at.unwrap_or(since + limits.stage_stale_after),
            ),
            CaseStatus::DispatchFailed => Wait::Analyst(AnalystTask::DeliverByHand),
            CaseStatus::Rejected => Wait::Analyst(AnalystTask::AssessRejection),
        }
    }
}
