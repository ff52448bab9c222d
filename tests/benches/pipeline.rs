//! Pipeline throughput: reports per second carried from intake through classify, notices and
//! dispatch to a delivered notice at the simulated platform, all stages in one process on the
//! embedded broker, with the project-local PostgreSQL.
//!
//! Run with `make bench`. Environment: BENCH_CASES (default 20000).

use dijkwacht_tests::{listed_report_line, TestOptions, TestSystem, PLATFORM_ID};
use futures::StreamExt;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let cases: usize = std::env::var("BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let system = TestSystem::start(TestOptions::default())
        .await
        .expect("a test system (make postgres)");
    system.wait_until_ready().await;
    let content = system.content_url("pipe-");
    let lines = futures::stream::iter(0..cases)
        .map(move |i| Ok::<_, std::io::Error>(listed_report_line(&format!("PIPE-{i}"), &format!("{content}{i}"))));
    let started = Instant::now();
    let answer = system
        .http
        .post(system.api("/v1/reports/bulk"))
        .bearer_auth(&system.partner_key)
        .body(reqwest::Body::wrap_stream(lines))
        .send()
        .await
        .expect("bulk request")
        .text()
        .await
        .expect("bulk answer");
    assert_eq!(answer.lines().count(), cases);
    let accepted = started.elapsed().as_secs_f64();
    let path = format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance");
    loop {
        let (_, compliance) = system.get(&path, &system.regulator_key).await;
        if compliance["notices_sent"].as_u64() == Some(cases as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = started.elapsed().as_secs_f64();
    assert_eq!(system.simulator.notices().len(), cases, "one notice per case");
    println!("pipeline: {cases} reports accepted in {accepted:.1} s; all notices delivered and projected after {delivered:.1} s");
    println!(
        "  = {:.0} cases/s from report to delivered notice",
        cases as f64 / delivered
    );
    system.app.stop().await;
}
