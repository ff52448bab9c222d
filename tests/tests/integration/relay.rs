use crate::support::*;
use dijkwacht_domain::CaseId;
use dijkwacht_runtime::kafka::{EmbeddedBroker, ProducerSettings};
use dijkwacht_runtime::relay::{Relay, RelaySettings};
use dijkwacht_runtime::{Health, RecordedEvent, SharedClock, Topic, TopicNames};
use dijkwacht_tests::{create_topics, eventually, test_clock, unique_prefix, TestDatabase, DEMO_SHA256};
use rdkafka::Message;
use std::collections::HashMap;
use std::time::Duration;

fn relay(db: &TestDatabase, bootstrap_servers: &str, topics: &TopicNames, batch_size: i64) -> Relay {
    relay_with(db, bootstrap_servers, topics, batch_size, &Health::default())
}

fn relay_with(
    db: &TestDatabase,
    bootstrap_servers: &str,
    topics: &TopicNames,
    batch_size: i64,
    health: &Health,
) -> Relay {
    let clock: SharedClock = std::sync::Arc::new(test_clock());
    Relay::new(
        db.pool.clone(),
        ProducerSettings {
            bootstrap_servers: bootstrap_servers.to_owned(),
            message_timeout: Duration::from_millis(1500),
            idempotence: true,
        },
        topics.clone(),
        clock,
        health.register("relay", "not started"),
        RelaySettings {
            batch_size,
            idle: Duration::from_millis(20),
            max_lag: chrono::TimeDelta::seconds(60),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn every_event_reaches_the_broker_once_per_relay_run_in_case_order() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    let broker = EmbeddedBroker::start(1).unwrap();
    let topics = create_topics(&broker, &unique_prefix(), 3).unwrap();
    let cases: Vec<CaseId> = (0..5).map(|_| CaseId::new()).collect();
    let mut written = 0;
    for (i, case_id) in cases.iter().enumerate() {
        written += append(
            &store,
            *case_id,
            vec![report_received(&format!("https://a.example/{i}"), DEMO_SHA256)],
        )
        .await
        .len();
        for _ in 0..3 {
            written += append(&store, *case_id, vec![review_requested()]).await.len();
        }
    }
    // A small batch size makes the relay work through several batches.
    let relay = relay(&db, broker.bootstrap_servers(), &topics, 7);
    let mut published = 0;
    loop {
        let n = relay.publish_batch().await.unwrap().acknowledged;
        if n == 0 {
            break;
        }
        published += n;
    }
    assert_eq!(published, written);
    assert_eq!(
        relay.publish_batch().await.unwrap().acknowledged,
        0,
        "a second run publishes nothing"
    );

    let names = vec![topics.of(Topic::Reports), topics.of(Topic::Classifications)];
    let messages = consume(broker.bootstrap_servers(), &names, written, Duration::from_secs(30)).await;
    let mut positions = std::collections::HashSet::new();
    let mut last_version: HashMap<(String, CaseId), u32> = HashMap::new();
    for message in &messages {
        let event: RecordedEvent = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_eq!(message.key(), Some(event.case_id.to_string().as_bytes()));
        assert!(
            positions.insert(event.position),
            "position {} arrived twice",
            event.position
        );
        let previous = last_version.insert((message.topic().to_owned(), event.case_id), event.version);
        assert!(
            previous.is_none_or(|v| v < event.version),
            "case {} out of order",
            event.case_id
        );
    }
    assert_eq!(positions.len(), written);
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(unpublished, 0);
}

#[tokio::test]
async fn rows_that_can_never_be_published_are_quarantined_and_the_rest_go_on() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    let broker = EmbeddedBroker::start(1).unwrap();
    let topics = create_topics(&broker, &unique_prefix(), 1).unwrap();
    let (poisoned, healthy) = (CaseId::new(), CaseId::new());
    append(
        &store,
        poisoned,
        vec![report_received("https://a.example/p", DEMO_SHA256)],
    )
    .await;
    append(
        &store,
        healthy,
        vec![report_received("https://a.example/h", DEMO_SHA256)],
    )
    .await;
    // An event no code can read any more, and a row for a topic that does not exist.
    sqlx::query("UPDATE events SET payload = '\"not an object\"' WHERE stream_id = $1")
        .bind(poisoned.0)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (position, topic) SELECT position, 'no-such-topic' FROM events WHERE stream_id = $1",
    )
    .bind(healthy.0)
    .execute(&db.pool)
    .await
    .unwrap();

    let relay = relay(&db, broker.bootstrap_servers(), &topics, 10);
    let published = relay.publish_batch().await.unwrap();
    assert_eq!((published.acknowledged, published.quarantined), (1, 2));
    assert_eq!(relay.publish_batch().await.unwrap().acknowledged, 0);
    let reasons: Vec<(String, String)> =
        sqlx::query_as("SELECT topic, quarantine_reason FROM outbox WHERE quarantined_at IS NOT NULL ORDER BY topic")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(reasons[0].0, "no-such-topic");
    assert!(reasons[0].1.contains("unknown topic"), "{}", reasons[0].1);
    assert!(reasons[1].1.contains("cannot be read"), "{}", reasons[1].1);
    let messages = consume(
        broker.bootstrap_servers(),
        &[topics.of(Topic::Reports)],
        1,
        Duration::from_secs(30),
    )
    .await;
    let event: RecordedEvent = serde_json::from_slice(messages[0].payload().unwrap()).unwrap();
    assert_eq!(event.case_id, healthy);
}

