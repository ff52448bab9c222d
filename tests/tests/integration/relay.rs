use crate::support::*;
use dijkwacht_domain::CaseId;
use dijkwacht_runtime::kafka::{self, EmbeddedBroker};
use dijkwacht_runtime::relay::Relay;
use dijkwacht_runtime::{RecordedEvent, Topic};
use dijkwacht_tests::{create_topics, unique_prefix, TestDatabase, DEMO_SHA256};
use rdkafka::Message;
use std::collections::HashMap;
use std::time::Duration;

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
    let producer = kafka::producer(broker.bootstrap_servers()).unwrap();
    // A small batch size makes the relay work through several batches.
    let relay = Relay::new(db.pool.clone(), producer, topics.clone(), 7);
    let mut published = 0;
    loop {
        let n = relay.publish_batch().await.unwrap();
        if n == 0 {
            break;
        }
        published += n;
    }
    assert_eq!(published, written);
    assert_eq!(
        relay.publish_batch().await.unwrap(),
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
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(unpublished, 0);
}
