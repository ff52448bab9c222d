//! Every failure of the API becomes one of these; each says what the caller should do.

use crate::api::{ErrorBody, FieldError};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub enum ApiError {
    /// No or an unknown API key: authenticate.
    Unauthorized,
    /// A valid key without the scope this needs.
    Forbidden(&'static str),
    /// Not there, or not the caller's to see.
    NotFound,
    /// The body is not JSON at all.
    BadJson(String),
    /// The body is JSON but breaks the rules; every problem is listed.
    Invalid(Vec<FieldError>),
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
            ApiError::Forbidden(scope) => (
                StatusCode::FORBIDDEN,
                body("", format!("this API key lacks the scope {scope}")),
            )
                .into_response(),
            ApiError::NotFound => (StatusCode::NOT_FOUND, body("", "not found")).into_response(),
            ApiError::BadJson(message) => (StatusCode::BAD_REQUEST, body("", message)).into_response(),
            ApiError::Invalid(errors) => (StatusCode::UNPROCESSABLE_ENTITY, Json(ErrorBody { errors })).into_response(),
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
