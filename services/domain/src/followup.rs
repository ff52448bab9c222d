//! After delivery: the platform's deadline, its answers, removal checks, and the chase of a
//! platform that does not act — reminders, then the hosting provider behind it, then the
//! competent authority's queue.
//!
//! Chasing is derived from time since the deadline: round `r` is due `r - 1` intervals
//! after it, and each round asks for one more step than was asked before. So a decision
//! made late, or twice, asks for exactly what is owed and nothing more.

use crate::case::{Case, CaseStatus};
use crate::decide::{DispatchOutcome, DispatchPolicy, NextAttempt, Observation, Refusal};
use crate::event::*;
use crate::taxonomy::ContentClass;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which kind of platform a deadline applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformKind {
    /// Established in our own country (the Dutch notice-and-take-down code applies).
    National,
    /// Subject to the DSA elsewhere.
    Dsa,
    /// Outside the DSA's reach.
    Other,
}

impl PlatformKind {
    pub fn of(host: &HostResolved, home_country: &str) -> Self {
        if host.country.eq_ignore_ascii_case(home_country) {
            Self::National
        } else if host.dsa_platform {
            Self::Dsa
        } else {
            Self::Other
        }
    }
}

/// How long a platform has, by class and kind of platform; the first rule that fits wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineRule {
    /// Any class when absent.
    pub class: Option<ContentClass>,
    /// Any kind of platform when absent.
    pub platform: Option<PlatformKind>,
    pub within: Duration,
    pub basis: String,
}

impl DeadlineRule {
    fn fits(&self, class: ContentClass, kind: PlatformKind) -> bool {
        self.class.is_none_or(|c| c == class) && self.platform.is_none_or(|k| k == kind)
    }
}

/// The defaults of `docs/legal.md` §5: 24 h for CSAM at a national host (the Dutch code of
/// conduct), 1 h for terrorist content (TCO Art. 3(3)), and our policy for the rest.
pub fn default_deadlines() -> Vec<DeadlineRule> {
    let rule = |class: Option<ContentClass>, platform, hours, basis: &str| DeadlineRule {
        class,
        platform,
        within: Duration::hours(hours),
        basis: basis.to_owned(),
    };
    let mut rules = vec![rule(
        Some(ContentClass::TerroristContent),
        None,
        1,
        "Regulation (EU) 2021/784 Art. 3(3)",
    )];
    for class in [ContentClass::Csam, ContentClass::CsamAiGenerated] {
        rules.push(rule(
            Some(class),
            Some(PlatformKind::National),
            24,
            "Dutch notice-and-take-down code of conduct, 2018 addendum",
        ));
    }
    for class in ContentClass::ALL.into_iter().filter(|c| c.is_lawful_but_harmful()) {
        rules.push(rule(
            Some(class),
            None,
            72,
            "policy (incompatible with the platform's terms)",
        ));
    }
    rules.push(catch_all_deadline());
    rules
}

/// For a class and platform no rule names: DSA Art. 22(1) sets no hours, our policy does.
pub fn catch_all_deadline() -> DeadlineRule {
    DeadlineRule {
        class: None,
        platform: None,
        within: Duration::hours(24),
        basis: "policy (DSA Art. 22(1): with priority, without undue delay)".to_owned(),
    }
}

pub fn deadline_for(rules: &[DeadlineRule], class: ContentClass, kind: PlatformKind) -> Option<&DeadlineRule> {
    rules.iter().find(|rule| rule.fits(class, kind))
}

/// How follow-up chases one case (resolved for its class by the stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowupPolicy {
    /// Between removal checks once the deadline has passed.
    pub recheck_every: Duration,
    /// Between rounds of the chase, the first at the deadline.
    pub remind_every: Duration,
    /// Reminders before the first escalation.
    pub reminders: u32,
    /// The escalation ladder after the reminders.
    pub hosting_provider: bool,
    pub regulator: bool,
    /// Checks for the content's return, counted from its verified removal; none: the case
    /// closes when the removal is verified.
    pub watch: Vec<Duration>,
}

impl Default for FollowupPolicy {
    fn default() -> Self {
        Self {
            recheck_every: Duration::hours(6),
            remind_every: Duration::hours(24),
            reminders: 2,
            hosting_provider: true,
            regulator: true,
            watch: vec![Duration::days(1), Duration::days(7), Duration::days(30)],
        }
    }
}

/// An answer of the platform to a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformAnswer {
    Receipt(ReceiptAcknowledged),
    Decision(PlatformDecided),
    Rejection(PlatformRejected),
}

