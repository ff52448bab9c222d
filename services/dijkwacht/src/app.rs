//! Wiring: one process with the parts its settings name — the intake, the relay, the
//! stages — and, for demos, the platform simulator. Each part is a task; one shutdown
//! signal stops them all.

use crate::check::check;
use crate::parts::PARTS;
use anyhow::Context;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::{Json, Router};
use chrono::TimeDelta;
use dijkwacht_http::ops::OpsState;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::kafka::{self, EmbeddedBroker};
use dijkwacht_runtime::part::Started;
use dijkwacht_runtime::shutdown::{self, ShutdownTrigger};
use dijkwacht_runtime::{db, EventStore, Health, LoopSettings, Process, SharedClock, StageRuntime, TopicNames};
use dijkwacht_simulator::platform::Behaviour;
use dijkwacht_simulator::{smtp, Simulator};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Where the process gets its Kafka from.
#[derive(Debug, Clone)]
pub enum Broker {
    /// librdkafka's in-process mock cluster; topics are created on it directly.
    Embedded(Arc<EmbeddedBroker>),
    /// A real cluster's bootstrap servers; topics are created through the admin API.
    External(String),
}

impl Broker {
    /// The embedded broker unless the settings name external brokers.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(match settings.external_brokers() {
            Some(brokers) => Broker::External(brokers.to_owned()),
            None => Broker::Embedded(Arc::new(EmbeddedBroker::start(1)?)),
        })
    }

    pub fn bootstrap_servers(&self) -> String {
        match self {
            Broker::Embedded(broker) => broker.bootstrap_servers().to_owned(),
            Broker::External(servers) => servers.clone(),
        }
    }

    async fn ensure_topics(&self, topics: &TopicNames, partitions: i32) -> anyhow::Result<()> {
        match self {
            Broker::Embedded(broker) => {
                for name in topics.all() {
                    broker.create_topic(&name, partitions)?;
                }
            }
            Broker::External(servers) => kafka::ensure_topics(servers, topics, partitions).await?,
        }
        Ok(())
    }
}

/// The platform simulator of a process, where it runs one.
#[derive(Clone)]
pub struct RunningSimulator {
    pub http_addr: SocketAddr,
    pub smtp_addr: Option<SocketAddr>,
    pub simulator: Simulator,
}

/// A started process; [`RunningApp::stop`] drains it.
pub struct RunningApp {
    pub http_addr: SocketAddr,
    pub simulator: Option<RunningSimulator>,
    pub health: Health,
    pub store: EventStore,
    pub broker: Broker,
    trigger: ShutdownTrigger,
    tasks: JoinSet<()>,
}

impl RunningApp {
    pub async fn stop(mut self) {
        self.trigger.trigger();
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some tasks did not finish within 30 s; aborting them");
            self.tasks.abort_all();
        }
    }

    /// Runs until Ctrl-C or SIGTERM, then drains.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// How long a starting process waits for the database and the broker before it gives up.
const START_PATIENCE: Duration = Duration::from_secs(180);

