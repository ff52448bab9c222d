//! Every typed telemetry event shows in `/metrics` after the end-to-end scenario, counting
//! what the event store and the platform saw.

use crate::support::{produce, report_listed, settled_on};
use chrono::TimeDelta;
use dijkwacht_domain::CaseId;
use dijkwacht_runtime::commands::{Attempt, Decision};
use dijkwacht_runtime::{CaseChange, Topic, TopicNames};
use dijkwacht_tests::{eventually, TestOptions, TestSystem, PLATFORM_ID};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `name{labels}` → value, as the Prometheus text says.
async fn scrape(system: &TestSystem) -> BTreeMap<String, f64> {
    let response = system.http.get(system.api("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(metrics: &BTreeMap<String, f64>, series: &str) -> f64 {
    *metrics
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {metrics:#?}"))
}

/// Another writer gets there first once, so the decision is made again.
struct ContendedOnce(AtomicBool);

impl Decision for ContendedOnce {
    type Output = ();

    async fn decide(
        &self,
        _tx: &mut PgConnection,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<((), Vec<CaseChange>), Attempt> {
        match self.0.swap(true, Ordering::SeqCst) {
            false => Err(Attempt::Contended),
            true => Ok(((), vec![])),
        }
    }
}

#[tokio::test]
async fn every_typed_event_is_counted_in_metrics() {
    // Without the cache, which would keep serving the case as it was before its edit.
    let system = TestSystem::start(TestOptions {
        case_cache: 0,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    system.wait_until_ready().await;
    let topics = TopicNames::new(system.settings.kafka_prefix.clone());

    let case_id = report_listed(&system, "counted").await;
    settled_on(&system, &case_id, "NoticeDelivered").await;
    // The removal checks come from the follow-up stage's wake-ups.
    system.clock.advance(TimeDelta::seconds(61));
    settled_on(&system, &case_id, "StillOnline").await;
    system.clock.advance(TimeDelta::seconds(61));
    settled_on(&system, &case_id, "CaseClosed").await;

    // A message nobody can read, and one about a case whose stream cannot be read any more.
    let reports_topic = topics.of(Topic::Reports);
    let bootstrap = system.app.broker.bootstrap_servers();
    produce(&bootstrap, &reports_topic, "poison", b"not an event").await;
    let id = CaseId(case_id.parse().unwrap());
    let first = system.app.store.read_stream(id).await.unwrap().remove(0);
    sqlx::query("UPDATE events SET event_type = 'NoSuchEvent' WHERE stream_id = $1 AND stream_version = 1")
        .bind(id.0)
        .execute(&system.database.pool)
        .await
        .unwrap();
    produce(
        &bootstrap,
        &reports_topic,
        &case_id,
        &serde_json::to_vec(&first).unwrap(),
    )
    .await;
    system
        .app
        .store
        .transact(
            &ContendedOnce(AtomicBool::new(false)),
            dijkwacht_runtime::Clock::now(&system.clock),
        )
        .await
        .unwrap();

    // Every event is published once (the relay deletes its outbox row then).
    let written: Vec<(String, i64)> = sqlx::query_as("SELECT event_type, count(*) FROM events GROUP BY event_type")
        .fetch_all(&system.database.pool)
        .await
        .unwrap();
    let mut per_topic: BTreeMap<&str, i64> = BTreeMap::new();
    for (event_type, count) in &written {
        // The event this test made unreadable was a report.
        let topic = Topic::for_type(event_type).unwrap_or(Topic::Reports);
        *per_topic.entry(topic.name()).or_default() += count;
    }
    let published: i64 = per_topic.values().sum();
    // The projection reads every topic; it has read them all once it set the unreadable
    // case apart and the lag is known. Both readers of the reports topic count a message as
    // consumed before they dead-letter it: wait for both dead letters of each.
    let metrics = eventually("the last counts", WAIT, || async {
        let metrics = scrape(&system).await;
        let settled = ["classify", "projection"].iter().all(|stage| {
            let apart = format!("dijkwacht_operator_queue_added_total{{stage=\"{stage}\",reason=\"unreadable\"}}");
            let dead = format!("dijkwacht_stage_dead_lettered_total{{stage=\"{stage}\",topic=\"{reports_topic}\"}}");
            metrics.contains_key(&apart) && metrics.get(&dead) == Some(&2.0)
        });
        let lag_known = metrics
            .keys()
            .any(|series| series.starts_with("dijkwacht_consumer_lag_messages{stage=\"projection\""));
        let relayed = metrics.get("dijkwacht_relay_published_total") == Some(&(published as f64));
        (settled && lag_known && relayed).then_some(metrics)
    })
    .await;

    // What each stage consumed is what the relay published to its topics, plus the two.
    let mut projected = 1.0;
    for (topic, rows) in &per_topic {
        let topic = topics.qualify(topic);
        let poison = if topic == reports_topic { 2.0 } else { 0.0 };
        let consumed = format!("dijkwacht_stage_consumed_total{{stage=\"projection\",topic=\"{topic}\"}}");
        assert_eq!(value(&metrics, &consumed), *rows as f64 + poison, "{consumed}");
        projected += *rows as f64;
    }
    let classify = format!("dijkwacht_stage_consumed_total{{stage=\"classify\",topic=\"{reports_topic}\"}}");
    assert_eq!(value(&metrics, &classify), 3.0, "the report and the two");
    assert!(projected > 10.0);
    for stage in ["classify", "projection"] {
        let dead = format!("dijkwacht_stage_dead_lettered_total{{stage=\"{stage}\",topic=\"{reports_topic}\"}}");
        assert_eq!(value(&metrics, &dead), 2.0, "{dead}");
        let apart = format!("dijkwacht_operator_queue_added_total{{stage=\"{stage}\",reason=\"unreadable\"}}");
        assert_eq!(value(&metrics, &apart), 1.0, "{apart}");
    }
    // Every event a stage appended is counted for it.
    let appended: Vec<(String, i64)> = sqlx::query_as(
        "SELECT metadata ->> 'actor', count(*) FROM events WHERE metadata ->> 'actor' LIKE 'stage:%' GROUP BY 1",
    )
    .fetch_all(&system.database.pool)
    .await
    .unwrap();
    for (actor, events) in appended {
        let stage = actor.trim_start_matches("stage:");
        let series = format!("dijkwacht_stage_appended_total{{stage=\"{stage}\"}}");
        assert_eq!(value(&metrics, &series), events as f64, "{series}");
        let decided = format!("dijkwacht_stage_decided_total{{stage=\"{stage}\"}}");
        assert!(value(&metrics, &decided) >= 1.0, "{decided}");
    }
    assert_eq!(value(&metrics, "dijkwacht_relay_published_total"), published as f64);
    assert_eq!(value(&metrics, "dijkwacht_relay_quarantined_total"), 0.0);
    assert_eq!(value(&metrics, "dijkwacht_relay_backlog_rows"), 0.0);
    assert!(metrics.contains_key("dijkwacht_relay_oldest_unpublished_seconds"));
    let delivered = format!(
        "dijkwacht_dispatch_notices_total{{platform=\"{PLATFORM_ID}\",channel=\"http\",outcome=\"delivered\"}}"
    );
    assert_eq!(value(&metrics, &delivered), 1.0);
    // The two removal checks were wake-ups of the follow-up stage, and each moved the case on.
    let woke = "dijkwacht_stage_timers_fired_total{stage=\"followup\",outcome=\"moved_on\"}";
    assert!(value(&metrics, woke) >= 2.0, "{woke}");
    assert_eq!(
        value(&metrics, "dijkwacht_command_conflicts_retried_total{by=\"request\"}"),
        1.0
    );
    let lag = format!("dijkwacht_consumer_lag_messages{{stage=\"classify\",topic=\"{reports_topic}\",partition=");
    assert!(metrics.keys().any(|series| series.starts_with(&lag)), "no {lag}");
}
