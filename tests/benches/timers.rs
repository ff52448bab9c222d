//! Wake-ups at scale: a million open cases, each with a pending wake-up of the follow-up
//! stage, of which a hundred thousand are due. How fast the due ones are found and claimed
//! (the stage's `claim_due`, in batches of the stage's size), and what a poll that finds
//! nothing costs with many or few wake-ups pending: it must not grow with them.
//!
//! Run with `make bench`. Environment: BENCH_TIMERS (default 1000000), BENCH_TIMERS_DUE
//! (default 100000), BENCH_TIMERS_BATCH (default 500).

use chrono::{TimeDelta, Utc};
use dijkwacht_runtime::timers;
use dijkwacht_tests::TestDatabase;
use std::time::{Duration, Instant};

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const STAGE: &str = "followup";

#[tokio::main]
async fn main() {
    let pending = env("BENCH_TIMERS", 1_000_000);
    let due = env("BENCH_TIMERS_DUE", 100_000);
    let batch = env("BENCH_TIMERS_BATCH", 500);
    let database = TestDatabase::create().await.expect("a database (make postgres)");
    let pool = &database.pool;
    let now = Utc::now();

    let started = Instant::now();
    fill(pool, pending, due, now).await;
    println!(
        "timers: {pending} wake-ups written ({due} due) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let empty_many = empty_poll(pool, now - TimeDelta::days(1)).await;

    let started = Instant::now();
    let mut claimed = 0;
    loop {
        let got = timers::claim_due(pool, STAGE, now, now + TimeDelta::minutes(1), batch)
            .await
            .expect("claim");
        if got.is_empty() {
            break;
        }
        claimed += got.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(claimed as i64, due, "every due wake-up claimed once");
    println!(
        "timers: {claimed} due wake-ups claimed in {elapsed:.2} s = {:.0}/s (batches of {batch}; aim ≥ 20,000/s)",
        claimed as f64 / elapsed
    );

    let empty_after = empty_poll(pool, now).await;
    sqlx::query("DELETE FROM stage_timers WHERE case_id IN (SELECT case_id FROM stage_timers LIMIT $1)")
        .bind(pending - 10_000)
        .execute(pool)
        .await
        .expect("thin out");
    sqlx::query("VACUUM ANALYZE stage_timers")
        .execute(pool)
        .await
        .expect("vacuum");
    let empty_few = empty_poll(pool, now - TimeDelta::days(1)).await;
    println!(
        "timers: a poll that finds nothing: {:.3} ms with {pending} pending, {:.3} ms right after the claims, {:.3} ms with 10000 pending",
        empty_many.as_secs_f64() * 1e3,
        empty_after.as_secs_f64() * 1e3,
        empty_few.as_secs_f64() * 1e3,
    );
}

/// `pending` wake-ups of random cases, the first `due` of them due an hour ago, the rest
/// spread over the next thirty days.
async fn fill(pool: &sqlx::PgPool, pending: i64, due: i64, now: chrono::DateTime<Utc>) {
    const CHUNK: i64 = 100_000;
    for start in (0..pending).step_by(CHUNK as usize) {
        sqlx::query(
            "INSERT INTO stage_timers (stage, case_id, due_at, version) \
             SELECT $1, gen_random_uuid(), \
                    CASE WHEN n < $4 THEN $5 - interval '1 hour' \
                         ELSE $5 + (n % 2592000) * interval '1 second' END, 7 \
             FROM generate_series($2::int8, $3::int8) AS n",
        )
        .bind(STAGE)
        .bind(start)
        .bind((start + CHUNK).min(pending) - 1)
        .bind(due)
        .bind(now)
        .execute(pool)
        .await
        .expect("fill");
    }
    sqlx::query("VACUUM ANALYZE stage_timers")
        .execute(pool)
        .await
        .expect("vacuum");
}

/// The median of 200 polls at `at`, when nothing is due.
async fn empty_poll(pool: &sqlx::PgPool, at: chrono::DateTime<Utc>) -> Duration {
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        let got = timers::claim_due(pool, STAGE, at, at + TimeDelta::minutes(1), 500)
            .await
            .expect("poll");
        times.push(started.elapsed());
        assert!(got.is_empty(), "nothing is due at {at}");
    }
    times.sort();
    times[times.len() / 2]
}