impl PlatformAnswer {
    fn event_id(&self) -> Option<&str> {
        match self {
            Self::Receipt(receipt) => Some(&receipt.platform_event_id),
            Self::Decision(decision) => Some(&decision.platform_event_id),
            Self::Rejection(rejection) => rejection.platform_event_id.as_deref(),
        }
    }
}

/// A step of the ladder, in order: reminders, then the escalations policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rung {
    Reminder(u32),
    HostingProvider,
    Regulator,
}

impl Case {
    pub(crate) fn set_deadline(&self, rule: Option<DeadlineRule>) -> Result<Vec<CaseEvent>, Refusal> {
        let notice = self.notice.as_ref().ok_or(Refusal::NoNotice)?;
        let delivered_at = self.dispatch.delivered_at.ok_or(Refusal::NotDelivered)?;
        if self.followup.deadline.is_some() || self.is_finished() {
            return Ok(vec![]);
        }
        let rule = rule.unwrap_or_else(catch_all_deadline);
        Ok(vec![CaseEvent::DeadlineSet(DeadlineSet {
            notice_id: notice.notice_id,
            due_at: delivered_at + rule.within,
            within_secs: rule.within.num_seconds(),
            basis: rule.basis,
        })])
    }

    pub(crate) fn record_platform_answer(&self, answer: PlatformAnswer) -> Result<Vec<CaseEvent>, Refusal> {
        let notice = self.notice.as_ref().ok_or(Refusal::NoNotice)?;
        let notice_id = match &answer {
            PlatformAnswer::Receipt(receipt) => receipt.notice_id,
            PlatformAnswer::Decision(decision) => decision.notice_id,
            PlatformAnswer::Rejection(rejection) => rejection.notice_id,
        };
        if notice_id != notice.notice_id {
            return Err(Refusal::NoNotice);
        }
        if answer
            .event_id()
            .is_some_and(|id| self.followup.answer_ids.contains(id))
        {
            return Ok(vec![]);
        }
        // Answers are facts about the platform whatever became of the case since: a
        // decision after our own removal check still counts in its record.
        Ok(vec![match answer {
            PlatformAnswer::Receipt(receipt) => CaseEvent::ReceiptAcknowledged(receipt),
            PlatformAnswer::Decision(decision) => CaseEvent::PlatformDecided(decision),
            PlatformAnswer::Rejection(rejection) => CaseEvent::PlatformRejected(rejection),
        }])
    }

    /// Whether the platform has answered the notice in a way that ends reminders.
    pub fn platform_engaged(&self) -> bool {
        self.followup.receipt_at.is_some() || self.followup.decision.is_some()
    }

    /// The platform decided, and not to take the content down: an analyst assesses it, as
    /// a refusal.
    pub fn platform_declined(&self) -> bool {
        self.followup.decision.as_ref().is_some_and(|d| !d.removes_content())
    }

    pub(crate) fn record_removal_check(
        &self,
        observation: Observation,
        policy: &FollowupPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        if self.is_finished() || self.removal.next_check_at.is_some_and(|at| at > now) {
            return Ok(vec![]);
        }
        if self.status == CaseStatus::Removed {
            return self.watch_check(observation, policy, now);
        }
        if self.dispatch.delivered_at.is_none() && self.followup.regulator.is_none() {
            return Err(Refusal::NotDelivered);
        }
        let http_status = match observation {
            Observation::Gone { http_status } => {
                let next_check_at = policy.watch.first().map(|after| now + *after);
                let mut events = vec![CaseEvent::RemovalVerified(RemovalVerified {
                    http_status,
                    next_check_at,
                })];
                if next_check_at.is_none() {
                    events.push(closed(CaseOutcome::Removed));
                }
                return Ok(events);
            }
            Observation::Online { http_status } => Some(http_status),
            Observation::Unreachable => None,
        };
        let deadline = self.followup.deadline.as_ref().map(|d| d.due_at);
        let Some(deadline) = deadline.filter(|due_at| *due_at <= now) else {
            // Checked early (the platform said it decided): the deadline stands.
            let next_check_at = deadline.unwrap_or(now + policy.recheck_every);
            return Ok(vec![still_online(http_status, next_check_at)]);
        };
        let mut events = Vec::new();
        if let Some(rung) = self.next_rung(policy, deadline, now) {
            events.extend(self.climb(rung));
        }
        let next_round = deadline + policy.remind_every * (self.followup.rounds as i32 + 1);
        let next_check_at = (now + policy.recheck_every).min(next_round.max(now + Duration::minutes(1)));
        events.insert(0, still_online(http_status, next_check_at));
        Ok(events)
    }

