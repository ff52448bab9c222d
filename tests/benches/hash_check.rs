//! The Hash Check API under load: 1,000,000 listed SHA-256 digests and 1,000,000 listed PDQ
//! hashes, batches of 1,000 hashes (1 % of them listed) over HTTP on loopback from a client
//! in another process (this binary, started again as the client), beside the same batches
//! answered by the matching index in this process, in one thread. Then the latency of one
//! batch at half the measured load, as an open loop (a batch leaves on its schedule, whether
//! the one before was answered or not).
//!
//! Run with `make bench`. Environment: BENCH_HASH_LISTED (default 1000000, per algorithm),
//! BENCH_HASH_SECS (default 15, per measurement), BENCH_HASH_CONNECTIONS (default 4).

use dijkwacht_classify::loaded_index;
use dijkwacht_hashcheck::answer::{answer, queries};
use dijkwacht_hashcheck::api::HashCheckRequest;
use dijkwacht_tests::{TestOptions, TestSystem};
use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const BATCH: usize = 1_000;
/// Listed hashes per batch.
const LISTED_PER_BATCH: usize = 10;
/// Distinct batches each measurement cycles through.
const BODIES: usize = 50;
const CLIENT: &str = "DIJKWACHT_HASH_CHECK_BENCH_CLIENT";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `i`-th listed value of a kind: the database computes the same.
fn listed(kind: &str, i: u64) -> String {
    hex::encode(Sha256::digest(format!("{kind}{i}").as_bytes()))
}

/// Batch `n` of a mode: 1 % listed (PDQ: a few bits away from a listed hash), the rest not.
fn body(mode: &str, n: usize, listed_count: u64) -> Value {
    let hashes: Vec<Value> = (0..BATCH)
        .map(|i| {
            let seed = (n * BATCH + i) as u64;
            let is_listed = i % (BATCH / LISTED_PER_BATCH) == 0;
            match (mode, is_listed) {
                ("exact", true) => json!({"algorithm": "sha256", "value": listed("e", 1 + seed * 7919 % listed_count)}),
                ("exact", false) => json!({"algorithm": "sha256", "value": listed("unlisted-e", seed)}),
                (_, true) => {
                    let mut near = listed("p", 1 + seed * 7919 % listed_count);
                    // Eight bits flipped: well inside the threshold of 31.
                    near.replace_range(
                        0..2,
                        &format!("{:02x}", u8::from_str_radix(&near[0..2], 16).unwrap() ^ 0xff),
                    );
                    json!({"algorithm": "pdq", "value": near, "quality": 90})
                }
                (_, false) => json!({"algorithm": "pdq", "value": listed("unlisted-p", seed), "quality": 90}),
            }
        })
        .collect();
    json!({ "hashes": hashes })
}

