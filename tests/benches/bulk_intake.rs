//! Durable bulk intake rate: reports per second committed through `POST /v1/reports/bulk`,
//! measured end to end (HTTP, validation, idempotency and location index, event append with
//! hash chain and outbox) against the project-local PostgreSQL.
//!
//! Run with `make bench`. Environment: BENCH_REPORTS (default 200000).

use dijkwacht_tests::measure::peak_rss_mib;
use dijkwacht_tests::{TestOptions, TestSystem, DEMO_SHA256, UNLIMITED, UNLIMITED_BURST};
use futures::StreamExt;
use std::time::Instant;

async fn bulk(system: &TestSystem, first: usize, count: usize) -> (usize, f64) {
    let body = futures::stream::iter(first..first + count).map(|i| {
        let mut line = serde_json::json!({
            "partner_reference": format!("BENCH-{i}"),
            "items": [{"url": format!("https://bench.example/media/{i}"), "claimed_category": "csam",
                       "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]
        })
        .to_string();
        line.push('\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    });
    let started = Instant::now();
    let response = system
        .http
        .post(system.api("/v1/reports/bulk"))
        .bearer_auth(&system.partner_key)
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("bulk request");
    let (mut accepted, mut partial) = (0, Vec::new());
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        partial.extend_from_slice(&chunk.expect("bulk answer"));
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let result: serde_json::Value = serde_json::from_slice(&partial[..end]).expect("a result line");
            assert!(result["report_id"].is_string(), "not accepted: {result}");
            accepted += 1;
            partial.drain(..=end);
        }
    }
    (accepted, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let reports: usize = std::env::var("BENCH_REPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let system = TestSystem::start(TestOptions {
        parts: vec!["intake"],
        // Intake's own rate, not the partner's rate limit (every line counts against it).
        partner_requests_per_second: UNLIMITED,
        partner_burst: UNLIMITED_BURST,
        ..TestOptions::default()
    })
    .await
    .expect("a test system (is PostgreSQL up? make postgres)");
    // Warm-up: connections, caches, the first pages of every index.
    let _ = bulk(&system, 0, 5_000).await;
    let rss_before = peak_rss_mib();
    let (accepted, seconds) = bulk(&system, 5_000, reports).await;
    let rss_after = peak_rss_mib();
    assert_eq!(accepted, reports, "every report accepted");
    println!(
        "bulk intake: {reports} reports in {seconds:.2} s = {:.0} reports/s committed",
        reports as f64 / seconds
    );
    println!("peak RSS of the whole process (server and client): {rss_before:.0} MiB after warm-up, {rss_after:.0} MiB after the run");
    system.app.stop().await;
}