    /// A check of the reappearance watch: still gone, the next check or, after the last,
    /// the case's closure. Back online is not this decision's to record: a new case takes
    /// the location over ([`Command::RecordReappearance`]).
    fn watch_check(
        &self,
        observation: Observation,
        policy: &FollowupPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let http_status = match observation {
            Observation::Online { .. } => return Err(Refusal::ContentBack),
            Observation::Gone { http_status } => Some(http_status),
            Observation::Unreachable => None,
        };
        let verified_at = self.removal.verified_at.unwrap_or(now);
        let next_check_at = policy
            .watch
            .get(self.removal.watch_checks as usize + 1)
            .map(|after| verified_at + *after);
        let mut events = vec![CaseEvent::StillRemoved(StillRemoved {
            http_status,
            next_check_at,
        })];
        if next_check_at.is_none() {
            events.push(closed(CaseOutcome::Removed));
        }
        Ok(events)
    }

    /// A finished or removed case's location is back (reported again, or seen by the
    /// watch), and `new_case_id` takes it over; a removed case closes with it.
    pub(crate) fn record_reappearance(&self, reappeared: Reappeared) -> Result<Vec<CaseEvent>, Refusal> {
        if self.takes_reports() {
            return Err(Refusal::CaseOpen);
        }
        if self.reappeared_as.is_some() {
            return Ok(vec![]);
        }
        let mut events = vec![CaseEvent::Reappeared(reappeared)];
        if self.status == CaseStatus::Removed {
            events.push(closed(CaseOutcome::Removed));
        }
        Ok(events)
    }

    /// Upheld, the platform was right and our notice counts against our precision; contested,
    /// the competent authority's queue gets the case.
    pub(crate) fn assess_rejection(
        &self,
        analyst_id: String,
        upheld: bool,
        explanation: String,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let notice = self.notice.as_ref().ok_or(Refusal::NoNotice)?;
        if self.is_finished() {
            return Err(Refusal::CaseClosed);
        }
        let refused = self.status == CaseStatus::Rejected
            || (self.status == CaseStatus::NoticeDelivered && self.platform_declined());
        if !refused {
            return Err(Refusal::NothingToAssess);
        }
        let assessed = CaseEvent::RejectionAssessed(RejectionAssessed {
            analyst_id,
            upheld,
            explanation,
        });
        if upheld {
            return Ok(vec![assessed, closed(CaseOutcome::Rejected)]);
        }
        let class = self.classification.as_ref().map_or(ContentClass::Csam, |c| c.class);
        Ok(vec![
            assessed,
            CaseEvent::Escalated(Escalated {
                notice_id: notice.notice_id,
                step: self.followup.escalations + 1,
                to: EscalationTarget::Regulator {
                    authority: Authority::for_class(class),
                },
                channel: None,
                message_id: None,
            }),
        ])
    }

    pub(crate) fn record_regulator_decision(
        &self,
        analyst_id: String,
        decision: String,
        reference: Option<String>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let authority = self.followup.regulator.ok_or(Refusal::NotEscalated)?;
        if self.followup.regulator_decided.is_some() {
            return Ok(vec![]);
        }
        if self.is_finished() {
            return Err(Refusal::CaseClosed);
        }
        Ok(vec![
            CaseEvent::RegulatorDecided(RegulatorDecided {
                analyst_id,
                authority,
                decision,
                reference,
            }),
            closed(CaseOutcome::RegulatorDecided),
        ])
    }

    /// The rung owed now, if any: one per round since the deadline, none while a chase is
    /// still on its way.
    fn next_rung(&self, policy: &FollowupPolicy, deadline: DateTime<Utc>, now: DateTime<Utc>) -> Option<Rung> {
        // Nothing climbs past the authority, nor while a chase is on its way.
        if self.followup.chase.pending.is_some() || self.followup.regulator.is_some() {
            return None;
        }
        let rounds_due = ((now - deadline).num_seconds() / policy.remind_every.num_seconds().max(1)) as u32 + 1;
        let ladder = self.ladder(policy);
        let asked = self.followup.rounds;
        if asked >= rounds_due {
            return None;
        }
        ladder.get(asked as usize).copied()
    }

    fn ladder(&self, policy: &FollowupPolicy) -> Vec<Rung> {
        let mut ladder: Vec<Rung> = (1..=policy.reminders).map(Rung::Reminder).collect();
        let provider = self.host.as_ref().and_then(|host| host.hosting_provider.as_ref());
        if policy.hosting_provider && provider.is_some() {
            ladder.push(Rung::HostingProvider);
        }
        if policy.regulator {
            ladder.push(Rung::Regulator);
        }
        ladder
    }

