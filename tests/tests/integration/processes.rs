//! The deployment as production runs it: a real broker process (Tansu), PostgreSQL, and the
//! intake, the relay and every stage each in its own process. While 10,000 reports go
//! through, every stage process is killed three times, the broker is frozen for longer than
//! the producer's message timeout, and PostgreSQL restarts. Nothing is lost and no platform
//! gets a notice twice.

use dijkwacht_tests::deployment::{free_port, quiet, wait_for_port, BrokerProcess, Deployment, Process, BATCH};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REPORTS: usize = 10_000;
const STAGES: [&str; 5] = ["classify", "notices", "dispatch", "followup", "projection"];
const KILLS_PER_STAGE: usize = 3;
/// Longer than the processes' producer message timeout (5 s).
const BROKER_FROZEN: Duration = Duration::from_secs(7);

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

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A PostgreSQL cluster of this test's own, so restarting it disturbs no other test.
struct OwnPostgres {
    port: u16,
}

impl OwnPostgres {
    fn run(&self, action: &str) {
        let status = Command::new(repository().join("infra/postgres.sh"))
            .arg(action)
            .env("DIJKWACHT_PG_PORT", self.port.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("infra/postgres.sh runs");
        assert!(status.success(), "infra/postgres.sh {action} on port {}", self.port);
    }

    fn start() -> Self {
        let postgres = Self { port: free_port() };
        postgres.run("start");
        postgres
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.run("destroy");
    }
}

/// A small deterministic generator, so a failing run can be repeated with its seed.
struct Chaos(u64);

impl Chaos {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

async fn start_tansu(dir: &Path) -> BrokerProcess {
    let port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(tansu());
    // Tansu resolves a sqlite path against its working directory.
    quiet(&mut broker)
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
        ])
        .args(["--storage-engine", "sqlite://tansu.db"]);
    let process = Process(broker.spawn().expect("tansu runs"));
    wait_for_port(port).await;
    BrokerProcess::Tansu {
        process,
        port,
        dir: dir.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_killed_the_broker_frozen_and_the_database_restarted_loses_nothing() {
    let seed = std::env::var("DIJKWACHT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u128() as u64 | 1);
    eprintln!("chaos seed {seed} (DIJKWACHT_CHAOS_SEED={seed} repeats this run)");
    let mut chaos = Chaos(seed);

    let postgres = OwnPostgres::start();
    let dir = std::env::temp_dir().join(format!("dijkwacht-processes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = start_tansu(&dir).await;
    let database = dijkwacht_tests::TestDatabase::create_on(&postgres.admin_url())
        .await
        .unwrap();
    let deployment = Deployment::start_on(database, broker).await;

    // Tansu 0.6.0 panics on the epoch bump with which an idempotent producer recovers from
    // a message timeout, which freezing it provokes; every process produces without.
    let env = [("DIJKWACHT_KAFKA_IDEMPOTENCE", "false")];
    let intake_port = free_port();
    let _intake = deployment.spawn(&["intake"], intake_port, &env);
    let _relay = deployment.spawn(&["relay"], free_port(), &env);
    let mut stages: Vec<(&str, u16, Process)> = STAGES
        .iter()
        .map(|stage| {
            let port = free_port();
            (*stage, port, deployment.spawn(&[stage], port, &env))
        })
        .collect();
    deployment.wait_healthy(intake_port).await;
    for (_, port, _) in &stages {
        deployment.wait_healthy(*port).await;
    }
    deployment.submit(intake_port, "chaos", REPORTS).await;

    // The faults, in a random order at random moments: every stage killed three times, the
    // broker frozen once, the database restarted once.
    let mut faults: Vec<&str> = STAGES.iter().flat_map(|s| [*s; KILLS_PER_STAGE]).collect();
    faults.extend(["freeze broker", "restart database"]);
    while !faults.is_empty() {
        tokio::time::sleep(Duration::from_millis(500 + chaos.next(2_500))).await;
        let fault = faults.swap_remove(chaos.next(faults.len() as u64) as usize);
        let delivered = deployment.count_events("NoticeDelivered").await;
        eprintln!("{fault} ({delivered} of {REPORTS} delivered)");
        match fault {
            "freeze broker" => {
                let BrokerProcess::Tansu { process, .. } = &deployment.broker else {
                    unreachable!()
                };
                process.signal("STOP");
                tokio::time::sleep(BROKER_FROZEN).await;
                process.signal("CONT");
            }
            "restart database" => {
                postgres.run("stop");
                tokio::time::sleep(Duration::from_secs(2)).await;
                postgres.run("start");
            }
            stage => {
                let (_, port, process) = stages.iter_mut().find(|(name, ..)| *name == stage).unwrap();
                process.signal("KILL");
                let _ = process.0.wait();
                *port = free_port();
                *process = deployment.spawn(&[stage], *port, &env);
            }
        }
    }

    deployment.wait_delivered(REPORTS, Duration::from_secs(900)).await;
    let raw = deployment.simulator.raw_posts();
    eprintln!("{raw} raw POSTs for {REPORTS} notices");
    // Attempts lose their outcomes when the dispatch process dies or the database goes away:
    // at most its message batch and its wake-up batch, each time; each is sent again once.
    let faults_losing_outcomes = KILLS_PER_STAGE + 1;
    deployment
        .assert_exactly_once(REPORTS, REPORTS + faults_losing_outcomes * 2 * BATCH)
        .await;
    drop(stages);
}
