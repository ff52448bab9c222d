//! Police first, given/when/then: new material that may show a child in danger goes to the
//! police before any notice, and the case is held — no notice, no check of the location —
//! until the police (or an analyst) release it.

use chrono::Duration;
use dijkwacht_domain::*;

mod common;
use common::*;

fn referral() -> PoliceReferral {
    PoliceReferral {
        partner_id: "police-nl".into(),
        reasons: vec![ReferralReason::NewMaterial, ReferralReason::VictimInDanger],
        note: Some("the room may be identifiable".into()),
    }
}

fn in_review() -> Vec<CaseEvent> {
    vec![
        report_received(),
        CaseEvent::HostResolved(host()),
        CaseEvent::ReviewRequested(ReviewRequested {
            reason: ReviewReason::PoliceFirst,
            police_first: Some("new-csam".into()),
        }),
    ]
}

fn decide(analyst: &str, four_eyes: bool, police_referral: Option<PoliceReferral>) -> Command {
    Command::DecideReview {
        analyst_id: analyst.into(),
        verdict: Verdict::Actionable {
            class: ContentClass::Csam,
            legal_ground: ContentClass::Csam.legal_ground(t(0).date_naive()),
        },
        explanation: "a child, not in any list".into(),
        four_eyes,
        host: None,
        police_referral,
    }
}

fn held_for_police() -> CaseEvent {
    CaseEvent::HeldForPolice(HeldForPolice {
        partner_id: "police-nl".into(),
        reasons: vec![ReferralReason::NewMaterial, ReferralReason::VictimInDanger],
        note: Some("the room may be identifiable".into()),
        analysts: vec!["ann".into(), "bob".into()],
    })
}

fn api() -> Channel {
    Channel::Http {
        endpoint: "https://police.example/referrals".into(),
    }
}

fn started() -> CaseEvent {
    CaseEvent::ReferralStarted(ReferralStarted {
        partner_id: "police-nl".into(),
        attempt: 1,
        channel: api(),
    })
}

fn held() -> Vec<CaseEvent> {
    let mut events = in_review();
    events.extend(
        given(&in_review())
            .when(decide("ann", true, Some(referral())), t(0))
            .unwrap(),
    );
    let mut case = given(&events);
    let confirmed = case.when(decide("bob", true, None), t(0)).unwrap();
    events.extend(confirmed);
    case = given(&events);
    assert_eq!(case.case.status, CaseStatus::HeldForPolice);
    events
}

/// Held and received by the police at t(0): the hold runs three days.
fn referred() -> Vec<CaseEvent> {
    let mut events = held();
    events.push(started());
    events.push(CaseEvent::ReferredToPolice(ReferredToPolice {
        partner_id: "police-nl".into(),
        attempt: 1,
        reference: Some("POL-1".into()),
        message_id: None,
        hold_until: t(3 * 24 * 60),
        submitted_by: None,
    }));
    events
}

fn start(channel: Option<Channel>) -> Command {
    Command::StartReferral {
        lost_after: Duration::minutes(5),
        policy: dispatch_policy(),
        channel,
    }
}

fn release(by: &str) -> Command {
    Command::ReleaseFromPoliceHold {
        recorded_by: by.into(),
        note: None,
    }
}

#[test]
fn a_referral_under_four_eyes_holds_the_case_once_the_second_analyst_confirms() {
    let first = given(&in_review())
        .when(decide("ann", true, Some(referral())), t(0))
        .unwrap();
    assert!(
        matches!(&first[..], [CaseEvent::AnalystDecided(decided)] if decided.awaiting_confirmation),
        "the first analyst's referral waits for the second: {first:?}"
    );
    let mut events = in_review();
    events.extend(first);
    let then = given(&events).when(decide("bob", true, None), t(1)).unwrap();
    assert!(matches!(then.last(), Some(CaseEvent::HeldForPolice(_))), "{then:?}");
    assert_eq!(then.last(), Some(&held_for_police()));
}

