//! Nothing stuck, nothing lost, nothing sent twice: cases in every waiting state survive a
//! broker that forgets everything, because their wake-ups were written with their events.

use crate::support::event_types;
use chrono::TimeDelta;
use dijkwacht_domain::*;
use dijkwacht_runtime::{CaseCommand, EventStore, Metadata};
use dijkwacht_tests::{assert_read_models_equal_a_rebuild, eventually, script, TestOptions, TestSystem, PLATFORM_ID};
use std::collections::BTreeMap;
use std::time::Duration;

fn report(system: &TestSystem, name: &str) -> ReportReceived {
    script::report(name, system.content_url(name))
}

fn host(system: &TestSystem) -> HostResolved {
    script::host(
        PLATFORM_ID,
        "Simulated platform",
        format!("http://{}/notices", system.simulator_addr),
    )
}

/// The simulated platform's one channel: its API.
fn channels(system: &TestSystem) -> Vec<Channel> {
    vec![Channel::Http {
        endpoint: host(system).notice_endpoint,
    }]
}

fn classify(host: Option<HostResolved>, at: chrono::DateTime<chrono::Utc>) -> Command {
    script::classify(host, ContentClass::Csam, at)
}

fn policy() -> DispatchPolicy {
    script::dispatch_policy()
}

/// Carries out `commands` on a new case through the command path, one at a time, as the
/// stages would have; returns the case id.
async fn case_in_state(store: &EventStore, now: chrono::DateTime<chrono::Utc>, commands: Vec<Command>) -> CaseId {
    let case_id = CaseId::new();
    for command in commands {
        let executed = store
            .execute(&[CaseCommand::new(case_id, command, Metadata::actor("test"))], now)
            .await
            .unwrap();
        assert_eq!(executed.outcomes, vec![Ok(())]);
    }
    case_id
}

fn count(events: &[&str], name: &str) -> usize {
    events.iter().filter(|e| **e == name).count()
}

