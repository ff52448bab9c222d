use crate::support::*;
use dijkwacht_domain::{CaseEvent, CaseId};
use dijkwacht_runtime::{LoadedCase, StoreError};
use dijkwacht_tests::{TestDatabase, DEMO_SHA256};
use std::time::Duration;

#[tokio::test]
async fn concurrent_appends_to_one_case_let_exactly_one_win() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    for round in 0..10 {
        let case_id = CaseId::new();
        append(
            &store,
            case_id,
            vec![report_received("https://a.example/x", DEMO_SHA256)],
        )
        .await;
        let loaded = store.load_one(case_id).await.unwrap();
        let (first, second) = tokio::join!(
            append_to(&store, &loaded, vec![review_requested()]),
            append_to(&store, &loaded, vec![review_requested()]),
        );
        let outcomes = [first.is_ok(), second.is_ok()];
        assert_eq!(
            outcomes.iter().filter(|ok| **ok).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        let loser = if first.is_ok() { second } else { first };
        assert!(matches!(loser, Err(StoreError::Conflict)), "round {round}: {loser:?}");
        assert_eq!(store.read_stream(case_id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_batch_append_is_all_or_nothing() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    let contested = CaseId::new();
    append(
        &store,
        contested,
        vec![report_received("https://a.example/1", DEMO_SHA256)],
    )
    .await;
    let stale_view = LoadedCase::new(contested);
    let fresh = change(
        &LoadedCase::new(CaseId::new()),
        vec![report_received("https://a.example/2", DEMO_SHA256)],
    );
    let conflicting = change(&stale_view, vec![report_received("https://a.example/1", DEMO_SHA256)]);
    let outcome = store.append(&[fresh.clone(), conflicting], chrono::Utc::now()).await;
    assert!(matches!(outcome, Err(StoreError::Conflict)), "{outcome:?}");
    assert!(store.read_stream(fresh.case.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_hash_chain_verifies_and_a_modified_row_is_detected() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    let (a, b) = (CaseId::new(), CaseId::new());
    append(&store, a, vec![report_received("https://a.example/x", DEMO_SHA256)]).await;
    append(&store, a, vec![review_requested()]).await;
    append(
        &store,
        b,
        vec![report_received("https://b.example/y", DEMO_SHA256), review_requested()],
    )
    .await;
    assert_eq!(store.verify().await.unwrap(), vec![]);

    sqlx::query("UPDATE events SET payload = jsonb_set(payload, '{location,url}', '\"https://elsewhere.example/\"') WHERE stream_id = $1 AND stream_version = 1")
        .bind(a.0)
        .execute(&db.pool)
        .await
        .unwrap();
    let breaks = store.verify().await.unwrap();
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert_eq!((breaks[0].case_id, breaks[0].version), (a.0, 1));

    for table in ["outbox", "events"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE position IN (SELECT position FROM events WHERE stream_id = $1 AND stream_version = 1)"
        ))
        .bind(b.0)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let breaks = store.verify().await.unwrap();
    assert!(breaks.iter().any(|x| x.case_id == b.0 && x.version == 2), "{breaks:?}");
}

#[tokio::test]
async fn events_read_back_as_written() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    let case_id = CaseId::new();
    let written = append(
        &store,
        case_id,
        vec![report_received("https://a.example/x", DEMO_SHA256), review_requested()],
    )
    .await;
    let read = store.read_stream(case_id).await.unwrap();
    assert_eq!(read, written);
    assert!(matches!(read[0].event, CaseEvent::ReportReceived(_)));
    assert_eq!(store.load_one(case_id).await.unwrap().case.version, 2);
}

/// Positions are drawn in insert order but commit in any order: what is reported as
/// committed through a position must have no append still in flight below it.
#[tokio::test]
async fn committed_through_waits_for_appends_in_flight_and_appends_wait_for_it() {
    let db = TestDatabase::create().await.unwrap();
    let store = db.store();
    let case_id = CaseId::new();
    append(
        &store,
        case_id,
        vec![report_received("https://a.example/c", DEMO_SHA256)],
    )
    .await;
    assert_eq!(store.committed_through().await.unwrap(), 1);

    // An append in flight (as every append holds it) keeps the answer back until it ends.
    let mut appending = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(dijkwacht_runtime::store::APPENDING)
        .execute(&mut *appending)
        .await
        .unwrap();
    let mut asking = tokio::spawn({
        let store = store.clone();
        async move { store.committed_through().await.unwrap() }
    });
    let held_back = tokio::time::timeout(Duration::from_millis(300), &mut asking).await;
    assert!(held_back.is_err(), "answered while an append was in flight");
    appending.commit().await.unwrap();
    assert_eq!(asking.await.unwrap(), 1);

    // And an append waits while the position is being read.
    let mut reading = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(dijkwacht_runtime::store::APPENDING)
        .execute(&mut *reading)
        .await
        .unwrap();
    let loaded = store.load_one(case_id).await.unwrap();
    let mut second = tokio::spawn({
        let store = store.clone();
        async move { append_to(&store, &loaded, vec![review_requested()]).await }
    });
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
    assert!(waited.is_err(), "appended while the position was being read");
    reading.commit().await.unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(store.committed_through().await.unwrap(), 2);
}
