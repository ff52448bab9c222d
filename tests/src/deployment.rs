//! The real binary as separate processes: a database, a broker (the embedded one of this
//! test process, or a Tansu process), the platform simulator in this process, and as many
//! `dijkwacht run` processes as a test starts and kills.

use crate::{
    assert_read_models_equal_a_rebuild, create_topics, eventually, reference_data, unique_prefix, TestDatabase,
    DEMO_SHA256,
};
use dijkwacht_runtime::kafka::EmbeddedBroker;
use dijkwacht_runtime::{SharedClock, SystemClock};
use dijkwacht_simulator::Simulator;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Partitions per topic in these deployments.
const PARTITIONS: i32 = 2;
/// Cases per stage batch: small, so a run has many batches to be cut short in.
pub const BATCH: usize = 50;

/// Limits of seconds, not minutes, so a test sees a stage look at a case again, a lost
/// attempt settle and a stale case move on within its run (and batches of [`BATCH`]).
const QUICK_PACE: [(&str, &str); 7] = [
    ("DIJKWACHT_KAFKA_MESSAGE_TIMEOUT_MS", "5000"),
    ("DIJKWACHT_DISPATCH_TIMEOUT_SECS", "2"),
    ("DIJKWACHT_DISPATCH_IN_FLIGHT_SECS", "4"),
    ("DIJKWACHT_DISPATCH_FIRST_BACKOFF_SECS", "1"),
    ("DIJKWACHT_STAGE_STALE_SECS", "3"),
    ("DIJKWACHT_TIMER_POLL_MS", "100"),
    ("DIJKWACHT_TIMER_LEASE_SECS", "2"),
];

/// A child process that is killed when the test lets go of it.
pub struct Process(pub Child);

impl Process {
    /// Whether the process ends by itself (at a crash point) within `timeout`.
    pub async fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.0.id());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `dijkwacht` binary of this build (`make test` and `make bench` build it first).
pub fn dijkwacht() -> PathBuf {
    // Test and bench binaries live in `target/<profile>/deps`, the binary one level up.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("dijkwacht");
    assert!(path.exists(), "{} is missing: `make test` builds it", path.display());
    path
}

pub fn quiet(command: &mut Command) -> &mut Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
}

