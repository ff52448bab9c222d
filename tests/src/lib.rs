//! The test harness: every test gets a fresh world — its own database, its own embedded
//! broker and topic prefix, its own clock and its own simulated platform.

pub mod deployment;
pub mod measure;
pub mod script;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use dijkwacht::{app, Broker, RunningApp};
use dijkwacht_runtime::config::{Secret, Settings};
use dijkwacht_runtime::kafka::EmbeddedBroker;
use dijkwacht_runtime::reference::{
    HashEntry, HashListEntry, KeyEntry, PlatformEntry, PrincipalEntry, ReferenceData, RemitEntry, UrlRuleEntry,
};
use dijkwacht_runtime::shutdown::{self, ShutdownTrigger};
use dijkwacht_runtime::{auth, db, EventStore, ManualClock, SharedClock, TopicNames};
use dijkwacht_simulator::platform::Behaviour;
use dijkwacht_simulator::{smtp, Simulator};
use sqlx::{Connection, PgConnection, PgPool};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The allocator of the `dijkwacht` binary, so that tests and benches run as it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A partner rate limit no bench reaches: benches measure the system, not its limits.
pub const UNLIMITED: f64 = 1e9;
/// The burst that goes with [`UNLIMITED`]: a second's worth. The limiter dates a request
/// when it reads the clock, before it takes its turn; with the tests' burst of 10,000 at
/// this rate, a request whose thread paused for more than 10 µs in between counted as
/// early and was refused (429s at 930 single reports a second on two busy cores).
pub const UNLIMITED_BURST: u32 = 1_000_000_000;

/// The PostgreSQL server tests create their databases on (`make test` starts it).
pub fn admin_database_url() -> String {
    std::env::var("DIJKWACHT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/postgres".to_owned())
}

/// A database of its own, migrated.
pub struct TestDatabase {
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&admin_database_url()).await
    }

    /// A database of its own on the server at `admin_url`.
    pub async fn create_on(admin_url: &str) -> anyhow::Result<Self> {
        let admin_url = admin_url.to_owned();
        let name = format!("dijkwacht_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}; is PostgreSQL running (make postgres)?"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let mut url = url::Url::parse(&admin_url)?;
        url.set_path(&name);
        let url = url.to_string();
        let pool = db::connect(&url, 8).await?;
        db::migrate(&pool).await?;
        Ok(Self { url, pool })
    }

    pub fn store(&self) -> EventStore {
        EventStore::new(self.pool.clone())
    }
}

/// A topic prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A clock at a fixed, known instant; tests move it explicitly.
pub fn test_clock() -> ManualClock {
    ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap())
}

/// Polls `check` until it yields a value, failing with `what` after `timeout`. Waits for
/// asynchronous work to finish; time in the system under test moves only with the clock.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const DEMO_SHA256: &str = "e395a0630f3d1aebb0f5ded0762eebdc342b0a0e0d9ed2b2f1d0d0afb8c7621e";
pub const PLATFORM_ID: &str = "sim-platform";

