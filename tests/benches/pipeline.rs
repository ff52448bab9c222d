//! Pipeline throughput: reports per second carried from intake through classify, notices and
//! dispatch to a delivered notice at the simulated platform, all stages in one process on the
//! embedded broker, with the project-local PostgreSQL — and, in the same run, the raw floor
//! under it: the very events the pipeline wrote, appended again (hash chain, outbox rows and
//! wake-ups included) in batches over several connections, published by the relay with the
//! same producer settings and read back by a consumer group on the same broker. No domain
//! decisions, no HTTP. Twice: each case's events in one append, and in the appends the stages
//! made (one per stage step, each case loaded from the cache before it), which tells the cost
//! of the pipeline's shape apart from the cost of its work. The pipeline's figure is printed
//! as a share of each floor, each with the CPU it took per case. Then the latency: reports one by one at a constant rate of half
//! the pipeline's figure, from acceptance to delivered notice by the events' own times.
//! Between them, the same load on the `dijkwacht` binary in a process of its own, as
//! production runs it, for the system's own memory and CPU.
//!
//! Run with `make bench`. Environment: BENCH_CASES (default 20000), BENCH_LATENCY_SECS
//! (default 60; 0 skips the latency step), BENCH_LATENCY_RATE (reports per second; half
//! the pipeline's figure by default), BENCH_CASE_CACHE (the `case_cache` setting),
//! BENCH_OWN_PROCESS (default 1; 0 skips the step with the binary in its own process).

use chrono::{TimeDelta, Utc};
use dijkwacht_domain::CaseId;
use dijkwacht_runtime::kafka::{self, EmbeddedBroker};
use dijkwacht_runtime::relay::{Relay, RelaySettings};
use dijkwacht_runtime::{
    shutdown, CaseChange, EventStore, Health, LoadedCase, RecordedEvent, SharedClock, SystemClock, Topic,
};
use dijkwacht_simulator::Simulator;
use dijkwacht_tests::deployment::{free_port, BrokerProcess, Deployment};
use dijkwacht_tests::measure::{cpu_seconds_of, peak_rss_mib, peak_rss_mib_of, CpuMeter};
use dijkwacht_tests::{
    create_topics, listed_report_line, unique_prefix, TestDatabase, TestOptions, TestSystem, PLATFORM_ID, UNLIMITED,
    UNLIMITED_BURST,
};
use futures::{StreamExt, TryStreamExt};
use rdkafka::consumer::{Consumer, DefaultConsumerContext, StreamConsumer};
use rdkafka::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cases per append transaction, and transactions in flight at once, in the floor.
const FLOOR_BATCH: usize = 500;
const FLOOR_CONNECTIONS: usize = 4;

/// Notices the read models count as delivered.
const DELIVERED: &str = "SELECT count(*) FROM notice_facts WHERE delivered_at IS NOT NULL";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// No follow-up work (deadlines, removal checks) comes due while a bench runs.
fn bench_options() -> TestOptions {
    let defaults = TestOptions::default();
    TestOptions {
        deadline_secs: 86_400,
        recheck_secs: 86_400,
        case_cache: setting("BENCH_CASE_CACHE", defaults.case_cache),
        // The bulk request's lines count against the partner's rate limit.
        partner_requests_per_second: UNLIMITED,
        partner_burst: UNLIMITED_BURST,
        ..defaults
    }
}

