//! Follow-up, given/when/then: the deadline of a delivered notice, the platform's answers,
//! removal checks, and the chase of a platform that does not act.

use chrono::Duration;
use dijkwacht_domain::*;

mod common;
use common::*;

fn chase_policy() -> FollowupPolicy {
    FollowupPolicy {
        recheck_every: Duration::minutes(30),
        remind_every: Duration::hours(24),
        reminders: 2,
        hosting_provider: true,
        regulator: true,
        watch: vec![],
    }
}

fn rule(hours: i64) -> DeadlineRule {
    DeadlineRule {
        class: Some(ContentClass::Csam),
        platform: Some(PlatformKind::National),
        within: Duration::hours(hours),
        basis: "code of conduct".into(),
    }
}

/// Delivered at t(0), with a 24-hour deadline; the host is behind a hosting provider.
fn past_delivery() -> History {
    let events: Vec<CaseEvent> = delivered()
        .into_iter()
        .map(|event| match event {
            CaseEvent::HostResolved(host) => CaseEvent::HostResolved(HostResolved {
                hosting_provider: Some(HostingProvider {
                    provider_id: "cloud".into(),
                    name: "Cloud Hosting".into(),
                    country: "NL".into(),
                    address: "192.0.2.7".into(),
                    range: "192.0.2.0/24".into(),
                }),
                ..host
            }),
            other => other,
        })
        .collect();
    let mut history = History::of(events);
    history.play(Command::SetDeadline { rule: Some(rule(24)) }, 1);
    history
}

fn check(observation: Observation) -> Command {
    Command::RecordRemovalCheck {
        observation,
        policy: chase_policy(),
    }
}

fn online() -> Command {
    check(Observation::Online { http_status: 200 })
}

/// A case's events with the times they were recorded at.
struct History(Vec<(CaseEvent, chrono::DateTime<chrono::Utc>)>);

impl History {
    /// The events given, all recorded at t(0).
    fn of(events: Vec<CaseEvent>) -> Self {
        Self(events.into_iter().map(|event| (event, t(0))).collect())
    }

    fn case(&self) -> Case {
        Case::from_events(CaseId(uuid::Uuid::nil()), self.0.iter().map(|(event, at)| (event, *at)))
    }

    fn when(&self, command: Command, minutes: i64) -> Result<Vec<CaseEvent>, Refusal> {
        self.case().decide(command, t(minutes))
    }

    /// Decides `command` at `minutes` and records what it yields.
    fn play(&mut self, command: Command, minutes: i64) -> Vec<CaseEvent> {
        let new = self.when(command, minutes).unwrap();
        self.0.extend(new.iter().map(|event| (event.clone(), t(minutes))));
        new
    }

    fn events(&self) -> impl Iterator<Item = &CaseEvent> {
        self.0.iter().map(|(event, _)| event)
    }
}

fn requested(events: &[CaseEvent]) -> Vec<Chase> {
    events
        .iter()
        .filter_map(|event| match event {
            CaseEvent::ChaseRequested(requested) => Some(requested.chase.clone()),
            _ => None,
        })
        .collect()
}

const DAY: i64 = 24 * 60;

#[test]
fn a_delivered_notice_gets_its_deadline_once() {
    let then = given(&delivered()).when(Command::SetDeadline { rule: Some(rule(24)) }, t(1));
    assert_eq!(
        then,
        Ok(vec![CaseEvent::DeadlineSet(DeadlineSet {
            notice_id: notice_id(),
            due_at: t(DAY),
            within_secs: 24 * 3600,
            basis: "code of conduct".into(),
        })])
    );
    assert_eq!(
        past_delivery().when(Command::SetDeadline { rule: Some(rule(1)) }, 2),
        Ok(vec![])
    );
    assert_eq!(
        given(&issued(ContentClass::Csam)).when(Command::SetDeadline { rule: None }, t(1)),
        Err(Refusal::NotDelivered)
    );
}

#[test]
fn without_a_fitting_rule_the_catch_all_deadline_applies() {
    let then = given(&delivered())
        .when(Command::SetDeadline { rule: None }, t(1))
        .unwrap();
    assert!(matches!(&then[..], [CaseEvent::DeadlineSet(d)] if d.due_at == t(DAY) && d.basis.starts_with("policy")));
}

#[test]
fn the_first_check_is_at_the_deadline() {
    let case = past_delivery().case();
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(DAY)
        }
    );
}

