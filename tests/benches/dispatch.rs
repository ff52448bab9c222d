//! Dispatch throughput: issued notices per second delivered to the simulated platform, by
//! HTTP API and by e-mail (STARTTLS to the simulated mail server), each with grouping off and
//! on. The cases are brought to `NoticeIssued` first with dispatch stopped; then the process
//! restarts with dispatch on a fresh broker, so the backlog reaches dispatch through the
//! cases' wake-ups (the path a restart after an outage takes), and the clock runs from there
//! to the last `NoticeDelivered`.
//!
//! Run with `make bench`. Environment: BENCH_DISPATCH_CASES (default 5000).

use chrono::TimeDelta;
use dijkwacht_tests::measure::peak_rss_mib;
use dijkwacht_tests::{TestOptions, TestSystem, PLATFORM_ID};
use serde_json::json;
use std::time::{Duration, Instant};

async fn count(system: &TestSystem, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&system.database.pool)
        .await
        .expect("a count")
}

async fn until_count(system: &TestSystem, sql: &str, wanted: i64) {
    while count(system, sql).await < wanted {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(cases: usize, email: bool, grouping_secs: i64) -> f64 {
    let without_dispatch: Vec<&str> = dijkwacht::parts::runnable()
        .filter(|part| *part != "dispatch")
        .collect();
    let system = TestSystem::start(TestOptions {
        mail: email,
        parts: without_dispatch,
        ..TestOptions::default()
    })
    .await
    .expect("a test system (make postgres)");
    let channel = if email {
        json!({"kind": "email", "to": "abuse@platform.test"})
    } else {
        json!({"kind": "api", "endpoint": format!("http://{}/notices", system.simulator_addr)})
    };
    let dispatch = json!({"channels": [channel], "pace": {"grouping_window_secs": grouping_secs}});
    let system = system
        .reregister_platform(PLATFORM_ID, "", dispatch)
        .await
        .expect("the platform registered");
    system.bulk_report_listed("dispatch-", cases).await;
    until_count(
        &system,
        "SELECT count(*) FROM events WHERE event_type = 'NoticeIssued'",
        cases as i64,
    )
    .await;

    let started = Instant::now();
    let system = system
        .restart(|settings| settings.parts = None)
        .await
        .expect("restarted with dispatch");
    // The backlog's wake-ups come due: a stage's stale limit after the notices were issued.
    system
        .clock
        .advance(TimeDelta::seconds(system.settings.stage_stale_secs));
    if grouping_secs > 0 {
        until_count(
            &system,
            "SELECT count(*) FROM events WHERE event_type = 'DispatchDeferred'",
            cases as i64,
        )
        .await;
        system.clock.advance(TimeDelta::seconds(grouping_secs));
    }
    until_count(
        &system,
        "SELECT count(*) FROM events WHERE event_type = 'NoticeDelivered'",
        cases as i64,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let (requests, messages) = if email {
        let mail = system.simulator.mail();
        let notices: usize = mail.iter().map(|m| m.notices.len()).sum();
        assert_eq!(notices, cases, "one notice per case");
        (mail.len(), mail.len())
    } else {
        assert_eq!(system.simulator.notices().len(), cases, "one notice per case");
        (system.simulator.raw_posts(), system.simulator.raw_posts())
    };
    println!(
        "dispatch by {:<6} grouping {:<4}: {cases} notices in {seconds:.1} s = {:.0} cases/s ({messages} messages, {requests} requests)",
        if email { "e-mail" } else { "HTTP" },
        if grouping_secs > 0 { "on" } else { "off" },
        cases as f64 / seconds,
    );
    system.app.stop().await;
    cases as f64 / seconds
}

#[tokio::main]
async fn main() {
    let cases: usize = std::env::var("BENCH_DISPATCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    // BENCH_DISPATCH_ONLY=http or =email runs only those variants.
    let only = std::env::var("BENCH_DISPATCH_ONLY").unwrap_or_default();
    for (email, grouping) in [(false, 0), (false, 60), (true, 0), (true, 60)] {
        let wanted = match only.as_str() {
            "http" => !email,
            "email" => email,
            _ => true,
        };
        if wanted {
            run(cases, email, grouping).await;
        }
    }
    println!(
        "peak resident memory of the whole system in this process: {:.0} MiB",
        peak_rss_mib()
    );
}
