//! One report is one trace: from the partner's request through the relay and every stage to
//! the notice at the platform and the removal check a wake-up makes later, in one process
//! and across processes.

use crate::support::settled_on;
use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use chrono::TimeDelta;
use dijkwacht_runtime::telemetry::{self, LogFormat};
use dijkwacht_tests::deployment::{free_port, Deployment};
use dijkwacht_tests::{eventually, TestOptions, TestSystem, DEMO_SHA256};
use opentelemetry::trace::SpanId;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use prost::Message;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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

/// A stand-in for the OpenTelemetry collector: keeps every span the processes export.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Collector {
    async fn start(&self) -> u16 {
        let spans = self.spans.clone();
        let router = Router::new()
            .route(
                "/v1/traces",
                post(move |body: Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut spans = spans.lock().unwrap();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|resource| &resource.attributes)
                            .find(|attribute| attribute.key == "service.name")
                            .and_then(|attribute| attribute.value.as_ref()?.value.clone())
                            .map(|value| match value {
                                any_value::Value::StringValue(name) => name,
                                other => format!("{other:?}"),
                            })
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
                        }
                    }
                    ""
                }),
            )
            .route("/v1/metrics", post(|| async { "" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        port
    }

    /// The spans of the partner's trace: (service, name, span id, parent span id).
    fn trace(&self) -> Vec<(String, String, String, String)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, span)| hex::encode(&span.trace_id) == PARTNER_TRACE)
            .map(|(service, span)| {
                let (id, parent) = (hex::encode(&span.span_id), hex::encode(&span.parent_span_id));
                (service.clone(), span.name.clone(), id, parent)
            })
            .collect()
    }
}

#[tokio::test]
async fn one_report_is_one_trace_across_processes() {
    let collector = Collector::default();
    let otlp = format!("http://127.0.0.1:{}", collector.start().await);
    let deployment = Deployment::embedded().await;
    let (edge, stages) = (free_port(), free_port());
    let _edge = deployment.spawn(
        &["intake", "relay"],
        edge,
        &[("DIJKWACHT_OTLP_ENDPOINT", &otlp), ("DIJKWACHT_SERVICE_NAME", "edge")],
    );
    let _stages = deployment.spawn(
        &["classify", "notices", "dispatch", "followup", "projection"],
        stages,
        &[("DIJKWACHT_OTLP_ENDPOINT", &otlp), ("DIJKWACHT_SERVICE_NAME", "stages")],
    );
    deployment.wait_healthy(edge).await;
    deployment.wait_healthy(stages).await;

    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{edge}/v1/reports"))
        .bearer_auth(&deployment.partner_key)
        .header("traceparent", format!("00-{PARTNER_TRACE}-{PARTNER_SPAN}-01"))
        .json(&json!({"partner_reference": "TRACE-2", "items": [{
            "url": format!("http://{}/content/traced", deployment.simulator_addr),
            "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // Each process exports its spans in batches of its own.
    let spans = eventually(
        "both processes' spans of the report",
        Duration::from_secs(60),
        || async {
            let spans = collector.trace();
            let has = |service: &str, name: &str| spans.iter().any(|(s, n, _, _)| s == service && n == name);
            (has("edge", "POST /v1/reports")
                && has("edge", "relay NoticeDelivered")
                && has("stages", "classify handle ReportReceived")
                && has("stages", "dispatch send notice"))
            .then_some(spans)
        },
    )
    .await;
    // The stages' process continues the edge's spans: the classify span's parent is the
    // relay's publish of the report, in the other process.
    let (_, _, relay_span, _) = spans
        .iter()
        .find(|(service, name, _, _)| service == "edge" && name == "relay ReportReceived")
        .expect("the relay's span");
    let (_, _, _, classify_parent) = spans
        .iter()
        .find(|(service, name, _, _)| service == "stages" && name == "classify handle ReportReceived")
        .unwrap();
    assert_eq!(classify_parent, relay_span);
    let ids: HashSet<&str> = spans.iter().map(|(_, _, id, _)| id.as_str()).collect();
    for (service, name, _, parent) in &spans {
        assert!(
            parent == PARTNER_SPAN || ids.contains(parent.as_str()),
            "{service} {name:?} hangs from {parent}, outside the trace"
        );
    }
}
