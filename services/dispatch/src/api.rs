//! Notices by HTTPS API: the notice as JSON with its rendered text, the notice id as
//! `Idempotency-Key`, and the platform's authentication.

use crate::registry::ApiAuth;
use chrono::{DateTime, Utc};
use dijkwacht_domain::{AfterFailure, DispatchOutcome};
use dijkwacht_runtime::outbound::{self, AddressPolicy};
use dijkwacht_runtime::telemetry::{trace, TraceParent};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The answers of a platform kept in an event, cut to this many bytes.
const ANSWER_CAP: usize = 4096;
/// A cached OAuth token is fetched again this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

pub use dijkwacht_runtime::signature::{sign as signature, KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// What a platform may answer to a notice.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    notice_reference: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

pub struct ApiSender {
    http: reqwest::Client,
    addresses: AddressPolicy,
    /// OAuth access tokens by token URL and client id, with when to stop using them.
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

enum Failure {
    Retry,
    NextChannel,
}

fn failed(reason: String, failure: Failure) -> DispatchOutcome {
    DispatchOutcome::Failed {
        reason,
        next: match failure {
            Failure::Retry => AfterFailure::Retry { not_before: None },
            Failure::NextChannel => AfterFailure::NextChannel,
        },
    }
}

impl ApiSender {
    pub fn new(addresses: AddressPolicy, request_timeout: Duration) -> Result<Self, reqwest::Error> {
        // No redirects: one would turn the POST into a GET whose 200 says nothing about the
        // notice, so every 3xx is a failed attempt, with the Location recorded.
        let http = addresses
            .client_builder(0)
            .timeout(request_timeout)
            .user_agent(concat!("dijkwacht/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            addresses,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Posts `body` (the notice's JSON) to `endpoint`; the outcome says what to do next.
    pub async fn send(
        &self,
        endpoint: &str,
        auth: &ApiAuth,
        idempotency_key: &str,
        body: Vec<u8>,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        match reqwest::Url::parse(endpoint) {
            Ok(url) => {
                if let Err(refused) = self.addresses.check_url(&url) {
                    return failed(format!("not sent: {refused}"), Failure::NextChannel);
                }
            }
            Err(error) => {
                return failed(
                    format!("the endpoint {endpoint:?} is not a URL: {error}"),
                    Failure::NextChannel,
                )
            }
        }
        let mut request = self
            .http
            .post(endpoint)
            .header("Idempotency-Key", idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(traceparent) = TraceParent::current() {
            request = request.header(trace::HEADER, traceparent.as_str());
        }
        let request = match self.authenticate(request, auth, &body, now).await {
            Ok(request) => request,
            Err(reason) => return failed(reason, Failure::NextChannel),
        };
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => {
                if let Some(refused) = outbound::refusal(&error) {
                    return failed(format!("not sent: {refused}"), Failure::NextChannel);
                }
                return failed(format!("request to {endpoint} failed: {error}"), Failure::Retry);
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ANSWER_CAP)]).into_owned();
        let answer: Answer = serde_json::from_slice(&bytes).unwrap_or_default();
        self.outcome(endpoint, auth, status, &headers, answer, text, now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn outcome(
        &self,
        endpoint: &str,
        auth: &ApiAuth,
        status: StatusCode,
        headers: &HeaderMap,
        answer: Answer,
        text: String,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        let said = |text: &str| {
            format!(
                "{endpoint} answered {status}: {}",
                text.chars().take(500).collect::<String>()
            )
        };
        match status.as_u16() {
            200..=299 => DispatchOutcome::Delivered {
                platform_reference: answer.notice_reference,
                message_id: None,
            },
            409 | 422 => DispatchOutcome::Rejected {
                reason: answer.reason.or(answer.error).unwrap_or_else(|| status.to_string()),
                answer: Some(text),
            },
            429 => DispatchOutcome::Failed {
                reason: said(&text),
                next: AfterFailure::Retry {
                    not_before: retry_after(headers, now),
                },
            },
            401 if matches!(auth, ApiAuth::Oauth2 { .. }) => {
                // The token may have been revoked early: the next attempt fetches a new one.
                self.forget_token(auth).await;
                failed(said(&text), Failure::Retry)
            }
            300..=399 => {
                let location = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("(none)");
                // The endpoint moved: the same address cannot help, an operator must correct
                // the registry; meanwhile the next channel.
                failed(
                    format!("{endpoint} answered {status} redirecting to {location}; redirects are not followed"),
                    Failure::NextChannel,
                )
            }
            408 | 425 | 500..=599 => failed(said(&text), Failure::Retry),
            _ => failed(said(&text), Failure::NextChannel),
        }
    }

    async fn authenticate(
        &self,
        request: RequestBuilder,
        auth: &ApiAuth,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<RequestBuilder, String> {
        Ok(match auth {
            ApiAuth::None => request,
            ApiAuth::Bearer { token } => request.bearer_auth(token.read()?),
            ApiAuth::Oauth2 { .. } => request.bearer_auth(self.token(auth).await?),
            ApiAuth::Hmac { secret, key_id } => {
                let timestamp = now.timestamp();
                let request = request
                    .header(TIMESTAMP_HEADER, timestamp)
                    .header(SIGNATURE_HEADER, signature(secret.read()?.as_bytes(), timestamp, body));
                match key_id {
                    Some(key_id) => request.header(KEY_ID_HEADER, key_id),
                    None => request,
                }
            }
        })
    }

    async fn forget_token(&self, auth: &ApiAuth) {
        if let ApiAuth::Oauth2 {
            token_url, client_id, ..
        } = auth
        {
            self.tokens.lock().await.remove(&(token_url.clone(), client_id.clone()));
        }
    }

    /// A cached token, or a new one from the token endpoint. The lock is held while
    /// fetching, so concurrent sends ask for one token, not one each.
    async fn token(&self, auth: &ApiAuth) -> Result<String, String> {
        let ApiAuth::Oauth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        } = auth
        else {
            return Err("not an OAuth channel".into());
        };
        let key = (token_url.clone(), client_id.clone());
        let mut tokens = self.tokens.lock().await;
        if let Some((token, until)) = tokens.get(&key) {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let url = reqwest::Url::parse(token_url).map_err(|error| format!("the token URL {token_url:?}: {error}"))?;
        self.addresses
            .check_url(&url)
            .map_err(|refused| format!("token not fetched: {refused}"))?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(url)
            .basic_auth(client_id, Some(client_secret.read()?))
            .form(&form)
            .send()
            .await
            .map_err(|error| format!("fetching a token from {token_url}: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the token endpoint {token_url} answered {status}"));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|error| format!("the token endpoint {token_url} answered no token: {error}"))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300)).saturating_sub(TOKEN_MARGIN);
        tokens.insert(key, (answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = headers
        .get(RETRY_AFTER)
        .and_then(|value: &HeaderValue| value.to_str().ok())?;
    match value.trim().parse::<i64>() {
        Ok(seconds) => Some(now + chrono::TimeDelta::seconds(seconds.clamp(0, 86_400))),
        Err(_) => DateTime::parse_from_rfc2822(value)
            .ok()
            .map(|at| at.with_timezone(&Utc)),
    }
}
