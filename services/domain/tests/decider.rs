//! Given these events, when this command, then these events (or this refusal).

use chrono::Duration;
use dijkwacht_domain::*;

mod common;
use common::*;

#[test]
fn a_report_opens_a_new_case_once() {
    let report = match report_received() {
        CaseEvent::ReportReceived(report) => report,
        _ => unreachable!(),
    };
    assert_eq!(
        given(&[]).when(Command::ReceiveReport(report.clone()), t(0)),
        Ok(vec![report_received()])
    );
    assert_eq!(
        given(&[report_received()]).when(Command::ReceiveReport(report), t(0)),
        Err(Refusal::CaseAlreadyExists)
    );
}

#[test]
fn a_hash_match_on_a_known_host_classifies() {
    let then = given(&[report_received()]).when(
        Command::Classify {
            host: Some(host()),
            classification: Some(classified(ContentClass::Csam)),
            forward_to: None,
            police_first: None,
        },
        t(0),
    );
    assert_eq!(
        then,
        Ok(vec![
            CaseEvent::HostResolved(host()),
            CaseEvent::Classified(classified(ContentClass::Csam))
        ])
    );
}

#[test]
fn no_match_asks_for_review() {
    let then = given(&[report_received()]).when(
        Command::Classify {
            host: Some(host()),
            classification: None,
            forward_to: None,
            police_first: None,
        },
        t(0),
    );
    assert_eq!(
        then,
        Ok(vec![
            CaseEvent::HostResolved(host()),
            CaseEvent::ReviewRequested(ReviewRequested {
                reason: ReviewReason::NoAutomatedMatch,
                police_first: None,
            })
        ])
    );
}

#[test]
fn an_unknown_host_asks_for_review_even_with_a_match() {
    let then = given(&[report_received()]).when(
        Command::Classify {
            host: None,
            classification: Some(classified(ContentClass::Csam)),
            forward_to: None,
            police_first: None,
        },
        t(0),
    );
    assert_eq!(
        then,
        Ok(vec![CaseEvent::ReviewRequested(ReviewRequested {
            reason: ReviewReason::UnknownHost,
            police_first: None,
        })])
    );
}

#[test]
fn classifying_twice_changes_nothing() {
    let then = given(&[
        report_received(),
        CaseEvent::HostResolved(host()),
        CaseEvent::Classified(classified(ContentClass::Csam)),
    ])
    .when(
        Command::Classify {
            host: Some(host()),
            classification: Some(classified(ContentClass::Csam)),
            forward_to: None,
            police_first: None,
        },
        t(0),
    );
    assert_eq!(then, Ok(vec![]));
}

#[test]
fn a_csam_notice_carries_every_art_16_element_but_no_notifier() {
    let events = issued(ContentClass::Csam);
    let Some(CaseEvent::NoticeIssued(NoticeIssued { notice })) = events.last() else {
        panic!("no notice issued: {events:?}");
    };
    assert_eq!(notice.notice_id, notice_id());
    assert!(notice.explanation.contains("art. 252 Wetboek van Strafrecht"));
    assert!(notice.explanation.contains("https://videos.example/v/123"));
    assert_eq!(notice.locations[0].hashes, vec![sha256()]);
    assert!(notice.good_faith_statement.contains("good faith"));
    assert_eq!(notice.notifier, None, "16(2)(c) is waived for CSAM and we use that");
    assert_eq!(notice.trusted_flagger.tdb_source_type, "SOURCE_TRUSTED_FLAGGER");
    assert_eq!(notice.tdb_category, "STATEMENT_CATEGORY_PROTECTION_OF_MINORS");
}

#[test]
fn a_non_csam_notice_names_the_organisation_as_notifier() {
    let events = issued(ContentClass::Ncii);
    let Some(CaseEvent::NoticeIssued(NoticeIssued { notice })) = events.last() else {
        panic!("no notice issued");
    };
    let notifier = notice.notifier.as_ref().expect("notifier");
    assert_eq!(notifier.email, "notices@example.org");
}