#[tokio::test]
async fn cases_in_every_waiting_state_move_on_after_the_broker_forgot_everything() {
    // Nothing runs while the cases are brought into their states.
    let system = TestSystem::start(TestOptions {
        parts: vec![],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    // The app's store: its wake-ups follow the test's limits.
    let store = system.app.store.clone();
    let now = system.clock_now();
    let notice = |_| Command::IssueNotice {
        notice_id: NoticeId::new(),
        policy: system.settings.notice_policy(),
    };
    let delivered = Command::RecordDispatchOutcome {
        attempt: 1,
        outcome: DispatchOutcome::Delivered {
            platform_reference: None,
            message_id: None,
        },
        policy: policy(),
        channels: channels(&system),
    };
    let failed = Command::RecordDispatchOutcome {
        attempt: 1,
        outcome: DispatchOutcome::Failed {
            reason: "503".into(),
            next: AfterFailure::Retry { not_before: None },
        },
        policy: policy(),
        channels: channels(&system),
    };
    let received = case_in_state(&store, now, vec![Command::ReceiveReport(report(&system, "received"))]).await;
    let classified = case_in_state(
        &store,
        now,
        vec![
            Command::ReceiveReport(report(&system, "classified")),
            classify(Some(host(&system)), now),
        ],
    )
    .await;
    let issued = case_in_state(
        &store,
        now,
        vec![
            Command::ReceiveReport(report(&system, "issued")),
            classify(Some(host(&system)), now),
            notice(()),
        ],
    )
    .await;
    // The process died between recording the attempt and sending it.
    let in_flight = case_in_state(
        &store,
        now,
        vec![
            Command::ReceiveReport(report(&system, "in-flight")),
            classify(Some(host(&system)), now),
            notice(()),
            Command::StartDispatch {
                lost_after: TimeDelta::seconds(90),
                policy: policy(),
                channels: channels(&system),
                pace: None,
            },
        ],
    )
    .await;
    let retrying = case_in_state(
        &store,
        now,
        vec![
            Command::ReceiveReport(report(&system, "retrying")),
            classify(Some(host(&system)), now),
            notice(()),
            Command::StartDispatch {
                lost_after: TimeDelta::seconds(90),
                policy: policy(),
                channels: channels(&system),
                pace: None,
            },
            failed,
        ],
    )
    .await;
    let awaiting_removal = case_in_state(
        &store,
        now,
        vec![
            Command::ReceiveReport(report(&system, "awaiting-removal")),
            classify(Some(host(&system)), now),
            notice(()),
            Command::StartDispatch {
                lost_after: TimeDelta::seconds(90),
                policy: policy(),
                channels: channels(&system),
                pace: None,
            },
            delivered,
        ],
    )
    .await;
    // Classified by an analyst while its host was (and is) unknown.
    let no_host = case_in_state(
        &store,
        now,
        vec![
            Command::ReceiveReport(report(&system, "no-host")),
            classify(None, now),
            Command::DecideReview {
                analyst_id: "analyst-1".into(),
                verdict: Verdict::Actionable {
                    class: ContentClass::Csam,
                    legal_ground: ContentClass::Csam.legal_ground(now.date_naive()),
                },
                explanation: "depicts a child".into(),
                four_eyes: false,
                host: None,
                police_referral: None,
            },
        ],
    )
    .await;
    // The broker had every message and lost them all.
    sqlx::query("DELETE FROM outbox")
        .execute(&system.database.pool)
        .await
        .unwrap();

    let system = system.restart(|settings| settings.parts = None).await.unwrap();
    system.wait_until_ready().await;
    system.clock.advance(TimeDelta::seconds(301));

    let notice_sent = [received, classified, issued, in_flight, retrying];
    for case_id in notice_sent {
        eventually("a delivered notice", Duration::from_secs(60), || async {
            event_types(&store, case_id)
                .await
                .contains(&"NoticeDelivered")
                .then_some(())
        })
        .await;
    }
    eventually("a removal check", Duration::from_secs(60), || async {
        event_types(&store, awaiting_removal)
            .await
            .contains(&"StillOnline")
            .then_some(())
    })
    .await;
    for case_id in notice_sent.into_iter().chain([awaiting_removal]) {
        let events = event_types(&store, case_id).await;
        assert_eq!(count(&events, "NoticeIssued"), 1, "{case_id}: {events:?}");
        assert_eq!(count(&events, "NoticeDelivered"), 1, "{case_id}: {events:?}");
    }
    let in_flight_events = event_types(&store, in_flight).await;
    assert_eq!(
        (
            count(&in_flight_events, "DispatchFailed"),
            count(&in_flight_events, "DispatchStarted")
        ),
        (1, 2),
        "the lost attempt is recorded as failed and replaced once"
    );

    // One notice per case at the platform, whatever was re-sent.
    let notices = system.simulator.notices();
    let mut per_case: BTreeMap<String, usize> = BTreeMap::new();
    for received in &notices {
        *per_case
            .entry(received.notice["case_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_case.len(), notice_sent.len());
    assert!(per_case.values().all(|n| *n == 1), "{per_case:?}");

    // The case nobody can send a notice for waits for an operator, with its reason.
    let (status, queue) = system.get("/v1/operator/queue", &system.operator_key()).await;
    assert_eq!(status, 200);
    let stuck: Vec<(&str, &str)> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["case_id"].as_str().unwrap(), entry["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(stuck, vec![(no_host.to_string().as_str(), "host_unknown")]);
    let (_, health) = system.get("/readyz", "").await;
    assert_eq!(health["operator_queue"], 1);
    assert_eq!(
        event_types(&store, no_host).await,
        vec!["ReportReceived", "ReviewRequested", "AnalystDecided", "Classified"],
        "nothing is tried for it"
    );

    assert_eq!(store.verify().await.unwrap(), vec![]);
    assert_read_models_equal_a_rebuild(&system.database).await;
    system.app.stop().await;
}