fn digest_hex(key: &str) -> String {
    auth::key_digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

fn principal(id: &str, key: &str, scopes: &[&str]) -> PrincipalEntry {
    PrincipalEntry {
        id: id.into(),
        name: format!("Test {id}"),
        keys: vec![KeyEntry {
            sha256: digest_hex(key),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }],
        trusted_classes: vec![],
        forwarding: None,
        police: None,
        hash_check: None,
        remit: None,
    }
}

/// [`LISTED_PDQ`] with `distance` bits, spread over all 16 chunks, flipped.
pub fn pdq_at(distance: usize) -> String {
    let mut bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&LISTED_PDQ[i * 2..i * 2 + 2], 16).expect("hex"))
        .collect();
    for i in 0..distance {
        let bit = (i * 8) % 256 + i / 32;
        bytes[bit / 8] ^= 1 << (bit % 8);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An MD5 and a SHA-1 on the test list (as CSAM), beside [`DEMO_SHA256`] and [`LISTED_PDQ`].
pub const LISTED_MD5: &str = "0c9f1e9b3a7d4e2f8a6b5c4d3e2f1a0b";
pub const LISTED_SHA1: &str = "5d41402abc4b2a76b9719d911017c592aabbccdd";

/// A PDQ hash on the test list (as CSAM), and the address of the off-shore test host.
pub const LISTED_PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
pub const OFFSHORE_ADDRESS: &str = "198.51.100.7";
pub const OFFSHORE_HOST: &str = "offshore.example";
/// A forum registered by its domain, whose address lies in the off-shore host's range.
pub const FORUM_HOST: &str = "forum.example";

/// The secret the simulated platform signs its answers with.
pub const ANSWER_SECRET: &str = "test-answer-secret";

/// A file holding [`ANSWER_SECRET`], as the registry names it (`file:PATH`). Written to a
/// name of its own and renamed, so a test reading it never sees half a secret.
pub fn answer_secret_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join("dijkwacht-test-answer-secret");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(ANSWER_SECRET) {
        let written = path.with_extension(uuid::Uuid::new_v4().to_string());
        std::fs::write(&written, ANSWER_SECRET).expect("the temporary directory is writable");
        std::fs::rename(&written, &path).expect("the temporary directory is writable");
    }
    path
}