#[test]
fn a_harmful_but_lawful_notice_cites_the_terms_not_the_law() {
    let events = issued(ContentClass::SelfHarm);
    let Some(CaseEvent::NoticeIssued(NoticeIssued { notice })) = events.last() else {
        panic!("no notice issued");
    };
    assert_eq!(notice.illegality, notice::Illegality::IncompatibleWithTerms);
    assert_eq!(notice.tdb_decision_ground, "DECISION_GROUND_INCOMPATIBLE_CONTENT");
    assert!(!notice.explanation.contains("offence"));
}

#[test]
fn a_notice_for_an_unclassified_case_is_refused() {
    let then = given(&[report_received()]).when(
        Command::IssueNotice {
            notice_id: notice_id(),
            policy: policy(),
        },
        t(1),
    );
    assert_eq!(then, Err(Refusal::NotClassified));
}

#[test]
fn a_command_for_a_case_that_does_not_exist_is_refused() {
    assert_eq!(given(&[]).when(start(), t(0)), Err(Refusal::NoSuchCase));
}

#[test]
fn a_second_notice_is_never_issued() {
    let then = given(&issued(ContentClass::Csam)).when(
        Command::IssueNotice {
            notice_id: NoticeId(uuid::Uuid::from_u128(8)),
            policy: policy(),
        },
        t(2),
    );
    assert_eq!(then, Ok(vec![]));
}

#[test]
fn dispatch_starts_once_and_is_not_restarted_while_in_flight() {
    let scenario = given(&issued(ContentClass::Csam));
    assert_eq!(scenario.when(start(), t(2)), Ok(vec![started(1)]));
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    assert_eq!(given(&events).when(start(), t(2)), Ok(vec![]));
}

#[test]
fn an_attempt_without_an_outcome_for_too_long_is_recorded_as_lost_and_replaced_once() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    let in_flight = given(&events);
    assert_eq!(in_flight.when(start(), t(9)), Ok(vec![]), "not lost yet");
    let replaced = in_flight.when(start(), t(10)).unwrap();
    assert_eq!(replaced.len(), 2);
    assert!(
        matches!(&replaced[0], CaseEvent::DispatchFailed(DispatchFailed { attempt: 1, retry_at: Some(at), .. }) if *at == t(10))
    );
    assert_eq!(replaced[1], started(2));
    // Whoever decides next sees the new attempt in flight and starts nothing.
    events.extend(replaced);
    let case = Case::from_events(CaseId(uuid::Uuid::nil()), events.iter().map(|e| (e, t(10))));
    assert_eq!(case.decide(start(), t(11)), Ok(vec![]));
}

#[test]
fn a_delivery_is_recorded_for_the_attempt_in_flight_only() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    let scenario = given(&events);
    let delivered = DispatchOutcome::Delivered {
        platform_reference: Some("P-1".into()),
        message_id: None,
    };
    assert_eq!(
        scenario.when(
            Command::RecordDispatchOutcome {
                attempt: 1,
                outcome: delivered.clone(),
                policy: dispatch_policy(),
                channels: channels(),
            },
            t(3)
        ),
        Ok(vec![CaseEvent::NoticeDelivered(NoticeDelivered {
            notice_id: notice_id(),
            attempt: 1,
            platform_reference: Some("P-1".into()),
            message_id: None,
            submitted_by: None,
        })])
    );
    assert_eq!(
        scenario.when(
            Command::RecordDispatchOutcome {
                attempt: 2,
                outcome: delivered,
                policy: dispatch_policy(),
                channels: channels(),
            },
            t(3)
        ),
        Ok(vec![])
    );
}

