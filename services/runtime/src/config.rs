//! Configuration, in this order of priority (last wins):
//! built-in defaults → the TOML file named by `DIJKWACHT_CONFIG` or `--config` →
//! `DIJKWACHT_*` environment variables (and `DATABASE_URL`). Unknown keys are an error, so
//! a typo never silently falls back to a default. Secrets are never printed.

use crate::kafka::ProducerSettings;
use crate::telemetry::{LogFormat, TelemetrySettings};
use chrono::TimeDelta;
use dijkwacht_domain::{NoticePolicy, WaitLimits};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

// Unknown keys are refused by `Settings::load`, which knows the parts' sections: serde cannot
// deny unknown fields beside a flattened map.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// PostgreSQL connection URL (a secret: it may carry a password).
    pub database_url: Secret,
    pub database_max_connections: u32,
    /// Applies the migrations at start; off where one `dijkwacht migrate` job does it and
    /// every replica waits until the database is at its version.
    pub migrate_on_start: bool,
    /// Comma-separated Kafka bootstrap servers; empty means the embedded broker.
    pub kafka_brokers: String,
    /// Prefix of every topic and consumer group, so deployments can share a cluster.
    pub kafka_prefix: String,
    pub kafka_partitions: i32,
    /// Where the HTTP API listens.
    pub http_listen: SocketAddr,
    /// Reference data (partners, keys, platforms, hash lists) loaded at start, if set.
    pub reference_file: Option<PathBuf>,
    /// Prints the demo credentials at start; set only by the demo configuration.
    pub demo: bool,
    /// The parts this process runs by name (all when unset); `dijkwacht run --only`
    /// overrides it.
    pub parts: Option<Vec<String>>,
    /// Starts the platform simulator in the same process on this address, if set.
    pub simulator_listen: Option<SocketAddr>,
    pub simulator_removal_delay_secs: i64,
    /// The simulated platforms' mail server listens here, if set.
    pub simulator_smtp_listen: Option<SocketAddr>,
    /// Its STARTTLS certificate chain and key (PEM files); plain SMTP without them.
    pub simulator_smtp_certificate: Option<PathBuf>,
    pub simulator_smtp_key: Option<PathBuf>,
    /// Simulated platforms by id, each with its behaviour
    /// (`dijkwacht_simulator::platform::Behaviour`), served at `/platforms/{id}/notices`.
    pub simulator_platforms: serde_json::Value,
    /// Requests per second and burst per API key holder; reports per hour per client
    /// address on the public form.
    /// Every line of a bulk request counts as a request.
    pub partner_requests_per_second: f64,
    pub partner_burst: u32,
    /// One bulk request reads at most this many bytes and lines; the rest is refused (413)
    /// after the lines read so far are answered.
    pub bulk_max_bytes: u64,
    pub bulk_max_lines: u64,
    pub public_reports_per_hour: u32,
    pub batch_size: usize,
    pub batch_linger_ms: u64,
    /// How many cases' latest states a process keeps, so that loading one again reads
    /// only its new events (0: read every stream in full). Sized for a burst: the cache
    /// keeps between half and all of it, and a burst of more cases than it keeps reads
    /// each case back in full at every step (20,000 cases in flight with a cache of
    /// 20,000: 307,000 event rows read instead of none, a third more CPU per case). About
    /// 5 KB a case.
    pub case_cache: usize,
    pub relay_idle_ms: u64,
    /// Readiness fails while the oldest unpublished event is older than this.
    pub relay_max_lag_secs: i64,
    /// How long the producer may try to deliver one message before the relay tries again.
    pub kafka_message_timeout_ms: u64,
    /// The idempotent producer; off only for brokers that cannot take its epoch bump after a
    /// message timeout (Tansu 0.6.0).
    pub kafka_idempotence: bool,
    pub timer_poll_ms: u64,
    /// How long a claimed wake-up is hidden from other processes (a crashed claimer's
    /// wake-ups come due again after it).
    pub timer_lease_secs: i64,
    /// How long a stage may take to act on an event before the case's wake-up acts instead
    /// (a lost message, a broker that restarted empty, a crashed process).
    pub stage_stale_secs: i64,
    /// How long a dispatch attempt may go without an outcome before it is presumed lost and
    /// sent again under the same idempotency key; longer than `dispatch_timeout_secs`.
    pub dispatch_in_flight_secs: i64,
    pub dispatch_timeout_secs: u64,
    pub dispatch_max_attempts: u32,
    pub dispatch_first_backoff_secs: i64,
    /// ISO 3166-1 alpha-2 code of the organisation's own country.
    pub home_country: String,
    /// Country code → partner id of that country's hotline: CSAM hosted there by a non-DSA
    /// host is forwarded instead of noticed.
    pub hotline_network: BTreeMap<String, String>,
    /// Non-public address ranges that notices and removal checks may reach all the same
    /// (CIDR or single addresses); everything internal is refused otherwise.
    pub outbound_allowed_ranges: Vec<String>,
    /// Names that notices and removal checks resolve from this table instead of DNS (the
    /// demo's made-up platform hosts on the simulator).
    pub outbound_hosts: BTreeMap<String, Vec<IpAddr>>,
    /// `system` (the operating system's DNS) or `static` (only `static_hosts`).
    pub resolver: String,
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
    /// How often the classify stage looks for changed hash lists.
    pub index_refresh_ms: u64,
    /// Classes whose actionable review decision needs a second analyst.
    pub four_eyes_classes: Vec<String>,
    /// How long an analyst's claim keeps others off a case.
    pub review_claim_secs: i64,
    /// The trusted flagger itself, as named in every notice.
    pub organisation: String,
    pub contact_email: String,
    pub designated_by: String,
    pub designation_reference: String,
    /// `text` (coloured on a terminal) or `json` (one object per line, for a collector).
    pub log_format: LogFormat,
    /// The OpenTelemetry collector's OTLP/HTTP address (`http://collector:4318`); traces
    /// are exported only when it is set.
    pub otlp_endpoint: Option<String>,
    /// `service.name` in the traces: the role of this process in a deployment.
    pub service_name: String,
    /// Each part's own section by name (`[dispatch]`, `DIJKWACHT_DISPATCH__KEY`), read and
    /// checked by that part (`dijkwacht_runtime::part::Part::sections`).
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

