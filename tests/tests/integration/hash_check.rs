//! The Hash Check API: what hosting providers are told, what is kept of what they send, and
//! that a new list version never opens a moment in which a listed hash answers "no match".

use dijkwacht_classify::lists::{self, ListSettings};
use dijkwacht_tests::{eventually, pdq_at, TestOptions, TestSystem, DEMO_SHA256, LISTED_MD5, LISTED_PDQ, LISTED_SHA1};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// The hash check alone: no stages, no broker traffic.
async fn hash_check_only() -> TestSystem {
    TestSystem::start(TestOptions {
        parts: vec!["hash-check"],
        ..TestOptions::default()
    })
    .await
    .unwrap()
}

fn exact(algorithm: &str, value: &str) -> Value {
    json!({"algorithm": algorithm, "value": value})
}

fn pdq(value: &str, quality: u8) -> Value {
    json!({"algorithm": "pdq", "value": value, "quality": quality})
}

async fn check(system: &TestSystem, provider: &str, hashes: Vec<Value>) -> (u16, Value) {
    system
        .post(
            "/v1/hash-check",
            &system.provider_key(provider),
            &json!({"hashes": hashes}),
        )
        .await
}

fn results(answer: &Value) -> Vec<Value> {
    answer["results"].as_array().expect("results").clone()
}

async fn counted(system: &TestSystem) -> (i64, i64, i64) {
    let (checks, not_checked): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(checks), 0)::int8, coalesce(sum(not_checked), 0)::int8 FROM hash_check_daily",
    )
    .fetch_one(&system.database.pool)
    .await
    .unwrap();
    let hits: i64 = sqlx::query_scalar("SELECT count(*) FROM hash_check_hits")
        .fetch_one(&system.database.pool)
        .await
        .unwrap();
    (checks, not_checked, hits)
}

