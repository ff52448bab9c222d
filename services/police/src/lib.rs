//! Police first: the part that lets analysts and the police work a referral. The police
//! partner (keys with scope `police`) lists the cases referred to it, reads their facts, and
//! releases or extends the hold; analysts do the same for every referral and record one made
//! by other means. Nobody else learns that a case is with the police: for them it is a case
//! in progress. The referral itself leaves by dispatch; the hold is the domain's.

pub mod figures;
pub mod routes;

use dijkwacht_dispatch::registry::Directory;
use dijkwacht_http::{DocumentedRouter, Edge, Limits};
use dijkwacht_runtime::{EventStore, SharedClock};

/// The police partner's keys carry it: its referrals, and nothing else.
pub const SCOPE_POLICE: &str = "police";

/// The state of the police part's routes.
#[derive(Clone)]
pub struct PoliceApi {
    pub store: EventStore,
    pub clock: SharedClock,
    pub limits: Limits,
    /// The law-enforcement partners' entries: how long a hold lasts.
    pub directory: Directory,
}

impl Edge for PoliceApi {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The police part's routes with their OpenAPI description.
pub fn documented() -> DocumentedRouter<PoliceApi> {
    figures::routes(routes::routes(DocumentedRouter::new()))
}

/// The police routes: no work of their own, served wherever the API is.
pub struct Police;

impl dijkwacht_runtime::Part for Police {
    fn name(&self) -> &'static str {
        "police"
    }

    fn check(&self, _settings: &dijkwacht_runtime::config::Settings) -> anyhow::Result<()> {
        Ok(())
    }

    fn runs_alone(&self) -> bool {
        false
    }

    fn api<'a>(
        &'a self,
        process: &'a mut dijkwacht_runtime::Process,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<Option<axum::Router>>> {
        Box::pin(async move {
            let api = PoliceApi {
                store: process.store.clone(),
                clock: process.clock.clone(),
                limits: process.shared::<Limits>().await?,
                directory: process.shared::<Directory>().await?,
            };
            Ok(Some(dijkwacht_http::routes(documented(), api)))
        })
    }

    fn openapi(&self, version: &str) -> Vec<serde_json::Value> {
        vec![documented().into_parts("", version).1]
    }
}
