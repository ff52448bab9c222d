//! After delivery, on the test clock against the simulator: the platform's signed answers,
//! the deadline, reminders, and the escalation ladder.

use crate::support::{report_listed, report_listed_at, settled_on};
use chrono::TimeDelta;
use dijkwacht_domain::tdb::Enumeration;
use dijkwacht_runtime::Clock;
use dijkwacht_simulator::platform::{Behaviour, SimulatedAnswers};
use dijkwacht_simulator::DEFAULT_PLATFORM;
use dijkwacht_tests::{TestOptions, TestSystem, ANSWER_SECRET, FORUM_HOST, PLATFORM_ID};
use serde_json::{json, Value};

fn notice_id(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| e["type"] == "NoticeIssued")
        .and_then(|e| e["notice"]["notice_id"].as_str())
        .expect("a notice was issued")
        .to_owned()
}

fn count(events: &[Value], event_type: &str) -> usize {
    events.iter().filter(|e| e["type"] == event_type).count()
}

fn decision(event_id: &str, notice_id: &str) -> Value {
    json!({
        "type": "decision",
        "event_id": event_id,
        "notice_id": notice_id,
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
        "category": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED",
        "statement_of_reasons_id": "sor-1",
    })
}

/// A platform's answer is taken only signed with its secret, within the time window, and
/// once per event id.
#[tokio::test]
async fn a_signed_answer_is_recorded_once_and_a_forged_stale_or_foreign_one_refused() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    system.wait_until_ready().await;
    let case_id = report_listed(&system, "answered").await;
    let events = settled_on(&system, &case_id, "NoticeDelivered").await;
    let notice_id = notice_id(&events);
    let now = system.clock.now().timestamp();
    let receipt = json!({"type": "receipt", "event_id": "rcpt-1", "notice_id": notice_id});

    let (status, body) = system
        .platform_answer(PLATFORM_ID, "not-the-secret", now, &receipt)
        .await;
    assert_eq!(status, 401, "a forged signature: {body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("matches none"),
        "{body}"
    );
    let (status, body) = system
        .platform_answer(PLATFORM_ID, ANSWER_SECRET, now - 3600, &receipt)
        .await;
    assert_eq!(status, 401, "a stale timestamp: {body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("3600 s"),
        "{body}"
    );
    let (status, _) = system.platform_answer("forum", ANSWER_SECRET, now, &receipt).await;
    assert_eq!(status, 401, "a platform with no secret on record");

    let (status, body) = system.platform_answer(PLATFORM_ID, ANSWER_SECRET, now, &receipt).await;
    assert_eq!((status, &body), (200, &json!({"recorded": true})));
    let (status, body) = system
        .platform_answer(PLATFORM_ID, ANSWER_SECRET, now + 1, &receipt)
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({"recorded": false})),
        "the same event id again"
    );

    let other = json!({"type": "receipt", "event_id": "rcpt-2", "notice_id": uuid::Uuid::new_v4()});
    let (status, _) = system.platform_answer(PLATFORM_ID, ANSWER_SECRET, now, &other).await;
    assert_eq!(status, 404, "a notice we never sent");

    let events = settled_on(&system, &case_id, "ReceiptAcknowledged").await;
    assert_eq!(count(&events, "ReceiptAcknowledged"), 1);
}

/// Every identifier of the Transparency Database's lists is taken verbatim, the retired
/// categories too; a made-up one is refused with its pointer and the list.
#[tokio::test]
async fn every_transparency_database_identifier_is_accepted_and_a_made_up_one_refused() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    system.wait_until_ready().await;
    let case_id = report_listed(&system, "decided").await;
    let notice_id = notice_id(&settled_on(&system, &case_id, "NoticeDelivered").await);
    let now = system.clock.now().timestamp();
    let lists = [
        ("decision_visibility", Enumeration::DecisionVisibilities),
        ("decision_monetary", Enumeration::DecisionMonetaries),
        ("decision_provision", Enumeration::DecisionProvisions),
        ("decision_account", Enumeration::DecisionAccounts),
        ("decision_ground", Enumeration::DecisionGrounds),
        ("category", Enumeration::StatementCategories),
        ("automated_decision", Enumeration::AutomatedDecisions),
    ];
    let longest = lists.iter().map(|(_, list)| list.identifiers().len()).max().unwrap();
    assert!(Enumeration::StatementCategories
        .identifiers()
        .contains(&"STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"));
    for round in 0..longest {
        let mut body = decision(&format!("dec-{round}"), &notice_id);
        for (field, list) in &lists {
            let identifiers = list.identifiers();
            let identifier = identifiers[round % identifiers.len()];
            body[*field] = match *field {
                "decision_visibility" => json!([identifier]),
                _ => json!(identifier),
            };
        }
        let (status, answer) = system.platform_answer(PLATFORM_ID, ANSWER_SECRET, now, &body).await;
        assert_eq!(status, 200, "{body}: {answer}");
    }
    let mut made_up = decision("dec-x", &notice_id);
    made_up["decision_ground"] = json!("DECISION_GROUND_BECAUSE");
    let (status, answer) = system.platform_answer(PLATFORM_ID, ANSWER_SECRET, now, &made_up).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"][0]["pointer"], "/decision_ground");
    assert_eq!(
        answer["errors"][0]["message"],
        "unknown decision ground \"DECISION_GROUND_BECAUSE\"; one of: DECISION_GROUND_ILLEGAL_CONTENT, DECISION_GROUND_INCOMPATIBLE_CONTENT"
    );
    let events = settled_on(&system, &case_id, "PlatformDecided").await;
    assert_eq!(count(&events, "PlatformDecided"), longest);
}