pub async fn wait_for_port(port: u16) {
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

pub enum BrokerProcess {
    /// Lives in this test process, so it outlives every `dijkwacht` process.
    Embedded(EmbeddedBroker),
    Tansu {
        process: Process,
        port: u16,
        dir: PathBuf,
    },
}

pub struct Deployment {
    pub database: TestDatabase,
    pub broker: BrokerProcess,
    pub bootstrap_servers: String,
    pub prefix: String,
    pub simulator: Simulator,
    pub simulator_addr: std::net::SocketAddr,
    pub partner_key: String,
    partitions: i32,
    http: reqwest::Client,
}

impl Deployment {
    pub async fn start_on(database: TestDatabase, broker: BrokerProcess) -> Self {
        Self::start_with_partitions(database, broker, PARTITIONS).await
    }

    /// [`Deployment::start_on`] with `partitions` per topic.
    pub async fn start_with_partitions(database: TestDatabase, broker: BrokerProcess, partitions: i32) -> Self {
        let clock: SharedClock = Arc::new(SystemClock);
        let simulator = Simulator::new(clock.clone(), chrono::TimeDelta::hours(1));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let simulator_addr = listener.local_addr().unwrap();
        let router = simulator.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let partner_key = format!("partner-{}", uuid::Uuid::new_v4());
        reference_data(&partner_key, "unused", &format!("http://{simulator_addr}/notices"))
            .load_into(&database.pool, clock.now())
            .await
            .unwrap();
        let prefix = unique_prefix();
        let bootstrap_servers = match &broker {
            BrokerProcess::Embedded(embedded) => {
                create_topics(embedded, &prefix, partitions).unwrap();
                embedded.bootstrap_servers().to_owned()
            }
            BrokerProcess::Tansu { port, .. } => format!("127.0.0.1:{port}"),
        };
        Self {
            database,
            broker,
            bootstrap_servers,
            prefix,
            simulator,
            simulator_addr,
            partner_key,
            partitions,
            http: reqwest::Client::new(),
        }
    }

    pub async fn embedded() -> Self {
        let database = TestDatabase::create().await.unwrap();
        Self::start_on(database, BrokerProcess::Embedded(EmbeddedBroker::start(1).unwrap())).await
    }

    /// A `dijkwacht run` process with `parts` (all if empty), its API on `http_port`, and
    /// `env` on top of the deployment's settings (short limits: seconds, not minutes).
    pub fn spawn(&self, parts: &[&str], http_port: u16, env: &[(&str, &str)]) -> Process {
        let batch = BATCH.to_string();
        let batches = ("DIJKWACHT_BATCH_SIZE", batch.as_str());
        let pace: Vec<(&str, &str)> = QUICK_PACE.into_iter().chain([batches]).collect();
        self.spawn_paced(parts, http_port, &pace, env)
    }

    /// [`Deployment::spawn`] at the default settings' pace, as production runs it.
    pub fn spawn_at_default_pace(&self, parts: &[&str], http_port: u16, env: &[(&str, &str)]) -> Process {
        self.spawn_paced(parts, http_port, &[], env)
    }

    fn spawn_paced(&self, parts: &[&str], http_port: u16, pace: &[(&str, &str)], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(dijkwacht());
        quiet(&mut command).arg("run");
        if !parts.is_empty() {
            command.arg("--only").arg(parts.join(","));
        }
        command
            .env("DATABASE_URL", &self.database.url)
            .env("DIJKWACHT_KAFKA_BROKERS", &self.bootstrap_servers)
            .env("DIJKWACHT_KAFKA_PREFIX", &self.prefix)
            .env("DIJKWACHT_KAFKA_PARTITIONS", self.partitions.to_string())
            .env("DIJKWACHT_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("DIJKWACHT_RESOLVER", "static")
            .env("DIJKWACHT_OUTBOUND_ALLOWED_RANGES", r#"["127.0.0.0/8"]"#)
            .env("DIJKWACHT_PARTNER_REQUESTS_PER_SECOND", "1000000")
            .env("DIJKWACHT_PARTNER_BURST", "1000000")
            .env("RUST_LOG", "error");
        for (key, value) in pace.iter().chain(env) {
            command.env(key, value);
        }
        Process(command.spawn().expect("dijkwacht runs"))
    }

    pub async fn wait_healthy(&self, http_port: u16) {
        eventually(
            &format!("the process on {http_port} to be ready"),
            Duration::from_secs(120),
            || async {
                let response = self
                    .http
                    .get(format!("http://127.0.0.1:{http_port}/readyz"))
                    .send()
                    .await
                    .ok()?;
                (response.status() == 200).then_some(())
            },
        )
        .await;
    }

    /// Submits `count` listed reports, named `{prefix}-{i}`, through the bulk API.
    pub async fn submit(&self, http_port: u16, prefix: &str, count: usize) {
        let body: String = (0..count)
            .map(|i| {
                json!({"partner_reference": format!("{prefix}-{i}"), "items": [{
                    "url": format!("http://{}/content/{prefix}-{i}", self.simulator_addr),
                    "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]})
                .to_string()
                    + "\n"
            })
            .collect();
        let answer = self
            .http
            .post(format!("http://127.0.0.1:{http_port}/v1/reports/bulk"))
            .bearer_auth(&self.partner_key)
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            answer.lines().filter(|l| l.contains("report_id")).count(),
            count,
            "{answer}"
        );
    }

    pub async fn count_events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.database.pool)
            .await
            .unwrap()
    }

    pub async fn wait_delivered(&self, cases: usize, timeout: Duration) {
        eventually(&format!("{cases} delivered notices"), timeout, || async {
            (self.count_events("NoticeDelivered").await >= cases as i64).then_some(())
        })
        .await;
    }

    /// Nothing lost, nothing sent twice: one notice and one delivery per case, one notice
    /// per case at the platform and at most `max_raw_posts` POSTs in all, intact hash
    /// chains, read models equal to a rebuild.
    pub async fn assert_exactly_once(&self, cases: usize, max_raw_posts: usize) {
        let per_case: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE event_type = 'NoticeIssued'), count(*) FILTER (WHERE event_type = 'NoticeDelivered') \
             FROM events GROUP BY stream_id",
        )
        .fetch_all(&self.database.pool)
        .await
        .unwrap();
        assert_eq!(per_case.len(), cases);
        assert!(per_case.iter().all(|counts| *counts == (1, 1)), "{per_case:?}");
        let mut at_platform: BTreeMap<String, usize> = BTreeMap::new();
        for notice in self.simulator.notices() {
            *at_platform
                .entry(notice.notice["case_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(at_platform.len(), cases, "one notice per case at the platform");
        assert!(at_platform.values().all(|n| *n == 1));
        let raw = self.simulator.raw_posts();
        assert!(raw <= max_raw_posts, "{raw} raw POSTs for {cases} cases");
        assert_eq!(self.database.store().verify().await.unwrap(), vec![]);
        assert_read_models_equal_a_rebuild(&self.database).await;
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let BrokerProcess::Tansu { dir, .. } = &self.broker {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
