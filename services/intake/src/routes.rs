//! The partner and regulator handlers.

use crate::api::{CaseEventView, CaseStatusRef, CaseView, ReportAccepted, ReportStatus};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::submission::{Outcome, Submission};
use crate::validate::validate_report;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dijkwacht_domain::event::Reporter;
use dijkwacht_domain::{Case, CaseEvent, CaseId, PartnerId};
use dijkwacht_runtime::auth::Principal;
use dijkwacht_runtime::canonical::to_canonical_bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

pub use dijkwacht_http::SCOPE_REPORTS_WRITE;
pub const SCOPE_REPORTS_READ: &str = "reports:read";

/// A partner's report from a JSON value: validated, with the digest idempotency compares.
pub fn partner_submission(
    partner_id: &str,
    body: &serde_json::Value,
) -> Result<Submission, Vec<crate::api::FieldError>> {
    let report = validate_report(body)?;
    Ok(Submission {
        reporter: Reporter::Partner {
            partner_id: PartnerId(partner_id.to_owned()),
            partner_reference: report.partner_reference,
        },
        body_sha256: Sha256::digest(to_canonical_bytes(body)).into(),
        items: report.items,
        public_contact: None,
        trace: dijkwacht_runtime::telemetry::TraceParent::current(),
    })
}

fn partner(caller: &Caller, scope: &'static str) -> Result<Principal, ApiError> {
    let principal = caller.require(scope)?;
    if principal.kind != "partner" {
        return Err(ApiError::Forbidden(scope));
    }
    Ok(principal.clone())
}

/// Answers only after the report's events are committed: a 202 is a promise we keep.
/// The same report sent again is answered 200 with the original result.
pub async fn submit_report(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ApiError> {
    let partner = partner(&caller, SCOPE_REPORTS_WRITE)?;
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("the body is not valid JSON: {e}")))?;
    let submission = partner_submission(&partner.id, &json).map_err(ApiError::Invalid)?;
    match state.together.submit(submission).await? {
        Outcome::Accepted(accepted) => Ok((StatusCode::ACCEPTED, Json(accepted)).into_response()),
        Outcome::Replayed(accepted) => Ok((StatusCode::OK, Json(accepted)).into_response()),
        Outcome::ReferenceTaken { report_id } => Err(ApiError::ReferenceTaken(report_id)),
    }
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    pub partner_reference: Option<String>,
}

/// A partner's own report by id; anyone else's is "not found".
pub async fn get_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(report_id): Path<String>,
) -> Result<Json<ReportStatus>, ApiError> {
    let partner = partner(&caller, SCOPE_REPORTS_READ)?;
    let report_id = uuid::Uuid::parse_str(&report_id).map_err(|_| ApiError::NotFound)?;
    let row = sqlx::query(
        "SELECT report_id, partner_reference, received_at, cases FROM reports WHERE report_id = $1 AND partner_id = $2",
    )
    .bind(report_id)
    .bind(&partner.id)
    .fetch_optional(state.store.pool())
    .await?;
    report_status(&state, row).await
}

/// A partner's own report by its reference.
pub async fn find_report(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<ReportStatus>, ApiError> {
    let partner = partner(&caller, SCOPE_REPORTS_READ)?;
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![crate::api::FieldError::new("", e.body_text())]))?;
    let reference = query.partner_reference.filter(|r| !r.is_empty()).ok_or_else(|| {
        ApiError::Invalid(vec![crate::api::FieldError::new(
            "",
            "the query parameter partner_reference is required",
        )])
    })?;
    if reference.contains('\0') {
        // No stored reference can contain it (validation refuses it).
        return Err(ApiError::NotFound);
    }
    let row = sqlx::query(
        "SELECT report_id, partner_reference, received_at, cases FROM reports WHERE partner_id = $1 AND partner_reference = $2",
    )
    .bind(&partner.id)
    .bind(&reference)
    .fetch_optional(state.store.pool())
    .await?;
    report_status(&state, row).await
}

async fn report_status(state: &AppState, row: Option<sqlx::postgres::PgRow>) -> Result<Json<ReportStatus>, ApiError> {
    let row = row.ok_or(ApiError::NotFound)?;
    let accepted = ReportAccepted {
        report_id: dijkwacht_domain::ReportId(row.try_get("report_id")?),
        cases: serde_json::from_value(row.try_get("cases")?)?,
    };
    let ids: Vec<CaseId> = accepted.cases.iter().map(|c| c.case_id).collect();
    let cases = state.store.load(&ids).await?;
    Ok(Json(ReportStatus {
        report_id: accepted.report_id,
        partner_reference: row.try_get("partner_reference")?,
        received_at: row.try_get("received_at")?,
        cases: accepted
            .cases
            .into_iter()
            .map(|c| CaseStatusRef {
                status: cases
                    .cases
                    .get(&c.case_id)
                    .map_or("received", |loaded| loaded.case.status.as_reporter_sees_it())
                    .to_owned(),
                case_id: c.case_id,
                url: c.url,
                existing: c.existing,
            })
            .collect(),
    }))
}

/// Whether `partner_id` reported this case, first or again.
fn reported_by(events: &[dijkwacht_runtime::RecordedEvent], partner_id: &str) -> bool {
    events.iter().any(|e| {
        let reporter = match &e.event {
            CaseEvent::ReportReceived(r) => &r.reporter,
            CaseEvent::ReportedAgain(r) => &r.reporter,
            _ => return false,
        };
        reporter.partner_id().is_some_and(|p| p.0 == partner_id)
    })
}

/// A case the partner reported; anyone else's is "not found".
pub async fn get_case(
    State(state): State<AppState>,
    caller: Caller,
    Path(case_id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    let partner = partner(&caller, SCOPE_REPORTS_READ)?;
    let case_id = uuid::Uuid::parse_str(&case_id)
        .map(CaseId)
        .map_err(|_| ApiError::NotFound)?;
    let events = state.store.read_stream(case_id).await?;
    if !reported_by(&events, &partner.id) {
        return Err(ApiError::NotFound);
    }
    let case = Case::from_events(case_id, events.iter().map(|e| (&e.event, e.recorded_at)));
    Ok(Json(CaseView {
        case_id,
        status: case.status.as_reporter_sees_it().to_owned(),
        url: case.report.map(|r| r.location.url).unwrap_or_default(),
        events: events
            .iter()
            .filter(|e| !e.event.concerns_police())
            .map(|e| CaseEventView {
                event_type: e.event.type_name().to_owned(),
                recorded_at: e.recorded_at,
            })
            .collect(),
    }))
}
