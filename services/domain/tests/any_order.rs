//! Whatever order the stages' commands arrive in — redelivered, raced, out of turn — the
//! events the decider lets through fold into a case that keeps its promises.

use chrono::{DateTime, Duration, TimeZone, Utc};
use dijkwacht_domain::*;
use proptest::prelude::*;

mod common;
use common::decided;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn report() -> ReportReceived {
    ReportReceived {
        report_id: ReportId(uuid::Uuid::from_u128(1)),
        reporter: Reporter::Partner {
            partner_id: "p".into(),
            partner_reference: "r".into(),
        },
        location: Location {
            url: "https://videos.example/v/1".into(),
            hashes: vec![],
        },
        claimed_class: None,
        reappearance_of: None,
    }
}

fn host() -> HostResolved {
    HostResolved {
        platform_id: "videos".into(),
        platform_name: "Videos".into(),
        country: "NL".into(),
        dsa_platform: true,
        matched: HostMatch::Domain {
            domain: "videos.example".into(),
        },
        notice_endpoint: "https://videos.example/notices".into(),
        hosting_provider: None,
    }
}

fn provider() -> HostingProvider {
    HostingProvider {
        provider_id: "cloud".into(),
        name: "Cloud".into(),
        country: "NL".into(),
        address: "192.0.2.7".into(),
        range: "192.0.2.0/24".into(),
    }
}

fn followup_policy() -> FollowupPolicy {
    FollowupPolicy {
        recheck_every: Duration::minutes(20),
        remind_every: Duration::minutes(30),
        watch: vec![Duration::minutes(30), Duration::hours(2)],
        ..FollowupPolicy::default()
    }
}

fn notice_id() -> NoticeId {
    // The notice issued by command 2 with `arg` 0; answers naming another are refused.
    NoticeId(uuid::Uuid::from_u128(0))
}

/// The platform's channels; the registry may change between two decisions.
fn channels(arg: u8) -> Vec<Channel> {
    let api = Channel::Http {
        endpoint: "https://videos.example/dsa".into(),
    };
    let email = Channel::Email {
        to: "abuse@videos.example".into(),
    };
    match arg % 5 {
        0 => vec![Channel::Manual { form_url: None }],
        1 => vec![],
        2 => vec![email],
        _ => vec![api, email],
    }
}

fn delivered_or_unavailable(arg: u8) -> DispatchOutcome {
    if arg.is_multiple_of(2) {
        DispatchOutcome::Delivered {
            platform_reference: None,
            message_id: None,
        }
    } else {
        DispatchOutcome::Failed {
            reason: "503".into(),
            next: AfterFailure::Retry { not_before: None },
        }
    }
}

fn dispatch_policy(max_attempts: u32, backoff_minutes: i64) -> DispatchPolicy {
    DispatchPolicy {
        max_attempts,
        first_backoff: Duration::minutes(backoff_minutes),
    }
}