/// Reference data for one test:
/// * partners `partner-a` (key `partner_key`, trusted to classify `ncii` itself) and
///   `partner-b` (`{partner_key}-b`), the network's hotline in the US, which takes
///   forwarded cases at the simulator's `/hotlines/partner-b/forwards` and has two days
///   to confirm them; analysts `analyst-1` and `analyst-2`
///   (`{partner_key}-analyst-1`, `-2`); the coordinator of the Netherlands, `regulator`
///   (`regulator_key`), and an authority for CSAM and terrorist content on every host,
///   `csam-authority` (`{partner_key}-csam-authority`);
/// * the simulated platform on 127.0.0.1 (NL, DSA), and an off-shore host (US, not a DSA
///   platform) found by its IP range only; the simulated platform signs answers with
///   [`ANSWER_SECRET`];
/// * a hash list with [`DEMO_SHA256`], [`LISTED_MD5`], [`LISTED_SHA1`] and [`LISTED_PDQ`] as
///   CSAM, and a URL rule classifying everything under `/content/rule-` of the simulator as
///   doxing;
/// * hosting providers that check hashes: `provider-a` (`{partner_key}-provider-a`; CSAM and
///   terrorist content; its hits on material online open cases) and `provider-ncii`
///   (`{partner_key}-provider-ncii`; NCII only, one check a second);
/// * the police partner `police-nl` (`{partner_key}-police`, scope `police`), which takes
///   referrals at the simulator's `/police/police-nl/referrals` and holds a case three days,
///   and a second one, `police-be` (`{partner_key}-police-be`), which must not see its cases.
pub fn reference_data(partner_key: &str, regulator_key: &str, notice_endpoint: &str) -> ReferenceData {
    let content_base = notice_endpoint.trim_end_matches("/notices");
    let mut partner_a = principal("partner-a", partner_key, &["reports:write", "reports:read"]);
    partner_a.trusted_classes = vec!["ncii".into()];
    let mut partner_b = principal(
        "partner-b",
        &format!("{partner_key}-b"),
        &["reports:write", "reports:read"],
    );
    partner_b.forwarding = Some(serde_json::json!({
        "channel": {"kind": "api", "endpoint": format!("{content_base}/hotlines/partner-b/forwards"),
            "auth": {"kind": "hmac", "secret": format!("file:{}", answer_secret_file().display())}},
        "confirm_within": "2d",
    }));
    let mut provider_a = principal("provider-a", &format!("{partner_key}-provider-a"), &["hash-check"]);
    provider_a.hash_check = Some(serde_json::json!({"classes": ["csam", "terrorist_content"], "open_cases": true}));
    let mut provider_ncii = principal(
        "provider-ncii",
        &format!("{partner_key}-provider-ncii"),
        &["hash-check"],
    );
    provider_ncii.hash_check = Some(serde_json::json!({"classes": ["ncii"], "checks_per_second": 1}));
    let mut police = principal("police-nl", &format!("{partner_key}-police"), &["police"]);
    police.police = Some(serde_json::json!({
        "channel": {"kind": "api", "endpoint": format!("{content_base}/police/police-nl/referrals")},
        "hold_for": "3d",
    }));
    let mut police_be = principal("police-be", &format!("{partner_key}-police-be"), &["police"]);
    police_be.police = Some(serde_json::json!({
        "channel": {"kind": "api", "endpoint": format!("{content_base}/police/police-be/referrals")},
    }));
    // The coordinator of the country the test platforms are established in, and an authority
    // for CSAM and terrorist content on every host.
    let mut regulator = principal("regulator", regulator_key, &["compliance:read"]);
    regulator.remit = Some(RemitEntry {
        countries: Some(vec!["NL".into()]),
        ..RemitEntry::default()
    });
    let mut csam_authority = principal(
        "csam-authority",
        &format!("{partner_key}-csam-authority"),
        &["compliance:read"],
    );
    csam_authority.remit = Some(RemitEntry {
        classes: Some(vec!["csam".into(), "terrorist_content".into()]),
        ..RemitEntry::default()
    });
    ReferenceData {
        partners: vec![partner_a, partner_b, police, police_be],
        hosting_providers: vec![provider_a, provider_ncii],
        regulators: vec![regulator, csam_authority],
        operators: vec![principal("operator", &format!("{partner_key}-operator"), &["operate"])],
        analysts: (1..=2)
            .map(|n| {
                principal(
                    &format!("analyst-{n}"),
                    &format!("{partner_key}-analyst-{n}"),
                    &["review"],
                )
            })
            .collect(),
        platforms: vec![
            PlatformEntry {
                id: PLATFORM_ID.into(),
                name: "Simulated platform".into(),
                country: "NL".into(),
                notice_endpoint: notice_endpoint.into(),
                channels: vec![],
                templates_dir: None,
                pace: None,
                domains: vec!["127.0.0.1".into()],
                ranges: vec![],
                dsa_platform: true,
                language: "nl".into(),
                answer_secrets: vec![format!("file:{}", answer_secret_file().display())],
            },
            PlatformEntry {
                id: "forum".into(),
                name: "A forum".into(),
                country: "NL".into(),
                notice_endpoint: notice_endpoint.into(),
                channels: vec![],
                templates_dir: None,
                pace: None,
                domains: vec![FORUM_HOST.into()],
                ranges: vec![],
                dsa_platform: true,
                language: "nl".into(),
                answer_secrets: vec![],
            },
            PlatformEntry {
                id: "offshore-host".into(),
                name: "Off-shore hosting".into(),
                country: "US".into(),
                notice_endpoint: notice_endpoint.into(),
                channels: vec![],
                templates_dir: None,
                pace: None,
                domains: vec![],
                ranges: vec!["198.51.100.0/24".into()],
                dsa_platform: false,
                language: "en".into(),
                answer_secrets: vec![],
            },
        ],
        hash_lists: vec![HashListEntry {
            name: "national".into(),
            source: "test".into(),
            pdq_max_distance: 31,
            entries: vec![
                HashEntry {
                    algorithm: "sha256".into(),
                    value: DEMO_SHA256.into(),
                    class: "csam".into(),
                    quality: None,
                },
                HashEntry {
                    algorithm: "pdq".into(),
                    value: LISTED_PDQ.into(),
                    class: "csam".into(),
                    quality: Some(100),
                },
                HashEntry {
                    algorithm: "md5".into(),
                    value: LISTED_MD5.into(),
                    class: "csam".into(),
                    quality: None,
                },
                HashEntry {
                    algorithm: "sha1".into(),
                    value: LISTED_SHA1.into(),
                    class: "csam".into(),
                    quality: None,
                },
            ],
        }],
        url_rules: vec![UrlRuleEntry {
            id: "rule-doxing-board".into(),
            kind: "prefix".into(),
            pattern: format!("{content_base}/content/rule-"),
            class: "doxing".into(),
        }],
    }
}

