//! The regulators' side at scale.
//!
//! * `rebuild`: cases with a whole notice life each (report to verified removal, ten events)
//!   are rebuilt into fresh read models, beside `COPY` of the same read-model rows into
//!   empty tables of the same shape in the same run: events/s, and the rebuild's share of
//!   COPY's speed (aims: ≥ 100,000 events/s and ≥ 0.5 of COPY).
//! * `dossier`: an enforcement dossier on 100,000 notices exported and verified against the
//!   store: seconds, and the process's peak memory during each (it must stream).
//!
//! Run with `make bench`. Environment: BENCH_REBUILD_CASES (default 20000),
//! BENCH_DOSSIER_NOTICES (default 100000).

use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::*;
use dijkwacht_projection::dossier::{self, Breach, DossierRequest};
use dijkwacht_projection::remit::PlatformInRemit;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::signing::SigningKey;
use dijkwacht_runtime::{CaseCommand, EventStore, Metadata};
use dijkwacht_tests::measure::{peak_rss_mib, reset_peak_rss};
use dijkwacht_tests::{script, TestDatabase};
use std::time::Instant;

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    rebuild().await;
    dossier().await;
}

/// The commands that take one case from its report to its verified removal, step by step.
fn steps(case: usize, notice_id: NoticeId, settings: &Settings, at: DateTime<Utc>) -> Vec<Command> {
    let endpoint = "https://platform.example/notices".to_owned();
    let channel = Channel::Http {
        endpoint: endpoint.clone(),
    };
    let report = script::report(
        &format!("bench-{case}"),
        format!("https://platform.example/content/{case}"),
    );
    vec![
        Command::ReceiveReport(report),
        script::classify(
            Some(script::host("bench-platform", "Bench platform", endpoint)),
            ContentClass::Csam,
            at,
        ),
        Command::IssueNotice {
            notice_id,
            policy: settings.notice_policy(),
        },
        Command::StartDispatch {
            lost_after: TimeDelta::seconds(90),
            policy: script::dispatch_policy(),
            channels: vec![channel.clone()],
            pace: None,
        },
        Command::RecordDispatchOutcome {
            attempt: 1,
            outcome: DispatchOutcome::Delivered {
                platform_reference: None,
                message_id: None,
            },
            policy: script::dispatch_policy(),
            channels: vec![channel],
        },
        Command::SetDeadline { rule: None },
        Command::RecordPlatformAnswer(PlatformAnswer::Receipt(ReceiptAcknowledged {
            notice_id,
            platform_event_id: format!("receipt-{case}"),
            received_at: None,
        })),
        Command::RecordPlatformAnswer(PlatformAnswer::Decision(script::removal_decision(
            notice_id,
            format!("decision-{case}"),
        ))),
        Command::RecordRemovalCheck {
            observation: Observation::Gone { http_status: 404 },
            policy: FollowupPolicy::default(),
        },
    ]
}

/// `cases` cases through their whole notice life, a chunk of cases per command.
async fn fill(store: &EventStore, cases: usize) {
    let settings = Settings::default();
    let start = Utc::now() - TimeDelta::days(30);
    for chunk in (0..cases).collect::<Vec<_>>().chunks(1000) {
        let ids: Vec<(CaseId, NoticeId)> = chunk.iter().map(|_| (CaseId::new(), NoticeId::new())).collect();
        for step in 0..9 {
            let at = start + TimeDelta::minutes(step as i64 * 10);
            let commands: Vec<CaseCommand> = chunk
                .iter()
                .zip(&ids)
                .map(|(case, (case_id, notice_id))| {
                    let command = steps(*case, *notice_id, &settings, at).swap_remove(step);
                    CaseCommand::new(*case_id, command, Metadata::actor("bench"))
                })
                .collect();
            let executed = store.execute(&commands, at).await.expect("the bench's commands");
            assert!(
                executed.outcomes.iter().all(Result::is_ok),
                "step {step}: {:?}",
                executed.outcomes[0]
            );
        }
    }
}