    fn climb(&self, rung: Rung) -> Vec<CaseEvent> {
        let Some(notice) = &self.notice else { return vec![] };
        let notice_id = notice.notice_id;
        let step = self.followup.escalations + 1;
        match rung {
            // A platform that answered is working on it: the round passes without a reminder.
            Rung::Reminder(_) if self.platform_engaged() => vec![CaseEvent::ChaseRequested(ChaseRequested {
                notice_id,
                chase: Chase::Skipped,
            })],
            Rung::Reminder(number) => vec![CaseEvent::ChaseRequested(ChaseRequested {
                notice_id,
                chase: Chase::Reminder { number },
            })],
            Rung::HostingProvider => {
                let provider = self
                    .host
                    .as_ref()
                    .and_then(|host| host.hosting_provider.as_ref())
                    .expect("the ladder has this rung only with a provider");
                vec![CaseEvent::ChaseRequested(ChaseRequested {
                    notice_id,
                    chase: Chase::HostingProvider {
                        step,
                        provider_id: provider.provider_id.clone(),
                        name: provider.name.clone(),
                    },
                })]
            }
            Rung::Regulator => {
                let class = self.classification.as_ref().map_or(ContentClass::Csam, |c| c.class);
                vec![CaseEvent::Escalated(Escalated {
                    notice_id,
                    step,
                    to: EscalationTarget::Regulator {
                        authority: Authority::for_class(class),
                    },
                    channel: None,
                    message_id: None,
                })]
            }
        }
    }

    /// Starts the chase follow-up asked for (or its next attempt), on `channel`: the one
    /// the notice went by for a reminder, the provider's for an escalation.
    pub(crate) fn start_chase(
        &self,
        lost_after: Duration,
        policy: DispatchPolicy,
        channel: Option<Channel>,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let (Some(notice), Some(chase)) = (&self.notice, &self.followup.chase.pending) else {
            return vec![];
        };
        if self.is_finished() {
            return vec![];
        }
        let state = &self.followup.chase;
        let failed = |attempt, reason: String, retry_at| {
            CaseEvent::ChaseFailed(ChaseFailed {
                notice_id: notice.notice_id,
                chase: chase.clone(),
                attempt,
                reason,
                retry_at,
            })
        };
        let Some(channel) = channel.filter(|c| !matches!(c, Channel::Manual { .. })) else {
            return vec![failed(
                state.sending.attempts,
                "no channel takes it without an analyst (none, or a web form only)".to_owned(),
                None,
            )];
        };
        let start = |attempt| {
            CaseEvent::ChaseStarted(ChaseStarted {
                notice_id: notice.notice_id,
                chase: chase.clone(),
                attempt,
                channel: channel.clone(),
            })
        };
        NextAttempt::of(&state.sending, lost_after, policy.max_attempts, now).events(now, failed, start)
    }

    pub(crate) fn record_chase_outcome(
        &self,
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let state = &self.followup.chase;
        let (Some(notice), Some(chase), Some(in_flight)) = (&self.notice, &state.pending, &state.sending.in_flight)
        else {
            return vec![];
        };
        if in_flight.attempt != attempt {
            return vec![];
        }
        let notice_id = notice.notice_id;
        let channel = in_flight.channel.clone();
        let reason = match outcome {
            DispatchOutcome::Delivered { message_id, .. } => {
                return vec![match chase {
                    Chase::Reminder { number } => CaseEvent::ReminderSent(ReminderSent {
                        notice_id,
                        number: *number,
                        channel,
                        message_id,
                    }),
                    Chase::HostingProvider {
                        step,
                        provider_id,
                        name,
                    } => CaseEvent::Escalated(Escalated {
                        notice_id,
                        step: *step,
                        to: EscalationTarget::HostingProvider {
                            provider_id: provider_id.clone(),
                            name: name.clone(),
                        },
                        channel: Some(channel),
                        message_id,
                    }),
                    Chase::Skipped => return vec![],
                }]
            }
            DispatchOutcome::Rejected { reason, .. } => format!("refused: {reason}"),
            DispatchOutcome::Failed { reason, .. } => reason,
        };
        let retry_at = (attempt < policy.max_attempts).then(|| now + policy.backoff(notice_id.0, attempt));
        vec![CaseEvent::ChaseFailed(ChaseFailed {
            notice_id,
            chase: chase.clone(),
            attempt,
            reason,
            retry_at,
        })]
    }
}

fn still_online(http_status: Option<u16>, next_check_at: DateTime<Utc>) -> CaseEvent {
    CaseEvent::StillOnline(StillOnline {
        http_status,
        next_check_at,
    })
}

fn closed(outcome: CaseOutcome) -> CaseEvent {
    CaseEvent::CaseClosed(CaseClosed { outcome })
}