/// One NDJSON line: a report of one location with [`DEMO_SHA256`].
pub fn listed_report_line(reference: &str, url: &str) -> bytes::Bytes {
    let mut line = serde_json::json!({
        "partner_reference": reference,
        "items": [{"url": url, "hashes": [{"algorithm": "sha256", "value": DEMO_SHA256}]}]
    })
    .to_string();
    line.push('\n');
    bytes::Bytes::from(line)
}

/// The whole pipeline in-process against a real database, the embedded broker and a
/// simulated platform, all on one manual clock.
pub struct TestSystem {
    pub app: RunningApp,
    /// What the app was started with; [`TestSystem::restart`] starts it again with these.
    pub settings: Settings,
    pub simulator: Simulator,
    pub simulator_addr: SocketAddr,
    pub clock: ManualClock,
    pub database: TestDatabase,
    pub partner_key: String,
    pub regulator_key: String,
    pub http: reqwest::Client,
    /// Keeps the simulated mail server running while the system lives.
    pub mail_server: Option<Arc<ShutdownTrigger>>,
    /// Keeps the simulated platforms answering while the system lives.
    pub answering: Arc<ShutdownTrigger>,
}

/// What a test may change about the system it starts.
pub struct TestOptions {
    pub removal_delay_secs: i64,
    /// Every notice's deadline, and the interval of checks after it (`[followup]`).
    pub deadline_secs: i64,
    pub recheck_secs: i64,
    /// Between rounds of the chase (reminders, then escalations).
    pub remind_every_secs: i64,
    /// The reappearance watch after a verified removal; none by default, so a removed
    /// case closes at once.
    pub watch_secs: Vec<i64>,
    /// The parts the system runs by name (all by default).
    pub parts: Vec<&'static str>,
    pub partner_requests_per_second: f64,
    pub partner_burst: u32,
    pub public_reports_per_hour: u32,
    pub bulk_max_lines: u64,
    /// Simulated platforms by id, served at `/platforms/{id}/notices` of the simulator.
    pub simulated_platforms: Vec<(String, Behaviour)>,
    /// Starts the simulated mail server with STARTTLS (a certificate made for the test)
    /// and points the dispatch relay at it.
    pub mail: bool,
    /// The `[police]` section: police-first rules.
    pub police: serde_json::Value,
    /// The `[regulator]` section: dossiers' signing key, coordinators.
    pub regulator: serde_json::Value,
    /// Cases whose latest states the process keeps (`case_cache`).
    pub case_cache: usize,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            removal_delay_secs: 90,
            deadline_secs: 60,
            recheck_secs: 60,
            remind_every_secs: 24 * 3600,
            watch_secs: vec![],
            parts: dijkwacht::parts::runnable().collect(),
            partner_requests_per_second: 10_000.0,
            partner_burst: 10_000,
            public_reports_per_hour: 20,
            bulk_max_lines: 1_000_000,
            simulated_platforms: vec![],
            mail: false,
            police: serde_json::json!({}),
            regulator: serde_json::json!({}),
            case_cache: Settings::default().case_cache,
        }
    }
}

/// A certificate authority and a `localhost` certificate it signed, both PEM, in a
/// directory of their own: `ca.pem`, `cert.pem`, `key.pem`.
pub fn localhost_certificates() -> anyhow::Result<std::path::PathBuf> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dijkwacht test CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&leaf_key, &issuer)?;
    let dir = std::env::temp_dir().join(format!("dijkwacht-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("cert.pem"), leaf.pem())?;
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem())?;
    std::fs::write(dir.join("smtp-password"), "relay-password")?;
    Ok(dir)
}

/// Starts the simulated mail server with STARTTLS on a port of its own; returns its
/// address, the CA file to trust and what stops it.
async fn start_mail_server(simulator: &Simulator) -> anyhow::Result<(SocketAddr, std::path::PathBuf, ShutdownTrigger)> {
    let dir = localhost_certificates()?;
    let tls = smtp::tls_config(
        &std::fs::read(dir.join("cert.pem"))?,
        &std::fs::read(dir.join("key.pem"))?,
    )
    .map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(smtp::serve(listener, simulator.clone(), Some(tls), shutdown));
    Ok((addr, dir.join("ca.pem"), trigger))
}

