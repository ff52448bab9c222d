//! One report is one trace: from the partner's request through the relay and every stage to
//! the notice at the platform and the removal check a wake-up makes later.

use crate::support::settled_on;
use chrono::TimeDelta;
use dijkwacht_runtime::telemetry::{self, LogFormat};
use dijkwacht_tests::{eventually, TestOptions, TestSystem, DEMO_SHA256};
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// A span of each hop the report's trace must have.
const HOPS: [&str; 12] = [
    "POST /v1/reports",
    "relay ReportReceived",
    "classify handle ReportReceived",
    "relay Classified",
    "notices handle Classified",
    "dispatch handle NoticeIssued",
    "dispatch send notice",
    "followup handle NoticeDelivered",
    "projection handle NoticeDelivered",
    "followup wake notice_delivered",
    "relay CaseClosed",
    "projection handle CaseClosed",
];
/// The partner's own span, which our request continues.
const PARTNER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARTNER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn one_report_is_one_trace_across_every_hop() {
    let exporter = InMemorySpanExporter::default();
    let tracer = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let _telemetry = telemetry::init_with_tracer(LogFormat::Text, tracer.clone());
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    system.wait_until_ready().await;

    let response = system
        .http
        .post(system.api("/v1/reports"))
        .bearer_auth(&system.partner_key)
        .header("traceparent", format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01"))
        .json(&json!({
            "partner_reference": "TRACE-1",
            "items": [{"url": system.content_url("traced"), "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}], "claimed_category": "csam"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let case_id = accepted["cases"][0]["case_id"].as_str().unwrap().to_owned();
    settled_on(&system, &case_id, "NoticeDelivered").await;
    // The removal checks come from the case's wake-ups, which continue its trace from the
    // events' metadata, not from a message.
    system.clock.advance(TimeDelta::seconds(61));
    settled_on(&system, &case_id, "StillOnline").await;
    system.clock.advance(TimeDelta::seconds(61));
    settled_on(&system, &case_id, "CaseClosed").await;
    // The relay publishes the last events a moment after they were appended.
    let spans: Vec<SpanData> = eventually("every hop's span", Duration::from_secs(30), || async {
        tracer.force_flush().unwrap();
        let spans: Vec<SpanData> = exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|span| span.span_context.trace_id().to_string() == PARTNER_TRACE)
            .collect();
        let names: HashSet<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
        HOPS.iter().all(|hop| names.contains(hop)).then_some(spans)
    })
    .await;
    // One tree: every span hangs from another span of the trace, the root from the partner's.
    let ids: HashSet<SpanId> = spans.iter().map(|span| span.span_context.span_id()).collect();
    let partner = SpanId::from_hex(PARTNER_SPAN).unwrap();
    for span in &spans {
        assert!(
            span.parent_span_id == partner || ids.contains(&span.parent_span_id),
            "span {:?} hangs from {} outside the trace",
            span.name,
            span.parent_span_id
        );
    }
    let roots: Vec<&str> = spans
        .iter()
        .filter(|span| span.parent_span_id == partner)
        .map(|span| span.name.as_ref())
        .collect();
    assert_eq!(roots, ["POST /v1/reports"]);

    // The notice took the trace to the platform, and every event of the case is in it.
    let notices = system.simulator.notices();
    let sent = notices[0]
        .traceparent
        .as_deref()
        .expect("the notice carries a traceparent");
    assert!(sent.contains(PARTNER_TRACE), "{sent}");
    let untraced: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, metadata ->> 'traceparent' FROM events \
         WHERE stream_id = $1::uuid AND coalesce(metadata ->> 'traceparent', '') NOT LIKE $2 ORDER BY position",
    )
    .bind(&case_id)
    .bind(format!("00-{PARTNER_TRACE}-%"))
    .fetch_all(&system.database.pool)
    .await
    .unwrap();
    assert!(untraced.is_empty(), "events outside the report's trace: {untraced:?}");
}
