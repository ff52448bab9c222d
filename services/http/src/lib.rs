//! The edge of the HTTP API that every part's routes share: who is calling (bearer keys and
//! their scopes), how fast they may call, how a failure is answered (a status and a JSON
//! Pointer), and the OpenAPI description grown with the routes. A part exports its own
//! documented router; the binary mounts them side by side.

pub mod auth;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod schema;
pub mod trace;

pub use auth::{Caller, Edge, SCOPE_OPERATE, SCOPE_REPORTS_WRITE, SCOPE_REVIEW};
pub use error::{ApiError, ErrorBody, FieldError};
pub use limits::{LimitSettings, Limits};
pub use openapi::DocumentedRouter;
pub use schema::{json_body, Schema};

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query};
use axum::Router;
use dijkwacht_runtime::{Process, Resource};
use serde::Deserialize;

/// Request bodies above this are refused with 413 before they are read (bulk excepted:
/// it streams).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A part's documented routes, ready to serve with their state.
pub fn routes<S: Clone + Send + Sync + 'static>(documented: DocumentedRouter<S>, state: S) -> Router {
    documented
        .into_parts("", "")
        .0
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// One set of rate limits per process, whichever part's route a caller uses.
impl Resource for Limits {
    async fn start(process: &mut Process) -> anyhow::Result<Self> {
        let settings = &process.settings;
        Ok(Limits::new(LimitSettings {
            partner_requests_per_second: settings.partner_requests_per_second,
            partner_burst: settings.partner_burst,
            public_reports_per_hour: settings.public_reports_per_hour,
            bulk_max_bytes: settings.bulk_max_bytes,
            bulk_max_lines: settings.bulk_max_lines,
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

/// The `limit` of a list request: 1–1000, 100 when not given.
pub fn list_limit(query: Result<Query<ListQuery>, QueryRejection>) -> Result<i64, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![FieldError::new("", e.body_text())]))?;
    Ok(query.limit.unwrap_or(100).clamp(1, 1000))
}

use dijkwacht_domain::{Case, CaseId, Command};
use dijkwacht_runtime::{CaseCommand, EventStore, Metadata, Rejection};

/// Decides `command` on one case through the one command path, for a request: the case as
/// it is after, or the answer for the caller (404 for no such case, 409 with the reason).
pub async fn execute_one(
    store: &EventStore,
    now: chrono::DateTime<chrono::Utc>,
    case_id: CaseId,
    expected_version: Option<u32>,
    command: Command,
    actor: String,
) -> Result<std::sync::Arc<Case>, ApiError> {
    let command = CaseCommand {
        expected_version,
        ..CaseCommand::new(case_id, command, Metadata::actor(actor))
    };
    let mut executed = store.execute(&[command], now).await?;
    let case = executed.cases.remove(&case_id).ok_or(ApiError::NotFound)?;
    match executed.outcomes.pop().expect("one outcome per command") {
        Ok(()) => Ok(case),
        Err(_) if case.version == 0 => Err(ApiError::NotFound),
        Err(Rejection::Refused(refusal)) => Err(ApiError::Conflict(refusal.to_string())),
        Err(Rejection::VersionChanged { expected, current }) => Err(ApiError::Conflict(format!(
            "the case changed since version {expected}; it is at version {current} now: reload it and decide again"
        ))),
        Err(Rejection::Unreadable(reason)) => Err(ApiError::Conflict(reason)),
    }
}

/// A case id from a path; anything else is a case that does not exist.
pub fn case_id(raw: &str) -> Result<CaseId, ApiError> {
    raw.parse().map(CaseId).map_err(|_| ApiError::NotFound)
}
