//! What faults cost: the relay's publish rate, and the time from a SIGKILL of the dispatch
//! process to cases moving again, with the release binary as separate processes on the
//! embedded broker of this process and the project-local PostgreSQL.
//!
//! Run with `make bench`. Environment: BENCH_RELAY_CASES (default 20000), BENCH_KILLS
//! (default 5).

use chrono::Utc;
use dijkwacht_domain::{CaseEvent, CaseId, ReportId, ReportReceived};
use dijkwacht_runtime::kafka::{EmbeddedBroker, ProducerSettings};
use dijkwacht_runtime::relay::{Relay, RelaySettings};
use dijkwacht_runtime::{CaseChange, Health, LoadedCase, Metadata, SharedClock, SystemClock};
use dijkwacht_tests::deployment::{free_port, Deployment};
use dijkwacht_tests::{create_topics, unique_prefix, TestDatabase};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    relay_rate(env("BENCH_RELAY_CASES", 20_000)).await;
    recovery_after_kill(env("BENCH_KILLS", 5)).await;
}

/// Events of 5 per case, appended beforehand; then published until none is left.
async fn relay_rate(cases: usize) {
    const EVENTS_PER_CASE: usize = 5;
    let database = TestDatabase::create().await.expect("a database (make postgres)");
    let store = database.store();
    let now = Utc::now();
    for chunk in (0..cases).collect::<Vec<_>>().chunks(500) {
        let changes: Vec<CaseChange> = chunk
            .iter()
            .map(|i| {
                let mut change = CaseChange::new(LoadedCase::new(CaseId::new()));
                for repeat in 0..EVENTS_PER_CASE {
                    let event = CaseEvent::ReportReceived(ReportReceived {
                        report_id: ReportId::new(),
                        reporter: dijkwacht_domain::event::Reporter::Public {
                            public_reference: format!("R-{i}-{repeat}"),
                        },
                        location: dijkwacht_domain::event::Location {
                            url: format!("https://relay.example/{i}"),
                            hashes: vec![],
                        },
                        claimed_class: None,
                        reappearance_of: None,
                    });
                    change.record(event, Metadata::actor("bench"), now);
                }
                change
            })
            .collect();
        store.append(&changes, now).await.expect("append");
    }
    let broker = EmbeddedBroker::start(1).expect("the embedded broker");
    let topics = create_topics(&broker, &unique_prefix(), 4).expect("topics");
    let clock: SharedClock = Arc::new(SystemClock);
    let relay = Relay::new(
        database.pool.clone(),
        ProducerSettings {
            bootstrap_servers: broker.bootstrap_servers().to_owned(),
            message_timeout: Duration::from_secs(30),
            idempotence: true,
        },
        topics,
        clock,
        Health::default().register("relay", "bench"),
        RelaySettings {
            batch_size: 500,
            idle: Duration::from_millis(50),
            max_lag: chrono::TimeDelta::seconds(60),
        },
    )
    .expect("a relay");
    let started = Instant::now();
    let mut published = 0;
    loop {
        let round = relay.publish_batch().await.expect("publish");
        if round.acknowledged == 0 {
            break;
        }
        published += round.acknowledged;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(published, cases * EVENTS_PER_CASE);
    println!(
        "relay: {published} events published and marked in {seconds:.1} s = {:.0} events/s (batches of 500, idempotent producer, acks=all)",
        published as f64 / seconds
    );
}

/// Cases whose dispatch attempt is recorded without an outcome.
async fn in_flight(deployment: &Deployment) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "SELECT s.stream_id FROM events s WHERE s.event_type = 'DispatchStarted' AND NOT EXISTS \
         (SELECT 1 FROM events o WHERE o.stream_id = s.stream_id AND o.stream_version > s.stream_version \
          AND o.event_type IN ('NoticeDelivered', 'DispatchFailed'))",
    )
    .fetch_all(&deployment.database.pool)
    .await
    .unwrap()
}

/// Kills the dispatch process while notices go out, starts a new one at once, and times
/// how long until deliveries are recorded again and until every attempt that was in flight
/// at the kill has its outcome.
async fn recovery_after_kill(kills: usize) {
    const CASES_PER_ROUND: usize = 2_000;
    let deployment = Deployment::embedded().await;
    let others = ["intake", "relay", "classify", "notices", "followup", "projection"];
    let port = free_port();
    let _rest = deployment.spawn(&others, port, &[]);
    let mut dispatch = deployment.spawn(&["dispatch"], free_port(), &[]);
    deployment.wait_healthy(port).await;
    let (mut moving_again, mut in_flight_done) = (Vec::new(), Vec::new());
    for round in 0..kills {
        let before = deployment.count_events("NoticeDelivered").await;
        deployment.submit(port, &format!("kill{round}"), CASES_PER_ROUND).await;
        while deployment.count_events("NoticeDelivered").await < before + 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        dispatch.signal("KILL");
        let killed_at = Instant::now();
        let _ = dispatch.0.wait();
        let stranded = in_flight(&deployment).await;
        let delivered_at_kill = deployment.count_events("NoticeDelivered").await;
        dispatch = deployment.spawn(&["dispatch"], free_port(), &[]);
        while deployment.count_events("NoticeDelivered").await <= delivered_at_kill {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        moving_again.push(killed_at.elapsed().as_secs_f64());
        loop {
            let still: Vec<uuid::Uuid> = in_flight(&deployment).await;
            if stranded.iter().all(|id| !still.contains(id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        in_flight_done.push(killed_at.elapsed().as_secs_f64());
        println!(
            "kill {}: {} attempts in flight; deliveries again after {:.1} s, every stranded attempt settled after {:.1} s",
            round + 1,
            stranded.len(),
            moving_again[round],
            in_flight_done[round]
        );
        deployment
            .wait_delivered((round + 1) * CASES_PER_ROUND, Duration::from_secs(300))
            .await;
    }
    let summary = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], times[times.len() - 1])
    };
    let (median, max) = summary(moving_again);
    let (settled_median, settled_max) = summary(in_flight_done);
    println!("recovery after SIGKILL of dispatch ({kills} kills; in-flight limit 4 s, timer poll 100 ms, lease 2 s):");
    println!("  deliveries again: median {median:.1} s, max {max:.1} s");
    println!("  stranded attempts settled: median {settled_median:.1} s, max {settled_max:.1} s");
    deployment
        .assert_exactly_once(
            kills * CASES_PER_ROUND,
            kills * (CASES_PER_ROUND + dijkwacht_tests::deployment::BATCH),
        )
        .await;
}