impl TestSystem {
    pub async fn start(options: TestOptions) -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let clock = test_clock();
        let shared: SharedClock = Arc::new(clock.clone());
        let simulator = Simulator::new(shared.clone(), chrono::TimeDelta::seconds(options.removal_delay_secs))
            .with_platforms(options.simulated_platforms);
        let mail = match options.mail {
            true => Some(start_mail_server(&simulator).await?),
            false => None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let simulator_addr = listener.local_addr()?;
        let router = simulator.router();
        tokio::spawn(async move { axum_serve(listener, router).await });
        let (answers_stop, answers_shutdown) = dijkwacht_runtime::shutdown::channel();
        tokio::spawn(simulator.clone().send_answers(answers_shutdown));

        let partner_key = format!("partner-{}", uuid::Uuid::new_v4());
        let regulator_key = format!("regulator-{}", uuid::Uuid::new_v4());
        reference_data(
            &partner_key,
            &regulator_key,
            &format!("http://{simulator_addr}/notices"),
        )
        .load_into(&database.pool, shared.now())
        .await?;

        let dispatch = match &mail {
            Some((addr, ca_file, _)) => serde_json::json!({
                "smtp_host": "localhost",
                "smtp_port": addr.port(),
                "smtp_security": "starttls",
                "smtp_ca_file": ca_file,
                "smtp_username": "dijkwacht",
                "smtp_password": format!("file:{}", ca_file.with_file_name("smtp-password").display()),
                "mail_from": "notices@hotline.test",
                "reply_to": "answers@hotline.test",
            }),
            None => serde_json::json!({}),
        };
        let settings = Settings {
            database_url: Secret::new(database.url.clone()),
            database_max_connections: 16,
            kafka_prefix: unique_prefix(),
            http_listen: "127.0.0.1:0".parse()?,
            case_cache: options.case_cache,
            relay_idle_ms: 20,
            timer_poll_ms: 50,
            sections: [
                (
                    "followup".to_owned(),
                    serde_json::json!({
                    "deadlines": [{"within": format!("{}s", options.deadline_secs), "basis": "test policy"}],
                    "recheck_every": format!("{}s", options.recheck_secs),
                    "remind_every": format!("{}s", options.remind_every_secs),
                    "watch": options.watch_secs.iter().map(|secs| format!("{secs}s")).collect::<Vec<_>>(),
                    }),
                ),
                ("police".to_owned(), options.police),
                ("regulator".to_owned(), options.regulator),
                ("dispatch".to_owned(), dispatch),
            ]
            .into(),
            dispatch_timeout_secs: 5,
            parts: Some(options.parts.iter().map(|name| name.to_string()).collect()),
            resolver: "static".into(),
            outbound_allowed_ranges: vec!["127.0.0.0/8".into()],
            static_hosts: [
                (OFFSHORE_HOST.to_owned(), vec![OFFSHORE_ADDRESS.parse()?]),
                (FORUM_HOST.to_owned(), vec!["198.51.100.9".parse()?]),
            ]
            .into(),
            hotline_network: [("US".to_owned(), "partner-b".to_owned())].into(),
            index_refresh_ms: 100,
            partner_requests_per_second: options.partner_requests_per_second,
            partner_burst: options.partner_burst,
            public_reports_per_hour: options.public_reports_per_hour,
            bulk_max_lines: options.bulk_max_lines,
            organisation: "Test Hotline".into(),
            contact_email: "notices@hotline.test".into(),
            designated_by: "Test DSC".into(),
            designation_reference: "TF-TEST-1".into(),
            ..Settings::default()
        };
        let broker = Broker::Embedded(Arc::new(EmbeddedBroker::start(1)?));
        let app = app::start(&settings, shared, broker).await?;
        simulator.answer_to(&format!("http://{}", app.http_addr));
        Ok(Self {
            answering: Arc::new(answers_stop),
            app,
            settings,
            simulator,
            simulator_addr,
            clock,
            database,
            partner_key,
            regulator_key,
            http: reqwest::Client::new(),
            mail_server: mail.map(|(_, _, stop)| Arc::new(stop)),
        })
    }

