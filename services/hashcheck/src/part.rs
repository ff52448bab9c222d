//! The hash check as a part of a process (`run --only hash-check`): its own route, served
//! beside whatever else the process serves, from the matching index the classify stage
//! shares, and its section `[hash_check]`.

use crate::providers::Providers;
use crate::settings::{HashCheckSettings, SECTION};
use crate::{documented, HashCheckApi};
use dijkwacht_classify::SharedIndex;
use dijkwacht_http::Limits;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::{Part, Process};
use futures::future::BoxFuture;
use std::time::Duration;

pub struct HashCheck;

impl Part for HashCheck {
    fn name(&self) -> &'static str {
        "hash-check"
    }

    fn sections(&self) -> &'static [&'static str] {
        &[SECTION]
    }

    fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        HashCheckSettings::from_settings(settings)?;
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let section = HashCheckSettings::from_settings(&process.settings)?;
            let providers = Providers::load(process.pool(), section.checks_per_second, section.max_batch).await?;
            process.spawn(providers.clone().keep_fresh(
                process.pool().clone(),
                Duration::from_secs(section.providers_refresh_secs),
                process.shutdown.clone(),
            ));
            let api = HashCheckApi {
                store: process.store.clone(),
                clock: process.clock.clone(),
                limits: process.shared::<Limits>().await?,
                index: process.shared::<SharedIndex>().await?,
                providers,
                max_batch: section.max_batch as usize,
            };
            process.serve(dijkwacht_http::routes(documented(), api));
            Ok(())
        })
    }

    fn openapi(&self, version: &str) -> Vec<serde_json::Value> {
        vec![documented().into_parts("", version).1]
    }
}