#[test]
fn content_online_at_the_deadline_gets_a_reminder_and_a_recheck() {
    let then = past_delivery().when(online(), DAY);
    assert_eq!(
        then,
        Ok(vec![
            CaseEvent::StillOnline(StillOnline {
                http_status: Some(200),
                next_check_at: t(DAY + 30),
            }),
            CaseEvent::ChaseRequested(ChaseRequested {
                notice_id: notice_id(),
                chase: Chase::Reminder { number: 1 },
            }),
        ])
    );
}

#[test]
fn a_check_before_the_next_one_is_due_changes_nothing() {
    let mut history = past_delivery();
    history.play(online(), DAY);
    assert_eq!(
        history.when(check(Observation::Gone { http_status: 410 }), DAY + 29),
        Ok(vec![])
    );
    assert_eq!(
        history
            .when(check(Observation::Gone { http_status: 410 }), DAY + 30)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_ladder_climbs_one_round_a_day_reminders_then_provider_then_regulator() {
    let mut history = past_delivery();
    let mut asked = Vec::new();
    for day in 1..=6 {
        // Every check of the day; only the first after the round comes due asks for more.
        for minutes in [0, 30, 60] {
            let new = history.play(online(), day * DAY + minutes);
            asked.extend(
                new.iter()
                    .filter(|event| matches!(event, CaseEvent::ChaseRequested(_) | CaseEvent::Escalated(_)))
                    .map(CaseEvent::type_name),
            );
            // The chase leaves and is delivered before the next check.
            if history.case().followup.chase.pending.is_some() {
                history.play(
                    Command::StartChase {
                        lost_after: Duration::minutes(5),
                        policy: dispatch_policy(),
                        channel: Some(Channel::Email {
                            to: "abuse@videos.example".into(),
                        }),
                    },
                    day * DAY + minutes + 1,
                );
                let attempt = history.case().followup.chase.sending.attempts;
                history.play(
                    Command::RecordChaseOutcome {
                        attempt,
                        outcome: DispatchOutcome::Delivered {
                            platform_reference: None,
                            message_id: Some("<m>".into()),
                        },
                        policy: dispatch_policy(),
                    },
                    day * DAY + minutes + 2,
                );
            }
        }
    }
    let reminders: Vec<u32> = history
        .events()
        .filter_map(|event| match event {
            CaseEvent::ReminderSent(sent) => Some(sent.number),
            _ => None,
        })
        .collect();
    assert_eq!(reminders, vec![1, 2], "day 1 and day 2");
    let escalations: Vec<(u32, EscalationTarget)> = history
        .events()
        .filter_map(|event| match event {
            CaseEvent::Escalated(escalated) => Some((escalated.step, escalated.to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        escalations,
        vec![
            (
                1,
                EscalationTarget::HostingProvider {
                    provider_id: "cloud".into(),
                    name: "Cloud Hosting".into()
                }
            ),
            (
                2,
                EscalationTarget::Regulator {
                    authority: Authority::CsamAuthority
                }
            ),
        ],
        "day 3 the provider, day 4 the authority, then nothing more"
    );
    assert_eq!(asked.len(), 4, "{asked:?}");
    let case = history.case();
    assert_eq!(case.status, CaseStatus::Escalated, "an escalated case stays open");
    assert_eq!(case.followup.regulator, Some(Authority::CsamAuthority));
}

#[test]
fn a_platform_that_acknowledged_receipt_gets_no_reminders_but_is_still_escalated() {
    let mut history = past_delivery();
    history.play(
        Command::RecordPlatformAnswer(PlatformAnswer::Receipt(ReceiptAcknowledged {
            notice_id: notice_id(),
            platform_event_id: "r-1".into(),
            received_at: None,
        })),
        10,
    );
    let mut asked = Vec::new();
    for day in 1..=3 {
        asked.extend(requested(&history.play(online(), day * DAY)));
    }
    assert_eq!(
        asked,
        vec![
            Chase::Skipped,
            Chase::Skipped,
            Chase::HostingProvider {
                step: 1,
                provider_id: "cloud".into(),
                name: "Cloud Hosting".into()
            }
        ]
    );
}

fn decision(visibility: &str) -> Command {
    Command::RecordPlatformAnswer(PlatformAnswer::Decision(PlatformDecided {
        statement_of_reasons_id: Some("sor-1".into()),
        ..decided(notice_id(), "d-1", visibility)
    }))
}

#[test]
fn a_removal_decision_is_checked_at_once_and_recorded_once() {
    let mut history = past_delivery();
    let recorded = history.play(decision("DECISION_VISIBILITY_CONTENT_REMOVED"), 90);
    assert!(matches!(&recorded[..], [CaseEvent::PlatformDecided(d)] if d.removes_content()));
    assert_eq!(
        history.case().wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(90)
        }
    );
    assert_eq!(
        history.when(decision("DECISION_VISIBILITY_CONTENT_REMOVED"), 91),
        Ok(vec![])
    );
    // Checked early and still online: the deadline stands, nobody is chased yet.
    assert_eq!(
        history.when(online(), 91),
        Ok(vec![CaseEvent::StillOnline(StillOnline {
            http_status: Some(200),
            next_check_at: t(DAY),
        })])
    );
    assert_eq!(
        history.when(check(Observation::Gone { http_status: 404 }), 91),
        Ok(vec![
            CaseEvent::RemovalVerified(RemovalVerified {
                http_status: 404,
                next_check_at: None
            }),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Removed
            }),
        ])
    );
}

#[test]
fn a_decision_to_leave_the_content_up_goes_to_an_analyst() {
    let mut history = past_delivery();
    history.play(decision("DECISION_VISIBILITY_CONTENT_LABELLED"), 90);
    assert_eq!(
        history.case().wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::AssessRejection)
    );
}

#[test]
fn a_late_refusal_is_a_rejection_to_assess() {
    let mut history = past_delivery();
    let refusal = Command::RecordPlatformAnswer(PlatformAnswer::Rejection(PlatformRejected {
        notice_id: notice_id(),
        platform_event_id: Some("x-1".into()),
        attempt: None,
        reason: "lawful in our view".into(),
        answer: None,
    }));
    history.play(refusal.clone(), 90);
    assert_eq!(history.case().status, CaseStatus::Rejected);
    assert_eq!(history.when(refusal, 91), Ok(vec![]));
}

#[test]
fn an_answer_about_another_notice_is_refused() {
    let answer = Command::RecordPlatformAnswer(PlatformAnswer::Receipt(ReceiptAcknowledged {
        notice_id: NoticeId(uuid::Uuid::from_u128(99)),
        platform_event_id: "r-9".into(),
        received_at: None,
    }));
    assert_eq!(past_delivery().when(answer, 5), Err(Refusal::NoNotice));
}

#[test]
fn a_chase_is_sent_by_dispatch_retried_and_given_up_without_stopping_the_ladder() {
    let mut history = past_delivery();
    history.play(online(), DAY);
    assert_eq!(
        history.case().wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Dispatch,
            due_at: t(DAY)
        },
        "dispatch is woken at once"
    );
    let start = |channel: Option<Channel>| Command::StartChase {
        lost_after: Duration::minutes(5),
        policy: dispatch_policy(),
        channel,
    };
    let email = Channel::Email {
        to: "abuse@videos.example".into(),
    };
    let started = history.play(start(Some(email.clone())), DAY + 1);
    assert!(matches!(&started[..], [CaseEvent::ChaseStarted(s)] if s.attempt == 1 && s.channel == email));
    assert_eq!(
        history.when(start(Some(email.clone())), DAY + 2),
        Ok(vec![]),
        "in flight"
    );
    // Lost with its process: recorded as failed, and the next attempt starts.
    let replaced = history.play(start(Some(email.clone())), DAY + 7);
    assert!(
        matches!(&replaced[..], [CaseEvent::ChaseFailed(f), CaseEvent::ChaseStarted(s)] if f.attempt == 1 && s.attempt == 2)
    );
    let failure = |attempt| Command::RecordChaseOutcome {
        attempt,
        outcome: DispatchOutcome::Failed {
            reason: "503".into(),
            next: AfterFailure::Retry { not_before: None },
        },
        policy: dispatch_policy(),
    };
    let retried = history.play(failure(2), DAY + 8);
    let retry_at = match &retried[..] {
        [CaseEvent::ChaseFailed(ChaseFailed { retry_at: Some(at), .. })] => *at,
        other => panic!("a retry after the back-off: {other:?}"),
    };
    assert_eq!(
        history.when(start(Some(email.clone())), DAY + 8),
        Ok(vec![]),
        "not before the back-off"
    );
    let minutes = (retry_at - t(0)).num_minutes() + 1;
    history.play(start(Some(email.clone())), minutes);
    let failed = history.play(failure(3), minutes + 1);
    assert!(
        matches!(&failed[..], [CaseEvent::ChaseFailed(f)] if f.retry_at.is_none()),
        "attempts used up"
    );
    let case = history.case();
    assert_eq!(case.followup.chase.pending, None);
    assert_eq!(
        case.followup.rounds, 1,
        "the round counts: the next one asks for reminder 2"
    );
    assert_eq!(
        requested(&history.play(online(), 2 * DAY)),
        vec![Chase::Reminder { number: 2 }]
    );
}