#[tokio::test]
async fn readiness_fails_while_the_relay_cannot_publish_and_says_why() {
    let db = TestDatabase::create().await.unwrap();
    append(
        &db.store(),
        CaseId::new(),
        vec![report_received("https://a.example/r", DEMO_SHA256)],
    )
    .await;
    // Nothing listens there: every publish times out.
    let unreachable = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let health = Health::default();
    let relay = relay_with(&db, &unreachable, &TopicNames::new(unique_prefix()), 10, &health);
    let (trigger, shutdown) = dijkwacht_runtime::shutdown::channel();
    let task = tokio::spawn(relay.run(shutdown));
    let reason = eventually(
        "the relay to report it cannot publish",
        Duration::from_secs(30),
        || async {
            let report = health.report();
            let reason = report.components["relay"].clone();
            (!report.ready && reason.contains("cannot publish")).then_some(reason)
        },
    )
    .await;
    assert!(reason.contains("the relay cannot publish"), "{reason}");
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn readiness_fails_while_the_oldest_unpublished_event_waits_too_long() {
    let db = TestDatabase::create().await.unwrap();
    let broker = EmbeddedBroker::start(1).unwrap();
    let topics = create_topics(&broker, &unique_prefix(), 1).unwrap();
    let relay = relay(&db, broker.bootstrap_servers(), &topics, 10);
    let recorded = append(
        &db.store(),
        CaseId::new(),
        vec![report_received("https://a.example/l", DEMO_SHA256)],
    )
    .await;
    let at = recorded[0].recorded_at;
    assert_eq!(
        relay.lag(at + chrono::TimeDelta::seconds(61)).await.unwrap(),
        Some(chrono::TimeDelta::seconds(61))
    );
    relay.publish_batch().await.unwrap();
    assert_eq!(relay.lag(at + chrono::TimeDelta::seconds(61)).await.unwrap(), None);
}

#[tokio::test]
async fn a_producer_that_failed_fatally_is_replaced_and_publishing_goes_on() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let db = TestDatabase::create().await.unwrap();
    let broker = EmbeddedBroker::start(1).unwrap();
    let topics = create_topics(&broker, &unique_prefix(), 1).unwrap();
    // The idempotent producer's first request for a producer id is refused in a way
    // librdkafka treats as fatal: that producer will never send anything.
    broker
        .fail_requests(
            RDKafkaApiKey::InitProducerId,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
        )
        .unwrap();
    let case_id = CaseId::new();
    append(
        &db.store(),
        case_id,
        vec![report_received("https://a.example/f", DEMO_SHA256)],
    )
    .await;
    let health = Health::default();
    let relay = relay_with(&db, broker.bootstrap_servers(), &topics, 10, &health);
    let (trigger, shutdown) = dijkwacht_runtime::shutdown::channel();
    let task = tokio::spawn(relay.run(shutdown));
    let messages = consume(
        broker.bootstrap_servers(),
        &[topics.of(Topic::Reports)],
        1,
        Duration::from_secs(30),
    )
    .await;
    let event: RecordedEvent = serde_json::from_slice(messages[0].payload().unwrap()).unwrap();
    assert_eq!(event.case_id, case_id);
    trigger.trigger();
    task.await.unwrap();
}
