//! The intake as partners and the public meet it: keys and scopes, validation, idempotency,
//! de-duplication, bulk, status, limits, the public form.

use dijkwacht_intake::api::ReportAccepted;
use dijkwacht_intake::routes::partner_submission;
use dijkwacht_intake::submission::Outcome;
use dijkwacht_intake::together::Together;
use dijkwacht_runtime::auth;
use dijkwacht_tests::{eventually, listed_report_line, TestOptions, TestSystem, DEMO_SHA256};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

async fn intake_only() -> TestSystem {
    TestSystem::start(TestOptions {
        parts: vec!["intake"],
        ..TestOptions::default()
    })
    .await
    .unwrap()
}

async fn post_report(system: &TestSystem, key: &str, body: &Value) -> (u16, Value) {
    system.post("/v1/reports", key, body).await
}

async fn count(system: &TestSystem, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&system.database.pool)
        .await
        .unwrap()
}

fn report(reference: &str, url: &str) -> Value {
    json!({"partner_reference": reference, "items": [{"url": url, "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]})
}

#[tokio::test]
async fn keys_are_checked_scoped_rotated_and_revoked() {
    let system = intake_only().await;
    let body = report("K-1", "https://keys.example/1");
    let no_key = system
        .http
        .post(system.api("/v1/reports"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    assert_eq!(post_report(&system, "not-a-key", &body).await.0, 401);
    assert_eq!(post_report(&system, &system.regulator_key, &body).await.0, 403);

    // Rotation: a second key works beside the first, then the first... here the new one is revoked.
    let issued = auth::issue_key(
        &system.database.pool,
        "partner",
        "partner-a",
        &["reports:write".into()],
        Some("rotation"),
    )
    .await
    .unwrap();
    assert_eq!(post_report(&system, &issued.key, &body).await.0, 202);
    assert_eq!(
        post_report(&system, &system.partner_key, &report("K-2", "https://keys.example/2"))
            .await
            .0,
        202
    );
    assert_eq!(
        system.get("/v1/reports?partner_reference=K-1", &issued.key).await.0,
        403
    );
    assert!(auth::revoke_key(&system.database.pool, &issued.key_id).await.unwrap());
    assert_eq!(
        post_report(&system, &issued.key, &report("K-3", "https://keys.example/3"))
            .await
            .0,
        401
    );
    system.app.stop().await;
}

#[tokio::test]
async fn the_same_report_twice_is_answered_once_and_a_different_one_conflicts() {
    let system = intake_only().await;
    let body =
        json!({"partner_reference": "R-1", "items": [{"url": "https://idem.example/a", "claimed_category": "ncii"}]});
    let (status, first) = post_report(&system, &system.partner_key, &body).await;
    assert_eq!(status, 202);
    let events = count(&system, "events").await;

    // The same report with its keys in another order is the same report.
    let reordered =
        json!({"items": [{"claimed_category": "ncii", "url": "https://idem.example/a"}], "partner_reference": "R-1"});
    let (status, replay) = post_report(&system, &system.partner_key, &reordered).await;
    assert_eq!(status, 200);
    assert_eq!(replay, first);
    assert_eq!(count(&system, "events").await, events, "a replay appends nothing");

    let different = json!({"partner_reference": "R-1", "items": [{"url": "https://idem.example/b"}]});
    let (status, conflict) = post_report(&system, &system.partner_key, &different).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["report_id"], first["report_id"]);
    assert_eq!(conflict["errors"][0]["pointer"], "/partner_reference");

    // Another partner may use the same reference for its own report.
    let (status, _) = post_report(&system, &system.partner_b_key(), &different).await;
    assert_eq!(status, 202);
    system.app.stop().await;
}

#[tokio::test]
async fn a_location_reported_by_two_partners_is_one_case() {
    let system = intake_only().await;
    let url = "https://dedup.example/video/1";
    let (_, first) = post_report(&system, &system.partner_key, &report("A-1", url)).await;
    let (status, second) = post_report(&system, &system.partner_b_key(), &report("B-1", url)).await;
    assert_eq!(status, 202);
    assert_eq!(second["cases"][0]["case_id"], first["cases"][0]["case_id"]);
    assert_eq!(second["cases"][0]["existing"], true);
    assert_ne!(second["report_id"], first["report_id"]);

    let case_id = first["cases"][0]["case_id"].as_str().unwrap();
    for key in [system.partner_key.clone(), system.partner_b_key()] {
        let (_, view) = system.get(&format!("/v1/cases/{case_id}"), &key).await;
        let types: Vec<&str> = view["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["ReportReceived", "ReportedAgain"]);
    }

    // Status: a partner sees its own report by id and by reference; the other's is not found.
    let report_path = format!("/v1/reports/{}", first["report_id"].as_str().unwrap());
    let (status, own) = system.get(&report_path, &system.partner_key).await;
    assert_eq!(status, 200);
    assert_eq!(own["partner_reference"], "A-1");
    assert_eq!(own["cases"][0]["status"], "in_progress", "not yet acted on");
    let (_, by_reference) = system
        .get("/v1/reports?partner_reference=A-1", &system.partner_key)
        .await;
    assert_eq!(by_reference["report_id"], first["report_id"]);
    assert_eq!(system.get(&report_path, &system.partner_b_key()).await.0, 404);
    system.app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let system = intake_only().await;
    let padding = "x".repeat(dijkwacht_intake::MAX_BODY_BYTES + 1);
    let response = system
        .http
        .post(system.api("/v1/reports"))
        .bearer_auth(&system.partner_key)
        .header("content-type", "application/json")
        .body(padding)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    system.app.stop().await;
}

#[tokio::test]
async fn a_partner_over_its_rate_limit_gets_429_with_retry_after() {
    let system = TestSystem::start(TestOptions {
        parts: vec!["intake"],
        // One request an hour after the burst: the third request cannot slip through on a
        // slow machine.
        partner_requests_per_second: 1.0 / 3600.0,
        partner_burst: 2,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..3 {
        let response = system
            .http
            .post(system.api("/v1/reports"))
            .bearer_auth(&system.partner_key)
            .json(&report(&format!("L-{i}"), &format!("https://limits.example/{i}")))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        retry_after = retry_after.or(response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()));
    }
    assert_eq!(statuses, vec![202, 202, 429]);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Another partner has its own budget.
    assert_eq!(
        post_report(
            &system,
            &system.partner_b_key(),
            &report("L-b", "https://limits.example/b")
        )
        .await
        .0,
        202
    );
    system.app.stop().await;
}

#[tokio::test]
async fn a_bulk_with_good_and_bad_lines_answers_every_line() {
    let system = intake_only().await;
    let lines = [
        report("BULK-1", "https://bulk.example/1").to_string(),
        "{not json".to_owned(),
        json!({"partner_reference": "BULK-3", "items": [{"url": "javascript:alert(1)"}]}).to_string(),
        String::new(),
        report("BULK-1", "https://bulk.example/1").to_string(),
        report("BULK-1", "https://bulk.example/other").to_string(),
        report("BULK-7", "https://bulk.example/1").to_string(),
    ];
    let response = system
        .http
        .post(system.api("/v1/reports/bulk"))
        .bearer_auth(&system.partner_key)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let results: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), lines.len(), "{text}");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["line"], i + 1);
    }
    assert!(results[0]["report_id"].is_string());
    assert_eq!(results[1]["errors"][0]["pointer"], "");
    assert_eq!(results[2]["errors"][0]["pointer"], "/items/0/url");
    assert!(results[3]["errors"][0]["message"].as_str().unwrap().contains("empty"));
    assert_eq!(results[4]["report_id"], results[0]["report_id"]);
    assert_eq!(results[4]["replayed"], true);
    assert_eq!(results[5]["errors"][0]["pointer"], "/partner_reference");
    assert_eq!(results[6]["cases"][0]["existing"], true);
    assert_eq!(results[6]["cases"][0]["case_id"], results[0]["cases"][0]["case_id"]);
    assert_eq!(count(&system, "reports").await, 2);
    system.app.stop().await;
}

/// The answer starts while the request is still being sent: the server holds a batch, not
/// the whole body. The sender waits for the first answer line before sending the rest, so a
/// server that buffered the request would never answer.
#[tokio::test]
async fn a_bulk_of_100000_lines_streams_through() {
    const LINES: usize = 100_000;
    const FIRST_PART: usize = 2_000;
    let system = intake_only().await;
    let (answered_tx, answered_rx) = tokio::sync::oneshot::channel::<()>();
    let line = |i: usize| listed_report_line(&format!("S-{i}"), &format!("https://stream.example/{i}"));
    let first = futures::stream::iter((0..FIRST_PART).map(move |i| Ok::<_, std::io::Error>(line(i))));
    let rest = futures::stream::once(async move {
        let _ = answered_rx.await;
        futures::stream::iter((FIRST_PART..LINES).map(move |i| Ok::<_, std::io::Error>(line(i))))
    })
    .flatten();
    let response = system
        .http
        .post(system.api("/v1/reports/bulk"))
        .bearer_auth(&system.partner_key)
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(first.chain(rest)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answered = Some(answered_tx);
    let mut body = response.bytes_stream();
    let (mut results, mut accepted, mut partial) = (0usize, 0usize, Vec::new());
    let reading = async {
        while let Some(chunk) = body.next().await {
            partial.extend_from_slice(&chunk.unwrap());
            while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                let result: Value = serde_json::from_slice(&partial[..end]).unwrap();
                partial.drain(..=end);
                results += 1;
                accepted += usize::from(result["report_id"].is_string());
                if let Some(signal) = answered.take() {
                    let _ = signal.send(());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(600), reading)
        .await
        .expect("the bulk answer completes");
    assert_eq!(results, LINES);
    assert_eq!(accepted, LINES);
    assert_eq!(count(&system, "reports").await, LINES as i64);
    system.app.stop().await;
}

fn between<'a>(html: &'a str, before: &str, after: &str) -> &'a str {
    let start = html.find(before).unwrap_or_else(|| panic!("{before:?} not in {html}")) + before.len();
    let end = html[start..].find(after).unwrap() + start;
    &html[start..end]
}

#[tokio::test]
async fn the_public_form_gives_a_receipt_that_shows_the_status_and_nothing_else() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let page = system.http.get(system.api("/report")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<form method=\"post\" action=\"/report\">"));

    let invalid = system
        .http
        .post(system.api("/report"))
        .form(&[("urls", "not a url"), ("category", "ncii"), ("description", "keep me")])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let html = invalid.text().await.unwrap();
    assert!(html.contains("class=\"error\" id=\"urls-error\""), "{html}");
    assert!(html.contains("keep me"), "the input is kept");

    let url = system.content_url("public-1");
    let thanks = system
        .http
        .post(system.api("/report"))
        .form(&[
            ("urls", url.as_str()),
            ("category", "ncii"),
            ("description", "Dit is mijn foto, privé"),
            ("email", "victim@example.org"),
            ("website", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(thanks.status(), 200);
    let html = thanks.text().await.unwrap();
    let reference = between(&html, "Referentie / Reference: <span class=\"ref\">", "<").to_owned();
    let pin = between(&html, "PIN: <span class=\"ref\">", "<").to_owned();

    let status = system
        .http
        .get(system.api(&format!("/report/status?reference={reference}&pin={pin}")))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let html = status.text().await.unwrap();
    assert!(html.contains("public-1") && html.contains("being assessed"), "{html}");
    assert!(!html.contains("victim@example.org") && !html.contains("privé"));
    let wrong = system
        .http
        .post(system.api("/report/status"))
        .form(&[("reference", reference.as_str()), ("pin", "000000x")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);

    // Personal data stays out of the events (and so out of notices and statistics).
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload::text FROM events")
        .fetch_all(&system.database.pool)
        .await
        .unwrap();
    assert!(!payloads.is_empty());
    assert!(payloads
        .iter()
        .all(|p| !p.contains("victim@example.org") && !p.contains("privé")));

    // A bot filling the hidden field is thanked and forgotten.
    let before = count(&system, "reports").await;
    let bot = system
        .http
        .post(system.api("/report"))
        .form(&[
            ("urls", "https://spam.example/"),
            ("category", "other"),
            ("website", "http://buy.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status(), 200);
    assert_eq!(count(&system, "reports").await, before);

    // The report travels like any other: without a listed hash it goes to an analyst.
    eventually("the public report to reach review", Duration::from_secs(60), || async {
        let types: Vec<String> = sqlx::query_scalar("SELECT event_type FROM events")
            .fetch_all(&system.database.pool)
            .await
            .ok()?;
        types.iter().any(|t| t == "ReviewRequested").then_some(())
    })
    .await;
    system.app.stop().await;
}

/// Sends NDJSON lines to the bulk endpoint; the answer's lines.
async fn bulk_lines(system: &TestSystem, lines: &[Value]) -> Vec<Value> {
    let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let answer = system
        .http
        .post(system.api("/v1/reports/bulk"))
        .bearer_auth(&system.partner_key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn a_bulk_over_its_line_limit_answers_what_it_read_then_413_and_keeps_it() {
    let system = TestSystem::start(TestOptions {
        parts: vec!["intake"],
        bulk_max_lines: 3,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let lines: Vec<Value> = (0..5)
        .map(|i| report(&format!("BL-{i}"), &format!("https://bulk-limit.example/{i}")))
        .collect();
    let answers = bulk_lines(&system, &lines).await;
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(answers[..3].iter().all(|a| a["report_id"].is_string()));
    let cut = answers[3]["errors"][0]["message"].as_str().unwrap();
    assert!(cut.starts_with("413") && cut.contains("at most 3 lines"), "{cut}");
    assert_eq!(answers[3]["line"], 4);
    assert_eq!(count(&system, "reports").await, 3, "the lines answered stay committed");
    system.app.stop().await;
}

#[tokio::test]
async fn every_bulk_line_counts_against_the_rate_limit() {
    let system = TestSystem::start(TestOptions {
        parts: vec!["intake"],
        partner_requests_per_second: 1.0 / 3600.0,
        partner_burst: 4,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let lines: Vec<Value> = (0..6)
        .map(|i| report(&format!("BR-{i}"), &format!("https://bulk-rate.example/{i}")))
        .collect();
    // The request itself takes one of the four; three lines fit.
    let answers = bulk_lines(&system, &lines).await;
    assert_eq!(answers.len(), 4, "{answers:?}");
    let cut = answers[3]["errors"][0]["message"].as_str().unwrap();
    assert!(cut.starts_with("429"), "{cut}");
    assert_eq!(count(&system, "reports").await, 3);
    system.app.stop().await;
}

#[tokio::test]
async fn an_address_guessing_keys_is_refused_before_any_lookup() {
    let system = intake_only().await;
    let body = report("G-1", "https://guess.example/1");
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(post_report(&system, &format!("guess-{i}"), &body).await.0);
    }
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10..], [429, 429]);
    // From that address even a valid key waits: the key is not looked up at all.
    assert_eq!(post_report(&system, &system.partner_key, &body).await.0, 429);
    system.app.stop().await;
}

#[tokio::test]
async fn reloading_the_reference_data_revokes_the_keys_it_no_longer_lists() {
    let system = intake_only().await;
    let body = |i: u32| report(&format!("RV-{i}"), &format!("https://revoke.example/{i}"));
    assert_eq!(post_report(&system, &system.partner_b_key(), &body(1)).await.0, 202);
    let issued = auth::issue_key(
        &system.database.pool,
        "partner",
        "partner-b",
        &["reports:write".into()],
        None,
    )
    .await
    .unwrap();
    let mut reference =
        dijkwacht_tests::reference_data(&system.partner_key, &system.regulator_key, "http://127.0.0.1:9/notices");
    reference.partners.retain(|partner| partner.id != "partner-b");
    reference
        .load_into(&system.database.pool, system.clock_now())
        .await
        .unwrap();
    assert_eq!(post_report(&system, &system.partner_b_key(), &body(2)).await.0, 401);
    assert_eq!(post_report(&system, &system.partner_key, &body(3)).await.0, 202);
    // A key issued by command is revoked by command only.
    assert_eq!(post_report(&system, &issued.key, &body(4)).await.0, 202);
    system.app.stop().await;
}

/// Single reports that arrive while the intake is busy share a transaction, and each still
/// gets its own answer: a new report is accepted, the same report again is a replay, another
/// report under a reference already taken conflicts.
#[tokio::test]
async fn single_reports_that_arrive_together_share_a_transaction_and_keep_their_own_answers() {
    let system = intake_only().await;
    let clock: dijkwacht_runtime::SharedClock = std::sync::Arc::new(system.clock.clone());
    let together = Together::start(system.app.store.clone(), clock);
    let mut bodies: Vec<Value> = (0..200)
        .map(|i| report(&format!("T-{i}"), &format!("https://together.example/{i}")))
        .collect();
    bodies.push(report("T-7", "https://together.example/7"));
    bodies.push(report("T-8", "https://together.example/elsewhere"));

    // Each report is sent (polled once) before this test's only thread lets the intake's
    // task run, so all of them wait when the first transaction starts; unconstrained, or
    // tokio's cooperative budget would hold back the sends after the first hundred or so.
    let mut sent: Vec<_> = bodies
        .iter()
        .map(|body| Box::pin(together.submit(partner_submission("partner-a", body).unwrap())))
        .collect();
    tokio::task::unconstrained(async {
        for report in &mut sent {
            assert!(futures::poll!(report).is_pending());
        }
    })
    .await;
    let outcomes = futures::future::join_all(sent).await;
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(Result::unwrap).collect();

    let accepted: Vec<&ReportAccepted> = outcomes[..200]
        .iter()
        .map(|outcome| match outcome {
            Outcome::Accepted(accepted) => accepted,
            other => panic!("a new report was answered {other:?}"),
        })
        .collect();
    let ids: std::collections::HashSet<_> = accepted.iter().map(|a| a.report_id).collect();
    assert_eq!(ids.len(), 200, "each report its own id");
    assert_eq!(outcomes[200], Outcome::Replayed(accepted[7].clone()));
    assert_eq!(
        outcomes[201],
        Outcome::ReferenceTaken {
            report_id: accepted[8].report_id
        }
    );
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM events WHERE event_type = 'ReportReceived'")
            .fetch_one(&system.database.pool)
            .await
            .unwrap();
    assert_eq!(
        transactions, 1,
        "the reports that waited together were committed together"
    );
    assert_eq!(count(&system, "reports").await, 200);
    system.app.stop().await;
}
