//! The follow-up part: its stage (deadlines, removal checks, reminders, escalation), the
//! route platforms answer on, and its section `[followup]`.

use crate::settings::{FollowupSettings, SECTION};
use crate::{documented, FollowupApi, FollowupStage};
use axum::Router;
use dijkwacht_http::Limits;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::outbound::AddressPolicy;
use dijkwacht_runtime::{Part, Process};
use futures::future::BoxFuture;

pub struct Followup;

impl Part for Followup {
    fn name(&self) -> &'static str {
        "followup"
    }

    fn runs_stage(&self) -> bool {
        true
    }

    fn sections(&self) -> &'static [&'static str] {
        &[SECTION]
    }

    fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        FollowupSettings::from_settings(settings)?;
        AddressPolicy::from_settings(settings).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let settings = &process.settings;
            let stage = FollowupStage::new(
                FollowupSettings::from_settings(settings)?,
                settings.home_country.clone(),
                AddressPolicy::from_settings(settings).map_err(anyhow::Error::msg)?,
                (process.store.clone(), process.clock.clone()),
            )?;
            process.spawn_stage(stage);
            Ok(())
        })
    }

    fn api<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<Option<Router>>> {
        Box::pin(async move {
            let api = FollowupApi {
                store: process.store.clone(),
                clock: process.clock.clone(),
                limits: process.shared::<Limits>().await?,
                answer_window: FollowupSettings::from_settings(&process.settings)?.answer_window,
            };
            Ok(Some(dijkwacht_http::routes(documented(), api)))
        })
    }

    fn openapi(&self, version: &str) -> Vec<serde_json::Value> {
        vec![documented().into_parts("", version).1]
    }
}
