//! What regulators see: compliance figures computed from the events of a scripted workload,
//! checked against figures worked out by hand; each regulator's remit; the access audit.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dijkwacht_domain::*;
use dijkwacht_runtime::{CaseCommand, EventStore, Metadata};
use dijkwacht_tests::{script, TestOptions, TestSystem, PLATFORM_ID};
use serde_json::{json, Value};
use std::time::Duration;

/// A case on the simulated platform, moved on one command at a time at the times given.
struct Scripted<'a> {
    system: &'a TestSystem,
    store: EventStore,
    case_id: CaseId,
    notice_id: NoticeId,
    delivered_at: DateTime<Utc>,
}

impl<'a> Scripted<'a> {
    /// Reported, classified, noticed and delivered at `delivered_at`, with a deadline of a day.
    async fn delivered(system: &'a TestSystem, name: &str, class: ContentClass, delivered_at: DateTime<Utc>) -> Self {
        let case = Self {
            system,
            store: system.app.store.clone(),
            case_id: CaseId::new(),
            notice_id: NoticeId::new(),
            delivered_at,
        };
        let reported_at = delivered_at - TimeDelta::minutes(10);
        let report = script::report(name, system.content_url(name));
        let host = script::host(
            PLATFORM_ID,
            "Simulated platform",
            format!("http://{}/notices", system.simulator_addr),
        );
        case.at(reported_at, Command::ReceiveReport(report)).await;
        case.at(reported_at, script::classify(Some(host), class, reported_at))
            .await;
        case.at(
            reported_at,
            Command::IssueNotice {
                notice_id: case.notice_id,
                policy: system.settings.notice_policy(),
            },
        )
        .await;
        case.at(
            delivered_at,
            Command::StartDispatch {
                lost_after: TimeDelta::seconds(90),
                policy: dispatch_policy(),
                channels: vec![case_channel(system)],
                pace: None,
            },
        )
        .await;
        case.at(
            delivered_at,
            Command::RecordDispatchOutcome {
                attempt: 1,
                outcome: DispatchOutcome::Delivered {
                    platform_reference: None,
                    message_id: None,
                },
                policy: dispatch_policy(),
                channels: vec![case_channel(system)],
            },
        )
        .await;
        case.at(
            delivered_at,
            Command::SetDeadline {
                rule: Some(DeadlineRule {
                    class: None,
                    platform: None,
                    within: TimeDelta::hours(24),
                    basis: "test policy".into(),
                }),
            },
        )
        .await;
        case
    }

    async fn at(&self, at: DateTime<Utc>, command: Command) {
        let executed = self
            .store
            .execute(&[CaseCommand::new(self.case_id, command, Metadata::actor("test"))], at)
            .await
            .unwrap();
        assert_eq!(executed.outcomes, vec![Ok(())], "{} at {at}", self.case_id);
    }

    fn after(&self, minutes: i64) -> DateTime<Utc> {
        self.delivered_at + TimeDelta::minutes(minutes)
    }

    async fn receipt(&self, minutes: i64) {
        let answer = PlatformAnswer::Receipt(ReceiptAcknowledged {
            notice_id: self.notice_id,
            platform_event_id: format!("receipt-{}", self.case_id),
            received_at: None,
        });
        self.at(self.after(minutes), Command::RecordPlatformAnswer(answer))
            .await;
    }

    async fn removed_by_platform(&self, minutes: i64) {
        let answer = PlatformAnswer::Decision(script::removal_decision(
            self.notice_id,
            format!("decision-{}", self.case_id),
        ));
        self.at(self.after(minutes), Command::RecordPlatformAnswer(answer))
            .await;
    }

    async fn checked(&self, minutes: i64, observation: Observation) {
        let policy = FollowupPolicy::default();
        self.at(self.after(minutes), Command::RecordRemovalCheck { observation, policy })
            .await;
    }

