//! The dashboard at `/dashboard`, for regulators and staff: sign in with an API key once,
//! then a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` outside the demo). It shows
//! the platforms in the caller's remit, each with the time-to-removal distribution, the share
//! removed within the deadline and the precision record by month, and the ignored notices.
//! The page, its script and the charting library (Chart.js, vendored from npm by
//! `make vendor`) are served from the binary; the figures come from `/dashboard/data`.

mod data;

use crate::regulator::{record_access, RegulatorApi, SCOPE_COMPLIANCE_READ};
use crate::remit::Remit;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::TimeDelta;
use dijkwacht_http::{ApiError, Caller, SCOPE_OPERATE, SCOPE_REVIEW};
use dijkwacht_runtime::auth::{authenticate, key_digest, Principal};
use serde::Deserialize;
use std::net::SocketAddr;

const COOKIE_NAME: &str = "dijkwacht_session";
const SESSION: TimeDelta = TimeDelta::hours(8);
const TICKET: TimeDelta = TimeDelta::minutes(2);
const CHART_JS: &str = include_str!("../../assets/chart.js-4.6.1/chart.umd.min.js");
const SCRIPT: &str = include_str!("dashboard.js");
const PAGE: &str = include_str!("page.html");
const SIGN_IN: &str = include_str!("sign-in.html");
/// Scripts from this origin only; the charts' inline styles are Chart.js's own.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'";

/// The dashboard's routes: HTML and a session cookie, not the JSON API, so they are not in
/// the OpenAPI description.
pub fn router(api: RegulatorApi) -> Router {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/session", post(sign_in))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/tickets", post(ticket))
        .route("/dashboard/enter", get(enter))
        .route("/dashboard/data", get(figures))
        .route("/dashboard/assets/chart.js", get(|| asset(CHART_JS)))
        .route("/dashboard/assets/dashboard.js", get(|| asset(SCRIPT)))
        .with_state(api)
}

async fn asset(body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(CONTENT_SECURITY_POLICY, POLICY), (CACHE_CONTROL, "no-store")],
        Html(body),
    )
        .into_response()
}

/// Who may sign in: regulators (who see their remit), and staff — operators and analysts
/// (who see every platform).
fn may_sign_in(principal: &Principal) -> bool {
    match principal.kind.as_str() {
        "regulator" => principal.has_scope(SCOPE_COMPLIANCE_READ),
        "operator" | "analyst" => principal.has_scope(SCOPE_OPERATE) || principal.has_scope(SCOPE_REVIEW),
        _ => false,
    }
}

/// The session secret the request's cookie carries, if any.
fn session_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// The session cookie set to `value` for `max_age` seconds, and on to the dashboard.
fn set_cookie(value: &str, max_age: i64, secure: bool) -> Result<Response, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE_NAME}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::SEE_OTHER,
        [(SET_COOKIE, cookie), (LOCATION, HeaderValue::from_static("/dashboard"))],
    )
        .into_response())
}

/// A new secret: 244 random bits, as API keys are made.
fn secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