#[tokio::main]
async fn main() {
    if let Ok(arguments) = std::env::var(CLIENT) {
        return client(&arguments).await;
    }
    let listed_count = env("BENCH_HASH_LISTED", 1_000_000);
    let secs = env("BENCH_HASH_SECS", 15);
    let connections = env("BENCH_HASH_CONNECTIONS", 4);
    let system = TestSystem::start(TestOptions {
        parts: vec!["hash-check"],
        ..TestOptions::default()
    })
    .await
    .expect("a system (make postgres)");
    let started = Instant::now();
    fill(&system.database.pool, listed_count).await;
    println!(
        "hash check: {listed_count} SHA-256 and {listed_count} PDQ hashes listed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Started again to build its index from the full lists, with no rate limit in the way.
    let system = system
        .restart(|settings| {
            settings
                .sections
                .insert("hash_check".into(), json!({"checks_per_second": 1_000_000_000}));
        })
        .await
        .expect("restart");
    let (_, index) = loaded_index::build(&system.database.pool).await.expect("index");
    let url = system.api("/v1/hash-check");
    let key = system.provider_key("a");
    for (mode, aim) in [("exact", "≥ 200,000"), ("pdq", "≥ 2,000")] {
        let bodies: Vec<Value> = (0..BODIES).map(|n| body(mode, n, listed_count)).collect();
        let in_process = in_process_rate(&index, &bodies, secs);
        let measured = run_client(&url, &key, mode, listed_count, &format!("closed {connections} {secs}")).await;
        let checks_per_second = measured["checks_per_second"].as_f64().unwrap();
        println!(
            "hash check {mode}: {checks_per_second:.0} checks/s over HTTP ({connections} connections, batches of {BATCH}; aim {aim}) \
             = {:.2} × the index in-process in one thread ({in_process:.0} checks/s); {} matches of {} expected",
            checks_per_second / in_process,
            measured["matches"],
            measured["expected_matches"],
        );
        let half = checks_per_second / 2.0 / BATCH as f64;
        let latency = run_client(&url, &key, mode, listed_count, &format!("open {half} {secs}")).await;
        println!(
            "hash check {mode}: one batch of {BATCH} at half load ({half:.1} batches/s, open loop, {secs} s): \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} batches)",
            latency["p50_ms"].as_f64().unwrap(),
            latency["p99_ms"].as_f64().unwrap(),
            latency["max_ms"].as_f64().unwrap(),
            latency["batches"],
        );
    }
    system.app.stop().await;
}

/// Lists `count` SHA-256 digests and `count` PDQ hashes, computed by the database itself.
async fn fill(pool: &sqlx::PgPool, count: u64) {
    sqlx::query("INSERT INTO hash_lists (name, source, pdq_max_distance) VALUES ('bench', 'bench', 31)")
        .execute(pool)
        .await
        .expect("list");
    for (algorithm, kind, quality) in [("sha256", "e", None), ("pdq", "p", Some(100i16))] {
        sqlx::query(
            "INSERT INTO hash_list_entries (list, algorithm, value, class, added_at, quality) \
             SELECT 'bench', $1, encode(sha256(($2 || i)::bytea), 'hex'), 'csam', now(), $3 FROM generate_series(1, $4) i",
        )
        .bind(algorithm)
        .bind(kind)
        .bind(quality)
        .bind(count as i64)
        .execute(pool)
        .await
        .expect("entries");
    }
}

/// The same batches answered by the index in this process, in one thread.
fn in_process_rate(index: &dijkwacht_classify::index::MatchingIndex, bodies: &[Value], secs: u64) -> f64 {
    let requests: Vec<HashCheckRequest> = bodies
        .iter()
        .map(|b| serde_json::from_value(b.clone()).unwrap())
        .collect();
    let may_check = [dijkwacht_domain::ContentClass::Csam];
    let (started, mut checks) = (Instant::now(), 0usize);
    while started.elapsed() < Duration::from_secs(secs.min(5)) {
        for request in &requests {
            // Parsed and answered as the server does, minus HTTP, JSON and the database.
            for query in queries(request).unwrap() {
                std::hint::black_box(answer(index, &may_check, &query));
                checks += 1;
            }
        }
    }
    checks as f64 / started.elapsed().as_secs_f64()
}

/// Starts this binary again as the client; its one line of JSON is the result.
async fn run_client(url: &str, key: &str, mode: &str, listed_count: u64, load: &str) -> Value {
    let output = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
        .env(CLIENT, format!("{url} {key} {mode} {listed_count} {load}"))
        .output()
        .await
        .expect("the client runs");
    assert!(
        output.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the client's result")
}

/// The client: `URL KEY MODE LISTED closed CONNECTIONS SECS` measures throughput;
/// `URL KEY MODE LISTED open BATCHES_PER_SECOND SECS` measures latency.
async fn client(arguments: &str) {
    let fields: Vec<&str> = arguments.split(' ').collect();
    let [url, key, mode, listed_count, load, amount, secs] = fields[..] else {
        panic!("client arguments: {arguments}")
    };
    let listed_count: u64 = listed_count.parse().unwrap();
    let duration = Duration::from_secs(secs.parse().unwrap());
    let bodies: Vec<bytes::Bytes> = (0..BODIES)
        .map(|n| bytes::Bytes::from(body(mode, n, listed_count).to_string()))
        .collect();
    let http = reqwest::Client::new();
    let send = |n: usize| {
        let request = http
            .post(url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(bodies[n % BODIES].clone());
        // From the moment it is due, not from when it is first polled.
        let started = Instant::now();
        async move {
            let answer: Value = request
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            let matches = answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["result"] == "match")
                .count();
            (started.elapsed(), matches)
        }
    };
    let result = if load == "closed" {
        let connections: usize = amount.parse().unwrap();
        let started = Instant::now();
        let workers = (0..connections).map(|w| {
            let send = &send;
            async move {
                let (mut batches, mut matches) = (0usize, 0usize);
                while started.elapsed() < duration {
                    matches += send(w + batches * connections).await.1;
                    batches += 1;
                }
                (batches, matches)
            }
        });
        let done = futures::future::join_all(workers).await;
        let elapsed = started.elapsed().as_secs_f64();
        let batches: usize = done.iter().map(|d| d.0).sum();
        json!({
            "checks_per_second": (batches * BATCH) as f64 / elapsed,
            "matches": done.iter().map(|d| d.1).sum::<usize>(),
            "expected_matches": batches * LISTED_PER_BATCH,
        })
    } else {
        let rate: f64 = amount.parse().unwrap();
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut sent = futures::stream::FuturesUnordered::new();
        let (mut n, mut latencies) = (0, Vec::new());
        while started.elapsed() < duration {
            tokio::select! {
                _ = ticks.tick() => {
                    sent.push(send(n));
                    n += 1;
                }
                Some((latency, _)) = sent.next(), if !sent.is_empty() => latencies.push(latency.as_secs_f64() * 1e3),
            }
        }
        while let Some((latency, _)) = sent.next().await {
            latencies.push(latency.as_secs_f64() * 1e3);
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        json!({"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": latencies.last(), "batches": n})
    };
    println!("{result}");
}
