//! Pipeline throughput: reports per second carried from intake through classify, notices and
//! dispatch to a delivered notice at the simulated platform, all stages in one process on the
//! embedded broker, with the project-local PostgreSQL.
//!
//! Run with `make bench`. Environment: BENCH_CASES (default 20000).

use dijkwacht_tests::{TestOptions, TestSystem, PLATFORM_ID};
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
    let started = Instant::now();
    system.bulk_report_listed("pipe-", cases).await;
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
