//! What every process answers its operators, whichever parts it runs: `/healthz` (the
//! process is alive), `/readyz` (every local part can do its work, and the database
//! answers; JSON that names what is not ready) and `/metrics` (Prometheus text).

use crate::DocumentedRouter;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use dijkwacht_runtime::telemetry::metrics;
use dijkwacht_runtime::Health;
use serde_json::json;
use sqlx::PgPool;

#[derive(Clone)]
pub struct OpsState {
    pub health: Health,
    pub pool: PgPool,
}

pub fn documented() -> DocumentedRouter<OpsState> {
    let object = || Some(("application/json", json!({"type": "object"})));
    DocumentedRouter::new()
        .route("get", "/healthz", get(alive), |op| {
            op.summary("Liveness: 200 while the process runs")
                .response(200, "alive", object())
        })
        .route("get", "/readyz", get(ready), |op| {
            op.summary("Readiness: 200 once every part of this process can work and the database answers; 503 names what is not ready")
                .response(200, "ready", object())
                .response(503, "not ready", object())
        })
        .route("get", "/metrics", get(prometheus), |op| {
            op.summary("The process's metrics in the Prometheus text format").response(
                200,
                "the metrics",
                Some(("text/plain", json!({"type": "string"}))),
            )
        })
}

async fn alive() -> Json<serde_json::Value> {
    Json(json!({"alive": true}))
}

async fn ready(State(state): State<OpsState>) -> Response {
    let mut report = state.health.report();
    // Waiting work is shown, not judged: an operator queue is normal, a growing one is not.
    let counts: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT (SELECT count(*) FROM operator_queue), (SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL)",
    )
    .fetch_one(&state.pool)
    .await;
    let database = match &counts {
        Ok(_) => "ready".to_owned(),
        Err(error) => format!("the database does not answer: {error}"),
    };
    report.ready &= counts.is_ok();
    report.components.insert("database", database);
    let (operator_queue, quarantined) = counts.unwrap_or_default();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": report.ready,
        "components": report.components,
        "operator_queue": operator_queue,
        "quarantined_outbox_rows": quarantined,
    });
    (status, Json(body)).into_response()
}

async fn prometheus() -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics::registry().render(),
    )
        .into_response()
}