/// A value that never appears in logs or debug output.
#[derive(Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: Secret::new("postgres://postgres@127.0.0.1:54329/dijkwacht"),
            database_max_connections: 16,
            migrate_on_start: true,
            kafka_brokers: String::new(),
            kafka_prefix: "dijkwacht.".into(),
            kafka_partitions: crate::kafka::DEFAULT_PARTITIONS,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            reference_file: None,
            demo: false,
            parts: None,
            simulator_listen: None,
            simulator_removal_delay_secs: 3,
            simulator_smtp_listen: None,
            simulator_smtp_certificate: None,
            simulator_smtp_key: None,
            simulator_platforms: serde_json::Value::Object(Default::default()),
            partner_requests_per_second: 500.0,
            partner_burst: 5_000,
            bulk_max_bytes: 1 << 30,
            bulk_max_lines: 1_000_000,
            public_reports_per_hour: 20,
            batch_size: 500,
            batch_linger_ms: 0,
            case_cache: 50_000,
            relay_idle_ms: 50,
            relay_max_lag_secs: 60,
            kafka_message_timeout_ms: 30_000,
            kafka_idempotence: true,
            timer_poll_ms: 500,
            timer_lease_secs: 60,
            stage_stale_secs: 300,
            dispatch_in_flight_secs: 90,
            dispatch_timeout_secs: 30,
            dispatch_max_attempts: 8,
            dispatch_first_backoff_secs: 60,
            home_country: "NL".into(),
            hotline_network: BTreeMap::new(),
            outbound_allowed_ranges: vec![],
            outbound_hosts: BTreeMap::new(),
            resolver: "system".into(),
            static_hosts: BTreeMap::new(),
            index_refresh_ms: 2000,
            four_eyes_classes: ["csam", "csam_ai_generated", "grooming", "terrorist_content"]
                .map(String::from)
                .to_vec(),
            review_claim_secs: 1800,
            organisation: "dijkwacht trusted flagger".into(),
            contact_email: "notices@dijkwacht.invalid".into(),
            designated_by: "Digital Services Coordinator".into(),
            designation_reference: "unset".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            service_name: "dijkwacht".into(),
            sections: BTreeMap::new(),
        }
    }
}

/// `DIJKWACHT_*` variables read by the command line, the Makefile and the tests, not settings.
const NOT_SETTINGS: &[&str] = &["CONFIG", "PG_PORT", "TEST_DATABASE_URL", "SCHEMATHESIS", "TANSU"];

/// What is wrong with the configuration, where it came from, and for an unknown key or
/// variable the known one nearest to it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A problem a part found in its own section, beyond its shape.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    fn explained(error: figment::Error, section: &[&str]) -> Self {
        let problems: Vec<String> = error.into_iter().map(|error| describe(&error, section)).collect();
        Self(problems.join("; "))
    }
}

fn describe(error: &figment::Error, section: &[&str]) -> String {
    let figment::error::Kind::UnknownField(name, known) = &error.kind else {
        return error.to_string();
    };
    // The error's path ends with the unknown key itself.
    let within = match error.path.split_last() {
        Some((last, parents)) if last == name => parents,
        _ => &error.path[..],
    };
    let parents: Vec<&str> = section
        .iter()
        .copied()
        .chain(within.iter().map(String::as_str))
        .collect();
    unknown_key(name, known, &parents, error.metadata.as_ref())
}