#[test]
fn a_chase_with_no_channel_but_a_web_form_is_given_up_at_once() {
    let mut history = past_delivery();
    history.play(online(), DAY);
    let then = history.when(
        Command::StartChase {
            lost_after: Duration::minutes(5),
            policy: dispatch_policy(),
            channel: Some(Channel::Manual { form_url: None }),
        },
        DAY + 1,
    );
    assert!(matches!(&then.unwrap()[..], [CaseEvent::ChaseFailed(f)] if f.retry_at.is_none()));
}

#[test]
fn a_removal_check_before_delivery_is_refused() {
    let then = given(&issued(ContentClass::Csam)).when(check(Observation::Gone { http_status: 410 }), t(10));
    assert_eq!(then, Err(Refusal::NotDelivered));
}

#[test]
fn a_closed_case_is_not_checked_or_chased() {
    let mut history = past_delivery();
    history.play(check(Observation::Gone { http_status: 410 }), DAY);
    let closed = &history;
    assert_eq!(closed.case().status, CaseStatus::Closed);
    assert_eq!(closed.when(online(), 2 * DAY), Ok(vec![]));
}

fn watched_policy() -> FollowupPolicy {
    FollowupPolicy {
        watch: vec![Duration::days(1), Duration::days(7)],
        ..chase_policy()
    }
}

