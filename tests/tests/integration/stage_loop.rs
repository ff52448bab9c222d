use crate::support::*;
use dijkwacht_classify::host::StaticResolver;
use dijkwacht_classify::{ClassifyStage, Routing, SharedIndex, SharedRegistry};
use dijkwacht_domain::{CaseEvent, CaseId};
use dijkwacht_runtime::kafka::EmbeddedBroker;
use dijkwacht_runtime::shutdown;
use dijkwacht_runtime::{EventStore, Health, LoopSettings, StageLoop, StageRuntime, Topic, TopicNames};
use dijkwacht_tests::{
    create_topics, eventually, reference_data, test_clock, unique_prefix, TestDatabase, DEMO_SHA256,
};
use rdkafka::message::Headers;
use rdkafka::Message;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    db: TestDatabase,
    broker: EmbeddedBroker,
    topics: TopicNames,
    store: EventStore,
}

/// A database with reference data and single-partition topics, so messages keep the order
/// in which they were produced.
async fn fixture() -> Fixture {
    let db = TestDatabase::create().await.unwrap();
    reference_data("p", "r", "http://127.0.0.1:9/notices")
        .load_into(&db.pool, chrono::Utc::now())
        .await
        .unwrap();
    let broker = EmbeddedBroker::start(1).unwrap();
    let topics = create_topics(&broker, &unique_prefix(), 1).unwrap();
    let store = db.store();
    Fixture {
        db,
        broker,
        topics,
        store,
    }
}

/// A running stage; stopping it lets its consumer leave the group while the broker is up.
struct RunningStage {
    trigger: shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl RunningStage {
    async fn stop(self) {
        self.trigger.trigger();
        self.task.await.unwrap();
    }
}

async fn start_classify(f: &Fixture) -> RunningStage {
    let runtime = StageRuntime {
        store: f.store.clone(),
        clock: Arc::new(test_clock()),
        topics: f.topics.clone(),
        bootstrap_servers: f.broker.bootstrap_servers().to_owned(),
        producer: dijkwacht_tests::test_producer(f.broker.bootstrap_servers()),
        health: Health::default(),
        settings: LoopSettings {
            linger: Duration::from_millis(5),
            group_prefix: f.topics.prefix().to_owned(),
            ..LoopSettings::default()
        },
        embedded_broker: None,
    };
    let (trigger, stop) = shutdown::channel();
    let index = SharedIndex::load(&f.db.pool).await.unwrap();
    let registry = SharedRegistry::load(&f.db.pool).await.unwrap();
    let classify = ClassifyStage::new(
        f.db.pool.clone(),
        index,
        registry,
        Arc::new(StaticResolver::default()),
        Routing::default(),
    );
    let stage = StageLoop::new(classify, runtime);
    let task = tokio::spawn(async move { stage.run(stop).await.unwrap() });
    RunningStage { trigger, task }
}

/// A case with a report, as the relay would publish it.
async fn reported_case(f: &Fixture, path: &str) -> (CaseId, Vec<u8>) {
    let case_id = CaseId::new();
    let recorded = append(
        &f.store,
        case_id,
        vec![report_received(&format!("http://127.0.0.1/{path}"), DEMO_SHA256)],
    )
    .await;
    (case_id, serde_json::to_vec(&recorded[0]).unwrap())
}

async fn wait_classified(store: &EventStore, case_id: CaseId) {
    eventually("the case to be classified", Duration::from_secs(30), || async {
        event_types(store, case_id).await.contains(&"Classified").then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_same_message_delivered_twice_produces_its_events_once() {
    let f = fixture().await;
    let reports = f.topics.of(Topic::Reports);
    let (twice, payload) = reported_case(&f, "twice").await;
    let (after, later) = reported_case(&f, "after").await;
    let bootstrap = f.broker.bootstrap_servers().to_owned();
    produce(&bootstrap, &reports, &twice.to_string(), &payload).await;
    produce(&bootstrap, &reports, &twice.to_string(), &payload).await;
    produce(&bootstrap, &reports, &after.to_string(), &later).await;
    let stage = start_classify(&f).await;

    // One partition: once the last message is handled, both copies before it were too.
    wait_classified(&f.store, after).await;
    assert_eq!(
        event_types(&f.store, twice).await,
        vec!["ReportReceived", "HostResolved", "Classified"]
    );
    let classified = f.store.read_stream(twice).await.unwrap();
    let CaseEvent::Classified(classified) = &classified[2].event else {
        unreachable!()
    };
    assert!(classified.automated);
    stage.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_next_one_processed() {
    let f = fixture().await;
    let reports = f.topics.of(Topic::Reports);
    let bootstrap = f.broker.bootstrap_servers().to_owned();
    produce(&bootstrap, &reports, "garbage", b"{not an event").await;
    let (good, payload) = reported_case(&f, "good").await;
    produce(&bootstrap, &reports, &good.to_string(), &payload).await;
    let stage = start_classify(&f).await;

    wait_classified(&f.store, good).await;
    let dead = consume(
        &bootstrap,
        &[f.topics.of(Topic::DeadLetter)],
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(dead[0].payload(), Some(&b"{not an event"[..]));
    let headers = dead[0].headers().expect("dead letters carry headers");
    let reason = headers
        .iter()
        .find(|h| h.key == "dijkwacht-reason")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("a reason header");
    assert!(reason.contains("undecodable"), "{reason}");
    stage.stop().await;
}

#[tokio::test]
async fn a_case_whose_stream_cannot_be_read_is_set_apart_and_the_batch_goes_on() {
    let f = fixture().await;
    let reports = f.topics.of(Topic::Reports);
    let bootstrap = f.broker.bootstrap_servers().to_owned();
    let (poisoned, poisoned_payload) = reported_case(&f, "poisoned").await;
    let (good, good_payload) = reported_case(&f, "good-after-poison").await;
    // The stored event no longer decodes (a bad migration, a manual edit).
    sqlx::query("UPDATE events SET event_type = 'NoSuchEvent' WHERE stream_id = $1")
        .bind(poisoned.0)
        .execute(&f.db.pool)
        .await
        .unwrap();
    produce(&bootstrap, &reports, &poisoned.to_string(), &poisoned_payload).await;
    produce(&bootstrap, &reports, &good.to_string(), &good_payload).await;
    let stage = start_classify(&f).await;

    wait_classified(&f.store, good).await;
    let dead = consume(
        &bootstrap,
        &[f.topics.of(Topic::DeadLetter)],
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(dead[0].key(), Some(poisoned.to_string().as_bytes()));
    let stuck = dijkwacht_runtime::operator::list(&f.db.pool, 10).await.unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!((stuck[0].case_id, stuck[0].reason.as_str()), (poisoned, "unreadable"));
    assert!(
        stuck[0].detail.as_deref().unwrap().contains("NoSuchEvent"),
        "{:?}",
        stuck[0].detail
    );
    stage.stop().await;
}
