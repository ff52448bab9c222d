//! Where a notice may go: never along a redirect, never to an internal address.

use crate::support::{report_listed as report, settled_on};
use axum::http::{header, StatusCode};
use axum::routing::any;
use axum::Router;
use dijkwacht_tests::{TestOptions, TestSystem, PLATFORM_ID};
use serde_json::json;

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