fn watch_check(observation: Observation) -> Command {
    Command::RecordRemovalCheck {
        observation,
        policy: watched_policy(),
    }
}

/// Removed at `DAY + 5`, watched from then on.
fn removed() -> History {
    let mut history = past_delivery();
    history.play(watch_check(Observation::Gone { http_status: 404 }), DAY + 5);
    history
}

#[test]
fn a_removed_location_is_watched_and_the_case_closes_when_it_stays_gone() {
    assert_eq!(
        past_delivery().when(watch_check(Observation::Gone { http_status: 404 }), DAY + 5),
        Ok(vec![CaseEvent::RemovalVerified(RemovalVerified {
            http_status: 404,
            next_check_at: Some(t(2 * DAY + 5)),
        })])
    );
    let mut history = removed();
    let case = history.case();
    assert_eq!(case.status, CaseStatus::Removed);
    assert!(!case.takes_reports(), "a report of it now is a reappearance");
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(2 * DAY + 5)
        }
    );
    assert_eq!(history.when(watch_check(Observation::Unreachable), 2 * DAY), Ok(vec![]));
    assert_eq!(
        history.play(watch_check(Observation::Gone { http_status: 410 }), 2 * DAY + 5),
        vec![CaseEvent::StillRemoved(StillRemoved {
            http_status: Some(410),
            next_check_at: Some(t(8 * DAY + 5)),
        })]
    );
    assert_eq!(
        history.play(watch_check(Observation::Unreachable), 8 * DAY + 6),
        vec![
            CaseEvent::StillRemoved(StillRemoved {
                http_status: None,
                next_check_at: None,
            }),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Removed
            }),
        ]
    );
    assert_eq!(history.case().wait(&WaitLimits::default()), Wait::Done);
}

#[test]
fn content_back_during_the_watch_is_taken_over_by_a_new_case() {
    let history = removed();
    assert_eq!(
        history.when(watch_check(Observation::Online { http_status: 200 }), 2 * DAY + 5),
        Err(Refusal::ContentBack),
        "a new case must take it over, in the same transaction"
    );
    let again = ReportedAgain {
        report_id: ReportId(uuid::Uuid::from_u128(5)),
        reporter: Reporter::ReappearanceWatch,
        new_hashes: vec![],
        claimed_class: None,
    };
    assert_eq!(
        history.when(Command::ReportAgain(again), 2 * DAY),
        Err(Refusal::CaseClosed)
    );
    let reappeared = Reappeared {
        report_id: ReportId(uuid::Uuid::from_u128(6)),
        new_case_id: CaseId(uuid::Uuid::from_u128(7)),
    };
    let mut history = history;
    assert_eq!(
        history.play(Command::RecordReappearance(reappeared.clone()), 2 * DAY + 5),
        vec![
            CaseEvent::Reappeared(reappeared.clone()),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Removed
            }),
        ]
    );
    assert_eq!(
        history.when(Command::RecordReappearance(reappeared), 2 * DAY + 6),
        Ok(vec![])
    );
    assert_eq!(
        past_delivery().when(
            Command::RecordReappearance(Reappeared {
                report_id: ReportId(uuid::Uuid::from_u128(6)),
                new_case_id: CaseId(uuid::Uuid::from_u128(7)),
            }),
            5
        ),
        Err(Refusal::CaseOpen)
    );
}