    async fn reminded(&self, minutes: i64) {
        let channel = case_channel(self.system);
        let at = self.after(minutes);
        self.at(
            at,
            Command::StartChase {
                lost_after: TimeDelta::seconds(90),
                policy: dispatch_policy(),
                channel: Some(channel),
            },
        )
        .await;
        let delivered = DispatchOutcome::Delivered {
            platform_reference: None,
            message_id: None,
        };
        self.at(
            at,
            Command::RecordChaseOutcome {
                attempt: 1,
                outcome: delivered,
                policy: dispatch_policy(),
            },
        )
        .await;
    }

    async fn rejected_and_upheld(&self, minutes: i64, reason: &str) {
        let answer = PlatformAnswer::Rejection(PlatformRejected {
            notice_id: self.notice_id,
            platform_event_id: Some(format!("rejection-{}", self.case_id)),
            attempt: None,
            reason: reason.into(),
            answer: None,
        });
        self.at(self.after(minutes), Command::RecordPlatformAnswer(answer))
            .await;
        let assessed = Command::AssessRejection {
            analyst_id: "analyst-1".into(),
            upheld: true,
            explanation: "the platform is right: it is not what we said".into(),
        };
        self.at(self.after(minutes + 60), assessed).await;
    }
}

fn dispatch_policy() -> DispatchPolicy {
    script::dispatch_policy()
}

/// The simulated platform's API, where the scripted notices go.
fn case_channel(system: &TestSystem) -> Channel {
    Channel::Http {
        endpoint: format!("http://{}/notices", system.simulator_addr),
    }
}

/// Five notices: three on CSAM in November, two on NCII in December.
///
/// | case | class | after delivery                                               |
/// |------|-------|--------------------------------------------------------------|
/// | a    | csam  | receipt 10 min, removal decided 30 min, verified gone 40 min |
/// | b    | csam  | still online at the deadline (24 h): reminded; gone at 30 h  |
/// | c    | csam  | nothing: ignored once its deadline passed                    |
/// | d    | ncii  | refused at 2 h ("not illegal here"), an analyst upheld it    |
/// | e    | ncii  | receipt 1 h, removal decided 4 h, verified gone 5 h          |
async fn workload(system: &TestSystem) {
    let november = Utc.with_ymd_and_hms(2026, 11, 3, 8, 0, 0).unwrap();
    let december = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    let a = Scripted::delivered(system, "a", ContentClass::Csam, november).await;
    a.receipt(10).await;
    a.removed_by_platform(30).await;
    a.checked(40, Observation::Gone { http_status: 404 }).await;
    let b = Scripted::delivered(system, "b", ContentClass::Csam, november + TimeDelta::days(1)).await;
    b.checked(24 * 60, Observation::Online { http_status: 200 }).await;
    b.reminded(24 * 60 + 5).await;
    b.checked(30 * 60, Observation::Gone { http_status: 410 }).await;
    Scripted::delivered(system, "c", ContentClass::Csam, november + TimeDelta::days(2)).await;
    let d = Scripted::delivered(system, "d", ContentClass::Ncii, december).await;
    d.rejected_and_upheld(120, "not illegal here").await;
    let e = Scripted::delivered(system, "e", ContentClass::Ncii, december + TimeDelta::days(1)).await;
    e.receipt(60).await;
    e.removed_by_platform(4 * 60).await;
    e.checked(5 * 60, Observation::Gone { http_status: 404 }).await;
    let cases: Vec<CaseId> = sqlx::query_scalar("SELECT DISTINCT stream_id FROM events")
        .fetch_all(system.app.store.pool())
        .await
        .unwrap()
        .into_iter()
        .map(CaseId)
        .collect();
    let loaded = system.app.store.load(&cases).await.unwrap();
    let states: Vec<&Case> = loaded.cases.values().map(|loaded| loaded.case.as_ref()).collect();
    dijkwacht_projection::project(system.app.store.pool(), &states)
        .await
        .unwrap();
    // The figures are asked for on 10 December: c's deadline passed long ago.
    let now = system.clock_now();
    system
        .clock
        .advance(Utc.with_ymd_and_hms(2026, 12, 10, 12, 0, 0).unwrap() - now);
}

async fn quiet_system() -> TestSystem {
    TestSystem::start(TestOptions {
        parts: vec!["intake"],
        ..TestOptions::default()
    })
    .await
    .unwrap()
}

