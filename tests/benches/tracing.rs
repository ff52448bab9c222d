//! What tracing costs: the whole pipeline as one release process, from bulk intake to
//! delivered notices, with traces and metrics exported over OTLP to a collector stand-in in
//! this process, beside the same run with no collector configured. Aim: at most 10 % slower.
//!
//! Run with `make bench`. Environment: BENCH_TRACED_CASES (default 10000).

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use dijkwacht_tests::deployment::{free_port, Deployment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts OTLP exports and counts their bytes, as a collector that keeps up would.
async fn collector(received: Arc<AtomicU64>) -> String {
    let router = Router::new().route(
        "/{*signal}",
        post(move |body: Bytes| async move {
            received.fetch_add(body.len() as u64, Ordering::Relaxed);
            ""
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// Cases per second from the first report to the last delivered notice.
async fn run(cases: usize, otlp: Option<&str>) -> f64 {
    let deployment = Deployment::embedded().await;
    let port = free_port();
    // Production timings, not the fault tests' short ones.
    let mut env = vec![
        ("DIJKWACHT_BATCH_SIZE", "500"),
        ("DIJKWACHT_KAFKA_MESSAGE_TIMEOUT_MS", "30000"),
        ("DIJKWACHT_DISPATCH_TIMEOUT_SECS", "30"),
        ("DIJKWACHT_DISPATCH_IN_FLIGHT_SECS", "90"),
        ("DIJKWACHT_STAGE_STALE_SECS", "300"),
        ("DIJKWACHT_TIMER_LEASE_SECS", "60"),
    ];
    if let Some(endpoint) = otlp {
        env.push(("DIJKWACHT_OTLP_ENDPOINT", endpoint));
    }
    let process = deployment.spawn(&[], port, &env);
    deployment.wait_healthy(port).await;
    let started = Instant::now();
    deployment.submit(port, "traced", cases).await;
    deployment.wait_delivered(cases, Duration::from_secs(600)).await;
    let rate = cases as f64 / started.elapsed().as_secs_f64();
    process.signal("TERM");
    rate
}

#[tokio::main]
async fn main() {
    let cases: usize = std::env::var("BENCH_TRACED_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let received = Arc::new(AtomicU64::new(0));
    let endpoint = collector(received.clone()).await;
    let off = run(cases, None).await;
    let on = run(cases, Some(&endpoint)).await;
    println!("tracing: {cases} cases, one process with every part, release build");
    println!("  tracing off:               {off:.0} cases/s");
    println!(
        "  traced to a collector:     {on:.0} cases/s  ({:.1} MiB of OTLP received)",
        received.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  = tracing costs {:.1} % (aim: at most 10 %)",
        (1.0 - on / off) * 100.0
    );
}