fn assess(upheld: bool) -> Command {
    Command::AssessRejection {
        analyst_id: "ann".into(),
        upheld,
        explanation: "the platform is right".into(),
    }
}

fn refused_later() -> History {
    let mut history = past_delivery();
    history.play(
        Command::RecordPlatformAnswer(PlatformAnswer::Rejection(PlatformRejected {
            notice_id: notice_id(),
            platform_event_id: Some("x-1".into()),
            attempt: None,
            reason: "lawful in our view".into(),
            answer: None,
        })),
        90,
    );
    history
}

#[test]
fn an_upheld_refusal_closes_the_case_as_rejected() {
    let mut history = refused_later();
    assert_eq!(
        history.play(assess(true), 100),
        vec![
            CaseEvent::RejectionAssessed(RejectionAssessed {
                analyst_id: "ann".into(),
                upheld: true,
                explanation: "the platform is right".into(),
            }),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Rejected
            }),
        ]
    );
    assert_eq!(history.when(assess(false), 101), Err(Refusal::CaseClosed));
}

#[test]
fn a_contested_refusal_at_dispatch_goes_to_the_authority_until_removed_or_decided() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    events.push(CaseEvent::PlatformRejected(PlatformRejected {
        notice_id: notice_id(),
        platform_event_id: None,
        attempt: Some(1),
        reason: "not illegal here".into(),
        answer: None,
    }));
    let mut history = History::of(events);
    let contested = history.play(assess(false), 10);
    assert!(
        matches!(
            &contested[..],
            [
                CaseEvent::RejectionAssessed(RejectionAssessed { upheld: false, .. }),
                CaseEvent::Escalated(Escalated {
                    step: 1,
                    to: EscalationTarget::Regulator {
                        authority: Authority::CsamAuthority
                    },
                    ..
                }),
            ]
        ),
        "{contested:?}"
    );
    let case = history.case();
    assert_eq!(case.status, CaseStatus::Escalated);
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(10)
        },
        "checked at once: the notice never reached the platform, nothing was checked yet"
    );
    // Still online: checked again, and nobody is reminded of a notice it refused.
    assert_eq!(
        history.play(online(), 11),
        vec![CaseEvent::StillOnline(StillOnline {
            http_status: Some(200),
            next_check_at: t(41),
        })]
    );
    let decision = Command::RecordRegulatorDecision {
        analyst_id: "bob".into(),
        decision: "removal order issued".into(),
        reference: Some("ATKM-2026-17".into()),
    };
    assert_eq!(
        history.play(decision.clone(), 50),
        vec![
            CaseEvent::RegulatorDecided(RegulatorDecided {
                analyst_id: "bob".into(),
                authority: Authority::CsamAuthority,
                decision: "removal order issued".into(),
                reference: Some("ATKM-2026-17".into()),
            }),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::RegulatorDecided
            }),
        ]
    );
    assert_eq!(history.when(decision, 51), Ok(vec![]), "recorded once");
}

#[test]
fn a_contested_decision_to_leave_the_content_up_goes_to_the_authority() {
    let mut history = past_delivery();
    history.play(decision("DECISION_VISIBILITY_CONTENT_LABELLED"), 90);
    let contested = history.play(assess(false), 95);
    assert!(matches!(&contested[..], [_, CaseEvent::Escalated(_)]), "{contested:?}");
    assert_eq!(history.case().status, CaseStatus::Escalated);
}

#[test]
fn nothing_refused_is_not_assessed_and_nothing_escalated_has_no_authority_decision() {
    assert_eq!(past_delivery().when(assess(true), 5), Err(Refusal::NothingToAssess));
    let decision = Command::RecordRegulatorDecision {
        analyst_id: "bob".into(),
        decision: "order".into(),
        reference: None,
    };
    assert_eq!(past_delivery().when(decision, 5), Err(Refusal::NotEscalated));
}
