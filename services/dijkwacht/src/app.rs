//! Wiring: one process with the parts its settings name — the intake, the relay, the
//! stages — and, for demos, the platform simulator. Each part is a task; one shutdown
//! signal stops them all.

use crate::check::{check, Checked};
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::{Json, Router};
use chrono::TimeDelta;
use dijkwacht_classify::{ClassifyStage, Routing, SharedIndex};
use dijkwacht_dispatch::api::ApiSender;
use dijkwacht_dispatch::email::EmailSender;
use dijkwacht_dispatch::registry::Directory;
use dijkwacht_dispatch::render::Templates;
use dijkwacht_dispatch::routes::DispatchApi;
use dijkwacht_dispatch::{DispatchParts, DispatchStage};
use dijkwacht_domain::NoticePolicy;
use dijkwacht_followup::FollowupApi;
use dijkwacht_followup::FollowupStage;
use dijkwacht_hashcheck::providers::Providers;
use dijkwacht_hashcheck::settings::HashCheckSettings;
use dijkwacht_hashcheck::HashCheckApi;
use dijkwacht_http::ops::OpsState;
use dijkwacht_intake::{AppState, LimitSettings, Limits};
use dijkwacht_notices::NoticeStage;
use dijkwacht_police::PoliceApi;
use dijkwacht_projection::regulator::RegulatorApi;
use dijkwacht_projection::ProjectionStage;
use dijkwacht_runtime::config::{Part, Settings};
use dijkwacht_runtime::kafka::{self, EmbeddedBroker};
use dijkwacht_runtime::relay::{Relay, RelaySettings};
use dijkwacht_runtime::shutdown::{self, ShutdownTrigger};
use dijkwacht_runtime::{
    db, EventStore, Health, LoopSettings, SharedClock, Stage, StageLoop, StageRuntime, TopicNames,
};
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