async fn rebuild() {
    let cases = env("BENCH_REBUILD_CASES", 20_000) as usize;
    let database = TestDatabase::create().await.expect("a database (make postgres)");
    let store = database.store();
    let started = Instant::now();
    fill(&store, cases).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&database.pool)
        .await
        .unwrap();
    println!(
        "rebuild: {cases} cases, {events} events written through the command path in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // As a database that has been running: its statistics current, its dead rows gone.
    sqlx::query("VACUUM ANALYZE").execute(&database.pool).await.unwrap();
    // Twice: the first also warms the cache; the better run counts.
    let mut rebuild_secs = f64::MAX;
    for run in 1..=2 {
        let started = Instant::now();
        let rebuilt = dijkwacht_projection::rebuild::rebuild(&store, Utc::now())
            .await
            .expect("the rebuild");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(rebuilt.cases, cases);
        println!("  rebuild run {run}: {secs:.2} s");
        rebuild_secs = rebuild_secs.min(secs);
    }

    // Where the time goes, phase by phase on one connection pool, one chunk at a time.
    let ids: Vec<CaseId> = sqlx::query_scalar::<_, uuid::Uuid>("SELECT DISTINCT stream_id FROM events ORDER BY 1")
        .fetch_all(&database.pool)
        .await
        .unwrap()
        .into_iter()
        .map(CaseId)
        .collect();
    let (mut load, mut project, mut waits) = (0.0, 0.0, 0.0);
    for chunk in ids.chunks(dijkwacht_projection::rebuild::CHUNK as usize) {
        let started = Instant::now();
        let loaded = store.load(chunk).await.unwrap();
        load += started.elapsed().as_secs_f64();
        let states: Vec<&Case> = loaded.cases.values().map(|loaded| loaded.case.as_ref()).collect();
        let started = Instant::now();
        dijkwacht_projection::project(&database.pool, &states).await.unwrap();
        project += started.elapsed().as_secs_f64();
        let started = Instant::now();
        store.rewrite_waits(&states, Utc::now()).await.unwrap();
        waits += started.elapsed().as_secs_f64();
    }
    println!(
        "  one chunk at a time: load and fold {load:.2} s, read-model upserts {project:.2} s, wake-ups {waits:.2} s"
    );

    // The floor: the same rows, copied into empty tables of the same shape.
    let tables = ["case_summaries", "notice_facts", "prior_decisions"];
    let mut connection = database.pool.acquire().await.unwrap();
    let mut dumps = Vec::new();
    for table in tables {
        let mut out = connection
            .copy_out_raw(&format!("COPY {table} TO STDOUT"))
            .await
            .unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut out).await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        drop(out);
        sqlx::query(&format!("CREATE TABLE {table}_copy (LIKE {table} INCLUDING ALL)"))
            .execute(&mut *connection)
            .await
            .unwrap();
        dumps.push((table, bytes));
    }
    let started = Instant::now();
    for (table, bytes) in &dumps {
        let mut copy = connection
            .copy_in_raw(&format!("COPY {table}_copy FROM STDIN"))
            .await
            .unwrap();
        copy.send(bytes.as_slice()).await.unwrap();
        copy.finish().await.unwrap();
    }
    let copy_secs = started.elapsed().as_secs_f64();
    let per_second = |secs: f64| events as f64 / secs;
    println!(
        "  rebuild: {:.0} events/s ({rebuild_secs:.2} s); COPY of the same rows: {:.0} events/s ({copy_secs:.2} s); \
         rebuild / COPY = {:.2}",
        per_second(rebuild_secs),
        per_second(copy_secs),
        copy_secs / rebuild_secs
    );
}

