//! The handlers.

use crate::api::{CaseEventView, CaseRef, CaseView, ReportAccepted};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::validate::validate_report;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dijkwacht_domain::event::Reporter;
use dijkwacht_domain::{CaseEvent, CaseId, ReportId, ReportReceived};
use dijkwacht_projection::{platform_compliance, PlatformCompliance};
use dijkwacht_runtime::{LoadedCase, Metadata, NewEvents};

pub const SCOPE_REPORTS_WRITE: &str = "reports:write";
pub const SCOPE_REPORTS_READ: &str = "reports:read";
pub const SCOPE_COMPLIANCE_READ: &str = "compliance:read";

/// Answers only after the report's events are committed: a 202 is a promise we keep.
pub async fn submit_report(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<ReportAccepted>), ApiError> {
    let partner = caller.require(SCOPE_REPORTS_WRITE)?;
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("the body is not valid JSON: {e}")))?;
    let report = validate_report(&json).map_err(ApiError::Invalid)?;
    let report_id = ReportId::new();
    let metadata = Metadata::actor(format!("partner:{}", partner.id));
    let mut appends = Vec::with_capacity(report.items.len());
    let mut cases = Vec::with_capacity(report.items.len());
    for item in report.items {
        let case_id = CaseId::new();
        cases.push(CaseRef {
            case_id,
            url: item.location.url.clone(),
        });
        let received = CaseEvent::ReportReceived(ReportReceived {
            report_id,
            reporter: Reporter::Partner {
                partner_id: partner.id.as_str().into(),
                partner_reference: report.partner_reference.clone(),
            },
            location: item.location,
            claimed_class: item.claimed_class,
        });
        let new_case = LoadedCase::new(case_id);
        appends.push(NewEvents {
            case_id,
            expected_version: 0,
            head_hash: new_case.head_hash,
            events: vec![(received, metadata.clone())],
        });
    }
    state.store.append(&appends, state.clock.now()).await?;
    Ok((StatusCode::ACCEPTED, Json(ReportAccepted { report_id, cases })))
}

/// A partner sees its own cases only; anyone else's is "not found".
pub async fn get_case(
    State(state): State<AppState>,
    caller: Caller,
    Path(case_id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    let partner = caller.require(SCOPE_REPORTS_READ)?;
    let case_id = uuid::Uuid::parse_str(&case_id)
        .map(CaseId)
        .map_err(|_| ApiError::NotFound)?;
    let events = state.store.read_stream(case_id).await?;
    let Some(CaseEvent::ReportReceived(report)) = events.first().map(|e| &e.event) else {
        return Err(ApiError::NotFound);
    };
    let Reporter::Partner { partner_id, .. } = &report.reporter;
    if partner.kind != "partner" || partner_id.0 != partner.id {
        return Err(ApiError::NotFound);
    }
    let case = dijkwacht_domain::Case::from_events(case_id, events.iter().map(|e| (&e.event, e.recorded_at)));
    Ok(Json(CaseView {
        case_id,
        status: case.status.as_str().to_owned(),
        url: report.location.url.clone(),
        events: events
            .iter()
            .map(|e| CaseEventView {
                event_type: e.event.type_name().to_owned(),
                recorded_at: e.recorded_at,
            })
            .collect(),
    }))
}

pub async fn platform_compliance_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(platform_id): Path<String>,
) -> Result<Json<PlatformCompliance>, ApiError> {
    caller.require(SCOPE_COMPLIANCE_READ)?;
    platform_compliance(state.store.pool(), &platform_id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// 200 once every stage consumes and the database answers; 503 until then.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let mut report = state.health.report();
    let database = sqlx::query("SELECT 1").execute(state.store.pool()).await.is_ok();
    report.ready &= database;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"ready": report.ready, "database": database, "components": report.components})),
    )
        .into_response()
}
