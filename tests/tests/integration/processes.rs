//! The real binary as separate processes on a real broker process (Tansu): a process killed
//! mid-run loses nothing, and no platform gets a notice twice.

use dijkwacht_tests::{eventually, TestDatabase, DEMO_SHA256};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process that is killed when the test lets go of it.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tansu() -> PathBuf {
    let path = std::env::var_os("DIJKWACHT_TANSU").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dijkwacht-tools/bin/tansu"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: `make tools` builds Tansu",
        path.display()
    );
    path
}

/// The `dijkwacht` binary next to this test binary (`make test` builds it first).
fn dijkwacht() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("dijkwacht");
    assert!(path.exists(), "{} is missing: `make test` builds it", path.display());
    path
}

fn quiet(command: &mut Command) -> &mut Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
}

async fn wait_for_port(port: u16) {
    eventually(
        &format!("something listening on {port}"),
        Duration::from_secs(60),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

fn digest_hex(key: &str) -> String {
    dijkwacht_runtime::auth::key_digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Deployment {
    dir: PathBuf,
    database_url: String,
    broker_port: u16,
    http_port: u16,
    prefix: String,
}

impl Deployment {
    fn start_app(&self) -> Process {
        let mut command = Command::new(dijkwacht());
        quiet(&mut command)
            .arg("run")
            .env("DATABASE_URL", &self.database_url)
            .env("DIJKWACHT_KAFKA_BROKERS", format!("127.0.0.1:{}", self.broker_port))
            .env("DIJKWACHT_KAFKA_PREFIX", &self.prefix)
            .env("DIJKWACHT_KAFKA_PARTITIONS", "2")
            .env("DIJKWACHT_HTTP_LISTEN", format!("127.0.0.1:{}", self.http_port))
            .env("DIJKWACHT_REFERENCE_FILE", self.dir.join("reference.toml"))
            .env("DIJKWACHT_RESOLVER", "static")
            .env("DIJKWACHT_DISPATCH_TIMEOUT_SECS", "2")
            .env("DIJKWACHT_TIMER_POLL_MS", "200")
            // What the killed process had consumed but not finished may not come back from the
            // broker; the sweeper publishes it again (300 s in production, seconds here).
            .env("DIJKWACHT_SWEEP_STALE_SECS", "10")
            .env("DIJKWACHT_SWEEP_INTERVAL_MS", "1000")
            .env("DIJKWACHT_PARTNER_BURST", "100000")
            .env("RUST_LOG", "error");
        Process(command.spawn().expect("dijkwacht runs"))
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }
}

// Not in `make test` yet: on a loaded machine some cases of the killed process did not
// complete within 180 s (1 run in 3 under CI load; cause not yet found). Run it with
// `make test-processes`.
#[ignore = "flaky under load; run with make test-processes"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_run_loses_nothing_and_sends_no_notice_twice() {
    const REPORTS: usize = 1_000;
    let database = TestDatabase::create().await.unwrap();
    let dir = std::env::temp_dir().join(format!("dijkwacht-processes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    let broker_port = free_port();
    let listener = format!("tcp://127.0.0.1:{broker_port}");
    let mut broker = Command::new(tansu());
    // Tansu resolves a sqlite path against its working directory.
    quiet(&mut broker)
        .current_dir(&dir)
        .args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
        ])
        .args(["--storage-engine", "sqlite://tansu.db"]);
    let _broker = Process(broker.spawn().expect("tansu runs"));
    wait_for_port(broker_port).await;

    let simulator_port = free_port();
    let mut simulator = Command::new(dijkwacht());
    quiet(&mut simulator).args([
        "simulate-platform",
        "--listen",
        &format!("127.0.0.1:{simulator_port}"),
        "--removal-delay-secs",
        "3600",
    ]);
    let _simulator = Process(simulator.spawn().expect("the simulator runs"));
    wait_for_port(simulator_port).await;

    let key = format!("key-{}", uuid::Uuid::new_v4());
    std::fs::write(
        dir.join("reference.toml"),
        format!(
            r#"
[[partners]]
id = "partner"
name = "Partner"
keys = [{{ sha256 = "{digest}", scopes = ["reports:write", "reports:read"] }}]

[[platforms]]
id = "platform"
name = "Platform"
country = "NL"
notice_endpoint = "http://127.0.0.1:{simulator_port}/notices"
domains = ["127.0.0.1"]

[[hash_lists]]
name = "list"
source = "test"
entries = [{{ algorithm = "sha256", value = "{DEMO_SHA256}", class = "csam" }}]
"#,
            digest = digest_hex(&key)
        ),
    )
    .unwrap();

    let deployment = Deployment {
        dir: dir.clone(),
        database_url: database.url.clone(),
        broker_port,
        http_port: free_port(),
        prefix: format!("p{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    };
    let http = reqwest::Client::new();
    let healthy = || async {
        let response = http.get(deployment.api("/healthz")).send().await.ok()?;
        (response.status() == 200).then_some(())
    };

    let first = deployment.start_app();
    eventually("the first process to be ready", Duration::from_secs(120), healthy).await;
    let body: String = (0..REPORTS)
        .map(|i| {
            json!({"partner_reference": format!("K-{i}"), "items": [{"url": format!("http://127.0.0.1:{simulator_port}/content/k-{i}"),
                "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]})
            .to_string()
                + "\n"
        })
        .collect();
    let answer = http
        .post(deployment.api("/v1/reports/bulk"))
        .bearer_auth(&key)
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer.lines().filter(|l| l.contains("report_id")).count(), REPORTS);

    let notices = |http: reqwest::Client| async move {
        let notices: Vec<Value> = http
            .get(format!("http://127.0.0.1:{simulator_port}/notices"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        Some(notices)
    };
    // Killed without warning while the stages are at work: some notices are out, not all.
    let before = eventually("the first notices", Duration::from_secs(120), || async {
        notices(http.clone()).await.filter(|n| !n.is_empty()).map(|n| n.len())
    })
    .await;
    drop(first);
    eprintln!("killed the first process after {before} of {REPORTS} notices");
    assert!(
        before < REPORTS,
        "the process finished before it was killed; nothing was tested"
    );
    let _second = deployment.start_app();
    eventually("the second process to be ready", Duration::from_secs(120), healthy).await;

    let notices = eventually("a notice for every report", Duration::from_secs(180), || async {
        notices(http.clone()).await.filter(|n| n.len() >= REPORTS)
    })
    .await;
    let mut cases: Vec<&str> = notices
        .iter()
        .map(|n| n["notice"]["case_id"].as_str().unwrap())
        .collect();
    cases.sort_unstable();
    cases.dedup();
    assert_eq!(cases.len(), REPORTS, "one notice per case, none twice");
    assert_eq!(notices.len(), REPORTS);

    let delivered = eventually("every delivery recorded", Duration::from_secs(120), || async {
        let delivered: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'NoticeDelivered'")
            .fetch_one(&database.pool)
            .await
            .ok()?;
        (delivered >= REPORTS as i64).then_some(delivered)
    })
    .await;
    assert_eq!(delivered, REPORTS as i64);
    let issued: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'NoticeIssued'")
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert_eq!(issued, REPORTS as i64);
    assert_eq!(database.store().verify().await.unwrap(), vec![]);
    let _ = std::fs::remove_dir_all(&dir);
}
