//! What operators need to see: cases that cannot move on by themselves, and outbox rows the
//! relay set apart. Read-only; each entry says why.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use dijkwacht_runtime::operator::{self, StuckCase};
use dijkwacht_runtime::relay::{self, QuarantinedRow};
use serde::Deserialize;

pub const SCOPE_OPERATE: &str = "operate";

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

fn limit(query: Result<Query<ListQuery>, QueryRejection>) -> Result<i64, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![crate::api::FieldError::new("", e.body_text())]))?;
    Ok(query.limit.unwrap_or(100).clamp(1, 1000))
}

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