#[tokio::main]
async fn main() {
    let cases = setting("BENCH_CASES", 20_000);
    let latency_secs = setting("BENCH_LATENCY_SECS", 60);
    let system = TestSystem::start(bench_options())
        .await
        .expect("a test system (make postgres)");
    system.wait_until_ready().await;
    let cpu = CpuMeter::start();
    system.bulk_report_listed("pipe-", cases).await;
    let accepted = cpu.stop().wall_seconds;
    delivered(&system, cases).await;
    let used = cpu.stop();
    let path = format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance");
    let (_, compliance) = system.get(&path, &system.regulator_key).await;
    assert_eq!(compliance["total"]["notices_sent"].as_u64(), Some(cases as u64));
    assert_eq!(system.simulator.notices().len(), cases, "one notice per case");
    let pipeline = cases as f64 / used.wall_seconds;
    println!(
        "pipeline: {cases} reports accepted in {accepted:.1} s; all notices delivered and projected after {:.1} s",
        used.wall_seconds
    );
    println!("  = {pipeline:.0} cases/s from report to delivered notice");
    println!("  {}", used.per(cases));
    println!(
        "  peak RSS of the process (system, broker, simulator, client): {:.0} MiB",
        peak_rss_mib()
    );
    let streams = streams(&system.app.store).await;
    system.app.stop().await;

    let events: usize = streams.iter().map(Vec::len).sum();
    let appends: usize = streams.iter().map(|stream| steps_of(stream).len()).sum();
    for (appended, how) in [
        (Appends::Whole, "each case in one append".to_owned()),
        (
            Appends::AsTheStages,
            format!(
                "in the stages' {:.1} appends per case",
                appends as f64 / streams.len() as f64
            ),
        ),
    ] {
        let cpu = CpuMeter::start();
        let read = floor(&streams, appended).await;
        let floor_used = cpu.stop();
        let floor = streams.len() as f64 / floor_used.wall_seconds;
        println!(
            "floor, {how}: the same {events} events ({:.1} per case) appended, relayed and consumed in {:.1} s",
            events as f64 / streams.len() as f64,
            floor_used.wall_seconds
        );
        println!(
            "  = {floor:.0} cases/s ({:.0} events/s); the pipeline reaches {:.2} of it",
            events as f64 / floor_used.wall_seconds,
            pipeline / floor
        );
        println!("  {}", floor_used.per(streams.len()));
        if read < events {
            println!(
                "  the consumer read {read}: the embedded broker dropped {} unread (it keeps at most 5 MB per partition)",
                events - read
            );
        }
    }

    if setting("BENCH_OWN_PROCESS", 1) == 1 {
        own_process(cases).await;
    }

    if latency_secs > 0 {
        let half = (pipeline / 2.0) as usize;
        let rate = setting("BENCH_LATENCY_RATE", half);
        let chosen = if rate == half {
            "half the pipeline's figure"
        } else {
            "BENCH_LATENCY_RATE"
        };
        latency(rate as f64, chosen, Duration::from_secs(latency_secs as u64)).await;
    }
}

/// The same load on the system as production runs it: the `dijkwacht` binary alone in its
/// process (all parts, default settings), the broker, the simulated platform and the client
/// outside it, in this bench process. What that process holds and spends is the system's own.
async fn own_process(cases: usize) {
    let database = TestDatabase::create().await.expect("a database");
    let broker = BrokerProcess::Embedded(EmbeddedBroker::start(1).expect("the embedded broker"));
    let deployment = Deployment::start_with_partitions(database, broker, kafka::DEFAULT_PARTITIONS).await;
    let port = free_port();
    let case_cache = std::env::var("BENCH_CASE_CACHE").ok();
    let cache_setting: Vec<(&str, &str)> = case_cache
        .iter()
        .map(|cases| ("DIJKWACHT_CASE_CACHE", cases.as_str()))
        .collect();
    let process = deployment.spawn_at_default_pace(&[], port, &cache_setting);
    deployment.wait_healthy(port).await;
    let pid = process.0.id().to_string();
    let (cpu, started_with) = (CpuMeter::start(), cpu_seconds_of(&pid));
    deployment.submit(port, "own-", cases).await;
    at_the_platform(&deployment.simulator, cases).await;
    deployment.wait_delivered(cases, Duration::from_secs(60)).await;
    let used = cpu.stop();
    let own = cpu_seconds_of(&pid) - started_with;
    println!(
        "the binary in a process of its own (broker, simulator and client outside it): {cases} cases delivered in {:.1} s",
        used.wall_seconds
    );
    println!(
        "  = {:.0} cases/s; {:.2} ms CPU each in its process, {:.2} ms on the whole machine",
        cases as f64 / used.wall_seconds,
        own * 1000.0 / cases as f64,
        used.machine_seconds * 1000.0 / cases as f64
    );
    println!("  peak RSS of the dijkwacht process: {:.0} MiB", peak_rss_mib_of(&pid));
    process.signal("TERM");
}

/// Waits until `cases` notices have reached the platform and the read models count them
/// as delivered. The simulator's count costs nothing; the database's is asked only then, so
/// that the bench's own queries do not weigh on the pipeline it measures.
async fn delivered(system: &TestSystem, cases: usize) {
    at_the_platform(&system.simulator, cases).await;
    counted(&system.database.pool, DELIVERED, cases as i64).await;
}

