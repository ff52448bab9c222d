//! What operators need to see: cases that cannot move on by themselves, and outbox rows the
//! relay set apart. Read-only; each entry says why.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use dijkwacht_http::{list_limit as limit, ListQuery};
use dijkwacht_runtime::operator::{self, StuckCase};
use dijkwacht_runtime::relay::{self, QuarantinedRow};

pub use dijkwacht_http::SCOPE_OPERATE;

/// Stuck cases, oldest first.
pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<StuckCase>>, ApiError> {
    caller.require(SCOPE_OPERATE)?;
    Ok(Json(operator::list(state.store.pool(), limit(query)?).await?))
}

/// Outbox rows the relay will not publish, oldest first.
pub async fn quarantined(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<QuarantinedRow>>, ApiError> {
    caller.require(SCOPE_OPERATE)?;
    Ok(Json(relay::quarantined(state.store.pool(), limit(query)?).await?))
}
