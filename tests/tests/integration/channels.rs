//! Every channel and every way a platform proves who may send to it, against the simulated
//! platforms and their mail server: what arrives, what is recorded, and what happens when a
//! channel will not take the notice.

use crate::support::{last_of, report_listed as report, report_listed_at as report_at, settled_on};
use chrono::TimeDelta;
use dijkwacht_simulator::platform::{Behaviour, SimulatedAuth};
use dijkwacht_tests::{eventually, TestOptions, TestSystem, DEMO_SHA256, PLATFORM_ID};
use serde_json::{json, Value};
use std::time::Duration;

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn secret_file(value: &str) -> String {
    let path = std::env::temp_dir().join(format!("dijkwacht-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, value).unwrap();
    format!("file:{}", path.display())
}

fn behaviour(auth: SimulatedAuth) -> Behaviour {
    Behaviour {
        auth,
        ..Behaviour::default()
    }
}

fn endpoint(system: &TestSystem, platform: &str) -> String {
    format!("http://{}/platforms/{platform}/notices", system.simulator_addr)
}

/// A system whose platform takes notices by API at the simulated platform `name`, which
/// behaves so, at our `pace`.
async fn api_platform(name: &str, behaviour: Behaviour, pace: Value) -> TestSystem {
    let system = TestSystem::start(TestOptions {
        simulated_platforms: vec![(name.into(), behaviour)],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let api = json!({"pace": pace, "channels": [{"kind": "api", "endpoint": endpoint(&system, name)}]});
    system.reregister_platform(PLATFORM_ID, "", api).await.unwrap()
}

/// Adds a platform serving `domain` with the given channels.
async fn add_platform(system: &TestSystem, id: &str, domain: &str, dispatch: Value) {
    sqlx::query(
        "INSERT INTO platforms (platform_id, name, country, notice_endpoint, dispatch) VALUES ($1, $2, 'NL', '', $3)",
    )
    .bind(id)
    .bind(format!("Platform {id}"))
    .bind(dispatch)
    .execute(&system.database.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO platform_domains (domain, platform_id) VALUES ($1, $2)")
        .bind(domain)
        .bind(id)
        .execute(&system.database.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn each_api_authentication_mode_is_accepted_by_its_platform() {
    std::env::set_var("DIJKWACHT_TEST_HMAC_SECRET", "hmac-secret-new");
    let system = TestSystem::start(TestOptions {
        simulated_platforms: vec![
            (
                "bearer".into(),
                behaviour(SimulatedAuth::Bearer { token: "t0ken".into() }),
            ),
            (
                "oauth".into(),
                behaviour(SimulatedAuth::Oauth2 {
                    client_id: "dijkwacht".into(),
                    client_secret: "s3cret".into(),
                    token_lifetime_secs: 3600,
                }),
            ),
            (
                "hmac".into(),
                // Mid-rotation: the platform accepts the old and the new secret.
                behaviour(SimulatedAuth::Hmac {
                    secrets: vec!["hmac-secret-old".into(), "hmac-secret-new".into()],
                    max_skew_secs: 300,
                }),
            ),
        ],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let bearer = json!({"channels": [{"kind": "api", "endpoint": endpoint(&system, "bearer"),
        "auth": {"kind": "bearer", "token": secret_file("t0ken")}}]});
    let oauth = json!({"channels": [{"kind": "api", "endpoint": endpoint(&system, "oauth"),
        "auth": {"kind": "oauth2", "token_url": format!("http://{}/platforms/oauth/oauth/token", system.simulator_addr),
                 "client_id": "dijkwacht", "client_secret": secret_file("s3cret")}}]});
    let hmac = json!({"channels": [{"kind": "api", "endpoint": endpoint(&system, "hmac"),
        "auth": {"kind": "hmac", "secret": "env:DIJKWACHT_TEST_HMAC_SECRET", "key_id": "2026-11"}}]});
    add_platform(&system, "oauth-platform", "oauth.localhost", oauth).await;
    add_platform(&system, "hmac-platform", "hmac.localhost", hmac).await;
    let system = system.reregister_platform(PLATFORM_ID, "", bearer).await.unwrap();

    let by_bearer = report(&system, "bearer").await;
    let by_oauth = [
        report_at(&system, "oauth-1", "http://oauth.localhost/v/1").await,
        report_at(&system, "oauth-2", "http://oauth.localhost/v/2").await,
    ];
    let by_hmac = report_at(&system, "hmac", "http://hmac.localhost/v/1").await;
    for case_id in [&by_bearer, &by_oauth[0], &by_oauth[1], &by_hmac] {
        let events = settled_on(&system, case_id, "NoticeDelivered").await;
        assert!(!types(&events).contains(&"DispatchFailed"), "{events:?}");
    }
    let platforms: Vec<String> = system.simulator.notices().iter().map(|n| n.platform.clone()).collect();
    for platform in ["bearer", "oauth", "hmac"] {
        assert!(platforms.contains(&platform.to_owned()), "{platforms:?}");
    }
    assert_eq!(system.simulator.raw_posts(), 4, "one request per notice");
    assert_eq!(system.simulator.tokens_issued(), 1, "the OAuth token is cached");
    // No secret is recorded in any event.
    let dump: String = sqlx::query_scalar::<_, String>("SELECT string_agg(payload::text, ' ') FROM events")
        .fetch_one(&system.database.pool)
        .await
        .unwrap();
    for secret in ["t0ken", "s3cret", "hmac-secret"] {
        assert!(!dump.contains(secret), "{secret} leaked into the events");
    }
    system.app.stop().await;
}

#[tokio::test]
async fn a_revoked_oauth_token_is_fetched_again_and_the_notice_delivered() {
    let system = TestSystem::start(TestOptions {
        simulated_platforms: vec![(
            "oauth".into(),
            behaviour(SimulatedAuth::Oauth2 {
                client_id: "dijkwacht".into(),
                client_secret: "s3cret".into(),
                token_lifetime_secs: 3600,
            }),
        )],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let oauth = json!({"channels": [{"kind": "api", "endpoint": endpoint(&system, "oauth"),
        "auth": {"kind": "oauth2", "token_url": format!("http://{}/platforms/oauth/oauth/token", system.simulator_addr),
                 "client_id": "dijkwacht", "client_secret": secret_file("s3cret")}}]});
    let system = system.reregister_platform(PLATFORM_ID, "", oauth).await.unwrap();
    let first = report(&system, "first").await;
    settled_on(&system, &first, "NoticeDelivered").await;
    system.simulator.revoke_tokens();
    let second = report(&system, "second").await;
    let events = settled_on(&system, &second, "DispatchFailed").await;
    let failed = events.iter().find(|e| e["type"] == "DispatchFailed").unwrap();
    assert!(failed["reason"].as_str().unwrap().contains("401"), "{failed}");
    system.clock.advance(TimeDelta::hours(1));
    settled_on(&system, &second, "NoticeDelivered").await;
    assert_eq!(system.simulator.tokens_issued(), 2);
    system.app.stop().await;
}

#[tokio::test]
async fn an_email_notice_arrives_over_starttls_with_every_part() {
    let system = TestSystem::start(TestOptions {
        mail: true,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let email = json!({"channels": [{"kind": "email", "to": "abuse@platform.test"}]});
    let system = system.reregister_platform(PLATFORM_ID, "", email).await.unwrap();
    let case_id = report(&system, "by-mail").await;
    let events = settled_on(&system, &case_id, "NoticeDelivered").await;
    let delivered = events.iter().find(|e| e["type"] == "NoticeDelivered").unwrap();
    let mail = system.simulator.mail();
    assert_eq!(mail.len(), 1);
    let mail = &mail[0];
    assert!(mail.secured, "the relay used STARTTLS");
    assert_eq!(
        mail.authenticated_as.as_deref(),
        Some("dijkwacht"),
        "and authenticated, after TLS"
    );
    assert_eq!(mail.recipients, ["abuse@platform.test"]);
    assert_eq!(
        mail.message_id.as_deref(),
        delivered["message_id"].as_str(),
        "the Message-ID is recorded"
    );
    assert!(mail.reply_to.as_deref().unwrap().contains("answers@hotline.test"));
    assert_eq!(mail.auto_submitted.as_deref(), Some("auto-generated"));
    let notice_id = delivered["notice_id"].as_str().unwrap();
    assert!(
        mail.subject.as_deref().unwrap().contains(notice_id),
        "{:?}",
        mail.subject
    );
    // The platform's language is Dutch; the HTML alternative and the JSON notice are there.
    assert!(mail.text.as_deref().unwrap().contains("Geacht team"), "{:?}", mail.text);
    assert!(mail.html.as_deref().unwrap().contains("<h2>"));
    assert_eq!(mail.notices[0]["notice_id"], notice_id);
    assert_eq!(mail.attachments, ["notice.json"]);
    assert!(mail.missing.is_empty(), "{:?}", mail.missing);
    system.app.stop().await;
}

#[tokio::test]
async fn refused_api_credentials_hand_the_notice_to_email() {
    let system = TestSystem::start(TestOptions {
        mail: true,
        simulated_platforms: vec![(
            "strict".into(),
            behaviour(SimulatedAuth::Bearer { token: "right".into() }),
        )],
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let channels = json!({"channels": [
        {"kind": "api", "endpoint": endpoint(&system, "strict"), "auth": {"kind": "bearer", "token": secret_file("wrong")}},
        {"kind": "email", "to": "abuse@platform.test"},
    ]});
    let system = system.reregister_platform(PLATFORM_ID, "", channels).await.unwrap();
    let case_id = report(&system, "fallback").await;
    let events = settled_on(&system, &case_id, "NoticeDelivered").await;
    // Follow-up's DeadlineSet may already follow the delivery.
    assert_eq!(
        types(&events)[4..8],
        [
            "DispatchStarted",
            "DispatchFailed",
            "DispatchStarted",
            "NoticeDelivered"
        ]
    );
    assert_eq!(events[4]["channel"]["kind"], "http");
    assert_eq!(events[5]["channel_exhausted"], true);
    assert!(events[5]["reason"].as_str().unwrap().contains("401"));
    assert_eq!(
        events[6]["channel"],
        json!({"kind": "email", "to": "abuse@platform.test"})
    );
    assert_eq!(
        system.simulator.raw_posts_to("strict"),
        1,
        "refused credentials are not tried again"
    );
    assert_eq!(system.simulator.mail().len(), 1);
    system.app.stop().await;
}

#[tokio::test]
async fn a_refusal_is_recorded_with_the_platforms_reason_for_an_analyst() {
    let system = api_platform(
        "picky",
        Behaviour {
            rejects: Some("not illegal under our terms".into()),
            ..Behaviour::default()
        },
        json!({}),
    )
    .await;
    let case_id = report(&system, "refused").await;
    let events = settled_on(&system, &case_id, "PlatformRejected").await;
    let rejected = events.last().unwrap();
    assert_eq!(rejected["reason"], "not illegal under our terms");
    assert!(rejected["answer"].as_str().unwrap().contains("not illegal"));
    assert_eq!(
        system.analyst_tasks().await,
        vec![(case_id, "assess_rejection".to_owned())]
    );
    system.app.stop().await;
}

#[tokio::test]
async fn a_notice_is_delivered_when_the_platform_answered_and_its_deadline_runs_from_then() {
    let system = api_platform(
        "slow",
        Behaviour {
            delay_ms: 1_000,
            ..Behaviour::default()
        },
        json!({}),
    )
    .await;
    let case_id = report(&system, "slow").await;
    eventually("the notice at the platform", Duration::from_secs(60), || async {
        (system.simulator.raw_posts_to("slow") == 1).then_some(())
    })
    .await;
    // The platform takes its time to answer; the clock moves meanwhile.
    system.clock.advance(TimeDelta::seconds(90));
    let events = settled_on(&system, &case_id, "DeadlineSet").await;
    let stream = system
        .app
        .store
        .read_stream(dijkwacht_domain::CaseId(case_id.parse().unwrap()))
        .await
        .unwrap();
    let recorded = |event_type: &str| {
        stream
            .iter()
            .find(|e| e.event.type_name() == event_type)
            .unwrap()
            .recorded_at
    };
    let delivered = recorded("NoticeDelivered");
    assert_eq!(delivered - recorded("DispatchStarted"), TimeDelta::seconds(90));
    let deadline = events.iter().find(|e| e["type"] == "DeadlineSet").unwrap();
    let due_at: chrono::DateTime<chrono::Utc> = deadline["due_at"].as_str().unwrap().parse().unwrap();
    let within = TimeDelta::seconds(deadline["within_secs"].as_i64().unwrap());
    assert_eq!(due_at, delivered + within, "{deadline}");
    system.app.stop().await;
}

#[tokio::test]
async fn a_platform_that_asks_to_slow_down_is_not_asked_again_sooner() {
    let system = api_platform(
        "busy",
        Behaviour {
            unavailable_first: 1,
            throttle_first: 1,
            retry_after_secs: 3600,
            ..Behaviour::default()
        },
        json!({}),
    )
    .await;
    let start = system.clock_now();
    let case_id = report(&system, "busy").await;
    // 503: back-off (the first is 30-60 s by default).
    let events = settled_on(&system, &case_id, "DispatchFailed").await;
    let unavailable = events.iter().find(|e| e["type"] == "DispatchFailed").unwrap();
    assert!(unavailable["reason"].as_str().unwrap().contains("503"));
    system.clock.advance(TimeDelta::seconds(60));
    // 429 with Retry-After: 3600 s — the next attempt waits for it, not for the back-off.
    let events = eventually("the 429", Duration::from_secs(60), || async {
        let events = settled_on(&system, &case_id, "DispatchFailed").await;
        (events.iter().filter(|e| e["type"] == "DispatchFailed").count() == 2).then_some(events)
    })
    .await;
    let throttled = events.iter().rfind(|e| e["type"] == "DispatchFailed").unwrap();
    let retry_at: chrono::DateTime<chrono::Utc> = throttled["retry_at"].as_str().unwrap().parse().unwrap();
    assert!(retry_at >= start + TimeDelta::seconds(60 + 3600), "{retry_at}");
    system.clock.advance(TimeDelta::seconds(1800));
    assert_eq!(system.simulator.raw_posts_to("busy"), 2, "not before Retry-After");
    system.clock.advance(TimeDelta::seconds(1801));
    settled_on(&system, &case_id, "NoticeDelivered").await;
    assert_eq!(system.simulator.raw_posts_to("busy"), 3);
    system.app.stop().await;
}

#[tokio::test]
async fn a_platform_template_that_drops_an_element_sends_nothing_and_tells_an_analyst_why() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("dijkwacht-templates-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("text.j2"),
        "Please remove {% for l in locations %}{{ l.url }} {% endfor %}",
    )
    .unwrap();
    let api = json!({"templates_dir": dir, "channels": [{"kind": "api", "endpoint": format!("http://{}/notices", system.simulator_addr)}]});
    let system = system.reregister_platform(PLATFORM_ID, "", api).await.unwrap();
    let case_id = report(&system, "incomplete").await;
    let events = settled_on(&system, &case_id, "DispatchFailed").await;
    let failed = events.last().unwrap();
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("Art. 16(2)(a)") && reason.contains("Art. 22"),
        "{reason}"
    );
    assert!(failed["retry_at"].is_null());
    assert_eq!(system.simulator.raw_posts(), 0, "nothing left");
    assert_eq!(
        system.analyst_tasks().await,
        vec![(case_id, "deliver_by_hand".to_owned())]
    );
    system.app.stop().await;
}

#[tokio::test]
async fn a_web_form_platform_gives_an_analyst_the_text_to_paste_and_records_the_submission() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let form = json!({"channels": [{"kind": "manual", "form_url": "https://platform.test/report-form"}]});
    let system = system.reregister_platform(PLATFORM_ID, "", form).await.unwrap();
    let case_id = report(&system, "by-hand").await;
    settled_on(&system, &case_id, "DispatchStarted").await;
    let analyst = system.analyst_key(1);
    let tasks = eventually("the task", Duration::from_secs(30), || async {
        let (status, tasks) = system.get("/v1/dispatch/tasks", &analyst).await;
        assert_eq!(status, 200, "{tasks}");
        (tasks.as_array()?.len() == 1).then_some(tasks)
    })
    .await;
    let task = &tasks[0];
    assert_eq!(task["case_id"], case_id.as_str());
    assert_eq!(task["task"], "submit_notice");
    assert_eq!(task["form_url"], "https://platform.test/report-form");
    assert_eq!(task["message"]["language"], "nl");
    let text = task["message"]["text"].as_str().unwrap();
    assert!(text.contains(&system.content_url("by-hand")), "{text}");
    // Nothing was sent by itself, however long the form waits.
    system.clock.advance(TimeDelta::days(2));
    assert_eq!(system.simulator.raw_posts(), 0);

    let path = format!("/v1/dispatch/tasks/{case_id}/submission");
    let (status, body) = system.post(&path, &system.partner_key, &json!({})).await;
    assert_eq!(status, 403, "partners do not submit for analysts: {body}");
    let (status, body) = system.post(&path, &analyst, &json!({"reference": "FORM-77"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "notice_delivered");
    let events = settled_on(&system, &case_id, "NoticeDelivered").await;
    let delivered = events.last().unwrap();
    assert_eq!(delivered["submitted_by"], "analyst-1");
    assert_eq!(delivered["platform_reference"], "FORM-77");
    let (status, again) = system.post(&path, &analyst, &json!({"reference": "FORM-77"})).await;
    assert_eq!((status, &again["version"]), (200, &body["version"]), "recorded once");
    let (_, tasks) = system.get("/v1/dispatch/tasks", &analyst).await;
    assert_eq!(tasks, json!([]));
    let (status, invalid) = system.post(&path, &analyst, &json!({"reference": ""})).await;
    assert_eq!(status, 422);
    assert_eq!(invalid["errors"][0]["pointer"], "/reference");
    system.app.stop().await;
}

/// Reports `count` listed locations in one request; returns their case ids.
async fn report_many(system: &TestSystem, name: &str, count: usize) -> Vec<String> {
    let items: Vec<Value> = (0..count)
        .map(|n| json!({"url": system.content_url(&format!("{name}-{n}")), "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}))
        .collect();
    let (status, accepted) = system
        .post(
            "/v1/reports",
            &system.partner_key,
            &json!({"partner_reference": name, "items": items}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    accepted["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["case_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn our_rate_limit_holds_at_the_platform() {
    let system = api_platform("slow", Behaviour::default(), json!({"per_second": 1.0})).await;
    let cases = report_many(&system, "burst", 5).await;
    for second in 1..=5 {
        eventually("the next notice", Duration::from_secs(30), || async {
            (system.simulator.raw_posts_to("slow") == second).then_some(())
        })
        .await;
        system.clock.advance(TimeDelta::seconds(1));
    }
    for case_id in &cases {
        settled_on(&system, case_id, "NoticeDelivered").await;
    }
    // The simulator's clock is the test's: one notice per second, never two.
    let mut arrivals: Vec<_> = system.simulator.notices().iter().map(|n| n.received_at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 5);
    for pair in arrivals.windows(2) {
        assert!(pair[1] - pair[0] >= TimeDelta::seconds(1), "{arrivals:?}");
    }
    assert_eq!(system.simulator.raw_posts_to("slow"), 5, "deferring sends nothing");
    system.app.stop().await;
}

#[tokio::test]
async fn the_circuit_breaker_opens_on_failures_and_closes_after_a_good_probe() {
    let system = api_platform(
        "flaky",
        Behaviour {
            unavailable_first: 3,
            ..Behaviour::default()
        },
        json!({"breaker_failures": 3, "breaker_cooldown_secs": 600}),
    )
    .await;
    let mut cases = report_many(&system, "flaky", 3).await;
    for case_id in &cases {
        settled_on(&system, case_id, "DispatchFailed").await;
    }
    let operator = system.operator_key();
    let pace = eventually("the breaker open", Duration::from_secs(30), || async {
        let (_, pace) = system.get("/v1/dispatch/pace", &operator).await;
        let platform = pace
            .as_array()?
            .iter()
            .find(|p| p["platform_id"] == PLATFORM_ID)?
            .clone();
        (platform["breaker"] == "open").then_some(platform)
    })
    .await;
    assert_eq!(pace["failures"], 3);
    // While it is open, nothing is sent: a new notice waits for the cool-down.
    let late = report(&system, "during-cool-down").await;
    let events = settled_on(&system, &late, "DispatchDeferred").await;
    assert!(events.last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .contains("circuit breaker is open"));
    system.clock.advance(TimeDelta::seconds(120));
    assert_eq!(system.simulator.raw_posts_to("flaky"), 3, "the retries wait too");
    // After the cool-down one probe goes; it succeeds, the breaker closes, the rest follow.
    system.clock.advance(TimeDelta::seconds(600));
    eventually("the probe", Duration::from_secs(30), || async {
        (system.simulator.raw_posts_to("flaky") == 4).then_some(())
    })
    .await;
    // Past the others' wait for the probe (30 s), short of the probe's own deadline (60 s),
    // after which a reminder would go to the platform too.
    system.clock.advance(TimeDelta::seconds(31));
    cases.push(late);
    for case_id in &cases {
        settled_on(&system, case_id, "NoticeDelivered").await;
    }
    assert_eq!(system.simulator.raw_posts_to("flaky"), 7);
    let (_, pace) = system.get("/v1/dispatch/pace", &operator).await;
    let platform = pace
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform_id"] == PLATFORM_ID)
        .unwrap();
    assert_eq!(platform["breaker"], "closed");
    system.app.stop().await;
}

#[tokio::test]
async fn a_retracted_notice_is_withdrawn_by_email_in_reply_to_the_notice() {
    let system = TestSystem::start(TestOptions {
        mail: true,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let email = json!({"channels": [{"kind": "email", "to": "abuse@platform.test"}]});
    let system = system.reregister_platform(PLATFORM_ID, "", email).await.unwrap();
    let case_id = report(&system, "to-withdraw").await;
    let events = settled_on(&system, &case_id, "NoticeDelivered").await;
    let notice_message = last_of(&events, "NoticeDelivered")["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    dijkwacht_classify::lists::delist(
        &system.app.store,
        "national",
        DEMO_SHA256,
        "a false positive in the list",
        system.clock_now(),
    )
    .await
    .unwrap();
    let events = settled_on(&system, &case_id, "NoticeWithdrawn").await;
    assert_eq!(
        types(&events)[types(&events).len() - 3..],
        ["Retracted", "WithdrawalStarted", "NoticeWithdrawn"]
    );
    let mail = system.simulator.mail();
    assert_eq!(mail.len(), 2);
    let withdrawal = &mail[1];
    assert!(withdrawal
        .subject
        .as_deref()
        .unwrap()
        .starts_with("Intrekking van DSA-melding"));
    assert!(withdrawal
        .text
        .as_deref()
        .unwrap()
        .contains("a false positive in the list"));
    let raw_in_reply_to = withdrawal.in_reply_to.as_deref().unwrap();
    assert_eq!(raw_in_reply_to, notice_message, "it answers the notice's own e-mail");
    assert_eq!(system.simulator.withdrawals()[0].by, "email");
    system.app.stop().await;
}

#[tokio::test]
async fn notices_within_a_grouping_window_go_out_as_one_message_with_a_delivery_each() {
    let system = TestSystem::start(TestOptions {
        mail: true,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    let email = json!({"pace": {"grouping_window_secs": 900},
        "channels": [{"kind": "email", "to": "abuse@platform.test"}]});
    let system = system.reregister_platform(PLATFORM_ID, "", email).await.unwrap();
    let cases = report_many(&system, "grouped", 5).await;
    for case_id in &cases {
        let events = settled_on(&system, case_id, "DispatchDeferred").await;
        assert!(events.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("grouping window"));
    }
    assert!(system.simulator.mail().is_empty(), "nothing before the window closes");
    system.clock.advance(TimeDelta::seconds(900));
    let mut message_ids = std::collections::BTreeSet::new();
    for case_id in &cases {
        let events = settled_on(&system, case_id, "NoticeDelivered").await;
        message_ids.insert(
            last_of(&events, "NoticeDelivered")["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mail = system.simulator.mail();
    assert_eq!(mail.len(), 1, "one message for the five");
    assert_eq!(mail[0].notices.len(), 5);
    assert!(mail[0].attachments.contains(&"locations.csv".to_owned()));
    assert!(mail[0].missing.is_empty(), "{:?}", mail[0].missing);
    assert_eq!(message_ids.len(), 1, "each case records the message's id");
    assert_eq!(message_ids.first(), mail[0].message_id.as_ref());
    let text = mail[0].text.as_deref().unwrap();
    for case in 0..5 {
        assert!(text.contains(&system.content_url(&format!("grouped-{case}"))), "{text}");
    }
    system.app.stop().await;
}

#[tokio::test]
async fn a_group_that_failed_is_retried_as_a_group() {
    let system = api_platform(
        "grouping",
        Behaviour {
            unavailable_first: 1,
            ..Behaviour::default()
        },
        json!({"grouping_window_secs": 60}),
    )
    .await;
    let cases = report_many(&system, "group-retry", 4).await;
    for case_id in &cases {
        settled_on(&system, case_id, "DispatchDeferred").await;
    }
    system.clock.advance(TimeDelta::seconds(60));
    let mut retries = std::collections::BTreeSet::new();
    for case_id in &cases {
        let events = settled_on(&system, case_id, "DispatchFailed").await;
        retries.insert(events.last().unwrap()["retry_at"].as_str().unwrap().to_owned());
    }
    assert_eq!(retries.len(), 1, "the group comes due together: {retries:?}");
    assert_eq!(system.simulator.raw_posts_to("grouping"), 1);
    // Due again: back into a grouping window, then one request for all four.
    system.clock.advance(TimeDelta::seconds(60));
    eventually("the regrouped cases deferred", Duration::from_secs(30), || async {
        let stream = system
            .app
            .store
            .read_stream(dijkwacht_domain::CaseId(cases[0].parse().unwrap()))
            .await
            .ok()?;
        (stream
            .iter()
            .filter(|e| e.event.type_name() == "DispatchDeferred")
            .count()
            == 2)
            .then_some(())
    })
    .await;
    system.clock.advance(TimeDelta::seconds(60));
    for case_id in &cases {
        settled_on(&system, case_id, "NoticeDelivered").await;
    }
    assert_eq!(
        system.simulator.raw_posts_to("grouping"),
        2,
        "one request per try of the group"
    );
    let notices = system.simulator.notices();
    assert_eq!(notices.len(), 4);
    assert!(notices
        .iter()
        .all(|n| n.notice_reference == notices[0].notice_reference));
    system.app.stop().await;
}
