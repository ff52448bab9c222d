//! Classification end to end: every kind of evidence, host resolution by domain and by IP
//! range, routing abroad, the analysts' four-eyes review, and delisting.

use dijkwacht_classify::lists;
use dijkwacht_tests::{
    eventually, pdq_at, TestOptions, TestSystem, DEMO_SHA256, FORUM_HOST, LISTED_PDQ, OFFSHORE_HOST,
};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn events(system: &TestSystem, case_id: &str) -> Vec<Value> {
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT event_type, payload FROM events WHERE stream_id = $1::uuid ORDER BY stream_version")
            .bind(case_id)
            .fetch_all(&system.database.pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(kind, mut payload)| {
            payload["type"] = json!(kind);
            payload
        })
        .collect()
}

async fn settled(system: &TestSystem, case_id: &str, last: &str) -> Vec<Value> {
    eventually(&format!("{last} on {case_id}"), WAIT, || async {
        let events = events(system, case_id).await;
        events.iter().any(|e| e["type"] == last).then_some(events)
    })
    .await
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn classified(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["type"] == "Classified")
        .expect("a Classified event")
}

async fn bulk(system: &TestSystem, key: &str, reports: &[Value]) -> Vec<Value> {
    let body: Vec<String> = reports.iter().map(Value::to_string).collect();
    let text = system
        .http
        .post(system.api("/v1/reports/bulk"))
        .bearer_auth(key)
        .body(body.join("\n"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn item(reference: &str, url: String, hashes: Value, claimed: Option<&str>) -> Value {
    let mut item = json!({"url": url, "hashes": hashes});
    if let Some(class) = claimed {
        item["claimed_category"] = json!(class);
    }
    json!({"partner_reference": reference, "items": [item]})
}

fn case_of(result: &Value) -> String {
    result["cases"][0]["case_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_bulk_with_every_kind_of_evidence_reaches_the_expected_events() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let sha = json!([{"algorithm": "sha256", "value": DEMO_SHA256}]);
    let pdq = |distance, quality| json!([{"algorithm": "pdq", "value": pdq_at(distance), "quality": quality}]);
    let reports = [
        item("C-1", system.content_url("exact"), sha.clone(), None),
        item("C-2", system.content_url("pdq-20"), pdq(20, 90), None),
        item("C-3", system.content_url("pdq-31"), pdq(31, 90), None),
        item("C-4", system.content_url("pdq-32"), pdq(32, 90), None),
        item("C-5", system.content_url("pdq-low-quality"), pdq(0, 40), None),
        item("C-6", system.content_url("rule-1"), json!([]), None),
        item("C-7", system.content_url("trusted-claim"), json!([]), Some("ncii")),
        item("C-8", format!("http://{OFFSHORE_HOST}/media/1"), sha.clone(), None),
        item("C-9", "http://nowhere.example/media/1".to_owned(), sha.clone(), None),
        item("C-10", format!("http://{FORUM_HOST}/thread/1"), json!([]), None),
    ];
    let results = bulk(&system, &system.partner_key, &reports).await;
    assert_eq!(results.len(), reports.len(), "{results:?}");
    let cases: Vec<String> = results.iter().map(case_of).collect();

    let exact = settled(&system, &cases[0], "NoticeIssued").await;
    let evidence = &classified(&exact)["evidence"];
    assert_eq!(
        (evidence["kind"].as_str(), evidence["list"].as_str()),
        (Some("hash_list_match"), Some("national"))
    );
    assert_eq!(evidence["algorithm"], "sha256");
    assert_eq!(classified(&exact)["automated"], true);

    for (case, distance) in [(&cases[1], 20), (&cases[2], 31)] {
        let events = settled(&system, case, "NoticeIssued").await;
        let evidence = &classified(&events)["evidence"];
        assert_eq!(evidence["distance"], distance, "{events:?}");
        assert_eq!(evidence["value"], LISTED_PDQ);
    }
    for case in [&cases[3], &cases[4]] {
        let events = settled(&system, case, "ReviewRequested").await;
        assert_eq!(
            types(&events),
            vec!["ReportReceived", "HostResolved", "ReviewRequested"]
        );
        assert_eq!(events[2]["reason"], "no_automated_match");
    }
    let rule = settled(&system, &cases[5], "Classified").await;
    assert_eq!(classified(&rule)["evidence"]["rule_id"], "rule-doxing-board");
    assert_eq!(classified(&rule)["class"], "doxing");

    let trusted = settled(&system, &cases[6], "Classified").await;
    assert_eq!(classified(&trusted)["evidence"]["kind"], "trusted_claim");
    assert_eq!(classified(&trusted)["class"], "ncii");
    // The same claim from a partner not trusted for it waits for an analyst.
    let untrusted = bulk(
        &system,
        &system.partner_b_key(),
        &[item(
            "U-1",
            system.content_url("untrusted-claim"),
            json!([]),
            Some("ncii"),
        )],
    )
    .await;
    settled(&system, &case_of(&untrusted[0]), "ReviewRequested").await;

    let offshore = settled(&system, &cases[7], "ForwardedToHotline").await;
    let host = offshore.iter().find(|e| e["type"] == "HostResolved").unwrap();
    assert_eq!(host["matched"]["by"], "ip_range");
    assert_eq!(host["country"], "US");
    assert_eq!(offshore.last().unwrap()["partner_id"], "partner-b");
    let unknown = settled(&system, &cases[8], "ReviewRequested").await;
    assert_eq!(types(&unknown), vec!["ReportReceived", "ReviewRequested"]);
    assert_eq!(unknown[1]["reason"], "unknown_host");
    let forum = settled(&system, &cases[9], "ReviewRequested").await;
    let host = forum.iter().find(|e| e["type"] == "HostResolved").unwrap();
    assert_eq!(
        (host["platform_id"].as_str(), host["matched"]["by"].as_str()),
        (Some("forum"), Some("domain"))
    );
    assert_eq!(host["hosting_provider"]["provider_id"], "offshore-host");
    assert_eq!(host["hosting_provider"]["range"], "198.51.100.0/24");

    // No notice for what went to review, abroad or nowhere.
    tokio::time::timeout(WAIT, async {
        while system.simulator.notices().len() < 5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("five notices");
    let noticed: Vec<String> = system
        .simulator
        .notices()
        .iter()
        .map(|n| n.notice["case_id"].as_str().unwrap().to_owned())
        .collect();
    for case in [&cases[3], &cases[4], &cases[7], &cases[8]] {
        assert!(!noticed.contains(case), "{case} was noticed");
    }
    system.app.stop().await;
}

async fn review_call(system: &TestSystem, analyst: u8, path: &str, body: Option<Value>) -> (u16, Value) {
    let request = system
        .http
        .post(system.api(path))
        .bearer_auth(system.analyst_key(analyst));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn analysts_decide_with_four_eyes_and_their_decision_is_reused() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let unlisted = json!([{"algorithm": "md5", "value": "0123456789abcdef0123456789abcdef"}]);
    let results = bulk(
        &system,
        &system.partner_key,
        &[item(
            "R-1",
            system.content_url("review-me"),
            unlisted.clone(),
            Some("csam"),
        )],
    )
    .await;
    let case_id = case_of(&results[0]);
    settled(&system, &case_id, "ReviewRequested").await;

    let queue = eventually("the case in the review queue", WAIT, || async {
        let (_, queue) = system.get("/v1/review?category=csam", &system.analyst_key(1)).await;
        queue.as_array().is_some_and(|q| !q.is_empty()).then_some(queue)
    })
    .await;
    assert_eq!(queue[0]["case_id"], case_id.as_str());
    assert_eq!(queue[0]["reason"], "no_automated_match");
    let partner_may_not = system
        .http
        .get(system.api("/v1/review"))
        .bearer_auth(&system.partner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(partner_may_not.status(), 403);

    let claim = format!("/v1/review/{case_id}/claim");
    assert_eq!(review_call(&system, 1, &claim, None).await.0, 200);
    assert_eq!(
        review_call(&system, 2, &claim, None).await.0,
        409,
        "claimed by analyst-1"
    );

    let decision = format!("/v1/review/{case_id}/decision");
    let version = events(&system, &case_id).await.len();
    let decide = |version: usize| json!({"expected_version": version, "verdict": "actionable", "class": "csam", "explanation": "a child, sexual pose"});
    let stale = review_call(&system, 1, &decision, Some(decide(version - 1))).await;
    assert_eq!(stale.0, 409, "{stale:?}");
    let (status, first) = review_call(&system, 1, &decision, Some(decide(version))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["awaiting_confirmation"], true);
    let version = first["version"].as_u64().unwrap() as usize;
    let (status, same) = review_call(&system, 1, &decision, Some(decide(version))).await;
    assert_eq!(status, 409, "the same analyst cannot confirm: {same}");
    let (status, second) = review_call(&system, 2, &decision, Some(decide(version))).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["awaiting_confirmation"], false);

    let decided = settled(&system, &case_id, "NoticeIssued").await;
    let evidence = &classified(&decided)["evidence"];
    assert_eq!(evidence["analysts"], json!(["analyst-1", "analyst-2"]));
    assert_eq!(classified(&decided)["automated"], false);
    let analysts: Vec<&str> = decided
        .iter()
        .filter(|e| e["type"] == "AnalystDecided")
        .map(|e| e["analyst_id"].as_str().unwrap())
        .collect();
    assert_eq!(analysts, vec!["analyst-1", "analyst-2"]);

    // The same media elsewhere is decided by the analysts' earlier decision, once the
    // projection has derived it from their events.
    eventually("the decision to be remembered", Duration::from_secs(30), || async {
        let remembered: i64 = sqlx::query_scalar("SELECT count(*) FROM prior_decisions WHERE case_id = $1::uuid")
            .bind(&case_id)
            .fetch_one(&system.database.pool)
            .await
            .ok()?;
        (remembered > 0).then_some(())
    })
    .await;
    let again = bulk(
        &system,
        &system.partner_b_key(),
        &[item("R-2", system.content_url("same-media"), unlisted, None)],
    )
    .await;
    let reused = settled(&system, &case_of(&again[0]), "Classified").await;
    assert_eq!(classified(&reused)["evidence"]["kind"], "prior_decision");
    assert_eq!(classified(&reused)["evidence"]["case_id"], case_id.as_str());
    system.app.stop().await;
}

#[tokio::test]
async fn delisting_a_hash_retracts_the_cases_it_classified() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let sha = json!([{"algorithm": "sha256", "value": DEMO_SHA256}]);
    let results = bulk(
        &system,
        &system.partner_key,
        &[item("D-1", system.content_url("false-positive"), sha.clone(), None)],
    )
    .await;
    let case_id = case_of(&results[0]);
    settled(&system, &case_id, "NoticeDelivered").await;

    let retracted = lists::delist(
        &system.app.store,
        "national",
        DEMO_SHA256,
        "false positive",
        system.clock_now(),
    )
    .await
    .unwrap();
    assert_eq!(
        retracted.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        vec![case_id.clone()]
    );
    let history = events(&system, &case_id).await;
    assert!(history.iter().any(|e| e["type"] == "Retracted"));
    // The notice had reached the platform: it is withdrawn there, referring to it.
    let history = settled(&system, &case_id, "NoticeWithdrawn").await;
    let notice_id = history.iter().find(|e| e["type"] == "NoticeIssued").unwrap()["notice"]["notice_id"].clone();
    let withdrawals = system.simulator.withdrawals();
    assert_eq!(withdrawals.len(), 1);
    assert_eq!(
        (withdrawals[0].withdraws.as_str(), withdrawals[0].by),
        (notice_id.as_str().unwrap(), "api")
    );
    let timers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stage_timers WHERE stage = 'followup' AND case_id = $1::uuid")
            .bind(&case_id)
            .fetch_one(&system.database.pool)
            .await
            .unwrap();
    assert!(timers <= 1, "at most the stale timer, which finds nothing to do");

    // A new report of the retracted location opens a new case, classified afresh.
    let again = bulk(
        &system,
        &system.partner_b_key(),
        &[item("D-2", system.content_url("false-positive"), json!([]), None)],
    )
    .await;
    assert_eq!(again[0]["cases"][0]["existing"], false);
    assert_ne!(case_of(&again[0]), case_id);
    assert!(events(&system, &case_id)
        .await
        .iter()
        .any(|e| e["type"] == "Reappeared"));

    // Once the index has noticed, the same hash no longer classifies.
    let later = eventually("the index to drop the delisted hash", WAIT, || async {
        let reference = format!("D-{}", uuid::Uuid::new_v4());
        let results = bulk(
            &system,
            &system.partner_key,
            &[item(&reference, system.content_url(&reference), sha.clone(), None)],
        )
        .await;
        let events = settled(&system, &case_of(&results[0]), "HostResolved").await;
        let case = case_of(&results[0]);
        let events = if events.len() < 3 {
            settled(&system, &case, "ReviewRequested").await
        } else {
            events
        };
        types(&events).contains(&"ReviewRequested").then_some(events)
    })
    .await;
    assert_eq!(later.last().unwrap()["reason"], "no_automated_match");
    system.app.stop().await;
}

#[tokio::test]
async fn an_analyst_may_name_the_provision_and_one_decision_suffices_outside_four_eyes() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let results = bulk(
        &system,
        &system.partner_b_key(),
        &[item("N-1", system.content_url("ncii-review"), json!([]), Some("ncii"))],
    )
    .await;
    let case_id = case_of(&results[0]);
    let version = settled(&system, &case_id, "ReviewRequested").await.len();
    let (status, outcome) = review_call(
        &system,
        2,
        &format!("/v1/review/{case_id}/decision"),
        Some(
            json!({"expected_version": version, "verdict": "actionable", "class": "ncii",
                    "legal_ground": "art. 254ba Wetboek van Strafrecht", "explanation": "intimate image, no consent"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        outcome["awaiting_confirmation"], false,
        "ncii is not a four-eyes class by default"
    );
    let events = settled(&system, &case_id, "NoticeIssued").await;
    assert_eq!(
        classified(&events)["legal_ground"]["provision"],
        "art. 254ba Wetboek van Strafrecht"
    );
    let notice = events.iter().find(|e| e["type"] == "NoticeIssued").unwrap();
    assert!(notice["notice"]["explanation"].as_str().unwrap().contains("art. 254ba"));
    system.app.stop().await;
}