    /// Stops the app and starts it again with its settings changed by `change`, on the same
    /// database, simulator and clock, but on a new embedded broker with new topics and
    /// groups: whatever the old broker held is gone.
    pub async fn restart(self, change: impl FnOnce(&mut Settings)) -> anyhow::Result<Self> {
        let Self { app, mut settings, .. } = self;
        app.stop().await;
        change(&mut settings);
        settings.kafka_prefix = unique_prefix();
        let broker = Broker::Embedded(Arc::new(EmbeddedBroker::start(1)?));
        let app = app::start(&settings, Arc::new(self.clock.clone()), broker).await?;
        self.simulator.answer_to(&format!("http://{}", app.http_addr));
        Ok(Self { app, settings, ..self })
    }

    /// Changes a platform's registry entry (its notice endpoint, and its `dispatch` column:
    /// channels, templates) and restarts, so dispatch reads the registry afresh.
    pub async fn reregister_platform(
        self,
        platform_id: &str,
        notice_endpoint: &str,
        dispatch: serde_json::Value,
    ) -> anyhow::Result<Self> {
        sqlx::query("UPDATE platforms SET notice_endpoint = $1, dispatch = $2 WHERE platform_id = $3")
            .bind(notice_endpoint)
            .bind(dispatch)
            .bind(platform_id)
            .execute(&self.database.pool)
            .await?;
        let system = self.restart(|_| {}).await?;
        system.wait_until_ready().await;
        Ok(system)
    }

    /// The analyst tasks other than review: `(case id, task)`, oldest first.
    pub async fn analyst_tasks(&self) -> Vec<(String, String)> {
        sqlx::query_as::<_, (uuid::Uuid, String)>("SELECT case_id, task FROM analyst_tasks ORDER BY since, case_id")
            .fetch_all(&self.database.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(case_id, task)| (case_id.to_string(), task))
            .collect()
    }

    /// Waits until `/readyz` answers 200: every stage has joined its consumer group.
    pub async fn wait_until_ready(&self) {
        eventually("every stage consuming", Duration::from_secs(60), || async {
            let response = self.http.get(self.api("/readyz")).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await
    }

    /// The system's current time.
    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        dijkwacht_runtime::Clock::now(&self.clock)
    }

    /// `POST` of a JSON body with a bearer key: the status and the JSON answer (null if none).
    pub async fn post(&self, path: &str, key: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.api(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or_default())
    }

    /// `GET` with a bearer key: the status and the JSON answer (null if none).
    pub async fn get(&self, path: &str, key: &str) -> (u16, serde_json::Value) {
        let response = self.http.get(self.api(path)).bearer_auth(key).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or_default())
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}{}", self.app.http_addr, path)
    }

    /// The key of analyst `analyst-{n}`.
    pub fn analyst_key(&self, n: u8) -> String {
        format!("{}-analyst-{n}", self.partner_key)
    }

    /// The key of the operator, `operator`.
    pub fn operator_key(&self) -> String {
        format!("{}-operator", self.partner_key)
    }

    /// The key of hosting provider `provider-{name}`.
    pub fn provider_key(&self, name: &str) -> String {
        format!("{}-provider-{name}", self.partner_key)
    }

    /// The key of the second partner, `partner-b`.
    pub fn partner_b_key(&self) -> String {
        format!("{}-b", self.partner_key)
    }

    /// Reports `count` listed locations of the simulator (`{prefix}0`, `{prefix}1`, …) as
    /// one streamed bulk request; every line must be answered.
    pub async fn bulk_report_listed(&self, prefix: &str, count: usize) {
        use futures::StreamExt;
        let content = self.content_url(prefix);
        let reference = prefix.to_uppercase();
        let lines = futures::stream::iter(0..count).map(move |i| {
            Ok::<_, std::io::Error>(listed_report_line(&format!("{reference}{i}"), &format!("{content}{i}")))
        });
        let answer = self
            .http
            .post(self.api("/v1/reports/bulk"))
            .bearer_auth(&self.partner_key)
            .body(reqwest::Body::wrap_stream(lines))
            .send()
            .await
            .expect("bulk request")
            .text()
            .await
            .expect("bulk answer");
        assert_eq!(answer.lines().count(), count);
    }

    /// Sends `body` as the platform `platform_id`'s answer, signed with `secret` at
    /// `timestamp` (Unix seconds).
    pub async fn platform_answer(
        &self,
        platform_id: &str,
        secret: &str,
        timestamp: i64,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        use dijkwacht_runtime::signature;
        let bytes = serde_json::to_vec(body).unwrap();
        let response = self
            .http
            .post(self.api(&format!("/v1/platforms/{platform_id}/events")))
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                signature::SIGNATURE_HEADER,
                signature::sign(secret.as_bytes(), timestamp, &bytes),
            )
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub fn content_url(&self, name: &str) -> String {
        format!("http://{}/content/{name}", self.simulator_addr)
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let (_trigger, shutdown) = dijkwacht_runtime::shutdown::channel();
    // The trigger is dropped with this task, which lives as long as the test runtime.
    let _ = dijkwacht_intake::serve(listener, router, shutdown).await;
}

