//! Bearer-key authentication as an axum extractor, with the caller's rate limit.

use crate::error::ApiError;
use crate::limits::Limits;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use dijkwacht_runtime::auth::{authenticate, Principal};
use sqlx::PgPool;
use std::net::SocketAddr;

/// Partners' keys carry it to submit reports (and a network hotline's, to confirm a case
/// forwarded to it).
pub const SCOPE_REPORTS_WRITE: &str = "reports:write";

/// Analysts' keys carry it: the review queue, and every task that waits for an analyst.
pub const SCOPE_REVIEW: &str = "review";

/// Operators' keys carry it: what runs the system (the operator queue, quarantined outbox
/// rows, the pace of dispatch, the regulators' access audit).
pub const SCOPE_OPERATE: &str = "operate";

/// The authenticated caller. Extracting it answers 401 when the key is missing, unknown or
/// revoked, and 429 when the caller is over its rate limit.
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless the key carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<&Principal, ApiError> {
        if self.0.has_scope(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }

    /// The analyst's id: 403 unless the key is an analyst's with scope `review`, so every
    /// decision an analyst records names a person.
    pub fn analyst(&self) -> Result<String, ApiError> {
        let principal = self.require(SCOPE_REVIEW)?;
        if principal.kind != "analyst" {
            return Err(ApiError::Forbidden(SCOPE_REVIEW));
        }
        Ok(principal.id.clone())
    }
}

/// What a router's state gives the edge: where keys are looked up, and the rate limits
/// (one set per process, shared by every part's routes).
pub trait Edge: Send + Sync {
    fn pool(&self) -> &PgPool;
    fn limits(&self) -> &Limits;
}

impl<S: Edge> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(client)| client.ip());
        if let Some(address) = address {
            state.limits().check_not_guessing(address)?;
        }
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let Some(principal) = authenticate(state.pool(), key).await? else {
            return Err(address.map_or(ApiError::Unauthorized, |address| state.limits().unknown_key(address)));
        };
        state
            .limits()
            .check_partner(&format!("{}:{}", principal.kind, principal.id))?;
        Ok(Caller(principal))
    }
}
