//! After delivery, on the test clock against the simulator: the platform's signed answers,
//! the deadline, reminders, and the escalation ladder.

use crate::support::{last_of, report_listed, report_listed_at, settled_on};
use chrono::TimeDelta;
use dijkwacht_domain::tdb::Enumeration;
use dijkwacht_runtime::Clock;
use dijkwacht_simulator::platform::{Behaviour, SimulatedAnswers};
use dijkwacht_simulator::DEFAULT_PLATFORM;
use dijkwacht_tests::{TestOptions, TestSystem, ANSWER_SECRET, DEMO_SHA256, FORUM_HOST, OFFSHORE_HOST, PLATFORM_ID};
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

/// Removed, watched, and back online: the old case closes as removed and a new case, linked
/// to it and marked as a reappearance, is noticed again on the evidence of the first. A
/// report of the location now adds to the new case.
#[tokio::test]
async fn content_back_after_its_removal_is_taken_over_by_a_linked_case_that_is_noticed_again() {
    let system = TestSystem::start(TestOptions {
        removal_delay_secs: 30,
        watch_secs: vec![3600, 7 * 3600],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let url = system.content_url("watched");
    let case_id = report_listed_at(&system, "watched", &url).await;
    settled_on(&system, &case_id, "DeadlineSet").await;
    system.clock.advance(TimeDelta::seconds(61));
    let events = settled_on(&system, &case_id, "RemovalVerified").await;
    assert_eq!(count(&events, "CaseClosed"), 0, "watched, not closed");

    system.simulator.reupload(&url);
    system.clock.advance(TimeDelta::seconds(3600));
    let events = settled_on(&system, &case_id, "CaseClosed").await;
    assert_eq!(last_of(&events, "CaseClosed")["outcome"], "removed");
    let new_case_id = last_of(&events, "Reappeared")["new_case_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let linked = settled_on(&system, &new_case_id, "NoticeDelivered").await;
    let received = last_of(&linked, "ReportReceived");
    assert_eq!(received["reporter"], json!({"kind": "reappearance_watch"}));
    assert_eq!(received["reappearance_of"], json!(case_id));
    assert_eq!(received["location"]["url"], json!(url));
    assert_eq!(
        last_of(&linked, "Classified")["evidence"],
        json!({"kind": "reappearance", "case_id": case_id})
    );
    let notices = system.simulator.notices();
    assert_eq!(notices.len(), 2, "the first notice and the reappearance's");
    let explanation = notices[1].notice["explanation"].as_str().unwrap();
    assert!(explanation.contains("removed after our notice"), "{explanation}");

    let (status, accepted) = system
        .post(
            "/v1/reports",
            &system.partner_key,
            &json!({"partner_reference": "watched-again", "items": [{"url": url}]}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["cases"][0]["case_id"], json!(new_case_id));
    assert_eq!(accepted["cases"][0]["existing"], json!(true));
}

/// Removed and still gone at every check of the watch: closed after the last one.
#[tokio::test]
async fn a_removed_location_that_stays_gone_is_closed_after_the_watch() {
    let system = TestSystem::start(TestOptions {
        removal_delay_secs: 30,
        watch_secs: vec![600, 1200],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let case_id = report_listed(&system, "stays-gone").await;
    settled_on(&system, &case_id, "DeadlineSet").await;
    system.clock.advance(TimeDelta::seconds(61));
    settled_on(&system, &case_id, "RemovalVerified").await;
    system.clock.advance(TimeDelta::seconds(600));
    let events = settled_on(&system, &case_id, "StillRemoved").await;
    assert_eq!(count(&events, "CaseClosed"), 0);
    system.clock.advance(TimeDelta::seconds(600));
    let events = settled_on(&system, &case_id, "CaseClosed").await;
    assert_eq!(count(&events, "StillRemoved"), 2);
    assert_eq!(last_of(&events, "CaseClosed")["outcome"], "removed");
}

/// The platform refuses two notices. An analyst upholds one refusal: closed as rejected.
/// The other is contested: the authority's queue, checked meanwhile, until an analyst
/// records the authority's decision.
#[tokio::test]
async fn an_upheld_refusal_closes_as_rejected_and_a_contested_one_waits_for_the_authority() {
    let system = TestSystem::start(TestOptions {
        removal_delay_secs: 1_000_000,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let analyst = system.analyst_key(1);
    let mut cases = Vec::new();
    for name in ["upheld", "contested"] {
        let case_id = report_listed(&system, name).await;
        let notice_id = notice_id(&settled_on(&system, &case_id, "DeadlineSet").await);
        let refusal = json!({"type": "rejection", "event_id": format!("rej-{name}"), "notice_id": notice_id,
            "reason": "lawful in our jurisdiction"});
        let (status, _) = system
            .platform_answer(PLATFORM_ID, ANSWER_SECRET, system.clock.now().timestamp(), &refusal)
            .await;
        assert_eq!(status, 200);
        settled_on(&system, &case_id, "PlatformRejected").await;
        cases.push(case_id);
    }
    let tasks = system.analyst_tasks().await;
    for case_id in &cases {
        assert!(
            tasks.contains(&(case_id.clone(), "assess_rejection".into())),
            "{tasks:?}"
        );
    }
    let assessment = |case_id: &str| format!("/v1/followup/cases/{case_id}/rejection-assessment");

    let (status, body) = system
        .post(
            &assessment(&cases[0]),
            &system.partner_key,
            &json!({"verdict": "uphold", "explanation": "x"}),
        )
        .await;
    assert_eq!(status, 403, "a partner is no analyst: {body}");
    let (status, body) = system
        .post(
            &assessment(&cases[0]),
            &analyst,
            &json!({"verdict": "agree", "explanation": "x"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/verdict");
    let (status, body) = system
        .post(
            &assessment(&cases[0]),
            &analyst,
            &json!({"verdict": "uphold", "explanation": "the image is not of a minor"}),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("closed")), "{body}");
    let events = settled_on(&system, &cases[0], "CaseClosed").await;
    assert_eq!(last_of(&events, "CaseClosed")["outcome"], "rejected");
    assert_eq!(last_of(&events, "RejectionAssessed")["analyst_id"], "analyst-1");

    let (status, body) = system
        .post(
            &assessment(&cases[1]),
            &analyst,
            &json!({"verdict": "contest", "explanation": "clearly illegal; the platform must act"}),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("escalated")), "{body}");
    // Checked at its deadline as before, and nobody is reminded of a notice it refused.
    system.clock.advance(TimeDelta::seconds(61));
    let events = settled_on(&system, &cases[1], "StillOnline").await;
    assert_eq!(count(&events, "ChaseRequested"), 0);
    assert_eq!(
        last_of(&events, "Escalated")["to"],
        json!({"kind": "regulator", "authority": "csam_authority"})
    );
    let decision = format!("/v1/followup/cases/{}/regulator-decision", cases[1]);
    let (status, body) = system
        .post(
            &decision,
            &analyst,
            &json!({"decision": "removal order issued", "reference": "ATKM-17"}),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("closed")), "{body}");
    let events = settled_on(&system, &cases[1], "CaseClosed").await;
    assert_eq!(last_of(&events, "CaseClosed")["outcome"], "regulator_decided");
    assert_eq!(last_of(&events, "RegulatorDecided")["reference"], "ATKM-17");

    let (status, body) = system
        .post(
            &decision.replace(&cases[1], &cases[0]),
            &analyst,
            &json!({"decision": "x"}),
        )
        .await;
    assert_eq!(status, 409, "the upheld case never went to an authority: {body}");
}

/// CSAM on an off-shore host goes to the US hotline (partner-b) by its API, signed, with the
/// facts and never the media; the case closes when that hotline confirms, and no other
/// partner can confirm it. A forward the hotline never confirms closes when its window of
/// two days passes.
#[tokio::test]
async fn a_forwarded_case_goes_to_the_hotline_and_closes_when_it_confirms_or_its_window_passes() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    system.wait_until_ready().await;
    let url = format!("http://{OFFSHORE_HOST}/media/forwarded");
    let case_id = report_listed_at(&system, "forwarded", &url).await;
    let events = settled_on(&system, &case_id, "ForwardSent").await;
    assert_eq!(last_of(&events, "ForwardSent")["reference"], "PARTNER-B-1");

    let forwards = system.simulator.forwards();
    assert_eq!(forwards.len(), 1, "{forwards:?}");
    let received = &forwards[0];
    assert_eq!(received.hotline, "partner-b");
    assert_eq!(received.idempotency_key, format!("forward-{case_id}"));
    assert!(received.signed);
    let forward = &received.forward;
    let mut fields: Vec<&str> = forward.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "assessed_at",
            "case_id",
            "confirm_url",
            "content_class",
            "evidence",
            "host",
            "legal_ground",
            "locations",
            "reported_at",
            "type"
        ],
        "facts only, never media"
    );
    assert_eq!(forward["locations"][0]["url"], json!(url));
    assert_eq!(forward["locations"][0]["hashes"][0]["value"], json!(DEMO_SHA256));
    assert_eq!(forward["content_class"], "csam");

    let confirmation = forward["confirm_url"].as_str().unwrap();
    let body = json!({"reference": "US-2026-1", "note": "taken down with the host"});
    let (status, _) = system.post(confirmation, &system.partner_key, &body).await;
    assert_eq!(status, 404, "partner-a is not the hotline it went to");
    let (status, moved) = system
        .post(confirmation, &format!("{}-b", system.partner_key), &body)
        .await;
    assert_eq!((status, moved["status"].as_str()), (200, Some("closed")), "{moved}");
    let events = settled_on(&system, &case_id, "CaseClosed").await;
    assert_eq!(last_of(&events, "CaseClosed")["outcome"], "forwarded");
    assert_eq!(last_of(&events, "ForwardConfirmed")["recorded_by"], "partner:partner-b");

    let silent = report_listed_at(&system, "silent", &format!("http://{OFFSHORE_HOST}/media/silent")).await;
    settled_on(&system, &silent, "ForwardSent").await;
    system.clock.advance(TimeDelta::days(2) + TimeDelta::seconds(1));
    let events = settled_on(&system, &silent, "CaseClosed").await;
    assert_eq!(last_of(&events, "CaseClosed")["outcome"], "forward_unconfirmed");
}