/// Read models as rows of text, to compare the running projection with a rebuild.
async fn read_models(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT row_to_json(s)::text FROM (SELECT * FROM case_summaries ORDER BY case_id) s \
         UNION ALL SELECT row_to_json(f)::text FROM (SELECT * FROM notice_facts ORDER BY case_id) f \
         UNION ALL SELECT row_to_json(p)::text FROM (SELECT * FROM prior_decisions ORDER BY kind, key) p",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every case's summary is at the case's latest version.
async fn projection_caught_up(pool: &sqlx::PgPool) -> bool {
    let behind: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT stream_id, max(stream_version) AS v FROM events GROUP BY stream_id) e \
         LEFT JOIN case_summaries s ON s.case_id = e.stream_id WHERE s.version IS DISTINCT FROM e.v",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    behind == 0
}

/// Compares the read models with a rebuild once the system is quiet: the projection has
/// caught up, and no event was appended since the previous look (a stage may still be
/// acting on the last events, e.g. setting the deadlines of the last deliveries).
pub async fn assert_read_models_equal_a_rebuild(database: &TestDatabase) {
    let pool = &database.pool;
    // The newest event, and since when it has been the newest.
    let newest = std::sync::Mutex::new((None::<i64>, std::time::Instant::now()));
    eventually("the system to go quiet", Duration::from_secs(60), || async {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
            .fetch_one(pool)
            .await
            .unwrap();
        let quiet = {
            let mut newest = newest.lock().unwrap();
            if newest.0 != head {
                *newest = (head, std::time::Instant::now());
            }
            newest.1.elapsed() >= Duration::from_secs(1)
        };
        (quiet && projection_caught_up(pool).await).then_some(())
    })
    .await;
    let running = read_models(pool).await;
    dijkwacht_projection::rebuild::rebuild(&database.store(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(running, read_models(pool).await, "read models differ from a rebuild");
}

/// An idempotent producer for tests, as the processes make them.
pub fn test_producer(bootstrap_servers: &str) -> rdkafka::producer::FutureProducer {
    dijkwacht_runtime::kafka::producer(&dijkwacht_runtime::kafka::ProducerSettings {
        bootstrap_servers: bootstrap_servers.to_owned(),
        message_timeout: Duration::from_secs(30),
        idempotence: true,
    })
    .expect("a producer")
}

/// The topic names of a prefix, created on the embedded broker with `partitions` each.
pub fn create_topics(broker: &EmbeddedBroker, prefix: &str, partitions: i32) -> anyhow::Result<TopicNames> {
    let topics = TopicNames::new(prefix);
    for name in topics.all() {
        broker.create_topic(&name, partitions)?;
    }
    Ok(topics)
}