/// Notices enough for a large dossier, written straight into the store's tables: a five-event
/// chain per case and its read-model rows (the dossier reads nothing else).
async fn fill_notices(pool: &sqlx::PgPool, notices: i64) {
    sqlx::query(
        "INSERT INTO platforms (platform_id, name, country, notice_endpoint) \
         VALUES ('bench-platform', 'Bench platform', 'NL', 'https://platform.example/notices')",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE UNLOGGED TABLE bench_cases AS SELECT gen_random_uuid() AS case_id, n, \
             now() - interval '30 days' + n * interval '1 second' AS at FROM generate_series(1, $1) AS n",
    )
    .bind(notices)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash) \
         SELECT c.case_id, v, (ARRAY['ReportReceived','Classified','NoticeIssued','NoticeDelivered','RemovalVerified'])[v], \
             1, '{}'::jsonb, '{}'::jsonb, c.at + v * interval '1 minute', \
             sha256(convert_to(c.case_id::text || (v - 1), 'UTF8')), sha256(convert_to(c.case_id::text || v, 'UTF8')) \
         FROM bench_cases c CROSS JOIN generate_series(1, 5) AS v",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO case_summaries (case_id, version, status, url, content_class, platform_id, received_at) \
         SELECT case_id, 5, 'closed', 'https://platform.example/content/' || n, 'csam', 'bench-platform', at FROM bench_cases",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notice_facts (case_id, version, platform_id, content_class, counted_at, notice_id, issued_at, \
             delivered_at, deadline_at, receipt_at, decided_at, decisions, rejection_reason, rejection_upheld, removed_at, \
             reminders, escalations, reappeared) \
         SELECT case_id, 5, 'bench-platform', 'csam', at + interval '3 minutes', gen_random_uuid(), at + interval '2 minutes', \
             at + interval '3 minutes', at + interval '1 day', NULL, NULL, '[]'::jsonb, NULL, NULL, \
             CASE WHEN n % 3 = 0 THEN NULL ELSE at + (n % 97) * interval '1 hour' END, 0, 0, false \
         FROM bench_cases",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn dossier() {
    let notices = env("BENCH_DOSSIER_NOTICES", 100_000);
    let database = TestDatabase::create().await.expect("a database (make postgres)");
    let pool = &database.pool;
    fill_notices(pool, notices).await;
    let scratch = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&scratch.path().join("key.pem")).unwrap();
    let applicant = Settings::default().notice_policy();
    let context = dossier::Context {
        applicant: &applicant,
        provider: PlatformInRemit::load(pool, "bench-platform").await.unwrap().unwrap(),
        coordinator: "Autoriteit Consument & Markt".into(),
        classes: None,
        key: &key,
        now: Utc::now(),
    };
    let request = DossierRequest {
        platform_id: "bench-platform".into(),
        from: None,
        to: None,
        class: None,
        breaches: vec![Breach::Dsa16_4, Breach::Dsa22_1],
        measure: None,
    };
    reset_peak_rss();
    let before = peak_rss_mib();
    let started = Instant::now();
    let built = dossier::build(pool, &request, &context, uuid::Uuid::now_v7(), scratch.path())
        .await
        .expect("the dossier");
    let export_secs = started.elapsed().as_secs_f64();
    let export_peak = peak_rss_mib();
    assert_eq!(built.notices, notices as u64);
    let tar_mib = std::fs::metadata(&built.tar).unwrap().len() as f64 / (1 << 20) as f64;
    reset_peak_rss();
    let started = Instant::now();
    let verified = dossier::verify::verify(&built.folder, Some(pool))
        .await
        .expect("the verification");
    let verify_secs = started.elapsed().as_secs_f64();
    let verify_peak = peak_rss_mib();
    assert!(
        verified.problems.is_empty(),
        "{:?}",
        &verified.problems[..verified.problems.len().min(5)]
    );
    println!(
        "dossier: {notices} notices ({} events) exported in {export_secs:.1} s ({tar_mib:.1} MiB .tar, peak RSS {export_peak:.0} MiB \
         from {before:.0} MiB), verified against the store in {verify_secs:.1} s (peak RSS {verify_peak:.0} MiB)",
        verified.events_checked
    );
}