pub fn notice_policy(settings: &Settings) -> NoticePolicy {
    NoticePolicy {
        organisation: settings.organisation.clone(),
        contact_email: settings.contact_email.clone(),
        designated_by: settings.designated_by.clone(),
        designation_reference: settings.designation_reference.clone(),
    }
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
/// data, simulator, topics, relay, stages and the HTTP API.
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
    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = JoinSet::new();

    let simulator = match settings.simulator_listen {
        Some(addr) => Some(
            start_simulator(
                settings,
                (addr, checked.simulator_platforms.clone()),
                clock.clone(),
                &mut tasks,
                &shutdown,
            )
            .await?,
        ),
        None => None,
    };

    let topics = TopicNames::new(settings.kafka_prefix.clone());
    patiently("reaching the Kafka broker", || {
        broker.ensure_topics(&topics, settings.kafka_partitions)
    })
    .await?;
    let bootstrap_servers = broker.bootstrap_servers();
    let producer = kafka::producer(&settings.producer_settings(&bootstrap_servers))?;
    let store = EventStore::new(pool.clone()).with_waits(settings.wait_limits());
    let health = Health::default();

    if settings.runs(Part::Relay) {
        let relay = Relay::new(
            pool.clone(),
            settings.producer_settings(&bootstrap_servers),
            topics.clone(),
            clock.clone(),
            health.register("relay", "it has not published yet"),
            RelaySettings {
                batch_size: settings.batch_size as i64,
                idle: Duration::from_millis(settings.relay_idle_ms),
                max_lag: TimeDelta::seconds(settings.relay_max_lag_secs),
            },
        )?;
        tasks.spawn(relay.run(shutdown.clone()));
    }
    // One copy of the platform registry for the dispatch stage and the dispatch routes.
    let directory = match settings.runs(Part::Dispatch) || settings.runs(Part::Intake) {
        true => {
            let directory = Directory::load(&pool).await?;
            tasks.spawn(directory.clone().keep_fresh(
                pool.clone(),
                Duration::from_secs(checked.dispatch.registry_refresh_secs),
                shutdown.clone(),
            ));
            Some(directory)
        }
        false => None,
    };
    // One matching index for the classify stage and the hash check, kept fresh once.
    let index = match settings.runs(Part::Classify) || settings.runs(Part::HashCheck) {
        true => {
            let index = SharedIndex::load(&pool).await?;
            tasks.spawn(index.clone().keep_fresh(
                pool.clone(),
                Duration::from_millis(settings.index_refresh_ms),
                shutdown.clone(),
            ));
            Some(index)
        }
        false => None,
    };
    let hash_check = match (&index, settings.runs(Part::HashCheck)) {
        (Some(index), true) => {
            Some(hash_check(&checked.hash_check, &pool, index.clone(), &mut tasks, &shutdown).await?)
        }
        _ => None,
    };
    {
        let runtime = StageRuntime {
            store: store.clone(),
            clock: clock.clone(),
            topics,
            bootstrap_servers,
            producer,
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
        spawn_stages(
            &mut tasks,
            settings,
            &checked,
            &pool,
            &runtime,
            (directory.clone(), index),
            &shutdown,
        )?;
    }

    let http_addr = serve_api(
        &mut tasks,
        (settings, &checked),
        (store.clone(), clock, health.clone()),
        (directory, hash_check),
        &shutdown,
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

/// The platform simulator: its HTTP API on `addr`, and its mail server where configured.
async fn start_simulator(
    settings: &Settings,
    (addr, platforms): (SocketAddr, BTreeMap<String, Behaviour>),
    clock: SharedClock,
    tasks: &mut JoinSet<()>,
    shutdown: &dijkwacht_runtime::Shutdown,
) -> anyhow::Result<RunningSimulator> {
    let simulator =
        Simulator::new(clock, TimeDelta::seconds(settings.simulator_removal_delay_secs)).with_platforms(platforms);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the platform simulator to {addr}"))?;
    let http_addr = listener.local_addr()?;
    let router = simulator.router();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(error) = dijkwacht_intake::serve(listener, router, stop).await {
            tracing::error!(%error, "platform simulator stopped");
        }
    });
    tasks.spawn(simulator.clone().send_answers(shutdown.clone()));
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
            tasks.spawn(smtp::serve(listener, simulator.clone(), tls, shutdown.clone()));
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

/// What the hash check answers with: its settings, the providers (kept fresh) and the index.
async fn hash_check(
    section: &HashCheckSettings,
    pool: &sqlx::PgPool,
    index: SharedIndex,
    tasks: &mut JoinSet<()>,
    shutdown: &dijkwacht_runtime::Shutdown,
) -> anyhow::Result<(HashCheckSettings, Providers, SharedIndex)> {
    let section = section.clone();
    let providers = Providers::load(pool, section.checks_per_second, section.max_batch).await?;
    tasks.spawn(providers.clone().keep_fresh(
        pool.clone(),
        Duration::from_secs(section.providers_refresh_secs),
        shutdown.clone(),
    ));
    Ok((section, providers, index))
}

/// The hash check's routes; its bodies are larger than the intake's allow per hash.
fn hash_check_router(api: HashCheckApi) -> Router {
    dijkwacht_hashcheck::documented()
        .into_parts("", "")
        .0
        .layer(DefaultBodyLimit::max(dijkwacht_intake::MAX_BODY_BYTES))
        .with_state(api)
}

/// Every part's routes, side by side, and the OpenAPI description of them all.
fn api_router(intake: AppState, dispatch: DispatchApi, followup: FollowupApi, police: PoliceApi) -> Router {
    let regulator = RegulatorApi {
        store: intake.store.clone(),
        limits: intake.limits.clone(),
    };
    dijkwacht_intake::router(intake)
        .merge(
            dijkwacht_projection::regulator::documented()
                .into_parts("", "")
                .0
                .with_state(regulator),
        )
        .merge(
            dijkwacht_police::documented()
                .into_parts("", "")
                .0
                .layer(DefaultBodyLimit::max(dijkwacht_intake::MAX_BODY_BYTES))
                .with_state(police),
        )
        .merge(
            dijkwacht_dispatch::routes::documented()
                .into_parts("", "")
                .0
                .layer(DefaultBodyLimit::max(dijkwacht_intake::MAX_BODY_BYTES))
                .with_state(dispatch),
        )
        .merge(
            dijkwacht_followup::documented()
                .into_parts("", "")
                .0
                .layer(DefaultBodyLimit::max(dijkwacht_intake::MAX_BODY_BYTES))
                .with_state(followup),
        )
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
    dijkwacht_http::openapi::merge(
        "dijkwacht",
        version,
        [
            dijkwacht_intake::documented().into_parts("", version).1,
            dijkwacht_dispatch::routes::documented().into_parts("", version).1,
            dijkwacht_followup::documented().into_parts("", version).1,
            dijkwacht_hashcheck::documented().into_parts("", version).1,
            dijkwacht_police::documented().into_parts("", version).1,
            dijkwacht_projection::regulator::documented().into_parts("", version).1,
            dijkwacht_http::ops::documented().into_parts("", version).1,
        ],
    )
}

/// The HTTP API (only liveness, readiness and metrics when this process does not run the
/// intake); returns where it listens.
async fn serve_api(
    tasks: &mut JoinSet<()>,
    (settings, checked): (&Settings, &Checked),
    (store, clock, health): (EventStore, SharedClock, Health),
    (directory, hash_check): (Option<Directory>, Option<(HashCheckSettings, Providers, SharedIndex)>),
    shutdown: &dijkwacht_runtime::Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", settings.http_listen))?;
    let http_addr = listener.local_addr()?;
    let ops = dijkwacht_http::ops::documented()
        .into_parts("", "")
        .0
        .with_state(OpsState {
            health,
            pool: store.pool().clone(),
        });
    let state = AppState {
        store,
        clock,
        limits: Limits::new(LimitSettings {
            partner_requests_per_second: settings.partner_requests_per_second,
            partner_burst: settings.partner_burst,
            public_reports_per_hour: settings.public_reports_per_hour,
            bulk_max_bytes: settings.bulk_max_bytes,
            bulk_max_lines: settings.bulk_max_lines,
        }),
        review: Arc::new(checked.review.clone()),
        home_country: settings.home_country.clone(),
        resolver: checked.resolver.clone(),
    };
    let router = if let Some(directory) = directory.filter(|_| settings.runs(Part::Intake)) {
        let dispatch = DispatchApi {
            store: state.store.clone(),
            clock: state.clock.clone(),
            limits: state.limits.clone(),
            directory,
            templates: Arc::new(Templates::built_in()?),
        };
        let followup = FollowupApi {
            store: state.store.clone(),
            clock: state.clock.clone(),
            limits: state.limits.clone(),
            answer_window: checked.followup.answer_window,
        };
        let police = PoliceApi {
            store: state.store.clone(),
            clock: state.clock.clone(),
            limits: state.limits.clone(),
            directory: dispatch.directory.clone(),
        };
        api_router(state.clone(), dispatch, followup, police)
            .merge(openapi_router())
            .merge(ops)
    } else if hash_check.is_some() {
        ops.merge(openapi_router())
    } else {
        ops
    };
    let router = match hash_check {
        Some((section, providers, index)) => router.merge(hash_check_router(HashCheckApi {
            store: state.store.clone(),
            clock: state.clock.clone(),
            limits: state.limits.clone(),
            index,
            providers,
            max_batch: section.max_batch as usize,
        })),
        None => router,
    };
    let router = router.layer(axum::middleware::from_fn(dijkwacht_http::trace::requests));
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(error) = dijkwacht_intake::serve(listener, router, stop).await {
            tracing::error!(%error, "HTTP API stopped");
        }
    });
    Ok(http_addr)
}

