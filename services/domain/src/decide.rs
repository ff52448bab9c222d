//! The decider: what a command means for a case in its current state.
//!
//! A command that was already carried out yields no events, so a redelivered message or a
//! second worker racing the first changes nothing. A command that cannot apply to the case
//! at all is a [`Refusal`]: a bug or a poison message, never a retry.

use crate::case::{Case, CaseStatus};
use crate::event::*;
use crate::ids::NoticeId;
use crate::notice::{Notice, NoticePolicy};
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
    },
    /// Withdraws the classification (e.g. its hash was delisted).
    Retract {
        reason: String,
    },
    IssueNotice {
        notice_id: NoticeId,
        policy: NoticePolicy,
    },
    /// Starts the next attempt: the first, a retry that came due, or a new one in place of
    /// an attempt without an outcome for `lost_after` (presumed lost with the process that
    /// was sending it; the notice id keeps it one notice at the platform).
    StartDispatch {
        lost_after: Duration,
        policy: DispatchPolicy,
    },
    RecordDispatchOutcome {
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
    },
    RecordRemovalCheck {
        observation: Observation,
        recheck_after: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    Delivered { platform_reference: Option<String> },
    Failed { reason: String, retryable: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchPolicy {
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles with every further attempt.
    pub first_backoff: Duration,
}

impl DispatchPolicy {
    fn retry_at(&self, attempt: u32, retryable: bool, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !retryable || attempt >= self.max_attempts {
            return None;
        }
        let doublings = attempt.saturating_sub(1).min(16);
        Some(now + self.first_backoff * 2_i32.pow(doublings))
    }
}

/// What a removal check saw: the status of the location, never its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Gone { http_status: u16 },
    Online { http_status: u16 },
    Unreachable,
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
    #[error("the four-eyes rule needs a second analyst; {0} made the first decision")]
    SameAnalyst(String),
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
            Command::RecordReappearance(reappeared) => {
                if !self.is_finished() {
                    return Err(Refusal::CaseOpen);
                }
                Ok(match self.reappeared_as {
                    Some(_) => vec![],
                    None => vec![CaseEvent::Reappeared(reappeared)],
                })
            }
            Command::Classify {
                host,
                classification,
                forward_to,
            } => Ok(self.classify(host, classification, forward_to)),
            Command::ClaimReview { analyst_id, lease } => self.claim_review(analyst_id, lease, now),
            Command::DecideReview {
                analyst_id,
                verdict,
                explanation,
                four_eyes,
                host,
            } => {
                if let Some(holder) = self.claim_holder(now).filter(|holder| *holder != analyst_id) {
                    return Err(Refusal::ClaimedByOther(holder.to_owned()));
                }
                self.decide_review(analyst_id, verdict, explanation, four_eyes, host)
            }
            Command::Retract { reason } => Ok(if self.is_finished() {
                vec![]
            } else {
                vec![CaseEvent::Retracted(Retracted { reason })]
            }),
            Command::IssueNotice { notice_id, policy } => self.issue_notice(notice_id, &policy, now),
            Command::StartDispatch { lost_after, policy } => self.start_dispatch(lost_after, policy, now),
            Command::RecordDispatchOutcome {
                attempt,
                outcome,
                policy,
            } => Ok(self.record_dispatch_outcome(attempt, outcome, policy, now)),
            Command::RecordRemovalCheck {
                observation,
                recheck_after,
            } => self.record_removal_check(observation, recheck_after, now),
        }
    }

    /// A finished case (closed, or retracted) takes no more reports: a new report of its
    /// location opens a new case, to be classified afresh.
    fn report_again(&self, mut again: ReportedAgain) -> Result<Vec<CaseEvent>, Refusal> {
        if self.is_finished() {
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
    ) -> Vec<CaseEvent> {
        if self.status != CaseStatus::Received {
            return vec![];
        }
        let Some(host) = host else {
            return vec![CaseEvent::ReviewRequested(ReviewRequested {
                reason: ReviewReason::UnknownHost,
            })];
        };
        let Some(classified) = classification else {
            return vec![
                CaseEvent::HostResolved(host),
                CaseEvent::ReviewRequested(ReviewRequested {
                    reason: ReviewReason::NoAutomatedMatch,
                }),
            ];
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
    fn decide_review(
        &self,
        analyst_id: String,
        verdict: Verdict,
        explanation: String,
        four_eyes: bool,
        host: Option<HostResolved>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.status != CaseStatus::AwaitingReview {
            return Err(Refusal::NotInReview);
        }
        let Verdict::Actionable { class, legal_ground } = verdict.clone() else {
            return Ok(vec![
                CaseEvent::AnalystDecided(AnalystDecided {
                    analyst_id,
                    verdict,
                    explanation,
                    awaiting_confirmation: false,
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
            })
        };
        if four_eyes && confirmed.is_none() {
            return Ok(vec![decided(true)]);
        }
        let analysts = confirmed.into_iter().chain([analyst_id.clone()]).collect();
        let newly_resolved = host.filter(|_| self.host.is_none()).map(CaseEvent::HostResolved);
        let mut events = vec![decided(false)];
        events.extend(newly_resolved);
        events.push(CaseEvent::Classified(Classified {
            class,
            legal_ground,
            evidence: Evidence::AnalystReview { analysts },
            automated: false,
        }));
        Ok(events)
    }

    fn issue_notice(
        &self,
        notice_id: NoticeId,
        policy: &NoticePolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.notice.is_some() || self.is_finished() || self.forwarded.is_some() {
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

    fn start_dispatch(
        &self,
        lost_after: Duration,
        policy: DispatchPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let notice = self.notice.as_ref().ok_or(Refusal::NoNotice)?;
        let dispatch = &self.dispatch;
        if dispatch.delivered_at.is_some() || dispatch.gave_up || self.is_finished() {
            return Ok(vec![]);
        }
        let host = self.host.as_ref().ok_or(Refusal::HostUnknown)?;
        let start = |attempt| {
            CaseEvent::DispatchStarted(DispatchStarted {
                notice_id: notice.notice_id,
                attempt,
                channel: Channel::Http {
                    endpoint: host.notice_endpoint.clone(),
                },
            })
        };
        if let Some(in_flight) = &dispatch.in_flight {
            if in_flight.started_at + lost_after > now {
                return Ok(vec![]);
            }
            // Every attempt gets an outcome: this one is recorded as lost, and the next
            // starts at once unless the attempts are used up.
            let retry_at = (in_flight.attempt < policy.max_attempts).then_some(now);
            let lost = CaseEvent::DispatchFailed(DispatchFailed {
                notice_id: notice.notice_id,
                attempt: in_flight.attempt,
                reason: format!(
                    "no outcome {} s after it started: presumed lost with the process sending it",
                    lost_after.num_seconds()
                ),
                retry_at,
            });
            return Ok(match retry_at {
                Some(_) => vec![lost, start(in_flight.attempt + 1)],
                None => vec![lost],
            });
        }
        if dispatch.retry_at.is_some_and(|at| at > now) {
            return Ok(vec![]);
        }
        Ok(vec![start(dispatch.attempts + 1)])
    }

    fn record_dispatch_outcome(
        &self,
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
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
            DispatchOutcome::Delivered { platform_reference } => CaseEvent::NoticeDelivered(NoticeDelivered {
                notice_id,
                attempt,
                platform_reference,
            }),
            DispatchOutcome::Failed { reason, retryable } => CaseEvent::DispatchFailed(DispatchFailed {
                notice_id,
                attempt,
                reason,
                retry_at: policy.retry_at(attempt, retryable, now),
            }),
        }]
    }

    fn record_removal_check(
        &self,
        observation: Observation,
        recheck_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.is_finished() || self.removal.next_check_at.is_some_and(|at| at > now) {
            return Ok(vec![]);
        }
        if self.dispatch.delivered_at.is_none() {
            return Err(Refusal::NotDelivered);
        }
        Ok(match observation {
            Observation::Gone { http_status } => vec![
                CaseEvent::RemovalVerified(RemovalVerified { http_status }),
                CaseEvent::CaseClosed(CaseClosed {
                    outcome: CaseOutcome::Removed,
                }),
            ],
            Observation::Online { http_status } => vec![CaseEvent::StillOnline(StillOnline {
                http_status: Some(http_status),
                next_check_at: now + recheck_after,
            })],
            Observation::Unreachable => vec![CaseEvent::StillOnline(StillOnline {
                http_status: None,
                next_check_at: now + recheck_after,
            })],
        })
    }
}