/// The simulated platform answers as a real one would: a receipt at once, then its
/// decision when it takes the content down, which is checked at once, long before the
/// deadline.
#[tokio::test]
async fn a_platform_that_answers_has_its_receipt_and_decision_recorded_and_is_checked_at_once() {
    let answers = SimulatedAnswers {
        secret: ANSWER_SECRET.into(),
        platform_id: Some(PLATFORM_ID.into()),
        receipt: true,
        decision: true,
    };
    let system = TestSystem::start(TestOptions {
        deadline_secs: 3600,
        removal_delay_secs: 30,
        simulated_platforms: vec![(
            DEFAULT_PLATFORM.into(),
            Behaviour {
                answers: Some(answers),
                ..Behaviour::default()
            },
        )],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let case_id = report_listed(&system, "answering").await;
    settled_on(&system, &case_id, "ReceiptAcknowledged").await;
    system.clock.advance(TimeDelta::seconds(31));
    let events = settled_on(&system, &case_id, "CaseClosed").await;
    let decided = events
        .iter()
        .find(|e| e["type"] == "PlatformDecided")
        .expect("a decision");
    assert_eq!(
        decided["decision_visibility"],
        json!(["DECISION_VISIBILITY_CONTENT_REMOVED"])
    );
    assert_eq!(decided["category"], "STATEMENT_CATEGORY_PROTECTION_OF_MINORS");
    assert_eq!(count(&events, "RemovalVerified"), 1, "without waiting for the deadline");
    assert_eq!(count(&events, "ChaseRequested"), 0);
}

/// The platform (a forum behind an off-shore host) never acts: a reminder a round, two of
/// them, then the notice to its hosting provider, then the authority's queue. A receipt
/// would have stopped the reminders; this platform sends none.
#[tokio::test]
async fn a_platform_that_does_not_act_is_reminded_then_its_host_then_the_authority() {
    let system = TestSystem::start(TestOptions {
        remind_every_secs: 120,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let case_id = report_listed_at(&system, "ignored", &format!("http://{FORUM_HOST}/t/1")).await;
    settled_on(&system, &case_id, "DeadlineSet").await;
    // The deadline (60 s), then three more rounds of 120 s.
    let mut seen = Vec::new();
    for wanted in ["ReminderSent", "ReminderSent", "Escalated", "Escalated"] {
        system.clock.advance(TimeDelta::seconds(121));
        let events = crate::support::eventually_events(&system, &case_id, |events| {
            count(events, wanted) > seen.iter().filter(|w| **w == wanted).count()
        })
        .await;
        seen.push(wanted);
        if seen.len() == 4 {
            let escalated: Vec<&Value> = events.iter().filter(|e| e["type"] == "Escalated").collect();
            assert_eq!(escalated[0]["step"], 1);
            assert_eq!(
                escalated[0]["to"],
                json!({"kind": "hosting_provider", "provider_id": "offshore-host", "name": "Off-shore hosting"})
            );
            assert_eq!(escalated[1]["step"], 2);
            assert_eq!(
                escalated[1]["to"],
                json!({"kind": "regulator", "authority": "csam_authority"})
            );
            assert_eq!(count(&events, "ReminderSent"), 2);
        }
    }
    let follow_ups = system.simulator.follow_ups();
    let kinds: Vec<(&str, Option<u64>)> = follow_ups.iter().map(|f| (f.kind.as_str(), f.number)).collect();
    assert_eq!(
        kinds,
        vec![("reminder", Some(1)), ("reminder", Some(2)), ("escalation", None)],
        "{follow_ups:?}"
    );
    // Nothing more climbs: the case stays open and checked.
    system.clock.advance(TimeDelta::seconds(121));
    let events = settled_on(&system, &case_id, "StillOnline").await;
    assert_eq!(count(&events, "CaseClosed"), 0);
}

/// A receipt stops the reminders: the rounds pass without one.
#[tokio::test]
async fn a_platform_that_acknowledged_the_notice_is_not_reminded() {
    let system = TestSystem::start(TestOptions {
        remind_every_secs: 120,
        // It acknowledges, and never removes.
        removal_delay_secs: 1_000_000,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let case_id = report_listed(&system, "acknowledged").await;
    let notice_id = notice_id(&settled_on(&system, &case_id, "DeadlineSet").await);
    let receipt = json!({"type": "receipt", "event_id": "r-1", "notice_id": notice_id});
    let (status, _) = system
        .platform_answer(PLATFORM_ID, ANSWER_SECRET, system.clock.now().timestamp(), &receipt)
        .await;
    assert_eq!(status, 200);
    for round in 1..=2 {
        system.clock.advance(TimeDelta::seconds(121));
        crate::support::eventually_events(&system, &case_id, |events| {
            events
                .iter()
                .filter(|e| e["type"] == "ChaseRequested" && e["chase"]["kind"] == "skipped")
                .count()
                >= round
        })
        .await;
    }
    let events = settled_on(&system, &case_id, "ChaseRequested").await;
    assert_eq!(count(&events, "ReminderSent"), 0);
    assert!(system.simulator.follow_ups().is_empty());
}