#[test]
fn a_failed_dispatch_backs_off_with_jitter_then_gives_up() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    let failure = |attempt| Command::RecordDispatchOutcome {
        attempt,
        outcome: DispatchOutcome::Failed {
            reason: "HTTP 503".into(),
            next: AfterFailure::Retry { not_before: None },
        },
        policy: dispatch_policy(),
        channels: vec![api()],
    };
    let first = given(&events).when(failure(1), t(3)).unwrap();
    let [CaseEvent::DispatchFailed(failed)] = &first[..] else {
        panic!("{first:?}")
    };
    // Half the back-off is fixed, the other half spread by the notice id.
    let retry_at = failed.retry_at.unwrap();
    assert!(
        retry_at >= t(3) + Duration::seconds(30) && retry_at <= t(4),
        "{retry_at}"
    );
    assert!(!failed.channel_exhausted);
    events.extend(first);
    assert_eq!(
        given(&events).when(start(), retry_at - Duration::seconds(1)),
        Ok(vec![]),
        "not before retry_at"
    );
    assert_eq!(given(&events).when(start(), retry_at), Ok(vec![started(2)]));
    events.push(started(2));
    let second = given(&events).when(failure(2), t(5)).unwrap();
    assert!(
        matches!(&second[0], CaseEvent::DispatchFailed(f) if f.retry_at.is_some_and(|at| at >= t(6) && at <= t(7)))
    );
    events.extend(second);
    events.push(started(3));
    let last = given(&events).when(failure(3), t(8)).unwrap();
    assert!(
        matches!(&last[0], CaseEvent::DispatchFailed(f) if f.retry_at.is_none() && f.reason.ends_with("no other channel is left to try"))
    );
    events.extend(last);
    let gave_up = given(&events);
    assert_eq!(gave_up.case.status, CaseStatus::DispatchFailed);
    assert_eq!(
        gave_up.case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::DeliverByHand)
    );
    assert_eq!(gave_up.when(start(), t(60)), Ok(vec![]));
}

#[test]
fn a_platform_asking_to_wait_is_not_retried_sooner() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    let asked = t(3) + Duration::hours(1);
    let then = given(&events)
        .when(
            Command::RecordDispatchOutcome {
                attempt: 1,
                outcome: DispatchOutcome::Failed {
                    reason: "429".into(),
                    next: AfterFailure::Retry {
                        not_before: Some(asked),
                    },
                },
                policy: dispatch_policy(),
                channels: channels(),
            },
            t(3),
        )
        .unwrap();
    assert!(matches!(&then[..], [CaseEvent::DispatchFailed(f)] if f.retry_at == Some(asked)));
}

#[test]
fn a_channel_that_cannot_take_the_notice_hands_over_to_the_next() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    let refused = given(&events)
        .when(
            Command::RecordDispatchOutcome {
                attempt: 1,
                outcome: DispatchOutcome::Failed {
                    reason: "401 credentials refused".into(),
                    next: AfterFailure::NextChannel,
                },
                policy: dispatch_policy(),
                channels: channels(),
            },
            t(3),
        )
        .unwrap();
    assert!(matches!(&refused[..], [CaseEvent::DispatchFailed(f)] if f.retry_at == Some(t(3)) && f.channel_exhausted));
    events.extend(refused);
    let next = given(&events).when(start(), t(3)).unwrap();
    assert_eq!(
        next,
        vec![CaseEvent::DispatchStarted(DispatchStarted {
            notice_id: notice_id(),
            attempt: 2,
            channel: email(),
        })]
    );
    // Once the e-mail is done with too, nothing is left: an analyst takes over.
    events.extend(next);
    events.push(CaseEvent::DispatchFailed(DispatchFailed {
        notice_id: notice_id(),
        attempt: 2,
        reason: "550 mailbox unavailable".into(),
        retry_at: Some(t(4)),
        channel_exhausted: true,
    }));
    let abandoned = given(&events).when(start(), t(4)).unwrap();
    assert!(matches!(&abandoned[..], [CaseEvent::DispatchAbandoned(_)]));
}

