//! The intake part (`run --only intake`): the process serves the HTTP API — the intake's
//! routes and every other part's — and reads the analysts' review policy.

use crate::review::ReviewPolicy;
use crate::{documented, AppState};
use anyhow::Context;
use axum::Router;
use chrono::TimeDelta;
use dijkwacht_domain::ContentClass;
use dijkwacht_http::Limits;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::{Part, Process};
use futures::future::BoxFuture;
use std::sync::Arc;

pub struct Intake;

fn review_policy(settings: &Settings) -> anyhow::Result<ReviewPolicy> {
    Ok(ReviewPolicy {
        four_eyes: settings
            .four_eyes_classes
            .iter()
            .map(|name| ContentClass::parse(name).with_context(|| format!("four_eyes_classes: unknown class {name:?}")))
            .collect::<anyhow::Result<_>>()?,
        claim_lease: TimeDelta::seconds(settings.review_claim_secs),
    })
}

impl Part for Intake {
    fn name(&self) -> &'static str {
        "intake"
    }

    fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        review_policy(settings)?;
        dijkwacht_classify::resolver(settings)?;
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<()>> {
        process.serve_api();
        Box::pin(async { Ok(()) })
    }

    fn api<'a>(&'a self, process: &'a mut Process) -> BoxFuture<'a, anyhow::Result<Option<Router>>> {
        Box::pin(async move {
            let settings = process.settings.clone();
            let state = AppState {
                store: process.store.clone(),
                clock: process.clock.clone(),
                limits: process.shared::<Limits>().await?,
                review: Arc::new(review_policy(&settings)?),
                home_country: settings.home_country.clone(),
                resolver: dijkwacht_classify::resolver(&settings)?,
                registry: process.shared::<dijkwacht_classify::SharedRegistry>().await?,
                together: crate::together::Together::start(process.store.clone(), process.clock.clone()),
            };
            Ok(Some(crate::router(state)))
        })
    }

    fn openapi(&self, version: &str) -> Vec<serde_json::Value> {
        vec![documented().into_parts("", version).1]
    }
}