#[test]
fn a_held_case_gets_no_notice_and_its_referral_leaves_by_dispatch_at_once() {
    let case = given(&held()).case;
    assert_eq!(
        given(&held()).when(
            Command::IssueNotice {
                notice_id: NoticeId(uuid::Uuid::nil()),
                policy: policy()
            },
            t(1)
        ),
        Ok(vec![])
    );
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Dispatch,
            due_at: t(0)
        }
    );
    assert_eq!(given(&held()).when(start(Some(api())), t(1)), Ok(vec![started()]));
    let then = given(&held()).when(start(None), t(1)).unwrap();
    assert!(
        matches!(
            &then[..],
            [CaseEvent::ReferralFailed(ReferralFailed { retry_at: None, .. })]
        ),
        "without a channel an analyst refers it: {then:?}"
    );
    let mut gave_up = held();
    gave_up.extend(then);
    assert_eq!(
        given(&gave_up).case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::ReferByHand)
    );
}

#[test]
fn the_police_receiving_the_referral_starts_the_hold_from_receipt() {
    let mut in_flight = held();
    in_flight.push(started());
    let then = given(&in_flight).when(
        Command::RecordReferralOutcome {
            attempt: 1,
            outcome: DispatchOutcome::Delivered {
                platform_reference: Some("POL-1".into()),
                message_id: None,
            },
            policy: dispatch_policy(),
            hold_for: Duration::days(3),
        },
        t(2),
    );
    assert_eq!(
        then,
        Ok(vec![CaseEvent::ReferredToPolice(ReferredToPolice {
            partner_id: "police-nl".into(),
            attempt: 1,
            reference: Some("POL-1".into()),
            message_id: None,
            hold_until: t(2) + Duration::days(3),
            submitted_by: None,
        })])
    );
    assert_eq!(
        given(&referred()).case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(3 * 24 * 60)
        },
        "follow-up looks again when the hold runs out"
    );
    assert_eq!(
        given(&referred()).when(start(Some(api())), t(10)),
        Ok(vec![]),
        "sent once"
    );
}

#[test]
fn nothing_checks_the_location_of_a_held_case() {
    let check = Command::RecordRemovalCheck {
        observation: Observation::Online { http_status: 200 },
        policy: FollowupPolicy::default(),
    };
    let then = given(&referred()).when(check, t(60));
    assert!(
        !matches!(&then, Ok(events) if !events.is_empty()),
        "a held case is not checked: {then:?}"
    );
}

#[test]
fn the_release_lets_the_normal_path_go_on() {
    let then = given(&referred()).when(release("partner:police-nl"), t(60)).unwrap();
    assert_eq!(
        then,
        vec![CaseEvent::PoliceReleased(PoliceReleased {
            recorded_by: "partner:police-nl".into(),
            note: None,
        })]
    );
    let mut released = referred();
    released.extend(then);
    let case = given(&released).case;
    assert_eq!(case.status, CaseStatus::Classified);
    assert!(matches!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Notices,
            ..
        }
    ));
    let notice = given(&released).when(
        Command::IssueNotice {
            notice_id: NoticeId(uuid::Uuid::nil()),
            policy: policy(),
        },
        t(61),
    );
    assert!(
        matches!(&notice, Ok(events) if matches!(&events[..], [CaseEvent::NoticeIssued(_)])),
        "{notice:?}"
    );
    assert_eq!(
        given(&released).when(release("analyst:ann"), t(62)),
        Ok(vec![]),
        "released once"
    );
}

#[test]
fn an_extension_moves_the_end_of_the_hold_and_must_lie_ahead() {
    let extend = |until| Command::ExtendPoliceHold {
        until,
        recorded_by: "partner:police-nl".into(),
        note: Some("search warrant pending".into()),
    };
    let then = given(&referred()).when(extend(t(10 * 24 * 60)), t(60)).unwrap();
    let mut extended = referred();
    extended.extend(then);
    assert_eq!(
        given(&extended).case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(10 * 24 * 60)
        }
    );
    assert_eq!(
        given(&referred()).when(extend(t(30)), t(60)),
        Err(Refusal::HoldEndsInThePast)
    );
    assert_eq!(
        given(&in_review()).when(extend(t(600)), t(60)),
        Err(Refusal::NotHeldForPolice)
    );
}

