//! The dispatch part: its stage, its routes (analysts' tasks, the pace of each platform),
//! the platform registry it shares with the other API parts, and its configuration
//! (`[dispatch]` and the `dispatch_*` limits).

use crate::api::ApiSender;
use crate::email::EmailSender;
use crate::registry::Directory;
use crate::render::Templates;
use crate::routes::{self, DispatchApi};
use crate::settings::{DispatchSettings, SECTION};
use crate::{DispatchParts, DispatchStage};
use axum::Router;
use chrono::TimeDelta;
use dijkwacht_domain::DispatchPolicy;
use dijkwacht_http::Limits;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::outbound::AddressPolicy;
use dijkwacht_runtime::{Part, Process, Resource};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub struct Dispatch;

/// The dispatch configuration, checked.
struct Configured {
    section: DispatchSettings,
    policy: DispatchPolicy,
    request_timeout: Duration,
    /// How long an attempt may go without an outcome; longer than a request may take.
    in_flight_limit: TimeDelta,
    addresses: AddressPolicy,
}

fn configure(settings: &Settings) -> anyhow::Result<Configured> {
    let request_timeout = Duration::from_secs(settings.dispatch_timeout_secs);
    let in_flight_limit = TimeDelta::seconds(settings.dispatch_in_flight_secs);
    if in_flight_limit <= TimeDelta::from_std(request_timeout)? {
        anyhow::bail!(
            "dispatch_in_flight_secs must be longer than dispatch_timeout_secs, or live attempts are sent twice"
        );
    }
    Ok(Configured {
        section: DispatchSettings::from_settings(settings)?,
        policy: DispatchPolicy {
            max_attempts: settings.dispatch_max_attempts,
            first_backoff: TimeDelta::seconds(settings.dispatch_first_backoff_secs),
        },
        request_timeout,
        in_flight_limit,
        addresses: AddressPolicy::from_settings(settings).map_err(anyhow::Error::msg)?,
    })
}

impl Part for Dispatch {
    fn name(&self) -> &'static str {
        "dispatch"
    }

    fn runs_stage(&self) -> bool {
        true
    }

    fn sections(&self) -> &'static [&'static str] {
        &[SECTION]
    }

    fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        let configured = configure(settings)?;
        EmailSender::new(&configured.section)?;
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let configured = configure(&process.settings)?;
            let stage = DispatchStage::new(DispatchParts {
                policy: configured.policy,
                in_flight_limit: configured.in_flight_limit,
                api: ApiSender::new(configured.addresses, configured.request_timeout)?,
                email: EmailSender::new(&configured.section)?,
                directory: process.shared::<Directory>().await?,
                pool: process.pool().clone(),
                clock: process.clock.clone(),
            })?;
            process.spawn_stage(stage);
            Ok(())
        })
    }

    fn api<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<Option<Router>>> {
        Box::pin(async move {
            let api = DispatchApi {
                store: process.store.clone(),
                clock: process.clock.clone(),
                limits: process.shared::<Limits>().await?,
                directory: process.shared::<Directory>().await?,
                templates: Arc::new(Templates::built_in()?),
            };
            Ok(Some(dijkwacht_http::routes(routes::documented(), api)))
        })
    }

    fn openapi(&self, version: &str) -> Vec<serde_json::Value> {
        vec![routes::documented().into_parts("", version).1]
    }
}

/// One copy of the platform registry per process, for the stage and every route that reads
/// it, read again every `registry_refresh_secs`.
impl Resource for Directory {
    async fn start(process: &mut Process) -> anyhow::Result<Self> {
        let section = DispatchSettings::from_settings(&process.settings)?;
        let directory = Directory::load(process.pool()).await?;
        process.spawn(directory.clone().keep_fresh(
            process.pool().clone(),
            Duration::from_secs(section.registry_refresh_secs),
            process.shutdown.clone(),
        ));
        Ok(directory)
    }
}
