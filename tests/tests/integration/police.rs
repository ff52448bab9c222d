//! Police first, on the test clock against the simulator: a rule sends new CSAM to review,
//! analysts refer it, the referral reaches the simulated police, the case is held — no
//! notice, reporters see it "in progress" — until the police release it; then the notice
//! goes out, and the platform's figures start at delivery, the hold counted apart.

use crate::support::{last_of, settled_on};
use chrono::TimeDelta;
use dijkwacht_tests::{eventually, TestOptions, TestSystem, PLATFORM_ID};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn police_first() -> TestOptions {
    TestOptions {
        police: json!({"rules": [{"id": "new-csam", "classes": ["csam"], "new_material_only": true}]}),
        ..TestOptions::default()
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn between<'a>(html: &'a str, before: &str, after: &str) -> &'a str {
    let start = html.find(before).unwrap_or_else(|| panic!("{before:?} not in {html}")) + before.len();
    let end = html[start..].find(after).unwrap() + start;
    &html[start..end]
}

/// Reports the simulator's `name` by partner-a as CSAM no list (and no earlier decision)
/// knows; returns its case id.
async fn report_new_material(system: &TestSystem, name: &str) -> String {
    let unknown = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let body = json!({"partner_reference": name, "items": [{"url": system.content_url(name),
        "hashes": [{"algorithm": "md5", "value": unknown}], "claimed_category": "csam"}]});
    let (status, accepted) = system.post("/v1/reports", &system.partner_key, &body).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["cases"][0]["case_id"].as_str().unwrap().to_owned()
}

/// Both analysts decide: CSAM, referred to `police-nl` (named: two police partners are
/// registered); the case is then held.
async fn refer(system: &TestSystem, case_id: &str) {
    let decision = format!("/v1/review/{case_id}/decision");
    let decide = |version: u64, referral: Value| {
        json!({"expected_version": version, "verdict": "actionable", "class": "csam",
            "explanation": "a child, not in any list", "refer_to_police": referral})
    };
    let version = settled_on(system, case_id, "ReviewRequested").await.len() as u64;
    let unnamed = json!({"reasons": ["new_material"]});
    let (status, body) = system
        .post(&decision, &system.analyst_key(1), &decide(version, unnamed))
        .await;
    assert_eq!(status, 422, "two police partners: name one: {body}");
    assert_eq!(body["errors"][0]["pointer"], "/refer_to_police/partner_id", "{body}");
    let referral = json!({"reasons": ["new_material", "victim_in_danger"], "partner_id": "police-nl",
        "note": "the room may be identifiable"});
    let (status, first) = system
        .post(&decision, &system.analyst_key(1), &decide(version, referral))
        .await;
    assert_eq!(
        (status, &first["awaiting_confirmation"]),
        (200, &json!(true)),
        "{first}"
    );
    let version = first["version"].as_u64().unwrap();
    let (status, second) = system
        .post(&decision, &system.analyst_key(2), &decide(version, Value::Null))
        .await;
    assert_eq!(
        (status, second["status"].as_str()),
        (200, Some("held_for_police")),
        "{second}"
    );
}