/// Every command a stage or an analyst can send, with the variations that matter.
fn command(pick: u8, arg: u8) -> Command {
    let class = if arg.is_multiple_of(2) {
        ContentClass::Csam
    } else {
        ContentClass::SelfHarm
    };
    match pick % 33 {
        11 => Command::StartWithdrawal {
            lost_after: Duration::minutes(45),
            policy: dispatch_policy(3, 10),
        },
        12 => Command::RecordWithdrawalOutcome {
            attempt: u32::from(arg % 4),
            outcome: delivered_or_unavailable(arg),
            policy: dispatch_policy(3, 1),
        },
        10 => Command::RecordManualSubmission {
            analyst_id: "ann".into(),
            reference: None,
        },
        0 => Command::ReceiveReport(report()),
        1 => Command::Classify {
            host: (!arg.is_multiple_of(3)).then(|| HostResolved {
                hosting_provider: arg.is_multiple_of(2).then(provider),
                ..host()
            }),
            classification: (!arg.is_multiple_of(4)).then(|| Classified {
                class,
                legal_ground: class.legal_ground(t0().date_naive()),
                evidence: Evidence::UrlRule { rule_id: "r".into() },
                automated: true,
            }),
            forward_to: (arg.is_multiple_of(7)).then(|| ForwardedToHotline {
                country: "US".into(),
                partner_id: "ncmec".into(),
            }),
            police_first: arg.is_multiple_of(5).then(|| "new-csam".into()),
        },
        2 => Command::IssueNotice {
            notice_id: NoticeId(uuid::Uuid::from_u128(u128::from(arg % 2))),
            policy: NoticePolicy {
                organisation: "o".into(),
                contact_email: "o@example.org".into(),
                designated_by: "d".into(),
                designation_reference: "x".into(),
            },
        },
        3 => Command::StartDispatch {
            lost_after: Duration::minutes(45),
            policy: dispatch_policy(3, 10),
            channels: channels(arg),
            // Our pace towards the platform holds some attempts back.
            pace: arg.is_multiple_of(3).then(|| Deferral {
                until: t0() + Duration::minutes(i64::from(arg)),
                reason: "rate limit".into(),
            }),
        },
        4 => Command::RecordDispatchOutcome {
            attempt: u32::from(arg % 4),
            outcome: match arg % 7 {
                0 | 3 => DispatchOutcome::Failed {
                    reason: "503".into(),
                    next: AfterFailure::Retry { not_before: None },
                },
                6 => DispatchOutcome::Failed {
                    reason: "401".into(),
                    next: AfterFailure::NextChannel,
                },
                5 => DispatchOutcome::Failed {
                    reason: "incomplete".into(),
                    next: AfterFailure::Stop,
                },
                4 => DispatchOutcome::Rejected {
                    reason: "not illegal here".into(),
                    answer: None,
                },
                _ => DispatchOutcome::Delivered {
                    platform_reference: None,
                    message_id: None,
                },
            },
            policy: dispatch_policy(3, 1),
            channels: channels(arg),
        },
        5 => Command::RecordRemovalCheck {
            observation: match arg % 5 {
                0 => Observation::Gone { http_status: 410 },
                1 => Observation::Unreachable,
                _ => Observation::Online { http_status: 200 },
            },
            policy: followup_policy(),
        },
        14 => Command::SetDeadline {
            rule: arg.is_multiple_of(2).then(|| DeadlineRule {
                class: None,
                platform: None,
                within: Duration::minutes(i64::from(arg % 90)),
                basis: "policy".into(),
            }),
        },
        15 => Command::RecordPlatformAnswer(match arg % 4 {
            0 => PlatformAnswer::Receipt(ReceiptAcknowledged {
                notice_id: notice_id(),
                platform_event_id: format!("e{}", arg % 3),
                received_at: None,
            }),
            1 => PlatformAnswer::Rejection(PlatformRejected {
                notice_id: notice_id(),
                platform_event_id: Some(format!("e{}", arg % 3)),
                attempt: None,
                reason: "not illegal".into(),
                answer: None,
            }),
            _ => PlatformAnswer::Decision(decided(
                notice_id(),
                &format!("e{}", arg % 3),
                if arg.is_multiple_of(3) {
                    "DECISION_VISIBILITY_CONTENT_LABELLED"
                } else {
                    "DECISION_VISIBILITY_CONTENT_REMOVED"
                },
            )),
        }),
        16 => Command::StartChase {
            lost_after: Duration::minutes(45),
            policy: dispatch_policy(2, 10),
            channel: channels(arg).into_iter().next(),
        },
        17 => Command::RecordChaseOutcome {
            attempt: u32::from(arg % 3),
            outcome: delivered_or_unavailable(arg),
            policy: dispatch_policy(2, 1),
        },
        6 => Command::ClaimReview {
            analyst_id: format!("a{}", arg % 2),
            lease: Duration::minutes(i64::from(arg % 90)),
        },
        7 => Command::DecideReview {
            analyst_id: format!("a{}", arg % 3),
            verdict: if arg.is_multiple_of(5) {
                Verdict::NotActionable
            } else {
                Verdict::Actionable {
                    class,
                    legal_ground: class.legal_ground(t0().date_naive()),
                }
            },
            explanation: "e".into(),
            four_eyes: arg.is_multiple_of(2),
            host: arg.is_multiple_of(3).then(host),
            police_referral: None,
        },
        8 => Command::Retract {
            reason: "delisted".into(),
        },
        9 => Command::ReportAgain(ReportedAgain {
            report_id: ReportId(uuid::Uuid::from_u128(2)),
            reporter: Reporter::Public {
                public_reference: "M-1".into(),
            },
            new_hashes: vec![],
            claimed_class: None,
        }),
        18 => Command::AssessRejection {
            analyst_id: "ann".into(),
            upheld: arg.is_multiple_of(2),
            explanation: "assessed".into(),
        },
        19 => Command::RecordRegulatorDecision {
            analyst_id: "ann".into(),
            decision: "removal order issued".into(),
            reference: None,
        },
        20 => Command::StartForward {
            lost_after: Duration::minutes(45),
            policy: dispatch_policy(2, 10),
            channel: channels(arg).into_iter().next(),
        },
        21 => Command::RecordForwardOutcome {
            attempt: u32::from(arg % 3),
            outcome: delivered_or_unavailable(arg),
            policy: dispatch_policy(2, 1),
            confirm_within: Duration::minutes(i64::from(arg % 120)),
        },
        22 => Command::ConfirmForward {
            recorded_by: "partner:ncmec".into(),
            reference: None,
            note: None,
        },
        23 => Command::CloseForward,
        25 => Command::DecideReview {
            analyst_id: format!("a{}", arg % 3),
            verdict: Verdict::Actionable {
                class,
                legal_ground: class.legal_ground(t0().date_naive()),
            },
            explanation: "a child, new material".into(),
            four_eyes: arg.is_multiple_of(2),
            host: None,
            police_referral: Some(PoliceReferral {
                partner_id: "police".into(),
                reasons: vec![ReferralReason::NewMaterial],
                note: None,
            }),
        },
        26 if arg.is_multiple_of(5) => Command::RecordManualReferral {
            analyst_id: "ann".into(),
            reference: None,
            hold_for: Duration::minutes(i64::from(arg % 120)),
        },
        26 => Command::StartReferral {
            lost_after: Duration::minutes(45),
            policy: dispatch_policy(2, 10),
            channel: channels(arg).into_iter().next(),
        },
        27 => Command::RecordReferralOutcome {
            attempt: u32::from(arg % 3),
            outcome: delivered_or_unavailable(arg),
            policy: dispatch_policy(2, 1),
            hold_for: Duration::minutes(i64::from(arg % 120)),
        },
        28 => Command::ExtendPoliceHold {
            until: t0() + Duration::minutes(i64::from(arg) * 4),
            recorded_by: "partner:police".into(),
            note: None,
        },
        29 => Command::LapsePoliceHold,
        31 => Command::AllowHeldChecks {
            allowed: !arg.is_multiple_of(3),
            recorded_by: "partner:police".into(),
        },
        32 => Command::RecordHeldCheck {
            observation: match arg % 3 {
                0 => Observation::Gone { http_status: 404 },
                1 => Observation::Unreachable,
                _ => Observation::Online { http_status: 200 },
            },
            recheck_every: Duration::minutes(i64::from(arg % 60) + 1),
        },
        30 => Command::ReleaseFromPoliceHold {
            recorded_by: "partner:police".into(),
            note: None,
        },
        _ => Command::RecordReappearance(Reappeared {
            report_id: ReportId(uuid::Uuid::from_u128(3)),
            new_case_id: CaseId(uuid::Uuid::from_u128(4)),
        }),
    }
}

