//! The HTTP API: partners submit reports and follow their cases, regulators read
//! compliance statistics, operators probe health.

pub mod api;
mod auth;
mod error;
pub mod routes;
pub mod validate;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use dijkwacht_runtime::{EventStore, Health, SharedClock, Shutdown};
use tokio::net::TcpListener;

pub use error::ApiError;

/// Request bodies above this are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub clock: SharedClock,
    pub health: Health,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/reports", post(routes::submit_report))
        .route("/v1/cases/{case_id}", get(routes::get_case))
        .route(
            "/v1/regulator/platforms/{platform_id}/compliance",
            get(routes::platform_compliance_report),
        )
        .route("/healthz", get(routes::healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves until shutdown, letting requests in flight finish.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: Shutdown) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
