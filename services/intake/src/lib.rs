//! The HTTP API: partners submit reports (one, or in bulk) and follow them, the public
//! reports through one form.
//! The OpenAPI description is built from the same route table as the router.

pub mod api;
pub mod bulk;
pub mod import;
pub mod operator;
mod part;
pub mod public;
pub mod review;
pub mod routes;
pub mod submission;
pub mod together;
pub mod validate;

pub use part::Intake;

use api::{BulkLineResult, CaseView, ReportAccepted, ReportStatus, SubmitReport};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use dijkwacht_runtime::{EventStore, SharedClock, Shutdown};
use openapi::DocumentedRouter;
use routes::{SCOPE_REPORTS_READ, SCOPE_REPORTS_WRITE};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use dijkwacht_http::{auth, error, limits, openapi};
pub use dijkwacht_http::{ApiError, LimitSettings, Limits};

pub use dijkwacht_http::MAX_BODY_BYTES;

#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub clock: SharedClock,
    pub limits: Limits,
    pub review: Arc<review::ReviewPolicy>,
    /// Jurisdiction of provisions analysts name.
    pub home_country: String,
    /// Finds the host of a case whose host was unknown when an analyst classifies it.
    pub resolver: Arc<dyn dijkwacht_classify::host::Resolver>,
    /// Whose hosts are whose, for those analysts classify.
    pub registry: dijkwacht_classify::SharedRegistry,
    /// Single reports, committed together when they arrive together.
    pub together: together::Together,
}

