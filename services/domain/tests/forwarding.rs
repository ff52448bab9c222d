//! Forwarding, given/when/then: CSAM hosted abroad goes to the hotline of the hosting
//! country, attempt by attempt, and the case closes when the hotline confirms it acts, or
//! unconfirmed when its window passes.

use chrono::Duration;
use dijkwacht_domain::*;

mod common;
use common::*;

fn forwarded() -> Vec<CaseEvent> {
    vec![
        report_received(),
        CaseEvent::HostResolved(HostResolved {
            country: "US".into(),
            dsa_platform: false,
            ..host()
        }),
        CaseEvent::Classified(classified(ContentClass::Csam)),
        CaseEvent::ForwardedToHotline(ForwardedToHotline {
            country: "US".into(),
            partner_id: "ncmec".into(),
        }),
    ]
}

fn api() -> Channel {
    Channel::Http {
        endpoint: "https://hotline.example/forwards".into(),
    }
}

fn start(channel: Option<Channel>) -> Command {
    Command::StartForward {
        lost_after: Duration::minutes(5),
        policy: dispatch_policy(),
        channel,
    }
}

fn outcome(attempt: u32, outcome: DispatchOutcome) -> Command {
    Command::RecordForwardOutcome {
        attempt,
        outcome,
        policy: dispatch_policy(),
        confirm_within: Duration::days(7),
    }
}

fn taken() -> DispatchOutcome {
    DispatchOutcome::Delivered {
        platform_reference: Some("US-77".into()),
        message_id: None,
    }
}

fn confirm(by: &str) -> Command {
    Command::ConfirmForward {
        recorded_by: by.into(),
        reference: Some("US-77".into()),
        note: None,
    }
}

fn started() -> CaseEvent {
    CaseEvent::ForwardStarted(ForwardStarted {
        partner_id: "ncmec".into(),
        attempt: 1,
        channel: api(),
    })
}

/// Forwarded and sent at t(0): the hotline has until t(7 days).
fn sent() -> Vec<CaseEvent> {
    let mut events = forwarded();
    events.push(started());
    events.push(CaseEvent::ForwardSent(ForwardSent {
        partner_id: "ncmec".into(),
        attempt: 1,
        reference: Some("US-77".into()),
        confirm_by: t(7 * 24 * 60),
    }));
    events
}

#[test]
fn a_forward_leaves_at_once_and_is_sent_once() {
    let case = given(&forwarded()).case;
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Dispatch,
            due_at: t(0)
        },
        "no message tells dispatch: its wake-up does"
    );
    assert_eq!(given(&forwarded()).when(start(Some(api())), t(1)), Ok(vec![started()]));
    let mut in_flight = forwarded();
    in_flight.push(started());
    assert_eq!(
        given(&in_flight).when(start(Some(api())), t(2)),
        Ok(vec![]),
        "still in flight"
    );
    assert_eq!(
        given(&in_flight).when(outcome(1, taken()), t(1)),
        Ok(vec![CaseEvent::ForwardSent(ForwardSent {
            partner_id: "ncmec".into(),
            attempt: 1,
            reference: Some("US-77".into()),
            confirm_by: t(1) + Duration::days(7),
        })])
    );
    assert_eq!(given(&sent()).when(start(Some(api())), t(10)), Ok(vec![]));
}

#[test]
fn the_hotlines_confirmation_closes_the_case_once() {
    let case = given(&sent()).case;
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Followup,
            due_at: t(7 * 24 * 60)
        }
    );
    let then = given(&sent()).when(confirm("partner:ncmec"), t(60)).unwrap();
    assert_eq!(
        then,
        vec![
            CaseEvent::ForwardConfirmed(ForwardConfirmed {
                partner_id: "ncmec".into(),
                recorded_by: "partner:ncmec".into(),
                reference: Some("US-77".into()),
                note: None,
            }),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Forwarded
            }),
        ]
    );
    let mut confirmed = sent();
    confirmed.extend(then);
    assert_eq!(given(&confirmed).when(confirm("partner:ncmec"), t(61)), Ok(vec![]));
}

#[test]
fn without_a_confirmation_the_case_closes_when_the_window_passes_and_a_late_one_is_still_recorded() {
    assert_eq!(
        given(&sent()).when(Command::CloseForward, t(7 * 24 * 60 - 1)),
        Ok(vec![])
    );
    let closed = given(&sent()).when(Command::CloseForward, t(7 * 24 * 60)).unwrap();
    assert_eq!(
        closed,
        vec![CaseEvent::CaseClosed(CaseClosed {
            outcome: CaseOutcome::ForwardUnconfirmed
        })]
    );
    let mut history = sent();
    history.extend(closed);
    let late = given(&history).when(confirm("partner:ncmec"), t(8 * 24 * 60)).unwrap();
    assert!(matches!(&late[..], [CaseEvent::ForwardConfirmed(_)]), "{late:?}");
}

#[test]
fn a_hotline_without_an_api_is_forwarded_by_an_analyst_who_records_its_confirmation() {
    let then = given(&forwarded()).when(start(None), t(1)).unwrap();
    assert!(
        matches!(&then[..], [CaseEvent::ForwardFailed(ForwardFailed { retry_at: None, reason, .. })] if reason.contains("no forwarding API")),
        "{then:?}"
    );
    let mut history = forwarded();
    history.extend(then);
    let case = given(&history).case;
    assert_eq!(
        case.wait(&WaitLimits::default()),
        Wait::Analyst(AnalystTask::ForwardByHand)
    );
    let closed = given(&history).when(confirm("analyst:ann"), t(30)).unwrap();
    assert!(matches!(
        &closed[..],
        [
            CaseEvent::ForwardConfirmed(_),
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Forwarded
            })
        ]
    ));
}

#[test]
fn a_failed_forward_is_retried_then_handed_to_an_analyst() {
    let unavailable = || DispatchOutcome::Failed {
        reason: "503".into(),
        next: AfterFailure::Retry { not_before: None },
    };
    let mut history = forwarded();
    history.push(started());
    let retried = given(&history).when(outcome(1, unavailable()), t(1)).unwrap();
    let [CaseEvent::ForwardFailed(ForwardFailed {
        retry_at: Some(retry_at),
        ..
    })] = &retried[..]
    else {
        panic!("{retried:?}")
    };
    history.extend(retried.clone());
    assert_eq!(
        given(&history).case.wait(&WaitLimits::default()),
        Wait::Stage {
            stage: StageKind::Dispatch,
            due_at: *retry_at
        }
    );
    let last = dispatch_policy().max_attempts;
    history.push(CaseEvent::ForwardStarted(ForwardStarted {
        partner_id: "ncmec".into(),
        attempt: last,
        channel: api(),
    }));
    let given_up = given(&history).when(outcome(last, unavailable()), t(30)).unwrap();
    assert!(matches!(
        &given_up[..],
        [CaseEvent::ForwardFailed(ForwardFailed { retry_at: None, .. })]
    ));
}

#[test]
fn only_a_forwarded_case_takes_a_confirmation() {
    assert_eq!(
        given(&delivered()).when(confirm("partner:ncmec"), t(5)),
        Err(Refusal::NotForwarded)
    );
}