#[test]
fn a_refusal_by_the_platform_is_recorded_and_goes_to_an_analyst() {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    let rejected = given(&events)
        .when(
            Command::RecordDispatchOutcome {
                attempt: 1,
                outcome: DispatchOutcome::Rejected {
                    reason: "not illegal in our view".into(),
                    answer: Some("{}".into()),
                },
                policy: dispatch_policy(),
                channels: channels(),
            },
            t(3),
        )
        .unwrap();
    assert!(matches!(&rejected[..], [CaseEvent::PlatformRejected(r)] if r.attempt == Some(1)));
    events.extend(rejected);
    let case = given(&events);
    assert_eq!(case.case.status, CaseStatus::Rejected);
    assert_eq!(
        case.case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::AssessRejection)
    );
    assert_eq!(
        case.when(start(), t(60)),
        Ok(vec![]),
        "a refused notice is not sent again"
    );
}

#[test]
fn a_web_form_waits_for_its_analyst_and_is_recorded_once() {
    let mut events = issued(ContentClass::Csam);
    let form = Channel::Manual {
        form_url: Some("https://videos.example/report".into()),
    };
    let start_manual = Command::StartDispatch {
        lost_after: Duration::minutes(10),
        policy: dispatch_policy(),
        channels: vec![form.clone()],
        pace: None,
    };
    events.extend(given(&events).when(start_manual.clone(), t(2)).unwrap());
    let waiting = given(&events);
    assert_eq!(
        waiting.case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::SubmitNotice)
    );
    assert_eq!(waiting.when(start_manual, t(600)), Ok(vec![]), "never presumed lost");
    let submit = Command::RecordManualSubmission {
        analyst_id: "ann".into(),
        reference: Some("TICKET-9".into()),
    };
    let submitted = waiting.when(submit.clone(), t(700)).unwrap();
    assert!(
        matches!(&submitted[..], [CaseEvent::NoticeDelivered(d)] if d.attempt == 1 && d.submitted_by.as_deref() == Some("ann"))
    );
    events.extend(submitted);
    assert_eq!(given(&events).when(submit, t(701)), Ok(vec![]));
}

#[test]
fn events_round_trip_through_json_with_their_type_tag() {
    for event in delivered() {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.type_name());
        assert_eq!(serde_json::from_value::<CaseEvent>(json).unwrap(), event);
    }
}

fn reported_again(hash: MediaHash) -> ReportedAgain {
    ReportedAgain {
        report_id: ReportId(uuid::Uuid::from_u128(2)),
        reporter: Reporter::Partner {
            partner_id: "hotline-de".into(),
            partner_reference: "DE-9".into(),
        },
        new_hashes: vec![sha256(), hash],
        claimed_class: None,
    }
}