async fn store_secret(
    api: &RegulatorApi,
    kind: &str,
    principal: &Principal,
    lasts: TimeDelta,
) -> Result<String, ApiError> {
    let secret = secret();
    sqlx::query(
        "INSERT INTO dashboard_sessions (secret_sha256, kind, principal_kind, principal_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key_digest(&secret).as_slice())
    .bind(kind)
    .bind(&principal.kind)
    .bind(&principal.id)
    .bind(api.clock.now() + lasts)
    .execute(api.store.pool())
    .await?;
    Ok(secret)
}

/// The signed-in principal of a session cookie, if it is valid.
async fn signed_in(api: &RegulatorApi, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    let Some(secret) = session_secret(headers) else {
        return Ok(None);
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT principal_kind, principal_id FROM dashboard_sessions \
         WHERE secret_sha256 = $1 AND kind = 'session' AND expires_at > $2",
    )
    .bind(key_digest(secret).as_slice())
    .bind(api.clock.now())
    .fetch_optional(api.store.pool())
    .await?;
    Ok(row.map(|(kind, id)| Principal {
        kind,
        id,
        scopes: vec![],
    }))
}

/// Starts a session: the cookie, and on to the dashboard.
async fn session_for(api: &RegulatorApi, principal: &Principal) -> Result<Response, ApiError> {
    let secret = store_secret(api, "session", principal, SESSION).await?;
    set_cookie(&secret, SESSION.num_seconds(), api.secure_cookies)
}

async fn page(State(api): State<RegulatorApi>, headers: HeaderMap) -> Result<Response, ApiError> {
    Ok(match signed_in(&api, &headers).await? {
        Some(_) => html(StatusCode::OK, PAGE.to_owned()),
        None => html(StatusCode::OK, SIGN_IN.replace("{{message}}", "")),
    })
}

#[derive(Deserialize)]
struct SignIn {
    key: String,
}

async fn sign_in(
    State(api): State<RegulatorApi>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Form(form): Form<SignIn>,
) -> Result<Response, ApiError> {
    api.limits.check_not_guessing(client.ip())?;
    let refused = || {
        html(
            StatusCode::UNAUTHORIZED,
            SIGN_IN.replace("{{message}}", "That key does not open the dashboard."),
        )
    };
    let Some(principal) = authenticate(api.store.pool(), form.key.trim()).await? else {
        let _ = api.limits.unknown_key(client.ip());
        return Ok(refused());
    };
    if !may_sign_in(&principal) {
        return Ok(refused());
    }
    session_for(&api, &principal).await
}

async fn sign_out(State(api): State<RegulatorApi>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(secret) = session_secret(&headers) {
        sqlx::query("DELETE FROM dashboard_sessions WHERE secret_sha256 = $1")
            .bind(key_digest(secret).as_slice())
            .execute(api.store.pool())
            .await?;
    }
    set_cookie("", 0, api.secure_cookies)
}

/// A one-time sign-in link for the holder of a key (`POST` with `Authorization: Bearer`),
/// valid for two minutes: for tools that open the dashboard in a browser.
async fn ticket(State(api): State<RegulatorApi>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    if !may_sign_in(&caller.0) {
        return Err(ApiError::Forbidden(SCOPE_COMPLIANCE_READ));
    }
    let ticket = store_secret(&api, "ticket", &caller.0, TICKET).await?;
    Ok(Json(
        serde_json::json!({ "url": format!("/dashboard/enter?ticket={ticket}") }),
    ))
}

#[derive(Deserialize)]
struct Enter {
    ticket: String,
}

async fn enter(State(api): State<RegulatorApi>, Query(enter): Query<Enter>) -> Result<Response, ApiError> {
    let used: Option<(String, String)> = sqlx::query_as(
        "DELETE FROM dashboard_sessions WHERE secret_sha256 = $1 AND kind = 'ticket' AND expires_at > $2 \
         RETURNING principal_kind, principal_id",
    )
    .bind(key_digest(&enter.ticket).as_slice())
    .bind(api.clock.now())
    .fetch_optional(api.store.pool())
    .await?;
    match used {
        Some((kind, id)) => {
            let principal = Principal {
                kind,
                id,
                scopes: vec![],
            };
            session_for(&api, &principal).await
        }
        None => Ok(html(
            StatusCode::UNAUTHORIZED,
            SIGN_IN.replace(
                "{{message}}",
                "That link was used or has expired; sign in with your key.",
            ),
        )),
    }
}

/// The figures of every platform in the signed-in caller's remit.
async fn figures(State(api): State<RegulatorApi>, headers: HeaderMap) -> Result<Response, ApiError> {
    let principal = signed_in(&api, &headers).await?.ok_or(ApiError::Unauthorized)?;
    let remit = if principal.kind == "regulator" {
        Remit::of(api.store.pool(), &principal.id).await?
    } else {
        Remit::all()
    };
    let body = serde_json::to_vec(&data::dashboard(api.store.pool(), &principal, &remit, api.clock.now()).await?)?;
    if principal.kind == "regulator" {
        record_access(&api, &principal.id, "GET", "/dashboard/data", 200, body.len() as i64).await?;
    }
    Ok(([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], body).into_response())
}
