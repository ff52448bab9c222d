//! Every failure of the API becomes one of these; each says what the caller should do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dijkwacht_domain::ReportId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every 4xx answer: what was wrong and where.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub errors: Vec<FieldError>,
    /// For `409 Conflict`: the report that already holds this reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<ReportId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the offending value; empty for the whole request.
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug)]
pub enum ApiError {
    /// No or an unknown API key: authenticate.
    Unauthorized,
    /// A signed request whose signature does not hold: says why (stale, missing, wrong).
    BadSignature(String),
    /// A valid key without the scope this needs.
    Forbidden(&'static str),
    /// Not there, or not the caller's to see.
    NotFound,
    /// The body is not JSON at all.
    BadJson(String),
    /// The body is JSON but breaks the rules; every problem is listed.
    Invalid(Vec<FieldError>),
    /// The partner reference already names a different report.
    ReferenceTaken(ReportId),
    /// The request contradicts the current state (a changed case, a rule); says what to do.
    Conflict(String),
    /// The request is larger than allowed: split it.
    TooLarge(String),
    /// Too many requests: come back after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// Our fault; the caller may retry. Details go to the log, not the caller.
    Internal(String),
}

impl<E: std::error::Error> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError::Internal(error.to_string())
    }
}

fn body(pointer: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        errors: vec![FieldError::new(pointer, message)],
        report_id: None,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                body("", "a valid API key is required: Authorization: Bearer <key>"),
            )
                .into_response(),
            ApiError::BadSignature(reason) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Dijkwacht-Signature")],
                body("", reason),
            )
                .into_response(),
            ApiError::Forbidden(scope) => (
                StatusCode::FORBIDDEN,
                body("", format!("this API key lacks the scope {scope}")),
            )
                .into_response(),
            ApiError::NotFound => (StatusCode::NOT_FOUND, body("", "not found")).into_response(),
            ApiError::BadJson(message) => (StatusCode::BAD_REQUEST, body("", message)).into_response(),
            ApiError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(ErrorBody {
                    errors,
                    report_id: None,
                }),
            )
                .into_response(),
            ApiError::ReferenceTaken(report_id) => (
                StatusCode::CONFLICT,
                Json(ErrorBody {
                    errors: vec![FieldError::new(
                        "/partner_reference",
                        format!("this reference already names report {report_id}, with a different body"),
                    )],
                    report_id: Some(report_id),
                }),
            )
                .into_response(),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, body("", message)).into_response(),
            ApiError::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, body("", message)).into_response(),
            ApiError::RateLimited { retry_after_secs } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    body("", format!("rate limit reached; retry after {retry_after_secs} s")),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body("", "internal error; nothing was accepted, retry later"),
                )
                    .into_response()
            }
        }
    }
}