/// Waits until `cases` notices have reached the simulated platform (a count in memory).
async fn at_the_platform(simulator: &Simulator, cases: usize) {
    while simulator.notice_count() < cases {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `count` (a query of one number) reaches `at_least`: a count in the database
/// is cheap enough to ask often (the regulators' API is asked once, at the end).
async fn counted(pool: &sqlx::PgPool, count: &str, at_least: i64) {
    loop {
        let counted: i64 = sqlx::query_scalar(count).fetch_one(pool).await.expect("a count");
        if counted >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reports one at a time at `rate` per second for `duration`, each sent when its time comes
/// whether or not the earlier ones are done; then the times from each report's acceptance to
/// its delivered notice.
async fn latency(rate: f64, chosen: &str, duration: Duration) {
    let system = Arc::new(
        TestSystem::start(bench_options())
            .await
            .expect("a test system (make postgres)"),
    );
    system.wait_until_ready().await;
    // The system runs on a manual clock: here it follows real time, millisecond by millisecond.
    let clock = system.clock.clone();
    let ticking = tokio::spawn(async move {
        let mut last = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            clock.advance(TimeDelta::from_std(now - last).expect("a short step"));
            last = now;
        }
    });
    let total = (rate * duration.as_secs_f64()) as usize;
    let content = system.content_url("lat-");
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(total);
    let cpu = CpuMeter::start();
    for i in 0..total {
        interval.tick().await;
        let (system, url) = (system.clone(), format!("{content}{i}"));
        sent.push(tokio::spawn(async move {
            let line = listed_report_line(&format!("LAT-{i}"), &url);
            let answer = system
                .http
                .post(system.api("/v1/reports"))
                .bearer_auth(&system.partner_key)
                .header("content-type", "application/json")
                .body(line)
                .send()
                .await
                .expect("a report");
            assert!(answer.status().is_success(), "{}", answer.status());
        }));
    }
    for report in sent {
        report.await.expect("a report sent");
    }
    delivered(&system, total).await;
    let used = cpu.stop();
    ticking.abort();
    let mut seconds: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM d.recorded_at - r.recorded_at)::float8 FROM events r \
         JOIN events d ON d.stream_id = r.stream_id AND d.event_type = 'NoticeDelivered' \
         WHERE r.event_type = 'ReportReceived'",
    )
    .fetch_all(&system.database.pool)
    .await
    .expect("the latencies");
    seconds.sort_by(f64::total_cmp);
    let at = |share: f64| seconds[((seconds.len() as f64 * share) as usize).min(seconds.len() - 1)] * 1000.0;
    println!(
        "latency: {total} reports one by one at {rate:.0}/s for {} s ({chosen}), grouping off",
        duration.as_secs()
    );
    println!(
        "  acceptance to delivered notice: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        at(0.50),
        at(0.95),
        at(0.99),
        seconds.last().copied().unwrap_or(0.0) * 1000.0
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!(
        "  {}; the machine's cores {:.0} % busy",
        used.per(total),
        100.0 * used.machine_seconds / (used.wall_seconds * cores)
    );
    along_the_way(&system).await;
    if let Ok(system) = Arc::try_unwrap(system) {
        system.app.stop().await;
    }
}

/// Where the time to a delivered notice goes: from acceptance to each later event, by its
/// type, in the order the stages write them.
async fn along_the_way(system: &TestSystem) {
    let steps: Vec<(String, Vec<f64>)> = sqlx::query_as(
        "SELECT d.event_type, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP \
             (ORDER BY extract(epoch FROM d.recorded_at - r.recorded_at) * 1000) \
         FROM events r JOIN events d ON d.stream_id = r.stream_id AND d.stream_version > r.stream_version \
         WHERE r.event_type = 'ReportReceived' GROUP BY d.event_type ORDER BY min(d.stream_version)",
    )
    .fetch_all(&system.database.pool)
    .await
    .expect("the steps");
    for (event_type, at) in steps {
        println!(
            "  to {event_type}: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
            at[0], at[1], at[2]
        );
    }
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

/// From the first append until a consumer group has read every event.
async fn floor(streams: &[Vec<RecordedEvent>], appends: Appends) -> usize {
    let database = TestDatabase::create().await.expect("a database");
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
    let consumer = Arc::new(consumer);
    let (trigger, stop) = shutdown::channel();
    let (ends_known, ends) = tokio::sync::watch::channel(None);

    let relaying = tokio::spawn(relay.run(stop));
    let consuming = tokio::spawn(read_to_the_end(consumer.clone(), ends));
    let store = database.store().with_case_cache(2 * streams.len());
    let ids: Vec<CaseId> = streams.iter().map(|_| CaseId::new()).collect();
    match appends {
        Appends::Whole => {
            let whole = ids.iter().copied().zip(streams.iter().map(Vec::as_slice)).collect();
            append_in_batches(&store, whole, appends).await;
        }
        Appends::AsTheStages => {
            let steps: Vec<Vec<&[RecordedEvent]>> = streams.iter().map(|stream| steps_of(stream)).collect();
            for step in 0..steps.iter().map(Vec::len).max().unwrap_or(0) {
                let cases = ids
                    .iter()
                    .zip(&steps)
                    .filter_map(|(id, steps)| Some((*id, *steps.get(step)?)))
                    .collect();
                append_in_batches(&store, cases, appends).await;
            }
        }
    }
    counted(&database.pool, "SELECT -count(*) FROM outbox", 0).await;
    let mut last_offsets = HashMap::new();
    for topic in &names {
        for partition in 0..kafka::DEFAULT_PARTITIONS {
            let (_, end) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("the end of a partition");
            if end > 0 {
                last_offsets.insert((topic.clone(), partition), end - 1);
            }
        }
    }
    ends_known.send(Some(last_offsets)).expect("the consumer waits");
    let read = consuming.await.expect("every partition read to its end");
    trigger.trigger();
    let _ = relaying.await;
    read
}

/// How the floor appends each case's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appends {
    /// All in one append: the least the store can do.
    Whole,
    /// In the appends the stages made, step after step for all cases, each case loaded
    /// (from the cache, as a stage does) before each: the pipeline's commits without its work.
    AsTheStages,
}

/// A stream cut where the pipeline's appends were: a run of events by one actor for one cause.
fn steps_of(stream: &[RecordedEvent]) -> Vec<&[RecordedEvent]> {
    stream
        .chunk_by(|a, b| a.metadata.actor == b.metadata.actor && a.metadata.causation == b.metadata.causation)
        .collect()
}

/// Appends `cases` (each its events) in batches of [`FLOOR_BATCH`] cases, [`FLOOR_CONNECTIONS`]
/// transactions at once.
async fn append_in_batches(store: &EventStore, cases: Vec<(CaseId, &[RecordedEvent])>, appends: Appends) {
    let now = Utc::now();
    futures::stream::iter(cases.chunks(FLOOR_BATCH))
        .map(|batch| async move {
            let ids: Vec<CaseId> = batch.iter().map(|(id, _)| *id).collect();
            let mut loaded = match appends {
                Appends::Whole => HashMap::new(),
                Appends::AsTheStages => store.load(&ids).await.expect("a load").cases,
            };
            let changes: Vec<CaseChange> = batch
                .iter()
                .map(|(id, events)| {
                    let mut change = CaseChange::new(loaded.remove(id).unwrap_or_else(|| LoadedCase::new(*id)));
                    for event in *events {
                        change.record(event.event.clone(), event.metadata.clone(), now);
                    }
                    change
                })
                .collect();
            store.append(&changes, now).await.expect("append");
        })
        .buffer_unordered(FLOOR_CONNECTIONS)
        .for_each(|_| async {})
        .await;
}

/// The offset of the last message of each partition, once every event is published.
type LastOffsets = HashMap<(String, i32), i64>;

/// Reads until every partition is read to its end; returns how many messages it read. That
/// may be fewer than were published: librdkafka's mock cluster keeps at most 5 MB per
/// partition and drops the oldest messages beyond, also those no consumer has read yet.
async fn read_to_the_end(
    consumer: Arc<StreamConsumer>,
    mut ends: tokio::sync::watch::Receiver<Option<LastOffsets>>,
) -> usize {
    let mut read = 0;
    let mut last_read: LastOffsets = HashMap::new();
    loop {
        let finished = ends.borrow().as_ref().is_some_and(|ends| {
            ends.iter()
                .all(|(partition, end)| last_read.get(partition).is_some_and(|last| last >= end))
        });
        if finished {
            return read;
        }
        // A message that never comes fails the bench rather than hanging it.
        let message = tokio::select! {
            message = consumer.recv() => message.expect("a message"),
            Ok(()) = ends.changed() => continue,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {
                panic!("the floor's consumer read {read} events, then nothing for 60 s")
            }
        };
        read += 1;
        last_read.insert((message.topic().to_owned(), message.partition()), message.offset());
    }
}