#[test]
fn a_hold_that_runs_out_goes_to_an_analyst_never_to_a_notice() {
    assert_eq!(
        given(&referred()).when(Command::LapsePoliceHold, t(60)),
        Ok(vec![]),
        "not yet"
    );
    let due = t(3 * 24 * 60);
    let then = given(&referred()).when(Command::LapsePoliceHold, due).unwrap();
    assert_eq!(
        then,
        vec![CaseEvent::PoliceHoldLapsed(PoliceHoldLapsed { hold_until: due })]
    );
    let mut lapsed = referred();
    lapsed.extend(then);
    let case = given(&lapsed).case;
    assert_eq!(case.status, CaseStatus::HeldForPolice);
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::PoliceHoldLapsed)
    );
    assert_eq!(given(&lapsed).when(Command::LapsePoliceHold, due), Ok(vec![]), "once");
}

#[test]
fn a_police_first_rule_sends_the_case_to_review_instead_of_on() {
    let classified = classified(ContentClass::Csam);
    let then = given(&[report_received()]).when(
        Command::Classify {
            host: Some(host()),
            classification: Some(classified),
            forward_to: None,
            police_first: Some("new-csam".into()),
        },
        t(0),
    );
    assert_eq!(then, Ok(in_review()[1..].to_vec()));
}

#[test]
fn a_rule_asks_for_new_material_of_its_classes_from_its_partners_only() {
    let rule = PoliceFirstRule {
        id: "new-csam".into(),
        classes: vec![ContentClass::Csam],
        new_material_only: true,
        partners: vec!["hotline-be".into()],
    };
    let CaseEvent::ReportReceived(report) = report_received() else {
        unreachable!()
    };
    let trusted = Classified {
        evidence: Evidence::TrustedClaim {
            partner_id: "hotline-be".into(),
        },
        ..classified(ContentClass::Csam)
    };
    assert!(
        rule.asks(&report, Some(&trusted)),
        "a partner's own CSAM classification"
    );
    assert!(rule.asks(&report, None), "CSAM claimed, nothing found");
    assert!(
        !rule.asks(&report, Some(&classified(ContentClass::Csam))),
        "a hash-list match is no new material"
    );
    let other = PoliceFirstRule {
        partners: vec!["someone-else".into()],
        ..rule.clone()
    };
    assert!(!other.asks(&report, Some(&trusted)));
    let ncii = Classified {
        class: ContentClass::Ncii,
        ..trusted
    };
    assert!(!rule.asks(&report, Some(&ncii)));
}

#[test]
fn reporters_see_a_held_case_in_progress() {
    let case = given(&referred()).case;
    assert_eq!(case.status.as_reporter_sees_it(), "in_progress");
    let in_review = given(&in_review()).case;
    assert_eq!(
        in_review.status.as_reporter_sees_it(),
        "in_progress",
        "like any case not yet acted on"
    );
    assert!(referred()[3..].iter().filter(|e| e.concerns_police()).count() >= 3);
}

#[test]
fn the_location_of_a_held_case_is_looked_at_only_where_the_police_allow_it() {
    let check = || Command::RecordHeldCheck {
        observation: Observation::Online { http_status: 200 },
        recheck_every: Duration::hours(6),
    };
    assert_eq!(given(&referred()).when(check(), t(60)), Ok(vec![]), "not allowed");
    let allow = Command::AllowHeldChecks {
        allowed: true,
        recorded_by: "partner:police-nl".into(),
    };
    let then = given(&referred()).when(allow.clone(), t(60)).unwrap();
    let mut allowed = referred();
    allowed.extend(then);
    assert_eq!(given(&allowed).when(allow, t(61)), Ok(vec![]), "allowed once");
    let case = given(&allowed).case;
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(0)
        },
        "the first check at once (the events of `given` are all at t(0))"
    );
    let then = given(&allowed).when(check(), t(60)).unwrap();
    assert_eq!(
        then,
        vec![CaseEvent::HeldLocationChecked(HeldLocationChecked {
            online: true,
            http_status: Some(200),
            next_check_at: t(60) + Duration::hours(6),
        })]
    );
    let mut checked = allowed.clone();
    checked.extend(then);
    let case = given(&checked).case;
    assert_eq!(case.status, CaseStatus::HeldForPolice, "a check changes nothing else");
    assert_eq!(given(&checked).when(check(), t(61)), Ok(vec![]), "not due again yet");
    let facts = ReferralFacts::of(&case).unwrap();
    assert!(facts.removal_checks_allowed);
    assert!(facts.last_check.is_some_and(|last| last.online));
}