#[test]
fn a_repeat_report_on_an_open_case_keeps_only_new_hashes() {
    let other = MediaHash::parse(HashAlgorithm::Md5, &"c".repeat(32), None).unwrap();
    let then = given(&[report_received()]).when(Command::ReportAgain(reported_again(other.clone())), t(1));
    let Ok(events) = then else { panic!("{then:?}") };
    let [CaseEvent::ReportedAgain(again)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(again.new_hashes, vec![other]);
}

#[test]
fn a_repeat_report_on_a_closed_case_is_refused_and_recorded_as_a_reappearance() {
    let mut events = delivered();
    events.push(CaseEvent::RemovalVerified(RemovalVerified {
        http_status: 410,
        next_check_at: None,
    }));
    events.push(CaseEvent::CaseClosed(CaseClosed {
        outcome: CaseOutcome::Removed,
    }));
    let closed = given(&events);
    assert_eq!(
        closed.when(Command::ReportAgain(reported_again(sha256())), t(20)),
        Err(Refusal::CaseClosed)
    );
    let reappeared = Reappeared {
        report_id: ReportId(uuid::Uuid::from_u128(2)),
        new_case_id: CaseId(uuid::Uuid::from_u128(3)),
    };
    assert_eq!(
        closed.when(Command::RecordReappearance(reappeared.clone()), t(20)),
        Ok(vec![CaseEvent::Reappeared(reappeared.clone())])
    );
    assert_eq!(
        given(&[report_received()]).when(Command::RecordReappearance(reappeared), t(20)),
        Err(Refusal::CaseOpen)
    );
}

fn awaiting_review() -> Vec<CaseEvent> {
    vec![
        report_received(),
        CaseEvent::HostResolved(host()),
        CaseEvent::ReviewRequested(ReviewRequested {
            reason: ReviewReason::NoAutomatedMatch,
            police_first: None,
        }),
    ]
}

fn actionable() -> Verdict {
    Verdict::Actionable {
        class: ContentClass::Csam,
        legal_ground: ContentClass::Csam.legal_ground(t(0).date_naive()),
    }
}

fn decide_review(analyst: &str, verdict: Verdict, four_eyes: bool) -> Command {
    Command::DecideReview {
        analyst_id: analyst.into(),
        verdict,
        explanation: "depicts a child".into(),
        four_eyes,
        host: None,
        police_referral: None,
    }
}

#[test]
fn csam_abroad_with_a_network_hotline_is_forwarded_not_noticed() {
    let forward = ForwardedToHotline {
        country: "US".into(),
        partner_id: "ncmec".into(),
    };
    let then = given(&[report_received()]).when(
        Command::Classify {
            host: Some(host()),
            classification: Some(classified(ContentClass::Csam)),
            forward_to: Some(forward.clone()),
            police_first: None,
        },
        t(0),
    );
    let events = then.unwrap();
    assert_eq!(events.last(), Some(&CaseEvent::ForwardedToHotline(forward)));
    let mut all = vec![report_received()];
    all.extend(events);
    let forwarded = given(&all);
    assert_eq!(forwarded.case.status, CaseStatus::Forwarded);
    assert_eq!(
        forwarded.when(
            Command::IssueNotice {
                notice_id: notice_id(),
                policy: policy()
            },
            t(1)
        ),
        Ok(vec![])
    );
}

#[test]
fn four_eyes_needs_a_second_analyst_with_the_same_verdict() {
    let first = given(&awaiting_review())
        .when(decide_review("ann", actionable(), true), t(1))
        .unwrap();
    assert!(matches!(&first[..], [CaseEvent::AnalystDecided(d)] if d.awaiting_confirmation));
    let mut events = awaiting_review();
    events.extend(first);
    let pending = given(&events);
    assert_eq!(pending.case.status, CaseStatus::AwaitingReview);
    assert_eq!(
        pending.when(decide_review("ann", actionable(), true), t(2)),
        Err(Refusal::SameAnalyst("ann".into()))
    );
    let confirmed = pending.when(decide_review("bob", actionable(), true), t(2)).unwrap();
    let [CaseEvent::AnalystDecided(second), CaseEvent::Classified(classified)] = &confirmed[..] else {
        panic!("{confirmed:?}")
    };
    assert!(!second.awaiting_confirmation);
    assert_eq!(
        classified.evidence,
        Evidence::AnalystReview {
            analysts: vec!["ann".into(), "bob".into()]
        }
    );
    assert!(!classified.automated);
}

#[test]
fn a_different_second_verdict_starts_the_count_again() {
    let mut events = awaiting_review();
    events.extend(
        given(&awaiting_review())
            .when(decide_review("ann", actionable(), true), t(1))
            .unwrap(),
    );
    let other = Verdict::Actionable {
        class: ContentClass::CsamAiGenerated,
        legal_ground: None,
    };
    let then = given(&events).when(decide_review("bob", other, true), t(2)).unwrap();
    assert!(matches!(&then[..], [CaseEvent::AnalystDecided(d)] if d.awaiting_confirmation));
}

#[test]
fn without_four_eyes_one_analyst_classifies_and_not_actionable_closes() {
    let one = given(&awaiting_review())
        .when(decide_review("ann", actionable(), false), t(1))
        .unwrap();
    assert!(matches!(
        &one[..],
        [CaseEvent::AnalystDecided(_), CaseEvent::Classified(_)]
    ));
    let dismissed = given(&awaiting_review())
        .when(decide_review("ann", Verdict::NotActionable, true), t(1))
        .unwrap();
    assert_eq!(
        dismissed.last(),
        Some(&CaseEvent::CaseClosed(CaseClosed {
            outcome: CaseOutcome::NotActionable
        }))
    );
}

#[test]
fn a_review_decision_on_a_case_not_in_review_is_refused() {
    assert_eq!(
        given(&[report_received()]).when(decide_review("ann", actionable(), false), t(1)),
        Err(Refusal::NotInReview)
    );
}

/// Starts dispatch; an attempt counts as lost after ten minutes without an outcome.
fn start() -> Command {
    Command::StartDispatch {
        lost_after: Duration::minutes(10),
        policy: dispatch_policy(),
        channels: channels(),
        pace: None,
    }
}

fn api() -> Channel {
    Channel::Http {
        endpoint: host().notice_endpoint,
    }
}

fn email() -> Channel {
    Channel::Email {
        to: "abuse@videos.example".into(),
    }
}

/// The platform's channels: its API first, then e-mail.
fn channels() -> Vec<Channel> {
    vec![api(), email()]
}

fn claim(analyst: &str) -> Command {
    Command::ClaimReview {
        analyst_id: analyst.into(),
        lease: Duration::minutes(30),
    }
}

#[test]
fn a_claim_holds_until_it_expires_and_only_its_holder_decides_meanwhile() {
    let mut events = awaiting_review();
    events.extend(given(&events).when(claim("ann"), t(0)).unwrap());
    let claimed = given(&events);
    assert_eq!(
        claimed.when(claim("bob"), t(29)),
        Err(Refusal::ClaimedByOther("ann".into()))
    );
    assert_eq!(
        claimed.when(decide_review("bob", actionable(), false), t(29)),
        Err(Refusal::ClaimedByOther("ann".into()))
    );
    // Its holder renews it; once it lapsed, anyone may take the case.
    assert!(claimed.when(claim("ann"), t(29)).is_ok_and(|events| events.len() == 1));
    assert_eq!(
        claimed.when(claim("bob"), t(31)),
        Ok(vec![CaseEvent::ReviewClaimed(ReviewClaimed {
            analyst_id: "bob".into(),
            expires_at: Some(t(61)),
        })])
    );
    assert!(claimed.when(decide_review("bob", actionable(), false), t(31)).is_ok());
}

#[test]
fn a_decision_ends_the_claim_so_a_second_analyst_can_confirm() {
    let mut events = awaiting_review();
    events.extend(given(&events).when(claim("ann"), t(0)).unwrap());
    events.extend(
        given(&events)
            .when(decide_review("ann", actionable(), true), t(1))
            .unwrap(),
    );
    let pending = given(&events);
    assert_eq!(pending.case.claimed_by, None);
    assert!(pending.when(claim("bob"), t(2)).is_ok());
}

#[test]
fn an_analyst_decision_records_the_host_found_now_for_a_case_whose_host_was_unknown() {
    let mut events = vec![report_received()];
    events.push(CaseEvent::ReviewRequested(ReviewRequested {
        reason: ReviewReason::UnknownHost,
        police_first: None,
    }));
    let then = given(&events)
        .when(
            Command::DecideReview {
                analyst_id: "ann".into(),
                verdict: actionable(),
                explanation: "depicts a child".into(),
                four_eyes: false,
                host: Some(host()),
                police_referral: None,
            },
            t(1),
        )
        .unwrap();
    assert_eq!(
        then.iter().map(CaseEvent::type_name).collect::<Vec<_>>(),
        vec!["AnalystDecided", "HostResolved", "Classified"]
    );
    events.extend(then);
    assert!(matches!(
        given(&events).case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Notices,
            ..
        }
    ));
}

