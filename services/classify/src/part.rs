//! The classify part: its stage, the matching index it shares with the hash check, and the
//! configuration it reads (`[police]`, the hotline network, the resolver).

use crate::host::{Resolver, StaticResolver, SystemResolver};
use crate::police_first::{self, PoliceFirstSettings};
use crate::{ClassifyStage, Routing, SharedIndex, SharedRegistry};
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::{Part, Process, Resource};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub struct Classify;

impl Part for Classify {
    fn name(&self) -> &'static str {
        "classify"
    }

    fn runs_stage(&self) -> bool {
        true
    }

    fn sections(&self) -> &'static [&'static str] {
        &[police_first::SECTION]
    }

    fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        routing(settings)?;
        resolver(settings)?;
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let index = process.shared::<SharedIndex>().await?;
            let registry = process.shared::<SharedRegistry>().await?;
            let stage = ClassifyStage::new(
                process.pool().clone(),
                index,
                registry,
                resolver(&process.settings)?,
                routing(&process.settings)?,
            );
            process.spawn_stage(stage);
            Ok(())
        })
    }
}

fn routing(settings: &Settings) -> anyhow::Result<Routing> {
    Ok(Routing {
        home_country: settings.home_country.clone(),
        hotlines: settings.hotline_network.clone(),
        police_first: PoliceFirstSettings::from_settings(settings)?.rules,
    })
}

/// How host names are resolved: the system's DNS, or (tests, the demo) a fixed table.
pub fn resolver(settings: &Settings) -> anyhow::Result<Arc<dyn Resolver>> {
    Ok(match settings.resolver.as_str() {
        "static" => Arc::new(StaticResolver {
            hosts: settings.static_hosts.clone(),
        }),
        "system" => Arc::new(SystemResolver),
        other => anyhow::bail!("resolver must be system or static, not {other:?}"),
    })
}

/// One matching index per process, for the stage and the hash check, kept fresh once.
impl Resource for SharedIndex {
    async fn start(process: &mut Process) -> anyhow::Result<Self> {
        let index = SharedIndex::load(process.pool()).await?;
        process.spawn(index.clone().keep_fresh(
            process.pool().clone(),
            Duration::from_millis(process.settings.index_refresh_ms),
            process.shutdown.clone(),
        ));
        Ok(index)
    }
}