fn compliance_path(query: &str) -> String {
    format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance{query}")
}

#[tokio::test]
async fn each_compliance_figure_is_what_the_events_say() {
    let system = quiet_system().await;
    workload(&system).await;
    let (status, compliance) = system.get(&compliance_path(""), &system.regulator_key).await;
    assert_eq!(status, 200, "{compliance}");
    // Removal times: a 40 min, e 5 h, b 30 h = 2,400 s, 18,000 s, 108,000 s. Receipts:
    // a 600 s, e 3,600 s. Medians and the 90th percentile interpolate linearly, as
    // PostgreSQL's percentile_cont does: p90 = 18,000 + 0.8 × (108,000 − 18,000).
    assert_eq!(
        compliance["total"],
        json!({
            "notices_sent": 5,
            "receipts": 2,
            "median_seconds_to_receipt": 2100.0,
            "decisions": {"DECISION_VISIBILITY_CONTENT_REMOVED": 2},
            "removals_verified": 3,
            "removed_within": {"hour_1": 0.2, "hours_12": 0.4, "hours_24": 0.4, "hours_72": 0.6, "own_deadline": 0.4},
            "median_seconds_to_removal": 18000.0,
            "p90_seconds_to_removal": 90000.0,
            "max_seconds_to_removal": 108000.0,
            "ignored": 1,
            "reminders": 1,
            "escalations": 0,
            "reappearances": 0,
            "rejections": 1,
            "rejections_by_reason": {"not illegal here": 1},
            "rejections_upheld": 1,
            "precision": 0.8,
            "held_for_police": 0,
            "median_seconds_on_police_hold": null,
        })
    );
    let periods: Vec<(String, String, i64)> = compliance["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|period| {
            (
                period["class"].as_str().unwrap().to_owned(),
                period["period_start"].as_str().unwrap().to_owned(),
                period["notices_sent"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        periods,
        vec![
            ("csam".into(), "2026-11-01T00:00:00Z".into(), 3),
            ("ncii".into(), "2026-12-01T00:00:00Z".into(), 2),
        ]
    );
    let november = &compliance["periods"][0];
    assert_eq!(
        november["median_seconds_to_removal"], 55200.0,
        "a and b: (2,400 + 108,000) / 2"
    );
    assert_eq!(november["ignored"], 1);
    assert_eq!(november["rejections"], 0);

    // Days: each notice in the day it was delivered; a window picks November alone.
    let (_, by_day) = system.get(&compliance_path("?period=day"), &system.regulator_key).await;
    assert_eq!(by_day["periods"].as_array().unwrap().len(), 5);
    let (_, november_only) = system
        .get(
            &compliance_path("?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"),
            &system.regulator_key,
        )
        .await;
    assert_eq!(november_only["total"]["notices_sent"], 3);
    assert_eq!(november_only["total"]["precision"], 1.0);
    let (_, ncii) = system.get(&compliance_path("?class=ncii"), &system.regulator_key).await;
    assert_eq!(ncii["total"]["notices_sent"], 2);
    assert_eq!(ncii["total"]["removed_within"]["hours_12"], 0.5);

    // A rebuild from the events gives the same figures.
    dijkwacht_projection::rebuild::rebuild(&system.app.store, system.clock_now())
        .await
        .unwrap();
    let (_, rebuilt) = system.get(&compliance_path(""), &system.regulator_key).await;
    assert_eq!(rebuilt["total"], compliance["total"]);
    let settings: Vec<String> =
        sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE oid = 'case_summaries'::regclass")
            .fetch_one(&system.database.pool)
            .await
            .unwrap();
    assert!(
        settings.contains(&"fillfactor=70".to_owned()),
        "the rebuilt table keeps the settings the migrations gave it: {settings:?}"
    );

    let (status, wrong) = system
        .get(
            &compliance_path("?from=yesterday&period=week&class=spam"),
            &system.regulator_key,
        )
        .await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = wrong["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, vec!["/from", "/class", "/period"], "{wrong}");
}

#[tokio::test]
async fn a_regulator_sees_its_remit_only_and_every_request_is_audited() {
    let system = quiet_system().await;
    workload(&system).await;
    let coordinator = &system.regulator_key;
    let authority = format!("{}-csam-authority", system.partner_key);
    let operator = format!("{}-operator", system.partner_key);

    // The coordinator of the Netherlands: the platforms established there, every class.
    let (status, platforms) = system.get("/v1/regulator/platforms", coordinator).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = platforms
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["forum", PLATFORM_ID]);
    let (outside, body) = system
        .get("/v1/regulator/platforms/offshore-host/compliance", coordinator)
        .await;
    let (unknown, unknown_body) = system
        .get("/v1/regulator/platforms/nowhere/compliance", coordinator)
        .await;
    assert_eq!((outside, unknown), (404, 404));
    assert_eq!(
        body, unknown_body,
        "outside the remit reads exactly like no such platform"
    );

    // The CSAM authority: every host, its classes only.
    let (_, platforms) = system.get("/v1/regulator/platforms", &authority).await;
    assert_eq!(platforms.as_array().unwrap().len(), 3);
    let (status, csam) = system.get(&compliance_path(""), &authority).await;
    assert_eq!(status, 200);
    assert_eq!(csam["total"]["notices_sent"], 3, "the NCII notices are not its to see");
    assert_eq!(csam["classes"], json!(["csam", "terrorist_content"]));
    let (status, _) = system.get(&compliance_path("?class=ncii"), &authority).await;
    assert_eq!(status, 404);

    // The evidence of each notice, page by page, without a payload.
    let (status, first) = system
        .get(
            &format!("/v1/regulator/platforms/{PLATFORM_ID}/notices?limit=2"),
            coordinator,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["notices"].as_array().unwrap().len(), 2);
    let after = first["next_after"].as_str().unwrap();
    let (_, rest) = system
        .get(
            &format!("/v1/regulator/platforms/{PLATFORM_ID}/notices?limit=2&after={after}"),
            coordinator,
        )
        .await;
    let (_, last) = system
        .get(
            &format!(
                "/v1/regulator/platforms/{PLATFORM_ID}/notices?limit=2&after={}",
                rest["next_after"].as_str().unwrap()
            ),
            coordinator,
        )
        .await;
    assert_eq!(last["notices"].as_array().unwrap().len(), 1);
    assert_eq!(last["next_after"], Value::Null);
    let notice = &first["notices"][0];
    let timeline = notice["timeline"].as_array().unwrap();
    assert_eq!(timeline[0]["event_type"], "ReportReceived");
    assert!(timeline.iter().all(|entry| entry["hash"].as_str().unwrap().len() == 64));
    assert!(timeline.iter().all(|entry| entry.get("payload").is_none()));
    assert!(!first.to_string().contains("partner-a"), "no reporter in the evidence");

    // Every request above, in the audit an operator lists, newest first.
    let (status, audit) = system.get("/v1/operator/regulator-access", &operator).await;
    assert_eq!(status, 200, "{audit}");
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 9);
    assert_eq!(audit[8]["regulator_id"], "regulator");
    assert_eq!(audit[8]["target"], "/v1/regulator/platforms");
    let refused = audit
        .iter()
        .find(|access| access["target"] == "/v1/regulator/platforms/offshore-host/compliance")
        .expect("the refused request is audited too");
    assert_eq!(refused["status"], 404);
    assert!(refused["answer_bytes"].as_i64().unwrap() > 0);
    assert_eq!(audit[3]["regulator_id"], "csam-authority");
    assert_eq!(
        audit[3]["target"],
        format!("/v1/regulator/platforms/{PLATFORM_ID}/compliance?class=ncii")
    );
    let (status, _) = system.get("/v1/operator/regulator-access", coordinator).await;
    assert_eq!(status, 403, "a regulator does not read the audit");
}

/// Runs `program` in `dir`; its exit status and what it printed.
fn run(dir: &std::path::Path, program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn a_dossier_is_signed_verifies_offline_and_a_changed_byte_fails_both_checks() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("signing-key.pem");
    dijkwacht_runtime::signing::SigningKey::generate(&key).unwrap();
    let system = TestSystem::start(TestOptions {
        parts: vec!["intake"],
        regulator: json!({
            "signing_key": key,
            "coordinators": {"NL": "Autoriteit Consument & Markt"},
            "dossier_poll_ms": 50,
        }),
        ..TestOptions::default()
    })
    .await
    .unwrap();
    workload(&system).await;
    let coordinator = &system.regulator_key;
    let signing = dijkwacht_runtime::signing::SigningKey::load(&key).unwrap();
    dijkwacht_runtime::checkpoint::take(system.app.store.pool(), &signing, system.clock_now())
        .await
        .unwrap()
        .expect("a checkpoint for the dossier to carry");
    let (status, asked) = system
        .post(
            "/v1/regulator/dossiers",
            coordinator,
            &json!({"platform_id": PLATFORM_ID, "breaches": ["dsa_16_4", "dsa_22_1"]}),
        )
        .await;
    assert_eq!(status, 202, "{asked}");
    let location = asked["location"].as_str().unwrap().to_owned();
    let (status, refused) = system
        .post(
            "/v1/regulator/dossiers",
            coordinator,
            &json!({"platform_id": PLATFORM_ID, "breaches": []}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["pointer"], "/breaches");
    let authority = format!("{}-csam-authority", system.partner_key);
    let (status, _) = system.get(&location, &authority).await;
    assert_eq!(status, 404, "another regulator's dossier does not exist for it");

    let tar = dijkwacht_tests::eventually("the dossier to be built", Duration::from_secs(30), || async {
        let response = system
            .http
            .get(system.api(&location))
            .bearer_auth(coordinator)
            .send()
            .await
            .unwrap();
        (response.status() == 200).then_some(response.bytes().await.unwrap())
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("dossier.tar"), &tar).unwrap();
    let (untarred, text) = run(out.path(), "tar".as_ref(), &["-xf", "dossier.tar"], &[]);
    assert!(untarred, "{text}");
    let folder = out
        .path()
        .join(format!("dossier-{}", asked["dossier_id"].as_str().unwrap()));
    let dossier: Value = serde_json::from_slice(&std::fs::read(folder.join("dossier.json")).unwrap()).unwrap();
    assert_eq!(dossier["notices"], 5);
    assert_eq!(dossier["figures"]["notices_sent"], 5);
    assert_eq!(dossier["provider"]["coordinator"], "Autoriteit Consument & Markt");
    assert_eq!(
        dossier["alleged_breaches"][1]["article"],
        "Regulation (EU) 2022/2065 Art. 22(1)"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("notices.csv"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    for file in ["dossier.json", "notices.csv", "timeline.csv", "dossier.html"] {
        let text = std::fs::read_to_string(folder.join(file)).unwrap();
        assert!(!text.contains("partner-a"), "{file} names no reporter");
    }

    let openssl = |folder: &std::path::Path| {
        run(
            folder,
            "openssl".as_ref(),
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "signing-key.pem",
                "-rawin",
                "-in",
                "MANIFEST",
                "-sigfile",
                "MANIFEST.sig",
            ],
            &[],
        )
    };
    let sha256sum = |folder: &std::path::Path| run(folder, "sha256sum".as_ref(), &["-c", "MANIFEST"], &[]);
    let database_url = system.settings.database_url().to_owned();
    let verify_export = |folder: &std::path::Path| {
        run(
            folder,
            &dijkwacht_tests::deployment::dijkwacht(),
            &["verify-export", folder.to_str().unwrap()],
            &[("DATABASE_URL", database_url.as_str())],
        )
    };
    for check in [openssl(&folder), sha256sum(&folder), verify_export(&folder)] {
        assert!(check.0, "{}", check.1);
    }
    assert!(verify_export(&folder).1.contains("event(s) match the store"));

    // One byte changed in a listed file: sha256sum and verify-export fail; in the manifest
    // itself: the signature fails.
    for (file, fails) in [("notices.csv", "sha256sum"), ("MANIFEST", "openssl")] {
        let path = folder.join(file);
        let original = std::fs::read(&path).unwrap();
        let mut changed = original.clone();
        let last = changed.len() - 2;
        changed[last] ^= 0x01;
        std::fs::write(&path, &changed).unwrap();
        let by_tool = if fails == "sha256sum" {
            sha256sum(&folder)
        } else {
            openssl(&folder)
        };
        assert!(!by_tool.0, "{fails} accepts a changed {file}: {}", by_tool.1);
        let (verified, text) = verify_export(&folder);
        assert!(!verified, "verify-export accepts a changed {file}: {text}");
        std::fs::write(&path, original).unwrap();
    }
    assert!(verify_export(&folder).0);

    // An event altered in the store after the export: the dossier no longer matches it.
    sqlx::query("UPDATE events SET hash = sha256(hash) WHERE position = (SELECT min(position) FROM events)")
        .execute(system.app.store.pool())
        .await
        .unwrap();
    let (verified, text) = verify_export(&folder);
    assert!(!verified && text.contains("differs from the store"), "{text}");
}

/// Removes events the way someone covering tracks would: their outbox rows first.
async fn remove_events(pool: &sqlx::PgPool, condition: &str) {
    sqlx::query(&format!(
        "DELETE FROM outbox WHERE position IN (SELECT position FROM events WHERE {condition})"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!("DELETE FROM events WHERE {condition}"))
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stream_cut_short_or_removed_whole_is_caught_by_verify_against_the_checkpoint() {
    let system = quiet_system().await;
    workload(&system).await;
    let keys = tempfile::tempdir().unwrap();
    let key = dijkwacht_runtime::signing::SigningKey::generate(&keys.path().join("key.pem")).unwrap();
    let pool = system.app.store.pool().clone();
    let taken = dijkwacht_runtime::checkpoint::take(&pool, &key, system.clock_now())
        .await
        .unwrap()
        .expect("a checkpoint of the new log");
    assert_eq!(taken.streams, 5);
    assert!(
        dijkwacht_runtime::checkpoint::take(&pool, &key, system.clock_now())
            .await
            .unwrap()
            .is_none(),
        "nothing new to anchor"
    );
    let database_url = system.settings.database_url().to_owned();
    let verify = || {
        run(
            std::path::Path::new("."),
            &dijkwacht_tests::deployment::dijkwacht(),
            &["verify"],
            &[("DATABASE_URL", database_url.as_str())],
        )
    };
    let (verified, text) = verify();
    assert!(
        verified && text.contains("adds up to checkpoint 1 (5 streams"),
        "{text}"
    );

    // A whole case gone: every hash chain left still verifies, the checkpoint does not.
    let (case_id,): (uuid::Uuid,) = sqlx::query_as("SELECT stream_id FROM events ORDER BY position LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE TABLE kept AS SELECT * FROM events WHERE stream_id = '{case_id}'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    remove_events(&pool, &format!("stream_id = '{case_id}'")).await;
    let (verified, text) = verify();
    assert!(!verified, "{text}");
    assert!(text.contains("4 stream(s) now, 5 then"), "{text}");
    assert!(
        !text.contains("case "),
        "no chain break: only the checkpoint shows it: {text}"
    );
    sqlx::query("INSERT INTO events SELECT * FROM kept")
        .execute(&pool)
        .await
        .unwrap();
    assert!(verify().0, "put back, the log adds up again");

    // The last events of a case cut off: its chain is still whole, its head is not the one
    // anchored.
    remove_events(
        &pool,
        &format!("stream_id = '{case_id}' AND stream_version = (SELECT max(stream_version) FROM events WHERE stream_id = '{case_id}')"),
    )
    .await;
    let (verified, text) = verify();
    assert!(!verified && text.contains("no longer adds up"), "{text}");
}

#[tokio::test]
async fn the_yearly_report_counts_by_provider_content_and_action_and_names_no_location_or_person() {
    let system = quiet_system().await;
    workload(&system).await;
    let out = tempfile::tempdir().unwrap();
    let database_url = system.settings.database_url().to_owned();
    let (reported, text) = run(
        out.path(),
        &dijkwacht_tests::deployment::dijkwacht(),
        &["report", "annual", "--year", "2026", "--out", "."],
        &[
            ("DATABASE_URL", database_url.as_str()),
            (
                "DIJKWACHT_REGULATOR__INDEPENDENCE_PROCEDURES",
                "Analysts decide alone; no platform funds us.",
            ),
        ],
    );
    assert!(reported, "{text}");
    let json = std::fs::read_to_string(out.path().join("annual-2026.json")).unwrap();
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["notices"], 5);
    assert_eq!(
        report["by_provider"],
        json!([{"key": PLATFORM_ID, "name": "Simulated platform", "notices": 5}])
    );
    let by = |list: &str| -> Vec<(String, i64)> {
        report[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|count| {
                (
                    count["key"].as_str().unwrap().to_owned(),
                    count["notices"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        by("by_content_type"),
        vec![
            (ContentClass::Csam.tdb_category().to_owned(), 3),
            (ContentClass::Ncii.tdb_category().to_owned(), 2)
        ]
    );
    assert_eq!(
        by("by_action"),
        vec![
            ("DECISION_VISIBILITY_CONTENT_REMOVED".to_owned(), 2),
            ("no_action_reported".to_owned(), 1),
            ("refused".to_owned(), 1),
            ("removal_verified_without_decision".to_owned(), 1),
        ]
    );
    assert_eq!(report["procedures"], "Analysts decide alone; no platform funds us.");
    let html = std::fs::read_to_string(out.path().join("annual-2026.html")).unwrap();
    for (name, text) in [("json", &json), ("html", &html)] {
        for word in text.split(|c: char| c.is_whitespace() || "<>\"'(),;".contains(c)) {
            assert!(
                !word.contains("://") && !word.starts_with("www."),
                "the {name} report names a location: {word}"
            );
            let email = word
                .split_once('@')
                .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
            assert!(!email, "the {name} report names an address: {word}");
        }
    }
}

#[tokio::test]
async fn a_rebuild_is_swapped_in_whole_while_the_api_answers_from_the_live_read_models() {
    let system = quiet_system().await;
    workload(&system).await;
    let (_, live) = system.get(&compliance_path(""), &system.regulator_key).await;
    let pool = system.app.store.pool().clone();
    let counts = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT count(*) FROM case_summaries), (SELECT count(*) FROM notice_facts)",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // Case by case, the test looking at the live tables after each.
    let (progress, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let store = system.app.store.clone();
    let now = system.clock_now();
    let rebuilding = tokio::spawn(async move {
        dijkwacht_projection::rebuild::rebuild_with(&store, now, 1, |step| {
            let _ = progress.send(step);
        })
        .await
    });
    let mut steps = Vec::new();
    while let Some(step) = seen.recv().await {
        assert_eq!(counts().await, (5, 5), "the live read models stay whole at {step:?}");
        steps.push(step.cases);
    }
    let rebuilt = rebuilding.await.unwrap().unwrap();
    assert_eq!((rebuilt.cases, rebuilt.unreadable), (5, 0));
    assert_eq!(steps, vec![0, 1, 2, 3, 4, 5]);
    let (_, after) = system.get(&compliance_path(""), &system.regulator_key).await;
    assert_eq!(after, live, "the rebuilt read models say what the live ones said");
    // Swapped in with the indexes named as the migrations named them, and the views over
    // the read models still there.
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('case_summaries', 'notice_facts') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        names.contains(&"case_summaries_platform".to_owned()) && names.contains(&"notice_facts_platform".to_owned()),
        "{names:?}"
    );
    let referrals: i64 = sqlx::query_scalar("SELECT count(*) FROM police_referrals_monthly")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(referrals, 0);
}

/// Debian's Chromium, headless, with a profile of its own; what it printed. Run beside the
/// test's runtime, which serves the pages it asks for.
async fn chromium(profile: &std::path::Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("chromium finished within a minute")
        .expect("Debian's chromium (`make tools` installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_dashboard_shows_in_a_browser_the_figures_the_api_gives() {
    let system = quiet_system().await;
    workload(&system).await;
    let coordinator = &system.regulator_key;
    let (_, api) = system.get(&compliance_path(""), coordinator).await;

    // Signing in with a key gives a session cookie the page's script cannot read.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = client
        .post(system.api("/dashboard/session"))
        .form(&[("key", coordinator.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "{:?}", signed_in.text().await);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/dashboard"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let wrong = client
        .post(system.api("/dashboard/session"))
        .form(&[("key", "not-a-key")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let anonymous = client.get(system.api("/dashboard/data")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let profile = tempfile::tempdir().unwrap();
    let ticket = |key: String| {
        let system = &system;
        async move {
            let (status, ticket) = system.post("/dashboard/tickets", &key, &json!({})).await;
            assert_eq!(status, 200, "{ticket}");
            system.api(ticket["url"].as_str().unwrap())
        }
    };
    let dom = chromium(profile.path(), &["--dump-dom", &ticket(coordinator.clone()).await]).await;
    assert!(dom.contains("data-loaded=\"true\""), "the page's script ran: {dom}");
    let row = dom
        .split("<tr ")
        .find(|row| row.contains(&format!("data-platform=\"{PLATFORM_ID}\"")))
        .unwrap_or_else(|| panic!("a row for the platform: {dom}"));
    let total = &api["total"];
    let percent = |share: &Value| format!("{}%", (share.as_f64().unwrap() * 100.0).round());
    for (figure, shown) in [
        ("notices_sent", total["notices_sent"].to_string()),
        ("ignored", total["ignored"].to_string()),
        ("precision", percent(&total["precision"])),
        ("within_deadline", percent(&total["removed_within"]["own_deadline"])),
        ("median_to_removal", "5.0 h".to_owned()),
    ] {
        assert!(
            row.contains(&format!("data-figure=\"{figure}\" class=\"n\">{shown}<")),
            "{figure} shows {shown}: {row}"
        );
    }
    assert!(dom.contains("data-platform=\"forum\""), "every platform of the remit");
    assert!(!dom.contains("data-platform=\"offshore-host\""), "none outside it");
    assert_eq!(
        dom.matches("<canvas").count(),
        6,
        "three charts for each of the two platforms"
    );

    // A screenshot for whoever reads the test run.
    let artifacts = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir())
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,1400",
            &ticket(coordinator.clone()).await,
        ],
    )
    .await;
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "{}",
        screenshot.display()
    );

    // The regulator's dashboard requests are in the access audit with the API's.
    let (_, audit) = system
        .get(
            "/v1/operator/regulator-access?regulator=regulator",
            &format!("{}-operator", system.partner_key),
        )
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|access| access["target"] == "/dashboard/data"),
        "{audit}"
    );
}

/// A change whose message never reached the projection (the broker lost it) reaches the
/// read models by the catch-up; a case the read models already show is left alone.
#[tokio::test]
async fn the_projection_catches_up_on_changes_whose_messages_were_lost() {
    let db = dijkwacht_tests::TestDatabase::create().await.unwrap();
    let store = db.store();
    use crate::support::{append, report_received, review_requested};
    let (lost, seen) = (CaseId::new(), CaseId::new());
    for (case_id, url) in [(lost, "https://a.example/lost"), (seen, "https://a.example/seen")] {
        append(
            &store,
            case_id,
            vec![report_received(url, dijkwacht_tests::DEMO_SHA256)],
        )
        .await;
    }
    append(&store, lost, vec![review_requested()]).await;
    let loaded = store.load(&[seen]).await.unwrap();
    let states: Vec<&Case> = loaded.cases.values().map(|loaded| loaded.case.as_ref()).collect();
    dijkwacht_projection::project(store.pool(), &states).await.unwrap();

    let projected = dijkwacht_projection::catch_up::catch_up(&store).await.unwrap();
    assert_eq!(projected, 1, "only the case whose read model is behind");
    let version: i32 = sqlx::query_scalar("SELECT version FROM case_summaries WHERE case_id = $1")
        .bind(lost.0)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(dijkwacht_projection::catch_up::catch_up(&store).await.unwrap(), 0);
    let position: i64 = sqlx::query_scalar("SELECT position FROM projection_position")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(position, 3, "caught up through every event");
}