impl dijkwacht_http::Edge for AppState {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

fn html() -> Value {
    json!({"type": "string", "contentMediaType": "text/html"})
}

/// The intake's routes with their OpenAPI description.
pub fn documented() -> DocumentedRouter<AppState> {
    DocumentedRouter::new()
        .route("post", "/v1/reports", post(routes::submit_report), |op| {
            op.summary("Submit a report of one or more locations")
                .scope(SCOPE_REPORTS_WRITE)
                .json_body::<SubmitReport>()
                .json_response::<ReportAccepted>(202, "accepted: the report's events are committed")
                .links(
                    202,
                    json!({
                        "GetReport": {"operationId": "get_v1_reports__report_id_", "parameters": {"report_id": "$response.body#/report_id"}},
                        "GetCase": {"operationId": "get_v1_cases__case_id_", "parameters": {"case_id": "$response.body#/cases/0/case_id"}},
                    }),
                )
                .json_response::<ReportAccepted>(200, "sent before: the original answer; nothing was added")
                .error(409, "the partner reference already names a different report")
        })
        .route("get", "/v1/reports", get(routes::find_report), |op| {
            op.summary("Find one of your reports by your reference")
                .scope(SCOPE_REPORTS_READ)
                .query_parameter("partner_reference", true, "your reference for the report")
                .json_response::<ReportStatus>(200, "the report and the status of its cases")
                .error(404, "no report of yours has this reference")
                .error(422, "the query parameter is missing")
        })
        .route("post", "/v1/reports/bulk", post(bulk::submit_bulk), |mut op| {
            let line_in = op.schema_ref::<SubmitReport>();
            let line_out = op.schema_ref::<BulkLineResult>();
            op.summary("Submit many reports: one JSON report per line (NDJSON), one result line per input line")
                .scope(SCOPE_REPORTS_WRITE)
                .error(400, "the body is empty")
                .body(
                    "application/x-ndjson",
                    json!({"type": "string", "description": format!("one report per line, each a {}", line_in["$ref"])}),
                )
                .response(
                    200,
                    &format!("one line per input line, each a {}, streamed as reports are committed", line_out["$ref"]),
                    Some(("application/x-ndjson", json!({"type": "string"}))),
                )
        })
        .route("get", "/v1/reports/{report_id}", get(routes::get_report), |op| {
            op.summary("One of your reports and the status of its cases")
                .scope(SCOPE_REPORTS_READ)
                .path_parameter("report_id", "as answered when the report was accepted")
                .json_response::<ReportStatus>(200, "the report")
                .error(404, "no report of yours has this id")
        })
        .route("get", "/v1/cases/{case_id}", get(routes::get_case), |op| {
            op.summary("A case you reported, with its events")
                .scope(SCOPE_REPORTS_READ)
                .path_parameter("case_id", "as answered when the report was accepted")
                .json_response::<CaseView>(200, "the case")
                .error(404, "no case you reported has this id")
        })
        .route("get", "/v1/review", get(review::queue), |op| {
            op.summary("Cases waiting for an analyst, oldest first")
                .scope(review::SCOPE_REVIEW)
                .query_parameter("category", false, "only cases whose reporter claimed this class")
                .query_parameter("limit", false, "at most this many (1-1000, default 100)")
                .json_response::<Vec<review::ReviewItem>>(200, "the queue")
                .error(422, "unknown category or malformed query")
        })
        .route("post", "/v1/review/{case_id}/claim", post(review::claim), |op| {
            op.summary("Claim a case for review")
                .scope(review::SCOPE_REVIEW)
                .path_parameter("case_id", "from the queue")
                .json_response::<review::ReviewOutcome>(200, "claimed (or already yours)")
                .error(404, "no such case")
                .error(409, "claimed by another analyst, or not waiting for review")
        })
        .route("post", "/v1/review/{case_id}/decision", post(review::decide), |op| {
            op.summary("Decide a case: actionable (with class) or not; four eyes where policy requires")
                .scope(review::SCOPE_REVIEW)
                .path_parameter("case_id", "from the queue")
                .json_body::<review::ReviewDecision>()
                .json_response::<review::ReviewOutcome>(200, "recorded; awaiting_confirmation tells if a second analyst must confirm")
                .error(404, "no such case")
                .error(409, "the case changed since expected_version, or the decision breaks a rule (same analyst confirming)")
        })
        .route("get", "/report", get(public::form), |op| {
            op.summary("The public report form").response(200, "the form", Some(("text/html", html())))
        })
        .route("post", "/report", post(public::submit), |op| {
            op.summary("Submit the public report form")
                .body("application/x-www-form-urlencoded", json!({"type": "object", "properties": {
                    "urls": {"type": "string"}, "category": {"type": "string"}, "description": {"type": "string"},
                    "email": {"type": "string"}, "website": {"type": "string"}}}))
                .response(200, "thank-you page with a reference and a PIN", Some(("text/html", html())))
                .response(422, "the form again, with the problems next to the fields", Some(("text/html", html())))
                .response(413, "the form is too large", Some(("text/plain", json!({"type": "string"}))))
                .error(429, "too many reports from this address")
        })
        .route("get", "/report/status", get(public::status_page), |op| {
            op.summary("The status of a public report, for whoever holds its reference and PIN")
                .query_parameter("reference", false, "the reference on the receipt")
                .query_parameter("pin", false, "the PIN on the receipt")
                .response(200, "the status, or the form to ask for it", Some(("text/html", html())))
                .response(404, "reference or PIN is wrong", Some(("text/html", html())))
                .error(429, "too many attempts from this address")
        })
        .route("post", "/report/status", post(public::status_form), |op| {
            op.summary("The status of a public report, asked with the form (keeps the PIN out of URLs)")
                .body(
                    "application/x-www-form-urlencoded",
                    json!({"type": "object", "properties": {"reference": {"type": "string"}, "pin": {"type": "string"}}}),
                )
                .response(200, "the status", Some(("text/html", html())))
                .response(404, "reference or PIN is wrong", Some(("text/html", html())))
                .response(413, "the form is too large", Some(("text/plain", json!({"type": "string"}))))
                .error(429, "too many attempts from this address")
        })
        .route("get", "/v1/operator/queue", get(operator::queue), |op| {
            op.summary("Cases that cannot move on by themselves, with the reason, oldest first")
                .scope(operator::SCOPE_OPERATE)
                .query_parameter("limit", false, "at most this many (1-1000, default 100)")
                .json_response::<Vec<dijkwacht_runtime::operator::StuckCase>>(200, "the operator queue")
                .error(422, "malformed query")
        })
        .route("get", "/v1/operator/outbox/quarantined", get(operator::quarantined), |op| {
            op.summary("Outbox rows the relay will not publish, with the reason, oldest first")
                .scope(operator::SCOPE_OPERATE)
                .query_parameter("limit", false, "at most this many (1-1000, default 100)")
                .json_response::<Vec<dijkwacht_runtime::relay::QuarantinedRow>>(200, "the quarantined rows")
                .error(422, "malformed query")
        })
}

/// The intake's routes; the binary adds the other parts' and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    documented()
        .into_parts("dijkwacht intake", env!("CARGO_PKG_VERSION"))
        .0
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves until shutdown, letting requests in flight finish. Handlers see the client's
/// address (the public form limits per address).
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: Shutdown) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
