//! A part: one thing a process can run — a stage, the relay, an HTTP API — with the
//! configuration it reads. Each part's crate exports one; the binary lists them, checks them
//! all before anything starts, and starts those the settings name. Adding a part is its
//! crate and one line in that list.

use crate::config::Settings;
use crate::{EventStore, Health, SharedClock, Shutdown, Stage, StageLoop, StageRuntime};
use axum::Router;
use futures::future::BoxFuture;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinSet;

pub trait Part: Send + Sync {
    /// Its name in `parts` and `run --only`.
    fn name(&self) -> &'static str;

    /// The configuration sections it owns (`[dispatch]`, `DIJKWACHT_DISPATCH__KEY`); every
    /// other table in the configuration is an unknown key.
    fn sections(&self) -> &'static [&'static str] {
        &[]
    }

    /// Reads and checks everything it would read at start, without connecting to anything:
    /// `--check-config` runs this for every part, so a wrong section fails in any process.
    fn check(&self, settings: &Settings) -> anyhow::Result<()>;

    /// Whether `run --only` can name it; a part that only adds routes to the API runs
    /// wherever the API does.
    fn runs_alone(&self) -> bool {
        true
    }

    /// Whether it runs a stage. Stages load the cases they handle again and again, so a
    /// process keeps their latest states (`case_cache`) only when it runs one: a process
    /// of intake alone would fill the cache with cases it never reads.
    fn runs_stage(&self) -> bool {
        false
    }

    /// Starts its work in `process`: tasks, a stage, routes it serves on its own.
    fn start<'a>(&'a self, _process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Its routes in the HTTP API, served by every process that serves the API
    /// ([`Process::serve_api`]), whether or not that process runs this part.
    fn api<'a>(&'a self, _process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<Option<Router>>> {
        Box::pin(async { Ok(None) })
    }

    /// The OpenAPI documents of the routes it serves, in the API or on its own.
    fn openapi(&self, _version: &str) -> Vec<serde_json::Value> {
        vec![]
    }
}

/// Something several parts of one process share (a registry kept fresh, a matching index,
/// rate limits): started once, by the first part that asks for it.
pub trait Resource: Clone + Send + Sync + 'static {
    fn start(process: &mut Process) -> impl std::future::Future<Output = anyhow::Result<Self>> + Send;
}

/// What a process gives the parts it runs.
pub struct Process {
    pub settings: Arc<Settings>,
    pub store: EventStore,
    pub clock: SharedClock,
    pub health: Health,
    pub shutdown: Shutdown,
    /// What every stage loop of this process shares: the broker, its topics, the producer.
    pub stages: StageRuntime,
    tasks: JoinSet<()>,
    resources: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    routes: Vec<Router>,
    serves_api: bool,
}

/// What a process's parts left running: the tasks to wait for at shutdown, the routes to
/// serve.
pub struct Started {
    pub tasks: JoinSet<()>,
    /// The routes the parts serve, the API's among them where the process serves it;
    /// empty when it serves none.
    pub routes: Vec<Router>,
}

impl Process {
    pub fn new(settings: Arc<Settings>, stages: StageRuntime, shutdown: Shutdown) -> Self {
        Self {
            settings,
            store: stages.store.clone(),
            clock: stages.clock.clone(),
            health: stages.health.clone(),
            shutdown,
            stages,
            tasks: JoinSet::new(),
            resources: HashMap::new(),
            routes: vec![],
            serves_api: false,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Runs `stage` in the one stage loop, until shutdown.
    pub fn spawn_stage<S: Stage>(&mut self, stage: S) {
        let name = stage.name();
        let stage_loop = StageLoop::new(stage, self.stages.clone());
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            if let Err(error) = stage_loop.run(shutdown).await {
                tracing::error!(stage = name, %error, "stage stopped");
            }
        });
    }

    /// Serves `routes` from this process.
    pub fn serve(&mut self, routes: Router) {
        self.routes.push(routes);
    }

    /// This process serves the HTTP API: every part's [`Part::api`].
    pub fn serve_api(&mut self) {
        self.serves_api = true;
    }

    /// The one `R` of this process, started at the first call.
    pub async fn shared<R: Resource>(&mut self) -> anyhow::Result<R> {
        if let Some(resource) = self.resources.get(&TypeId::of::<R>()) {
            return Ok(resource
                .downcast_ref::<R>()
                .expect("resources are stored under their own type")
                .clone());
        }
        let resource = R::start(self).await?;
        self.resources.insert(TypeId::of::<R>(), Box::new(resource.clone()));
        Ok(resource)
    }

    /// Starts `parts` in order, then mounts the API of every part in
    /// `all` if one of them asked for it.
    pub async fn start(mut self, parts: &[&dyn Part], all: &[&dyn Part]) -> anyhow::Result<Started> {
        for part in parts {
            part.start(&mut self).await?;
        }
        if self.serves_api {
            for part in all {
                if let Some(routes) = part.api(&mut self).await? {
                    self.routes.push(routes);
                }
            }
        }
        Ok(Started {
            tasks: self.tasks,
            routes: self.routes,
        })
    }
}