#[test]
fn a_case_classified_without_a_host_waits_for_an_operator_not_forever() {
    let mut events = vec![report_received()];
    events.push(CaseEvent::ReviewRequested(ReviewRequested {
        reason: ReviewReason::UnknownHost,
        police_first: None,
    }));
    events.extend(
        given(&events)
            .when(decide_review("ann", actionable(), false), t(1))
            .unwrap(),
    );
    assert_eq!(
        given(&events).case.wait(&WaitLimits::default()),
        Wait::Operator(StuckReason::HostUnknown)
    );
}

#[test]
fn each_waiting_state_names_its_stage_and_deadline() {
    let limits = WaitLimits::default();
    let wait = |events: &[CaseEvent]| given(events).case.wait(&limits);
    assert_eq!(
        wait(&[report_received()]),
        Wait::Stage {
            stage: StageKind::Classify,
            due_at: t(0) + limits.stage_stale_after
        }
    );
    let mut events = issued(ContentClass::Csam);
    assert_eq!(
        wait(&events),
        Wait::Stage {
            stage: StageKind::Dispatch,
            due_at: t(0) + limits.stage_stale_after
        }
    );
    events.extend(given(&events).when(start(), t(0)).unwrap());
    assert_eq!(
        wait(&events),
        Wait::Stage {
            stage: StageKind::Dispatch,
            due_at: t(0) + limits.dispatch_in_flight
        }
    );
}