#[tokio::test]
async fn every_algorithm_matches_what_is_listed_and_nothing_else() {
    let system = hash_check_only().await;
    let (status, answer) = check(
        &system,
        "a",
        vec![
            exact("sha256", &DEMO_SHA256.to_uppercase()),
            exact("sha1", LISTED_SHA1),
            exact("md5", LISTED_MD5),
            pdq(LISTED_PDQ, 90),
            exact("sha256", &"0".repeat(64)),
            exact("sha1", &"0".repeat(40)),
            exact("md5", &"0".repeat(32)),
            pdq(&"0".repeat(64), 90),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let csam = json!({"result": "match", "class": "csam"});
    let no = json!({"result": "no_match"});
    assert_eq!(
        results(&answer),
        [
            csam.clone(),
            csam.clone(),
            csam,
            json!({"result": "match", "class": "csam", "distance": 0}),
            no.clone(),
            no.clone(),
            no.clone(),
            no
        ]
    );
    assert!(!answer.to_string().contains("national"), "the list is never named");
    assert_eq!(counted(&system).await, (8, 0, 4));
    let recorded: Vec<(String, String)> =
        sqlx::query_as("SELECT algorithm, listed_value FROM hash_check_hits ORDER BY algorithm")
            .fetch_all(&system.database.pool)
            .await
            .unwrap();
    assert_eq!(
        recorded,
        [
            ("md5".into(), LISTED_MD5.into()),
            ("pdq".into(), LISTED_PDQ.into()),
            ("sha1".into(), LISTED_SHA1.into()),
            ("sha256".into(), DEMO_SHA256.into()),
        ]
    );
}

#[tokio::test]
async fn pdq_matches_at_the_threshold_and_not_one_beyond_and_low_quality_is_not_checked() {
    let system = hash_check_only().await;
    let (status, answer) = check(
        &system,
        "a",
        vec![pdq(&pdq_at(31), 80), pdq(&pdq_at(32), 80), pdq(LISTED_PDQ, 49)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let results = results(&answer);
    assert_eq!(results[0], json!({"result": "match", "class": "csam", "distance": 31}));
    assert_eq!(results[1], json!({"result": "no_match"}));
    assert_eq!(results[2]["result"], "not_checked", "not 'no match': {}", results[2]);
    assert_eq!(
        counted(&system).await,
        (3, 1, 1),
        "the hit at 31 is recorded; the listed PDQ hash, not the provider's"
    );
    let listed: String = sqlx::query_scalar("SELECT listed_value FROM hash_check_hits")
        .fetch_one(&system.database.pool)
        .await
        .unwrap();
    assert_eq!(listed, LISTED_PDQ);
}

#[tokio::test]
async fn a_class_the_key_may_not_check_answers_as_if_unlisted() {
    let system = hash_check_only().await;
    let (status, answer) = check(
        &system,
        "ncii",
        vec![exact("sha256", DEMO_SHA256), pdq(LISTED_PDQ, 100)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        results(&answer),
        [json!({"result": "no_match"}), json!({"result": "no_match"})]
    );
    assert_eq!(counted(&system).await, (2, 0, 0));
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole_with_the_limit() {
    let system = hash_check_only().await;
    let (status, answer) = check(&system, "a", vec![exact("md5", LISTED_MD5); 10_001]).await;
    assert_eq!(status, 413, "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 10000") && message.contains("10001"),
        "{message}"
    );
    assert_eq!(
        counted(&system).await,
        (0, 0, 0),
        "nothing of a refused batch is counted"
    );
}

#[tokio::test]
async fn malformed_hashes_are_refused_with_the_pointer_of_each() {
    let system = hash_check_only().await;
    let (status, answer) = check(
        &system,
        "a",
        vec![
            exact("sha256", DEMO_SHA256),
            exact("sha1", LISTED_MD5),
            json!({"algorithm": "pdq", "value": LISTED_PDQ}),
            exact("md5", &"zz".repeat(16)),
            json!({"algorithm": "md5", "value": LISTED_MD5, "url": "not a url"}),
        ],
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let pointers: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/hashes/1/value",
            "/hashes/2/quality",
            "/hashes/3/value",
            "/hashes/4/url"
        ]
    );
    let (status, answer) = check(&system, "a", vec![json!({"algorithm": "crc32", "value": "00"})]).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"][0]["pointer"], "/hashes/0/algorithm");
    assert_eq!(counted(&system).await, (0, 0, 0));
}

#[tokio::test]
async fn nothing_of_a_batch_without_a_match_is_stored() {
    let system = hash_check_only().await;
    let sent = "d00dfeed".repeat(8);
    let (status, answer) = check(
        &system,
        "a",
        vec![exact("sha256", &sent), pdq(&sent, 100), exact("md5", &sent[..32])],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(counted(&system).await, (3, 0, 0));
    // Every table of the database, as text: the hash is in none of them.
    let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
        .fetch_all(&system.database.pool)
        .await
        .unwrap();
    for table in tables {
        let found: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} t WHERE t::text ILIKE '%' || $1 || '%')"
        ))
        .bind(&sent[..32])
        .fetch_one(&system.database.pool)
        .await
        .unwrap();
        assert!(!found, "a hash that matched nothing is stored in {table}");
    }
}

#[tokio::test]
async fn keys_without_the_scope_and_providers_over_their_rate_are_refused() {
    let system = hash_check_only().await;
    let (status, _) = system
        .post(
            "/v1/hash-check",
            &system.partner_key,
            &json!({"hashes": [exact("md5", LISTED_MD5)]}),
        )
        .await;
    assert_eq!(status, 403, "a partner's key cannot check hashes");
    // One check a second, in bursts of one full batch.
    let (status, answer) = check(&system, "ncii", vec![exact("md5", &"1".repeat(32)); 10_000]).await;
    assert_eq!(status, 200, "{answer}");
    let response = system
        .http
        .post(system.api("/v1/hash-check"))
        .bearer_auth(system.provider_key("ncii"))
        .json(&json!({"hashes": [exact("md5", LISTED_MD5)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(counted(&system).await, (10_000, 0, 0));
}

/// A provider checks continuously while new versions of the list are imported: the listed
/// hash always matches, and the newly listed one is served within seconds of its import.
#[tokio::test]
async fn a_list_update_during_a_stream_of_checks_never_loses_a_listed_hash() {
    let system = hash_check_only().await;
    let newly_listed = "abcdef01".repeat(8);
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (http, url, key, stop, newly_listed) = (
            system.http.clone(),
            system.api("/v1/hash-check"),
            system.provider_key("a"),
            stop.clone(),
            newly_listed.clone(),
        );
        tokio::spawn(async move {
            let (mut checks, mut new_seen) = (0u32, false);
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"hashes": [exact("sha256", DEMO_SHA256), pdq(LISTED_PDQ, 100), exact("sha256", &newly_listed)]});
                let answer: Value = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let results = results(&answer);
                assert_eq!(
                    results[0]["result"], "match",
                    "check {checks}: the listed hash was lost"
                );
                assert_eq!(
                    results[1]["result"], "match",
                    "check {checks}: the listed PDQ hash was lost"
                );
                let new_matches = results[2]["result"] == "match";
                assert!(
                    new_seen <= new_matches,
                    "check {checks}: a newly listed hash was lost again"
                );
                new_seen = new_matches;
                checks += 1;
            }
            (checks, new_seen)
        })
    };
    let version = |name: &str| {
        let pool = system.database.pool.clone();
        let name = name.to_owned();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT version FROM hash_lists WHERE name = $1")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let before = version("national").await;
    let settings = ListSettings {
        name: "national".into(),
        source: None,
        pdq_max_distance: None,
        categories: Default::default(),
    };
    for round in 0..5 {
        let mut file = String::new();
        for i in 0..2_000 {
            file.push_str(&format!(
                "sha256,{:064x},csam\n",
                (round * 10_000 + i) as u128 * 0x9E37_79B9_7F4A_7C15
            ));
        }
        if round == 4 {
            file.push_str(&format!("sha256,{newly_listed},csam\n"));
        }
        let summary = lists::import(
            &system.database.pool,
            &settings,
            file.as_bytes(),
            true,
            system.clock_now(),
            |_| {},
            |line, message| panic!("line {line}: {message}"),
        )
        .await
        .unwrap();
        assert!(summary.added > 0);
    }
    assert_eq!(version("national").await, before + 5);
    eventually("the newly listed hash is served", WAIT, || async {
        let (_, answer) = check(&system, "a", vec![exact("sha256", &newly_listed)]).await;
        (results(&answer)[0]["result"] == "match").then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (checks, new_seen) = checker.await.unwrap();
    assert!(checks > 10, "the checks ran throughout the imports ({checks})");
    assert!(new_seen);
}

/// Material a provider found online opens a case that travels like any report; an upload
/// it blocked is only a hit record. A delisting of the entry names the provider.
#[tokio::test]
async fn a_hit_on_material_online_opens_a_case_and_a_delisting_names_who_blocked_on_it() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let url = system.content_url("found-on-our-servers");
    let (status, answer) = check(
        &system,
        "a",
        vec![
            json!({"algorithm": "sha256", "value": DEMO_SHA256, "url": url}),
            exact("md5", LISTED_MD5),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let results = results(&answer);
    let case_id = results[0]["case_id"]
        .as_str()
        .expect("a case for the material online")
        .to_owned();
    assert_eq!(
        results[1],
        json!({"result": "match", "class": "csam"}),
        "an upload opens no case"
    );
    eventually("the case's notice is delivered", WAIT, || async {
        let delivered: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1::uuid AND event_type = 'NoticeDelivered')",
        )
        .bind(&case_id)
        .fetch_one(&system.database.pool)
        .await
        .unwrap();
        delivered.then_some(())
    })
    .await;
    let reporter: Value = sqlx::query_scalar(
        "SELECT payload -> 'reporter' FROM events WHERE stream_id = $1::uuid AND event_type = 'ReportReceived'",
    )
    .bind(&case_id)
    .fetch_one(&system.database.pool)
    .await
    .unwrap();
    assert_eq!(reporter, json!({"kind": "hash_check", "provider_id": "provider-a"}));
    let hits: Vec<(Option<String>, Option<uuid::Uuid>)> =
        sqlx::query_as("SELECT url, case_id FROM hash_check_hits ORDER BY url NULLS LAST")
            .fetch_all(&system.database.pool)
            .await
            .unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].1.map(|id| id.to_string()), Some(case_id));
    assert_eq!(hits[1], (None, None), "the blocked upload: a hit record only");

    let blocked = dijkwacht_hashcheck::record::blocked_on(&system.database.pool, "national", DEMO_SHA256)
        .await
        .unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!((blocked[0].provider_id.as_str(), blocked[0].hits), ("provider-a", 1));
}
