//! Event fixtures shared by the store, relay and stage tests.

use dijkwacht_domain::event::{Location, Reporter};
use dijkwacht_domain::*;
use dijkwacht_runtime::{CaseChange, EventStore, LoadedCase, Metadata, RecordedEvent};
use dijkwacht_tests::{eventually, test_clock, TestSystem, DEMO_SHA256};
use serde_json::{json, Value};
use std::time::Duration;

pub fn report_received(url: &str, sha256: &str) -> CaseEvent {
    CaseEvent::ReportReceived(ReportReceived {
        report_id: ReportId::new(),
        reporter: Reporter::Partner {
            partner_id: "partner-a".into(),
            partner_reference: "ref-1".into(),
        },
        location: Location {
            url: url.into(),
            hashes: vec![MediaHash::parse(HashAlgorithm::Sha256, sha256, None).unwrap()],
        },
        claimed_class: None,
        reappearance_of: None,
    })
}

pub fn review_requested() -> CaseEvent {
    CaseEvent::ReviewRequested(event::ReviewRequested {
        reason: event::ReviewReason::NoAutomatedMatch,
        police_first: None,
    })
}

/// The types of a case's events, oldest first.
pub async fn event_types(store: &EventStore, case_id: CaseId) -> Vec<&'static str> {
    store
        .read_stream(case_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.type_name())
        .collect()
}

/// Appends `events` to `case_id` on top of what it holds.
pub async fn append(store: &EventStore, case_id: CaseId, events: Vec<CaseEvent>) -> Vec<RecordedEvent> {
    let loaded = store.load_one(case_id).await.unwrap();
    append_to(store, &loaded, events).await.unwrap()
}

pub async fn append_to(
    store: &EventStore,
    loaded: &LoadedCase,
    events: Vec<CaseEvent>,
) -> Result<Vec<RecordedEvent>, dijkwacht_runtime::StoreError> {
    store
        .append(&[change(loaded, events)], dijkwacht_runtime::Clock::now(&test_clock()))
        .await
}

/// `events` on top of a case as loaded, as a test's actor records them.
pub fn change(loaded: &LoadedCase, events: Vec<CaseEvent>) -> CaseChange {
    let now = dijkwacht_runtime::Clock::now(&test_clock());
    let mut change = CaseChange::new(loaded.clone());
    for event in events {
        change.record(event, Metadata::actor("test"), now);
    }
    change
}

/// Reads `count` messages from `topics` with a fresh consumer group, failing after `timeout`.
pub async fn consume(
    bootstrap_servers: &str,
    topics: &[String],
    count: usize,
    timeout: std::time::Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::ClientConfig;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).unwrap();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while messages.len() < count {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => messages.push(message.detach()),
            Ok(Err(error)) => panic!("consuming {topics:?}: {error}"),
            Err(_) => panic!("only {} of {count} messages arrived on {topics:?}", messages.len()),
        }
    }
    messages
}

/// Produces raw bytes to a topic, keyed.
pub async fn produce(bootstrap_servers: &str, topic: &str, key: &str, payload: &[u8]) {
    let producer = dijkwacht_tests::test_producer(bootstrap_servers);
    producer
        .send(
            rdkafka::producer::FutureRecord::to(topic).key(key).payload(payload),
            std::time::Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Reports one location with [`DEMO_SHA256`] (listed as CSAM) at `url`; returns its case id.
pub async fn report_listed_at(system: &TestSystem, name: &str, url: &str) -> String {
    let (status, accepted) = system
        .post(
            "/v1/reports",
            &system.partner_key,
            &json!({"partner_reference": name, "items": [{"url": url,
                "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    accepted["cases"][0]["case_id"].as_str().unwrap().to_owned()
}

/// Reports the simulator's content `name` as a listed location; returns its case id.
pub async fn report_listed(system: &TestSystem, name: &str) -> String {
    report_listed_at(system, name, &system.content_url(name)).await
}

/// The case's events as stored, once one of them is `event_type`.
pub async fn settled_on(system: &TestSystem, case_id: &str, event_type: &str) -> Vec<Value> {
    let id = CaseId(case_id.parse().unwrap());
    eventually(
        &format!("{event_type} on {case_id}"),
        Duration::from_secs(60),
        || async {
            let stream = system.app.store.read_stream(id).await.ok()?;
            let events: Vec<Value> = stream.iter().map(|e| serde_json::to_value(&e.event).unwrap()).collect();
            events.iter().any(|e| e["type"] == event_type).then_some(events)
        },
    )
    .await
}

/// The case's events as stored, once `done` holds for them.
pub async fn eventually_events(system: &TestSystem, case_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let id = CaseId(case_id.parse().unwrap());
    eventually(
        &format!("the events wanted on {case_id}"),
        Duration::from_secs(60),
        || async {
            let stream = system.app.store.read_stream(id).await.ok()?;
            let events: Vec<Value> = stream.iter().map(|e| serde_json::to_value(&e.event).unwrap()).collect();
            done(&events).then_some(events)
        },
    )
    .await
}

/// The latest event of `event_type` among `events`.
pub fn last_of<'a>(events: &'a [Value], event_type: &str) -> &'a Value {
    events
        .iter()
        .rev()
        .find(|event| event["type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} in {events:?}"))
}
