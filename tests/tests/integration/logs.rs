//! A run's logs: JSON lines when asked, with the case and trace they belong to, no colour
//! codes when they go to a file, and never a secret — even at debug level, with every demo
//! channel used (bearer token, OAuth2 client secret, HMAC secret, e-mail).

use dijkwacht_tests::deployment::{dijkwacht, free_port, wait_for_port, Process};
use dijkwacht_tests::{eventually, TestDatabase, DEMO_SHA256};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every secret the demo holds: its keys and the contents of its secret files.
fn demo_secrets() -> Vec<String> {
    let mut secrets: Vec<String> = [
        "demo-partner-key",
        "demo-regulator-token",
        "demo-analyst-1-key",
        "demo-analyst-2-key",
        "demo-operator-key",
        "demo-hosting-key",
        "demo-police-key",
        "demo-hotline-us-key",
    ]
    .map(String::from)
    .to_vec();
    for file in std::fs::read_dir(repository().join("infra/demo/secrets")).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none() {
            secrets.push(std::fs::read_to_string(&path).unwrap().trim().to_owned());
        }
    }
    secrets
}

#[tokio::test]
async fn the_demo_logs_json_lines_that_name_cases_and_never_a_secret() {
    let database = TestDatabase::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (http, simulator, smtp) = (free_port(), free_port(), free_port());
    // The demo as it is, on ports of its own so it runs beside a `make run`.
    let moved = |text: String| {
        text.replace(":8090", &format!(":{simulator}"))
            .replace(":8080", &format!(":{http}"))
            .replace("2525", &smtp.to_string())
    };
    let reference = dir.path().join("reference.toml");
    let demo = repository().join("infra/demo");
    std::fs::write(
        &reference,
        moved(std::fs::read_to_string(demo.join("reference.toml")).unwrap()),
    )
    .unwrap();
    let config = dir.path().join("dijkwacht.toml");
    let settings = moved(std::fs::read_to_string(demo.join("dijkwacht.toml")).unwrap()).replace(
        "reference_file = \"infra/demo/reference.toml\"",
        &format!("reference_file = {:?}", reference.display().to_string()),
    );
    std::fs::write(&config, settings).unwrap();
    let log = dir.path().join("stderr.log");
    // A password in the database URL is a secret too (the test server trusts without one).
    let database_url = database.url.replacen("postgres@", "postgres:the-database-password@", 1);

    let mut process = Process(
        Command::new(dijkwacht())
            .current_dir(repository())
            .args(["--config", config.to_str().unwrap(), "run"])
            .env("DATABASE_URL", &database_url)
            .env("DIJKWACHT_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_port(http).await;
    let client = reqwest::Client::new();
    let api = |path: &str| format!("http://127.0.0.1:{http}{path}");
    eventually("the demo ready", Duration::from_secs(120), || async {
        let response = client.get(api("/readyz")).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    // One listed report per demo platform that takes notices by API or e-mail.
    let hosts = [
        format!("127.0.0.1:{simulator}"),
        format!("social.demo.test:{simulator}"),
        format!("shop.demo.test:{simulator}"),
        format!("hosting.demo.test:{simulator}"),
    ];
    let items: Vec<Value> = hosts
        .iter()
        .map(|host| {
            json!({"url": format!("http://{host}/content/logged"),
                   "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}], "claimed_category": "csam"})
        })
        .collect();
    let accepted: Value = client
        .post(api("/v1/reports"))
        .bearer_auth("demo-partner-key")
        .json(&json!({"partner_reference": "logs-1", "items": items}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cases: Vec<String> = accepted["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["case_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cases.len(), hosts.len(), "{accepted}");
    for case in &cases {
        eventually(
            &format!("a notice delivered for {case}"),
            Duration::from_secs(60),
            || async {
                let view: Value = client
                    .get(api(&format!("/v1/cases/{case}")))
                    .bearer_auth("demo-partner-key")
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                view["events"]
                    .as_array()?
                    .iter()
                    .any(|event| event["type"] == "NoticeDelivered")
                    .then_some(())
            },
        )
        .await;
    }
    process.signal("TERM");
    assert!(
        process.exited_within(Duration::from_secs(30)).await,
        "the demo stops on SIGTERM"
    );

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.lines().count() > 100, "debug logs of a whole run:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in a log file");
    let mut named_a_case = false;
    for (number, line) in logs.lines().enumerate() {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("log line {} is not JSON ({error}): {line}", number + 1));
        assert!(entry["level"].is_string() && entry["timestamp"].is_string(), "{line}");
        named_a_case |= entry["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|span| span["case_id"].is_string()));
    }
    assert!(named_a_case, "no log line names the case it is about");
    for secret in demo_secrets().iter().chain([&"the-database-password".to_owned()]) {
        assert!(!logs.contains(secret.as_str()), "the logs show the secret {secret:?}");
    }
}
