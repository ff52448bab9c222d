//! Pipeline throughput: reports per second carried from intake through classify, notices and
//! dispatch to a delivered notice at the simulated platform, all stages in one process on the
//! embedded broker, with the project-local PostgreSQL — and, in the same run, the raw floor
//! under it: the very events the pipeline wrote, appended again (hash chain, outbox rows and
//! wake-ups included) in batches over several connections, published by the relay with the
//! same producer settings and read back by a consumer group on the same broker. No domain
//! decisions, no HTTP. The pipeline's figure is printed as a share of the floor.
//!
//! Run with `make bench`. Environment: BENCH_CASES (default 20000).

use chrono::Utc;
use dijkwacht_domain::CaseId;
use dijkwacht_runtime::kafka::{self, EmbeddedBroker};
use dijkwacht_runtime::relay::{Relay, RelaySettings};
use dijkwacht_runtime::{
    shutdown, CaseChange, EventStore, Health, LoadedCase, RecordedEvent, SharedClock, SystemClock, Topic,
};
use dijkwacht_tests::{create_topics, unique_prefix, TestDatabase, TestOptions, TestSystem, PLATFORM_ID};
use futures::{StreamExt, TryStreamExt};
use rdkafka::consumer::{Consumer, DefaultConsumerContext};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cases per append transaction, and transactions in flight at once, in the floor.
const FLOOR_BATCH: usize = 500;
const FLOOR_CONNECTIONS: usize = 4;

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
        if compliance["total"]["notices_sent"].as_u64() == Some(cases as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = started.elapsed().as_secs_f64();
    assert_eq!(system.simulator.notices().len(), cases, "one notice per case");
    let pipeline = cases as f64 / delivered;
    println!("pipeline: {cases} reports accepted in {accepted:.1} s; all notices delivered and projected after {delivered:.1} s");
    println!("  = {pipeline:.0} cases/s from report to delivered notice");
    let streams = streams(&system.app.store).await;
    system.app.stop().await;

    let events: usize = streams.iter().map(Vec::len).sum();
    let seconds = floor(&streams).await;
    let floor = streams.len() as f64 / seconds;
    println!(
        "floor: the same {events} events ({:.1} per case) appended, relayed and consumed in {seconds:.1} s",
        events as f64 / streams.len() as f64
    );
    println!(
        "  = {floor:.0} cases/s ({:.0} events/s); the pipeline reaches {:.2} of it",
        events as f64 / seconds,
        pipeline / floor
    );
}

/// Every case's events as the pipeline wrote them.
async fn streams(store: &EventStore) -> Vec<Vec<RecordedEvent>> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT stream_id FROM events")
        .fetch_all(store.pool())
        .await
        .expect("the case ids");
    futures::stream::iter(ids)
        .map(|id| store.read_stream(CaseId(id)))
        .buffer_unordered(16)
        .try_collect()
        .await
        .expect("the streams")
}

/// Seconds from the first append until a consumer group has read every event.
async fn floor(streams: &[Vec<RecordedEvent>]) -> f64 {
    let database = TestDatabase::create().await.expect("a database");
    let store = database.store();
    let broker = EmbeddedBroker::start(1).expect("the embedded broker");
    let prefix = unique_prefix();
    let topics = create_topics(&broker, &prefix, kafka::DEFAULT_PARTITIONS).expect("topics");
    let producer_settings = kafka::ProducerSettings {
        bootstrap_servers: broker.bootstrap_servers().to_owned(),
        message_timeout: Duration::from_secs(30),
        idempotence: true,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let relay = Relay::new(
        database.pool.clone(),
        producer_settings,
        topics.clone(),
        clock,
        Health::default().register("relay", "floor"),
        RelaySettings {
            batch_size: 500,
            idle: Duration::from_millis(50),
            max_lag: chrono::TimeDelta::seconds(60),
        },
    )
    .expect("a relay");
    let consumer = kafka::consumer(
        broker.bootstrap_servers(),
        &format!("{prefix}floor"),
        DefaultConsumerContext,
    )
    .expect("a consumer");
    let names: Vec<String> = Topic::EVENTS.iter().map(|topic| topics.of(*topic)).collect();
    consumer
        .subscribe(&names.iter().map(String::as_str).collect::<Vec<_>>())
        .expect("subscribed");
    let events: usize = streams.iter().map(Vec::len).sum();
    let (trigger, stop) = shutdown::channel();

    let started = Instant::now();
    let relaying = tokio::spawn(relay.run(stop));
    let consuming = tokio::spawn(async move {
        let mut read = 0;
        while read < events {
            consumer.recv().await.expect("a message");
            read += 1;
        }
    });
    let now = Utc::now();
    futures::stream::iter(streams.chunks(FLOOR_BATCH))
        .map(|batch| {
            let changes: Vec<CaseChange> = batch
                .iter()
                .map(|stream| {
                    let mut change = CaseChange::new(LoadedCase::new(CaseId::new()));
                    for event in stream {
                        change.record(event.event.clone(), event.metadata.clone(), now);
                    }
                    change
                })
                .collect();
            let store = store.clone();
            async move { store.append(&changes, now).await.expect("append") }
        })
        .buffer_unordered(FLOOR_CONNECTIONS)
        .for_each(|_| async {})
        .await;
    consuming.await.expect("every event consumed");
    let seconds = started.elapsed().as_secs_f64();
    trigger.trigger();
    let _ = relaying.await;
    seconds
}
