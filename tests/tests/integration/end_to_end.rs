//! One report travels the whole way: intake → classify → notice → dispatch → follow-up →
//! projection, over real PostgreSQL, the embedded broker and the simulated platform.

use chrono::TimeDelta;
use dijkwacht_tests::{eventually, TestOptions, TestSystem, DEMO_SHA256, PLATFORM_ID};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn case_events(system: &TestSystem, case_id: &str) -> Vec<String> {
    let (_, view) = system.get(&format!("/v1/cases/{case_id}"), &system.partner_key).await;
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_for_event(system: &TestSystem, case_id: &str, event_type: &str) -> Vec<String> {
    eventually(&format!("{event_type} on case {case_id}"), WAIT, || async {
        let events = case_events(system, case_id).await;
        events.iter().any(|e| e == event_type).then_some(events)
    })
    .await
}

fn is_subsequence(wanted: &[&str], events: &[String]) -> bool {
    let mut remaining = events.iter();
    wanted.iter().all(|w| remaining.any(|e| e == w))
}

#[tokio::test]
async fn a_hash_listed_report_leads_to_one_complete_notice_and_a_verified_removal() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let url = system.content_url("clip-1");

    system.wait_until_ready().await;

    let unauthenticated = system
        .http
        .post(system.api("/v1/reports"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let response = system
        .http
        .post(system.api("/v1/reports"))
        .bearer_auth(&system.partner_key)
        .json(&json!({
            "partner_reference": "E2E-1",
            "items": [{"url": url, "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}], "claimed_category": "csam"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let case_id = accepted["cases"][0]["case_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["cases"][0]["url"], url);
    // Accepted means committed: the case is readable at once.
    assert_eq!(case_events(&system, &case_id).await, vec!["ReportReceived"]);

    wait_for_event(&system, &case_id, "NoticeDelivered").await;

    // The platform has not removed it yet when the first check comes due.
    system.clock.advance(TimeDelta::seconds(61));
    wait_for_event(&system, &case_id, "StillOnline").await;
    system.clock.advance(TimeDelta::seconds(61));
    let events = wait_for_event(&system, &case_id, "CaseClosed").await;

    let wanted = [
        "ReportReceived",
        "Classified",
        "NoticeIssued",
        "NoticeDelivered",
        "RemovalVerified",
        "CaseClosed",
    ];
    assert!(is_subsequence(&wanted, &events), "events out of order: {events:?}");
    let correlations: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT metadata ->> 'correlation' FROM events WHERE stream_id = $1::uuid")
            .bind(&case_id)
            .fetch_all(&system.database.pool)
            .await
            .unwrap();
    assert_eq!(
        correlations,
        vec![accepted["report_id"].as_str().map(str::to_owned)],
        "every event traces back to the report"
    );
    assert_eq!(events.iter().filter(|e| *e == "NoticeIssued").count(), 1);

    let notices = system.simulator.notices();
    assert_eq!(notices.len(), 1, "exactly one notice reaches the platform");
    let notice = &notices[0].notice;
    assert_eq!(notice["locations"][0]["url"], url, "16(2)(b) exact location");
    assert_eq!(notice["locations"][0]["hashes"][0]["value"], DEMO_SHA256);
    let explanation = notice["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("art. 252 Wetboek van Strafrecht"),
        "16(2)(a): {explanation}"
    );
    assert!(
        notice["good_faith_statement"].as_str().unwrap().contains("good faith"),
        "16(2)(d)"
    );
    assert!(notice.get("notifier").is_none(), "16(2)(c) is waived for CSAM");
    assert_eq!(notice["trusted_flagger"]["tdb_source_type"], "SOURCE_TRUSTED_FLAGGER");
    assert_eq!(notice["trusted_flagger"]["designation_reference"], "TF-TEST-1");
    assert_eq!(notices[0].idempotency_key, notice["notice_id"].as_str().unwrap());

    let gone = system.http.get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 410);

    let compliance: Value = eventually("the projection to count the removal", WAIT, || async {
        let path = format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance");
        let (_, report) = system.get(&path, &system.regulator_key).await;
        (report["total"]["removals_verified"] == 1).then_some(report["total"].clone())
    })
    .await;
    assert_eq!(compliance["notices_sent"], 1);
    let median = compliance["median_seconds_to_removal"].as_f64().unwrap();
    // Delivered at t≈0, still online at t+61, gone at the check at t+122 (clock time).
    assert!((121.0..=123.0).contains(&median), "median {median}");

    let wrong_scope = system
        .http
        .get(system.api(&format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance")))
        .bearer_auth(&system.partner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_scope.status(), 403);

    // The content comes back and another partner reports it: a new case, linked to the old.
    let (_, again) = system
        .post(
            "/v1/reports",
            &system.partner_b_key(),
            &json!({"partner_reference": "B-1", "items": [{"url": url}]}),
        )
        .await;
    assert_eq!(again["cases"][0]["existing"], false);
    assert_ne!(again["cases"][0]["case_id"], case_id.as_str());
    let old = case_events(&system, &case_id).await;
    assert_eq!(old.last().map(String::as_str), Some("Reappeared"), "{old:?}");

    assert_eq!(system.app.store.verify().await.unwrap(), vec![]);
    system.app.stop().await;
}

#[tokio::test]
async fn a_report_without_a_listed_hash_waits_for_an_analyst() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let body = json!({
        "partner_reference": "E2E-2",
        "items": [{"url": system.content_url("unknown"), "hashes": [{"algorithm": "md5", "value": "0".repeat(32)}]}]
    });
    let (status, accepted) = system.post("/v1/reports", &system.partner_key, &body).await;
    assert_eq!(status, 202);
    let case_id = accepted["cases"][0]["case_id"].as_str().unwrap().to_owned();
    let events = wait_for_event(&system, &case_id, "ReviewRequested").await;
    assert_eq!(events, vec!["ReportReceived", "HostResolved", "ReviewRequested"]);
    assert!(system.simulator.notices().is_empty());
    system.app.stop().await;
}

#[tokio::test]
async fn invalid_reports_are_refused_with_pointers_and_nothing_is_stored() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let invalid = json!({
        "partner_reference": "E2E-3",
        "items": [{"url": "ftp://x.example/a"}, {"url": "https://ok.example/", "hashes": [{"algorithm": "sha256", "value": "xyz"}]}]
    });
    let (status, body) = system.post("/v1/reports", &system.partner_key, &invalid).await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, vec!["/items/0/url", "/items/1/hashes/0/value"]);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&system.database.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    let not_json = system
        .http
        .post(system.api("/v1/reports"))
        .bearer_auth(&system.partner_key)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    system.app.stop().await;
}

/// A message the broker lost (here: one that was never published) leaves
/// the case waiting; once it has waited longer than allowed, its wake-up, written with the
/// event, moves it on.
#[tokio::test]
async fn a_lost_message_is_made_up_for_by_the_case_wake_up() {
    use dijkwacht_domain::event::{Location, Reporter};
    use dijkwacht_domain::CaseId;
    use dijkwacht_runtime::LoadedCase;

    // No relay: every message is lost.
    let parts = dijkwacht::parts::runnable().filter(|part| *part != "relay").collect();
    let system = TestSystem::start(TestOptions {
        parts,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let case_id = CaseId::new();
    let received = dijkwacht_domain::CaseEvent::ReportReceived(dijkwacht_domain::ReportReceived {
        report_id: dijkwacht_domain::ReportId::new(),
        reporter: Reporter::Partner {
            partner_id: "partner-a".into(),
            partner_reference: "LOST-1".into(),
        },
        location: Location {
            url: system.content_url("lost"),
            hashes: vec![],
        },
        claimed_class: None,
        reappearance_of: None,
    });
    let change = crate::support::change(&LoadedCase::new(case_id), vec![received]);
    system.app.store.append(&[change], system.clock_now()).await.unwrap();

    let case = case_id.to_string();
    system.clock.advance(TimeDelta::seconds(301));
    let events = wait_for_event(&system, &case, "ReviewRequested").await;
    assert_eq!(events, vec!["ReportReceived", "HostResolved", "ReviewRequested"]);
    system.app.stop().await;
}