/// "unknown key `a.b` in FILE; did you mean `a.c`?", or the environment variable's name when
/// that is where the key came from.
fn unknown_key(name: &str, known: &[&str], parents: &[&str], metadata: Option<&figment::Metadata>) -> String {
    let from_environment = metadata.is_some_and(|metadata| metadata.name.contains("environment"));
    let spell = |field: &str| {
        let mut keys = parents.to_vec();
        keys.push(field);
        if from_environment {
            format!("DIJKWACHT_{}", keys.join("__").to_ascii_uppercase())
        } else {
            keys.join(".")
        }
    };
    let mut message = if from_environment {
        format!("unknown environment variable {}", spell(name))
    } else {
        format!("unknown key `{}`", spell(name))
    };
    if let Some(figment::Source::File(file)) = metadata.and_then(|metadata| metadata.source.as_ref()) {
        message.push_str(&format!(" in {}", file.display()));
    }
    match nearest(name, known) {
        Some(near) if from_environment => message.push_str(&format!("; did you mean {}?", spell(near))),
        Some(near) => message.push_str(&format!("; did you mean `{}`?", spell(near))),
        None => message.push_str(&format!("; known keys: {}", known.join(", "))),
    }
    message
}

/// The known name a typo most likely meant: at most a third of its letters off.
pub fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(&name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().max(3) / 3)
        .min()
        .map(|(_, candidate)| candidate)
}

/// A part's section as a table of any shape, read as `T` with the same errors as the rest
/// of the configuration.
pub fn section<T: serde::de::DeserializeOwned>(name: &str, table: &serde_json::Value) -> Result<T, ConfigError> {
    Figment::from(Serialized::defaults(table))
        .extract()
        .map_err(|error| ConfigError::explained(error, &[name]))
}

impl Settings {
    /// Defaults, then `file` (if any), then the environment. `sections` are the tables the
    /// parts read (`Part::sections`); any other key is refused.
    pub fn load(file: Option<&Path>, sections: &[&str]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into()))
            .merge(Env::prefixed("DIJKWACHT_").ignore(NOT_SETTINGS).split("__"));
        let settings: Settings = figment.extract().map_err(|error| ConfigError::explained(error, &[]))?;
        let unknown: Vec<&String> = settings
            .sections
            .keys()
            .filter(|name| !sections.contains(&name.as_str()))
            .collect();
        if unknown.is_empty() {
            return Ok(settings);
        }
        let fields = serde_json::to_value(Settings::default()).expect("the settings serialize");
        let known: Vec<&str> = fields
            .as_object()
            .into_iter()
            .flat_map(|fields| fields.keys().map(String::as_str))
            .chain(sections.iter().copied())
            .collect();
        let problems: Vec<String> = unknown
            .into_iter()
            .map(|name| unknown_key(name, &known, &[], figment.find_metadata(name)))
            .collect();
        Err(ConfigError(problems.join("; ")))
    }

    /// The section `name`, read as `T` with the same errors as the rest of the
    /// configuration; an absent section is an empty one.
    pub fn section<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        match self.sections.get(name) {
            Some(table) => section(name, table),
            None => section(name, &serde_json::Value::Object(Default::default())),
        }
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose()
    }

    /// The trusted flagger as every notice names it.
    pub fn notice_policy(&self) -> NoticePolicy {
        NoticePolicy {
            organisation: self.organisation.clone(),
            contact_email: self.contact_email.clone(),
            designated_by: self.designated_by.clone(),
            designation_reference: self.designation_reference.clone(),
        }
    }

    /// How long each waiting state of a case may last.
    pub fn wait_limits(&self) -> WaitLimits {
        WaitLimits {
            stage_stale_after: TimeDelta::seconds(self.stage_stale_secs),
            dispatch_in_flight: TimeDelta::seconds(self.dispatch_in_flight_secs),
        }
    }

    pub fn producer_settings(&self, bootstrap_servers: &str) -> ProducerSettings {
        ProducerSettings {
            bootstrap_servers: bootstrap_servers.to_owned(),
            message_timeout: std::time::Duration::from_millis(self.kafka_message_timeout_ms),
            idempotence: self.kafka_idempotence,
        }
    }

    pub fn telemetry(&self) -> TelemetrySettings {
        TelemetrySettings {
            log_format: self.log_format,
            otlp_endpoint: self
                .otlp_endpoint
                .clone()
                .filter(|endpoint| !endpoint.trim().is_empty()),
            service_name: self.service_name.clone(),
        }
    }

    /// Whether this process runs the part `name`.
    pub fn runs(&self, name: &str) -> bool {
        self.parts
            .as_ref()
            .is_none_or(|parts| parts.iter().any(|part| part == name))
    }

    /// The external brokers, or `None` for the embedded one.
    pub fn external_brokers(&self) -> Option<&str> {
        let brokers = self.kafka_brokers.trim();
        (!brokers.is_empty()).then_some(brokers)
    }
}