#[tokio::test]
async fn a_police_first_case_is_referred_held_and_noticed_only_after_the_police_release_it() {
    let system = TestSystem::start(police_first()).await.unwrap();
    system.wait_until_ready().await;
    let case_id = report_new_material(&system, "new-material").await;
    let queue = eventually("the case in the review queue", WAIT, || async {
        let (_, queue) = system.get("/v1/review", &system.analyst_key(1)).await;
        queue.as_array().is_some_and(|q| !q.is_empty()).then_some(queue)
    })
    .await;
    assert_eq!(queue[0]["case_id"], case_id.as_str());
    assert_eq!(queue[0]["reason"], "police_first", "the rule asked, an analyst decides");

    // A member of the public reports the same location: one case, two reporters.
    let url = system.content_url("new-material");
    let thanks = system
        .http
        .post(system.api("/report"))
        .form(&[("urls", url.as_str()), ("category", "csam"), ("website", "")])
        .send()
        .await
        .unwrap();
    let html = thanks.text().await.unwrap();
    let reference = between(&html, "Referentie / Reference: <span class=\"ref\">", "<").to_owned();
    let pin = between(&html, "PIN: <span class=\"ref\">", "<").to_owned();
    settled_on(&system, &case_id, "ReportedAgain").await;

    refer(&system, &case_id).await;
    let events = settled_on(&system, &case_id, "ReferredToPolice").await;
    let held_at = system.clock_now();
    assert_eq!(
        last_of(&events, "ReferredToPolice")["hold_until"],
        json!((held_at + TimeDelta::days(3)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "police-nl holds a case three days from receipt"
    );
    let referrals: Vec<_> = system
        .simulator
        .forwards()
        .into_iter()
        .filter(|f| f.hotline == "police-nl")
        .collect();
    assert_eq!(referrals.len(), 1, "{referrals:?}");
    assert_eq!(referrals[0].idempotency_key, format!("referral-{case_id}"));
    let referral = &referrals[0].forward;
    assert_eq!(referral["type"], "police_referral");
    assert_eq!(referral["reasons"], json!(["new_material", "victim_in_danger"]));
    assert_eq!(referral["locations"][0]["url"], json!(url));
    let mut fields: Vec<&str> = referral.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "assessed_at",
            "case_id",
            "content_class",
            "evidence",
            "held_at",
            "host",
            "legal_ground",
            "locations",
            "note",
            "partner_id",
            "reasons",
            "referral_url",
            "removal_checks_allowed",
            "reported_at",
            "state",
            "type"
        ],
        "facts only: never media, never the reporters"
    );

    // Held: no notice, and the reporters see a case in progress, never the police.
    system.clock.advance(TimeDelta::hours(1));
    let (status, view) = system.get(&format!("/v1/cases/{case_id}"), &system.partner_key).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("in_progress")), "{view}");
    let shown: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        shown.iter().all(|t| !t.contains("Police") && !t.contains("Referr")),
        "{shown:?}"
    );
    let public = system
        .http
        .get(system.api(&format!("/report/status?reference={reference}&pin={pin}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(public.contains("being assessed"), "{public}");
    assert!(!public.to_lowercase().contains("police") && !public.to_lowercase().contains("politie"));

    // The police partner's scope: its own referrals, 404 for anything else.
    let police = format!("{}-police", system.partner_key);
    let police_be = format!("{}-police-be", system.partner_key);
    let one = format!("/v1/police/referrals/{case_id}");
    // The list is a read model: the projection catches up with the hold shortly after.
    let listed = eventually("the referral in the police's list", WAIT, || async {
        let (status, listed) = system.get("/v1/police/referrals", &police).await;
        assert_eq!(status, 200, "{listed}");
        listed.as_array().is_some_and(|l| !l.is_empty()).then_some(listed)
    })
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["state"], "held");
    assert_eq!(system.get("/v1/police/referrals", &police_be).await.1, json!([]));
    assert_eq!(
        system.get(&one, &police_be).await.0,
        404,
        "another police partner's referral"
    );
    let release = format!("{one}/release");
    assert_eq!(system.post(&release, &police_be, &json!({})).await.0, 404);
    assert_eq!(
        system.get(&one, &system.partner_key).await.0,
        403,
        "partners have no police scope"
    );
    let (status, _) = system.get("/v1/reports?partner_reference=x", &police).await;
    assert_eq!(status, 403, "the police key reaches its referrals and nothing else");

    let extension = format!("{one}/extension");
    let (status, body) = system
        .post(&extension, &police, &json!({"until": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(
        (status, &body["errors"][0]["pointer"]),
        (422, &json!("/until")),
        "{body}"
    );
    let until = held_at + TimeDelta::days(5);
    let (status, extended) = system
        .post(&extension, &police, &json!({"until": until, "note": "warrant"}))
        .await;
    assert_eq!(status, 200, "{extended}");
    // The police want to know whether it stays online: its status only, never a notice.
    let checks = format!("{one}/removal-checks");
    assert_eq!(system.post(&checks, &police_be, &json!({"allowed": true})).await.0, 404);
    let (status, allowed) = system.post(&checks, &police, &json!({"allowed": true})).await;
    assert_eq!(
        (status, &allowed["removal_checks_allowed"]),
        (200, &json!(true)),
        "{allowed}"
    );
    let events = settled_on(&system, &case_id, "HeldLocationChecked").await;
    assert_eq!(last_of(&events, "HeldLocationChecked")["online"], true);
    let (_, read) = system.get(&one, &police).await;
    assert_eq!(read["last_check"]["http_status"], 200, "{read}");
    system.clock.advance(TimeDelta::days(2));
    let events = settled_on(&system, &case_id, "PoliceHoldExtended").await;
    assert!(!types(&events).contains(&"NoticeIssued"), "held: {:?}", types(&events));
    assert!(!types(&events).contains(&"PoliceHoldLapsed"), "extended to five days");

    let (status, released) = system.post(&release, &police, &json!({"note": "identified"})).await;
    assert_eq!(
        (status, released["state"].as_str()),
        (200, Some("released")),
        "{released}"
    );
    let events = settled_on(&system, &case_id, "NoticeDelivered").await;
    let kinds = types(&events);
    let position = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(position("PoliceReleased") < position("NoticeIssued"));
    assert_eq!(last_of(&events, "PoliceReleased")["recorded_by"], "partner:police-nl");

    // The platform's time starts at delivery: the two days on hold are counted apart.
    system.clock.advance(TimeDelta::seconds(91));
    settled_on(&system, &case_id, "RemovalVerified").await;
    let path = format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance");
    let compliance = eventually("the projection to count the removal", WAIT, || async {
        let (_, compliance) = system.get(&path, &system.regulator_key).await;
        (compliance["total"]["removals_verified"] == 1).then_some(compliance["total"].clone())
    })
    .await;
    let to_removal = compliance["median_seconds_to_removal"].as_f64().unwrap();
    assert!(to_removal <= 120.0, "from delivery, not from the report: {compliance}");
    assert_eq!(compliance["held_for_police"], 1);
    let on_hold = compliance["median_seconds_on_police_hold"].as_f64().unwrap();
    assert!(on_hold >= TimeDelta::days(2).num_seconds() as f64, "{compliance}");
    let (status, figures) = system.get("/v1/police/figures", &system.analyst_key(1)).await;
    assert_eq!(
        (status, &figures[0]["referrals"], &figures[0]["released"]),
        (200, &json!(1), &json!(1)),
        "{figures}"
    );
}

#[tokio::test]
async fn a_hold_that_runs_out_becomes_an_analyst_task_and_a_rejected_decision_refers_nothing() {
    let system = TestSystem::start(police_first()).await.unwrap();
    system.wait_until_ready().await;
    let case_id = report_new_material(&system, "lapsing").await;
    refer(&system, &case_id).await;
    settled_on(&system, &case_id, "ReferredToPolice").await;
    system.clock.advance(TimeDelta::days(3) + TimeDelta::seconds(1));
    let events = settled_on(&system, &case_id, "PoliceHoldLapsed").await;
    assert!(!types(&events).contains(&"NoticeIssued"), "never a notice by itself");
    let task = eventually("the analyst task", WAIT, || async {
        let tasks = system.analyst_tasks().await;
        tasks.into_iter().find(|(id, _)| *id == case_id)
    })
    .await;
    assert_eq!(task.1, "police_hold_lapsed");
    let release = format!("/v1/police/referrals/{case_id}/release");
    let (status, released) = system.post(&release, &system.analyst_key(1), &json!({})).await;
    assert_eq!(
        (status, released["state"].as_str()),
        (200, Some("released")),
        "{released}"
    );
    let events = settled_on(&system, &case_id, "NoticeIssued").await;
    assert_eq!(last_of(&events, "PoliceReleased")["recorded_by"], "analyst:analyst-1");

    let other = report_new_material(&system, "not-actionable").await;
    let version = settled_on(&system, &other, "ReviewRequested").await.len();
    let decision = json!({"expected_version": version, "verdict": "not_actionable", "explanation": "adult",
        "refer_to_police": {"reasons": ["new_material"], "partner_id": "police-nl"}});
    let (status, body) = system
        .post(
            &format!("/v1/review/{other}/decision"),
            &system.analyst_key(1),
            &decision,
        )
        .await;
    assert_eq!(
        (status, &body["errors"][0]["pointer"]),
        (422, &json!("/refer_to_police")),
        "{body}"
    );
}