/// Tries `attempt` again, waiting longer each time, until it succeeds or
/// [`START_PATIENCE`] has passed.
async fn patiently<T, E, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let give_up = tokio::time::Instant::now() + START_PATIENCE;
    let mut pause = Duration::from_millis(500);
    loop {
        match attempt().await.map_err(Into::into) {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() + pause < give_up => {
                tracing::warn!(%error, ?pause, "{what} failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(error) => return Err(error.context(format!("{what} failed for {} s", START_PATIENCE.as_secs()))),
        }
    }
}

/// Starts everything: database (migrated, unless a job of its own does that), reference
/// data, simulator, topics, the parts the settings name, and the HTTP server.
pub async fn start(settings: &Settings, clock: SharedClock, broker: Broker) -> anyhow::Result<RunningApp> {
    let checked = check(settings)?;
    // A process that restarts while the database or the broker is away waits for them.
    let pool = patiently("connecting to PostgreSQL", || {
        db::connect(settings.database_url(), settings.database_max_connections)
    })
    .await?;
    if settings.migrate_on_start {
        db::migrate(&pool).await?;
    } else {
        patiently("waiting for `dijkwacht migrate`", || db::require_migrated(&pool)).await?;
    }
    if let (Some(reference), Some(file)) = (&checked.reference, &settings.reference_file) {
        reference
            .load_into(&pool, clock.now())
            .await
            .with_context(|| format!("loading reference data from {}", file.display()))?;
    }
    let topics = TopicNames::new(settings.kafka_prefix.clone());
    patiently("reaching the Kafka broker", || {
        broker.ensure_topics(&topics, settings.kafka_partitions)
    })
    .await?;
    let bootstrap_servers = broker.bootstrap_servers();
    let runs_stage = checked.parts.iter().any(|part| part.runs_stage());
    let store = EventStore::new(pool.clone())
        .with_waits(settings.wait_limits())
        .with_case_cache(if runs_stage { settings.case_cache } else { 0 });
    let health = Health::default();
    let runtime = StageRuntime {
        store: store.clone(),
        clock: clock.clone(),
        topics,
        producer: kafka::producer(&settings.producer_settings(&bootstrap_servers))?,
        bootstrap_servers,
        health: health.clone(),
        settings: LoopSettings {
            batch_size: settings.batch_size,
            linger: Duration::from_millis(settings.batch_linger_ms),
            timer_poll: Duration::from_millis(settings.timer_poll_ms),
            timer_lease: TimeDelta::seconds(settings.timer_lease_secs),
            group_prefix: settings.kafka_prefix.clone(),
        },
        embedded_broker: match &broker {
            Broker::Embedded(embedded) => Some(embedded.clone()),
            Broker::External(_) => None,
        },
    };
    let (trigger, shutdown) = shutdown::channel();
    let mut process = Process::new(Arc::new(settings.clone()), runtime, shutdown.clone());
    let simulator = match settings.simulator_listen {
        Some(addr) => Some(start_simulator(settings, (addr, checked.simulator_platforms), &mut process).await?),
        None => None,
    };
    let Started { mut tasks, routes } = process.start(&checked.parts, PARTS).await?;
    let http_addr = serve(
        settings.http_listen,
        routes,
        OpsState {
            health: health.clone(),
            pool,
        },
        &mut tasks,
        shutdown,
    )
    .await?;
    // The simulated platforms answer the API this process serves.
    if let Some(running) = &simulator {
        running.simulator.answer_to(&format!("http://{http_addr}"));
    }
    Ok(RunningApp {
        http_addr,
        simulator,
        health,
        store,
        broker,
        trigger,
        tasks,
    })
}

/// Serves the parts' routes, the OpenAPI description when there are any, and what every
/// process answers its operators; returns where it listens.
async fn serve(
    listen: SocketAddr,
    routes: Vec<Router>,
    ops: OpsState,
    tasks: &mut JoinSet<()>,
    shutdown: dijkwacht_runtime::Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the HTTP API to {listen}"))?;
    let http_addr = listener.local_addr()?;
    let mut router = dijkwacht_http::ops::documented().into_parts("", "").0.with_state(ops);
    if !routes.is_empty() {
        router = routes.into_iter().fold(router.merge(openapi_router()), Router::merge);
    }
    let router = router.layer(axum::middleware::from_fn(dijkwacht_http::trace::requests));
    tasks.spawn(async move {
        if let Err(error) = dijkwacht_intake::serve(listener, router, shutdown).await {
            tracing::error!(%error, "HTTP API stopped");
        }
    });
    Ok(http_addr)
}

/// The platform simulator: its HTTP API on `addr`, and its mail server where configured.
async fn start_simulator(
    settings: &Settings,
    (addr, platforms): (SocketAddr, BTreeMap<String, Behaviour>),
    process: &mut Process,
) -> anyhow::Result<RunningSimulator> {
    let shutdown = process.shutdown.clone();
    let simulator = Simulator::new(
        process.clock.clone(),
        TimeDelta::seconds(settings.simulator_removal_delay_secs),
    )
    .with_platforms(platforms);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the platform simulator to {addr}"))?;
    let http_addr = listener.local_addr()?;
    let router = simulator.router();
    let stop = shutdown.clone();
    process.spawn(async move {
        if let Err(error) = dijkwacht_intake::serve(listener, router, stop).await {
            tracing::error!(%error, "platform simulator stopped");
        }
    });
    process.spawn(simulator.clone().send_answers(shutdown.clone()));
    let smtp_addr = match settings.simulator_smtp_listen {
        Some(smtp_addr) => {
            let tls = match (&settings.simulator_smtp_certificate, &settings.simulator_smtp_key) {
                (Some(certificate), Some(key)) => Some(
                    smtp::tls_config(&std::fs::read(certificate)?, &std::fs::read(key)?)
                        .map_err(anyhow::Error::msg)
                        .context("the simulator's SMTP certificate")?,
                ),
                _ => None,
            };
            let listener = TcpListener::bind(smtp_addr)
                .await
                .with_context(|| format!("binding the simulated mail server to {smtp_addr}"))?;
            let local = listener.local_addr()?;
            process.spawn(smtp::serve(listener, simulator.clone(), tls, shutdown.clone()));
            Some(local)
        }
        None => None,
    };
    Ok(RunningSimulator {
        http_addr,
        smtp_addr,
        simulator,
    })
}

/// `/openapi.json`: the whole API's description, whichever parts this process serves.
fn openapi_router() -> Router {
    let document = Arc::new(openapi());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move { ([(CONTENT_TYPE, "application/json")], Json((*document).clone())) }
        }),
    )
}

/// The OpenAPI 3.1 description of the whole HTTP API, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    let version = env!("CARGO_PKG_VERSION");
    let documents = PARTS
        .iter()
        .flat_map(|part| part.openapi(version))
        .chain([dijkwacht_http::ops::documented().into_parts("", version).1]);
    dijkwacht_http::openapi::merge("dijkwacht", version, documents)
}