/// Every state names a wait, and the one it names fits: a stage is asked to act only where
/// its command can apply, and only final states wait for nothing.
fn waits_only_for_what_can_move_it_on(case: &Case) -> Result<(), TestCaseError> {
    match case.wait(&WaitLimits::default()) {
        Wait::Stage {
            stage: StageKind::Classify,
            ..
        } => prop_assert_eq!(case.status, CaseStatus::Received),
        Wait::Stage {
            stage: StageKind::Notices,
            ..
        } => {
            prop_assert!(case.host.is_some() && case.classification.is_some() && case.notice.is_none());
        }
        Wait::Stage {
            stage: StageKind::Dispatch,
            ..
        } => {
            let sending = case.dispatch.delivered_at.is_none() && !case.dispatch.gave_up;
            let chasing = case.followup.chase.pending.is_some();
            let forwarding = case.status == CaseStatus::Forwarded && case.forward.sent.is_none();
            let referring = case.referral_owed();
            prop_assert!(
                (case.notice.is_some() && (sending || case.owes_withdrawal() || chasing)) || forwarding || referring
            );
        }
        Wait::Stage {
            stage: StageKind::Followup,
            ..
        } => {
            let escalated = case.followup.regulator.is_some();
            let forwarded = case.forward.sent.is_some();
            let held = case.held_for_police() && case.police.referred.is_some();
            prop_assert!(
                (case.dispatch.delivered_at.is_some() || escalated || forwarded || held) && !case.is_finished()
            );
        }
        Wait::Analyst(AnalystTask::Review) => prop_assert_eq!(case.status, CaseStatus::AwaitingReview),
        Wait::Analyst(AnalystTask::SubmitNotice) => {
            let channel = case.dispatch.in_flight.as_ref().map(|in_flight| &in_flight.channel);
            let manual = matches!(channel, Some(Channel::Manual { .. }));
            prop_assert!(manual, "waits for a hand submission without a web-form attempt");
        }
        Wait::Analyst(AnalystTask::DeliverByHand) => prop_assert!(case.dispatch.gave_up),
        Wait::Analyst(AnalystTask::AssessRejection) => {
            prop_assert!(case.dispatch.rejected.is_some() || case.platform_declined());
        }
        Wait::Analyst(AnalystTask::WithdrawByHand) => prop_assert!(case.owes_withdrawal()),
        Wait::Analyst(AnalystTask::ForwardByHand) => prop_assert!(case.forward.gave_up_reason.is_some()),
        Wait::Analyst(AnalystTask::ReferByHand) => {
            prop_assert!(case.held_for_police() && case.police.gave_up_reason.is_some());
        }
        Wait::Analyst(AnalystTask::PoliceHoldLapsed) => prop_assert!(case.held_for_police() && case.police.lapsed),
        Wait::Operator(StuckReason::HostUnknown) => prop_assert!(case.host.is_none()),
        Wait::Done => prop_assert!(case.is_finished()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_commands_folds_to_a_case_that_keeps_its_promises(
        commands in prop::collection::vec((any::<u8>(), any::<u8>(), 0i64..120), 1..60),
    ) {
        // The first command of a real case is always its report.
        let commands = std::iter::once((Command::ReceiveReport(report()), 0))
            .chain(commands.into_iter().skip(1).map(|(pick, arg, minutes)| (command(pick, arg), minutes)));
        keeps_its_promises(commands)?;
    }

    /// The same after delivery, where follow-up's commands (checks, deadlines, answers,
    /// chases) meet each other and the odd retraction.
    #[test]
    fn any_order_of_follow_up_commands_keeps_the_promises(
        commands in prop::collection::vec((any::<u8>(), any::<u8>(), 0i64..60), 1..80),
    ) {
        const FOLLOW_UP: [u8; 13] = [5, 5, 14, 15, 15, 16, 16, 17, 17, 18, 19, 13, 8];
        let delivered = [(0, 0), (1, 2), (2, 0), (3, 4), (4, 1)].map(|(pick, arg)| (command(pick, arg), 0));
        let commands = delivered.into_iter().chain(
            commands.into_iter().map(|(pick, arg, minutes)| {
                let pick = FOLLOW_UP[pick as usize % FOLLOW_UP.len()];
                // A retraction now and then, not every tenth command.
                let pick = if pick == 8 && !arg.is_multiple_of(4) { 5 } else { pick };
                (command(pick, arg), minutes)
            }),
        );
        keeps_its_promises(commands)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    /// A case forwarded to the hotline abroad: the forward's attempts, the hotline's
    /// confirmation, the window closing, a retraction, meeting in any order.
    #[test]
    fn any_order_of_forwarding_commands_keeps_the_promises(
        commands in prop::collection::vec((any::<u8>(), any::<u8>(), 0i64..90), 1..60),
    ) {
        const FORWARDING: [u8; 9] = [20, 20, 21, 21, 22, 23, 23, 5, 8];
        let forwarded = [(0, 0), (1, 14)].map(|(pick, arg)| (command(pick, arg), 0));
        let commands = forwarded.into_iter().chain(commands.into_iter().map(|(pick, arg, minutes)| {
            let pick = FORWARDING[pick as usize % FORWARDING.len()];
            let pick = if pick == 8 && !arg.is_multiple_of(4) { 23 } else { pick };
            (command(pick, arg), minutes)
        }));
        keeps_its_promises(commands)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// A case a police-first rule sent to review: referrals, their attempts, extensions,
    /// lapses and releases meet notices, checks and retractions in any order, and a held case
    /// never yields a notice before it is released.
    #[test]
    fn a_held_case_never_yields_a_notice_before_its_release(
        commands in prop::collection::vec((any::<u8>(), any::<u8>(), 0i64..240), 1..60),
    ) {
        const POLICE: [u8; 20] = [25, 25, 26, 26, 27, 27, 28, 29, 29, 30, 31, 32, 32, 2, 3, 4, 5, 6, 7, 8];
        let held = [(0, 0), (1, 5)].map(|(pick, arg)| (command(pick, arg), 0));
        let commands = held.into_iter().chain(commands.into_iter().map(|(pick, arg, minutes)| {
            let pick = POLICE[pick as usize % POLICE.len()];
            let pick = if pick == 8 && !arg.is_multiple_of(4) { 29 } else { pick };
            (command(pick, arg), minutes)
        }));
        keeps_its_promises(commands)?;
    }
}

fn keeps_its_promises(commands: impl Iterator<Item = (Command, i64)>) -> Result<(), TestCaseError> {
    {
        let id = CaseId(uuid::Uuid::from_u128(9));
        let mut case = Case::new(id);
        let mut history: Vec<(CaseEvent, DateTime<Utc>)> = Vec::new();
        let mut now = t0();
        for (command, minutes) in commands {
            now += Duration::minutes(minutes);
            let Ok(events) = case.decide(command, now) else {
                continue;
            };
            for event in events {
                case.apply(&event, now);
                history.push((event, now));
            }
            waits_only_for_what_can_move_it_on(&case)?;
        }
        let count = |name: &str| history.iter().filter(|(e, _)| e.type_name() == name).count();
        // One report opens the case; one notice at most, ever.
        prop_assert_eq!(count("ReportReceived"), 1);
        prop_assert!(count("NoticeIssued") <= 1);
        prop_assert_eq!(case.version as usize, history.len());
        // Folding the history again gives the same state: apply is deterministic.
        let refolded = Case::from_events(id, history.iter().map(|(e, at)| (e, *at)));
        prop_assert_eq!(&refolded, &case);
        let position = |name: &str| history.iter().position(|(e, _)| e.type_name() == name);
        // A notice follows a classification on a known host; delivery follows a start;
        // removal is verified only after delivery
        if let Some(notice) = position("NoticeIssued") {
            prop_assert!(position("Classified").is_some_and(|c| c < notice));
            prop_assert!(position("HostResolved").is_some_and(|h| h < notice));
        }
        if let Some(delivered) = position("NoticeDelivered") {
            prop_assert!(position("DispatchStarted").is_some_and(|s| s < delivered));
        }
        // (or after a refused notice went to the competent authority, which checks it).
        if let Some(verified) = position("RemovalVerified") {
            let checked_after = |name: &str| position(name).is_some_and(|at| at < verified);
            prop_assert!(checked_after("NoticeDelivered") || checked_after("Escalated"));
        }
        // Police first: from the hold to its release no notice is composed, nothing is sent
        // to the platform and nothing checks the location.
        if let Some(held) = position("HeldForPolice") {
            let released = position("PoliceReleased").unwrap_or(history.len());
            prop_assert!(released > held);
            prop_assert!(position("NoticeIssued").is_none_or(|notice| notice > released));
            let touched = history[held..released].iter().find(|(e, _)| {
                matches!(
                    e,
                    CaseEvent::DispatchStarted(_)
                        | CaseEvent::StillOnline(_)
                        | CaseEvent::RemovalVerified(_)
                        | CaseEvent::ForwardedToHotline(_)
                        | CaseEvent::ForwardStarted(_)
                )
            });
            prop_assert!(touched.is_none(), "while held: {:?}", touched);
        }
        prop_assert!(count("HeldForPolice") <= 1 && count("PoliceReleased") <= 1);
        // The watch follows a verified removal; a case closes once; an assessment of a
        // refusal closes the case or takes it to an authority, in the same decision.
        if let Some(watched) = position("StillRemoved") {
            prop_assert!(position("RemovalVerified").is_some_and(|v| v < watched));
        }
        prop_assert!(count("CaseClosed") <= 1);
        if let Some(assessed) = position("RejectionAssessed") {
            let next = history.get(assessed + 1).map(|(e, _)| e);
            let closes_or_escalates = matches!(
                next,
                Some(
                    CaseEvent::CaseClosed(CaseClosed {
                        outcome: CaseOutcome::Rejected
                    }) | CaseEvent::Escalated(_)
                )
            );
            prop_assert!(closes_or_escalates, "after an assessment: {:?}", next);
        }
        // Dispatch attempts are numbered 1, 2, 3... and never exceed the policy.
        let attempts: Vec<u32> = history
            .iter()
            .filter_map(|(e, _)| match e {
                CaseEvent::DispatchStarted(s) => Some(s.attempt),
                _ => None,
            })
            .collect();
        prop_assert_eq!(attempts.clone(), (1..=attempts.len() as u32).collect::<Vec<_>>());
        // Three per channel, of three channels at most, and one by hand.
        prop_assert!(attempts.len() <= 10);
        // After the case is finished nothing new is started: only facts about what already
        // happened (the outcome of an attempt in flight) and a reappearance are recorded.
        if let Some(finished) = history
            .iter()
            .position(|(e, _)| matches!(e, CaseEvent::CaseClosed(_) | CaseEvent::Retracted(_)))
        {
            let after = &history[finished + 1..];
            prop_assert!(
                after.iter().all(|(e, _)| matches!(
                    e,
                    CaseEvent::Reappeared(_)
                        | CaseEvent::NoticeDelivered(_)
                        | CaseEvent::DispatchFailed(_)
                        | CaseEvent::PlatformRejected(_)
                        | CaseEvent::WithdrawalStarted(_)
                        | CaseEvent::NoticeWithdrawn(_)
                        | CaseEvent::WithdrawalFailed(_)
                        | CaseEvent::ReceiptAcknowledged(_)
                        | CaseEvent::PlatformDecided(_)
                        | CaseEvent::ReminderSent(_)
                        | CaseEvent::Escalated(_)
                        | CaseEvent::ChaseFailed(_)
                        | CaseEvent::ForwardSent(_)
                        | CaseEvent::ForwardFailed(_)
                        | CaseEvent::ForwardConfirmed(_)
                )),
                "after finishing: {:?}",
                &history[finished..]
            );
            // At most the outcome of the attempt in flight; then only a withdrawal of a notice
            // that reached the platform.
            let outcomes = after
                .iter()
                .filter(|(e, _)| {
                    matches!(
                        e,
                        CaseEvent::NoticeDelivered(_)
                            | CaseEvent::DispatchFailed(_)
                            | CaseEvent::PlatformRejected(PlatformRejected {
                                platform_event_id: None,
                                ..
                            })
                    )
                })
                .count();
            prop_assert!(outcomes <= 1);
            let withdrawals = after.iter().any(|(e, _)| matches!(e, CaseEvent::WithdrawalStarted(_)));
            prop_assert!(!withdrawals || history.iter().any(|(e, _)| matches!(e, CaseEvent::NoticeDelivered(_))));
            prop_assert!(
                after
                    .iter()
                    .filter(|(e, _)| matches!(e, CaseEvent::NoticeWithdrawn(_)))
                    .count()
                    <= 1
            );
        }
        // The chase: only after the deadline is recorded and has passed; reminders numbered
        // 1, 2, ... up to the policy's count; escalation steps rising; each answer once.
        let deadline = history.iter().find_map(|(e, _)| match e {
            CaseEvent::DeadlineSet(d) => Some(d.due_at),
            _ => None,
        });
        // (A contested refusal goes to the authority whenever an analyst says so.)
        for (index, (event, at)) in history.iter().enumerate() {
            let contested = index > 0 && matches!(history[index - 1].0, CaseEvent::RejectionAssessed(_));
            if let CaseEvent::ChaseRequested(_)
            | CaseEvent::Escalated(Escalated {
                to: EscalationTarget::Regulator { .. },
                ..
            }) = event
            {
                if contested {
                    continue;
                }
                prop_assert!(
                    deadline.is_some_and(|due_at| due_at <= *at),
                    "chased before the deadline: {history:?}"
                );
            }
        }
        let reminders: Vec<u32> = history
            .iter()
            .filter_map(|(e, _)| match e {
                CaseEvent::ChaseRequested(ChaseRequested {
                    chase: Chase::Reminder { number },
                    ..
                }) => Some(*number),
                _ => None,
            })
            .collect();
        prop_assert_eq!(reminders.clone(), (1..=reminders.len() as u32).collect::<Vec<_>>());
        prop_assert!(reminders.len() as u32 <= followup_policy().reminders);
        let steps: Vec<u32> = history
            .iter()
            .filter_map(|(e, _)| match e {
                CaseEvent::ChaseRequested(ChaseRequested {
                    chase: Chase::HostingProvider { step, .. },
                    ..
                }) => Some(*step),
                CaseEvent::Escalated(Escalated {
                    to: EscalationTarget::Regulator { .. },
                    step,
                    ..
                }) => Some(*step),
                _ => None,
            })
            .collect();
        prop_assert!(
            steps.windows(2).all(|pair| pair[0] < pair[1]),
            "escalation steps {steps:?}"
        );
        let mut answers: Vec<&str> = history
            .iter()
            .filter_map(|(e, _)| match e {
                CaseEvent::ReceiptAcknowledged(r) => Some(r.platform_event_id.as_str()),
                CaseEvent::PlatformDecided(d) => Some(d.platform_event_id.as_str()),
                CaseEvent::PlatformRejected(r) => r.platform_event_id.as_deref(),
                _ => None,
            })
            .collect();
        let recorded = answers.len();
        answers.sort_unstable();
        answers.dedup();
        prop_assert_eq!(answers.len(), recorded, "an answer recorded twice");
        // A classification by analysts under four eyes names two different analysts.
        for (event, _) in &history {
            if let CaseEvent::Classified(Classified {
                evidence: Evidence::AnalystReview { analysts },
                ..
            }) = event
            {
                let mut unique = analysts.clone();
                unique.dedup();
                prop_assert_eq!(&unique, analysts);
            }
        }
    }
    Ok(())
}