#[test]
fn a_retracted_case_sends_and_checks_nothing_more() {
    let mut events = issued(ContentClass::Csam);
    let retracted = given(&events)
        .when(
            Command::Retract {
                reason: "hash delisted".into(),
            },
            t(2),
        )
        .unwrap();
    assert_eq!(
        retracted,
        vec![CaseEvent::Retracted(Retracted {
            reason: "hash delisted".into()
        })]
    );
    events.extend(retracted);
    let case = given(&events);
    assert_eq!(case.case.status, CaseStatus::Retracted);
    assert_eq!(case.when(start(), t(3)), Ok(vec![]));
    assert_eq!(case.when(Command::Retract { reason: "again".into() }, t(3)), Ok(vec![]));
}

#[test]
fn a_delisting_retracts_only_a_case_that_rests_on_the_delisted_entry() {
    let events = issued(ContentClass::Csam);
    let delisted = |list: &str, value: String| Command::RetractDelisted {
        list: list.into(),
        value,
        reason: "hash delisted from national: false positive".into(),
    };
    assert_eq!(
        given(&events).when(delisted("national", "cd".repeat(32)), t(2)),
        Ok(vec![])
    );
    assert_eq!(given(&events).when(delisted("iwf", "ab".repeat(32)), t(2)), Ok(vec![]));
    assert_eq!(
        given(&events).when(delisted("national", "ab".repeat(32)), t(2)),
        Ok(vec![CaseEvent::Retracted(Retracted {
            reason: "hash delisted from national: false positive".into()
        })])
    );
}

#[test]
fn a_notice_names_its_evidence_and_claims_no_match_that_did_not_happen() {
    let by_hash = &issued(ContentClass::Csam)[3];
    let CaseEvent::NoticeIssued(NoticeIssued { notice }) = by_hash else {
        panic!("{by_hash:?}")
    };
    assert!(notice
        .explanation
        .contains("hash list national (version 3) exactly, by sha256"));
    assert_eq!(notice.reported_at, Some(t(0)));
    assert_eq!(notice.assessed_at, Some(t(0)));

    let mut events = awaiting_review();
    events.extend(
        given(&events)
            .when(decide_review("ann", actionable(), false), t(1))
            .unwrap(),
    );
    events.push(CaseEvent::HostResolved(host()));
    let by_analyst = given(&events)
        .when(
            Command::IssueNotice {
                notice_id: notice_id(),
                policy: policy(),
            },
            t(2),
        )
        .unwrap();
    let [CaseEvent::NoticeIssued(NoticeIssued { notice })] = &by_analyst[..] else {
        panic!("{by_analyst:?}")
    };
    assert!(!notice.explanation.contains("hash"), "{}", notice.explanation);
    assert!(
        notice.explanation.contains("1 of our analysts assessed it"),
        "{}",
        notice.explanation
    );
    assert!(notice.assessment.is_some());
}