fn spawn_stages(
    tasks: &mut JoinSet<()>,
    settings: &Settings,
    checked: &Checked,
    pool: &sqlx::PgPool,
    runtime: &StageRuntime,
    (directory, index): (Option<Directory>, Option<SharedIndex>),
    shutdown: &dijkwacht_runtime::Shutdown,
) -> anyhow::Result<()> {
    if let Some(index) = index.filter(|_| settings.runs(Part::Classify)) {
        let routing = Routing {
            home_country: settings.home_country.clone(),
            hotlines: settings.hotline_network.clone(),
            police_first: checked.police.rules.clone(),
        };
        let stage = ClassifyStage::new(pool.clone(), index, checked.resolver.clone(), routing);
        spawn_stage(tasks, stage, runtime, shutdown);
    }
    if settings.runs(Part::Notices) {
        spawn_stage(tasks, NoticeStage::new(notice_policy(settings)), runtime, shutdown);
    }
    if let Some(directory) = directory.filter(|_| settings.runs(Part::Dispatch)) {
        let stage = DispatchStage::new(DispatchParts {
            policy: checked.dispatch_policy,
            in_flight_limit: checked.in_flight_limit,
            api: ApiSender::new(checked.addresses.clone(), checked.request_timeout)?,
            email: EmailSender::new(&checked.dispatch)?,
            directory,
            pool: pool.clone(),
            clock: runtime.clock.clone(),
        })?;
        spawn_stage(tasks, stage, runtime, shutdown);
    }
    if settings.runs(Part::Followup) {
        spawn_stage(
            tasks,
            FollowupStage::new(
                checked.followup.clone(),
                settings.home_country.clone(),
                checked.addresses.clone(),
                (runtime.store.clone(), runtime.clock.clone()),
            )?,
            runtime,
            shutdown,
        );
    }
    if settings.runs(Part::Projection) {
        spawn_stage(tasks, ProjectionStage::new(pool.clone()), runtime, shutdown);
    }
    Ok(())
}

fn spawn_stage<S: Stage>(
    tasks: &mut JoinSet<()>,
    stage: S,
    runtime: &StageRuntime,
    shutdown: &dijkwacht_runtime::Shutdown,
) {
    let name = stage.name();
    let stage_loop = StageLoop::new(stage, runtime.clone());
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Err(error) = stage_loop.run(shutdown).await {
            tracing::error!(stage = name, %error, "stage stopped");
        }
    });
}
