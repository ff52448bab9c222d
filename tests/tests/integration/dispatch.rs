//! Where a notice may go: never along a redirect, never to an internal address.

use axum::http::{header, StatusCode};
use axum::routing::any;
use axum::Router;
use dijkwacht_tests::{eventually, TestOptions, TestSystem, DEMO_SHA256, PLATFORM_ID};
use serde_json::{json, Value};
use std::time::Duration;

/// Reports one listed location; returns its case id.
async fn report(system: &TestSystem, name: &str) -> String {
    let (status, accepted) = system
        .post(
            "/v1/reports",
            &system.partner_key,
            &json!({"partner_reference": name, "items": [{"url": system.content_url(name),
                "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    accepted["cases"][0]["case_id"].as_str().unwrap().to_owned()
}

/// The case's events as stored, once one of them is `event_type`.
async fn settled_on(system: &TestSystem, case_id: &str, event_type: &str) -> Vec<Value> {
    let id = dijkwacht_domain::CaseId(case_id.parse().unwrap());
    eventually(
        &format!("{event_type} on {case_id}"),
        Duration::from_secs(60),
        || async {
            let stream = system.app.store.read_stream(id).await.ok()?;
            let events: Vec<Value> = stream.iter().map(|e| serde_json::to_value(&e.event).unwrap()).collect();
            events.iter().any(|e| e["type"] == event_type).then_some(events)
        },
    )
    .await
}

async fn point_platform_at(system: TestSystem, endpoint: &str) -> TestSystem {
    system
        .reregister_platform(PLATFORM_ID, endpoint, json!({}))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_with_its_location_never_followed() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    system.wait_until_ready().await;
    // The endpoint moved: a POST that followed this would arrive at the simulator as a GET.
    let target = format!("http://{}/notices", system.simulator_addr);
    let moved = Router::new().route(
        "/notices",
        any(move || {
            let target = target.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved_at = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, moved).await });
    let system = point_platform_at(system, &format!("http://{moved_at}/notices")).await;

    let case_id = report(&system, "moved").await;
    let events = settled_on(&system, &case_id, "DispatchFailed").await;
    let failed = events.iter().find(|e| e["type"] == "DispatchFailed").unwrap();
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("302") && reason.contains("redirecting to http://"),
        "{reason}"
    );
    assert!(failed["retry_at"].is_null(), "a redirect is not retried: {failed}");
    assert!(!events.iter().any(|e| e["type"] == "NoticeDelivered"));
    assert!(system.simulator.notices().is_empty(), "nothing reached the simulator");
    // The platform has no other channel: an analyst delivers it by hand.
    assert_eq!(
        system.analyst_tasks().await,
        vec![(case_id, "deliver_by_hand".to_owned())]
    );
    system.app.stop().await;
}

#[tokio::test]
async fn a_notice_to_an_internal_address_is_never_sent() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    // The simulator listens on loopback; now nothing internal is allowed.
    let system = system
        .restart(|settings| settings.outbound_allowed_ranges = vec![])
        .await
        .unwrap();
    system.wait_until_ready().await;
    let case_id = report(&system, "internal").await;
    let events = settled_on(&system, &case_id, "DispatchFailed").await;
    let failed = events.iter().find(|e| e["type"] == "DispatchFailed").unwrap();
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("loopback address 127.0.0.1"), "{reason}");
    assert!(failed["retry_at"].is_null());
    assert!(system.simulator.notices().is_empty());
    system.app.stop().await;
}