#[test]
fn our_pace_defers_an_attempt_without_counting_it() {
    let events = issued(ContentClass::Csam);
    let paced = Command::StartDispatch {
        lost_after: Duration::minutes(10),
        policy: dispatch_policy(),
        channels: channels(),
        pace: Some(Deferral {
            until: t(5),
            reason: "the platform's circuit breaker is open".into(),
        }),
    };
    let deferred = given(&events).when(paced.clone(), t(2)).unwrap();
    assert!(matches!(&deferred[..], [CaseEvent::DispatchDeferred(d)] if d.until == t(5)));
    let mut events = events;
    events.extend(deferred);
    let waiting = given(&events);
    assert_eq!(waiting.case.dispatch.attempts, 0, "nothing was sent");
    assert_eq!(waiting.when(start(), t(4)), Ok(vec![]), "not before the deferral ends");
    assert_eq!(waiting.when(start(), t(5)), Ok(vec![started(1)]));
}

fn retracted_after_delivery() -> Vec<CaseEvent> {
    let mut events = delivered();
    events.push(CaseEvent::Retracted(Retracted {
        reason: "hash delisted".into(),
    }));
    events
}

fn start_withdrawal() -> Command {
    Command::StartWithdrawal {
        lost_after: Duration::minutes(10),
        policy: dispatch_policy(),
    }
}

#[test]
fn a_notice_delivered_before_the_retraction_is_withdrawn_on_its_channel_once() {
    let case = given(&retracted_after_delivery());
    assert!(matches!(
        case.case.wait(&WaitLimits::default()),
        Wait::Stage { stage: StageKind::Dispatch, due_at } if due_at == t(0)
    ));
    let started = case.when(start_withdrawal(), t(1)).unwrap();
    assert_eq!(
        started,
        vec![CaseEvent::WithdrawalStarted(WithdrawalStarted {
            notice_id: notice_id(),
            attempt: 1,
            channel: api(),
        })]
    );
    let mut events = retracted_after_delivery();
    events.extend(started);
    let withdrawn = given(&events)
        .when(
            Command::RecordWithdrawalOutcome {
                attempt: 1,
                outcome: DispatchOutcome::Delivered {
                    platform_reference: None,
                    message_id: None,
                },
                policy: dispatch_policy(),
            },
            t(2),
        )
        .unwrap();
    assert!(matches!(&withdrawn[..], [CaseEvent::NoticeWithdrawn(_)]));
    events.extend(withdrawn);
    let done = given(&events);
    assert_eq!(done.case.wait(&WaitLimits::default()), Wait::Done);
    assert_eq!(done.when(start_withdrawal(), t(3)), Ok(vec![]));
}

#[test]
fn a_case_retracted_before_its_notice_left_owes_no_withdrawal() {
    let mut events = issued(ContentClass::Csam);
    events.push(CaseEvent::Retracted(Retracted {
        reason: "hash delisted".into(),
    }));
    let case = given(&events);
    assert_eq!(case.case.wait(&WaitLimits::default()), Wait::Done);
    assert_eq!(case.when(start_withdrawal(), t(1)), Ok(vec![]));
}

#[test]
fn a_withdrawal_no_channel_took_goes_to_an_analyst_who_records_it() {
    let mut events = retracted_after_delivery();
    events.push(CaseEvent::WithdrawalStarted(WithdrawalStarted {
        notice_id: notice_id(),
        attempt: 1,
        channel: api(),
    }));
    events.extend(
        given(&events)
            .when(
                Command::RecordWithdrawalOutcome {
                    attempt: 1,
                    outcome: DispatchOutcome::Failed {
                        reason: "410 endpoint gone".into(),
                        next: AfterFailure::NextChannel,
                    },
                    policy: dispatch_policy(),
                },
                t(2),
            )
            .unwrap(),
    );
    let stuck = given(&events);
    assert_eq!(
        stuck.case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::WithdrawByHand)
    );
    let by_hand = stuck
        .when(
            Command::RecordManualSubmission {
                analyst_id: "ann".into(),
                reference: None,
            },
            t(3),
        )
        .unwrap();
    assert!(
        matches!(&by_hand[..], [CaseEvent::WithdrawalStarted(_), CaseEvent::NoticeWithdrawn(w)] if w.submitted_by.as_deref() == Some("ann"))
    );
}
