//! What operators need to see: cases that cannot move on by themselves, and outbox rows the
//! relay set apart. Read-only; each entry says why.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use dijkwacht_runtime::operator::{self, StuckCase};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct QuarantinedRow {
    pub outbox_id: i64,
    /// The event's global position.
    pub position: i64,
    pub topic: String,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
}

/// Outbox rows the relay will not publish, oldest first.
pub async fn quarantined(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<QuarantinedRow>>, ApiError> {
    caller.require(SCOPE_OPERATE)?;
    let rows: Vec<(i64, i64, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, position, topic, quarantine_reason, quarantined_at FROM outbox \
         WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at, id LIMIT $1",
    )
    .bind(limit(query)?)
    .fetch_all(state.store.pool())
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(outbox_id, position, topic, reason, quarantined_at)| QuarantinedRow {
                outbox_id,
                position,
                topic,
                reason: reason.unwrap_or_default(),
                quarantined_at,
            })
            .collect(),
    ))
}
