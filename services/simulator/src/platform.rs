//! How a simulated platform behaves: how it wants to be authenticated, and how it answers
//! (slow, unavailable for a while, throttling, refusing, never removing, no API at all).

use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, Utc};
use dijkwacht_runtime::signature;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimulatedAuth {
    #[default]
    None,
    Bearer {
        token: String,
    },
    /// Client credentials at `/platforms/{id}/oauth/token`; tokens live `token_lifetime_secs`.
    Oauth2 {
        client_id: String,
        client_secret: String,
        #[serde(default = "an_hour")]
        token_lifetime_secs: u64,
    },
    /// `Dijkwacht-Signature: sha256=HEX` over `{timestamp}.{body}` with any of `secrets`
    /// (two during a rotation), the timestamp at most `max_skew_secs` from now.
    Hmac {
        secrets: Vec<String>,
        #[serde(default = "five_minutes")]
        max_skew_secs: i64,
    },
}

fn an_hour() -> u64 {
    3600
}

fn five_minutes() -> i64 {
    300
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    pub auth: SimulatedAuth,
    /// Answers a notice this much later.
    pub delay_ms: u64,
    /// Answers 503 to the first this-many notice requests.
    pub unavailable_first: u32,
    /// Answers 429 with `Retry-After` to the first this-many notice requests.
    pub throttle_first: u32,
    pub retry_after_secs: u64,
    /// Refuses every notice (422) with this reason.
    pub rejects: Option<String>,
    /// Never takes anything down.
    pub never_removes: bool,
    /// Takes notices by e-mail or web form only: its API answers 404.
    pub no_api: bool,
    /// The abuse mailbox that reaches this platform.
    pub mailbox: Option<String>,
    /// Bounces mail to its mailbox (a form-only platform).
    pub refuses_mail: bool,
    /// Answers its notices, signed, at the events route of the dijkwacht it is connected to.
    pub answers: Option<SimulatedAnswers>,
}

/// How a simulated platform answers a notice: a receipt at once (DSA Art. 16(4)), and a
/// decision (16(5)) in the Transparency Database's words when it takes the content down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedAnswers {
    /// The secret it signs with, as dijkwacht's registry names it for this platform.
    pub secret: String,
    /// Its id in dijkwacht's registry, where that differs from its simulator id.
    #[serde(default)]
    pub platform_id: Option<String>,
    #[serde(default = "yes")]
    pub receipt: bool,
    #[serde(default = "yes")]
    pub decision: bool,
}

fn yes() -> bool {
    true
}

/// Why a request was not let in.
pub enum Denied {
    Unauthorized(String),
}

impl Behaviour {
    /// Checks a notice request's credentials. `valid_token` says whether an OAuth token is one
    /// this platform issued and that has not expired.
    pub fn admit(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        valid_token: impl Fn(&str) -> bool,
    ) -> Result<(), Denied> {
        let bearer = || {
            headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::to_owned)
        };
        match &self.auth {
            SimulatedAuth::None => Ok(()),
            SimulatedAuth::Bearer { token } => match bearer() {
                Some(given) if given == *token => Ok(()),
                _ => Err(Denied::Unauthorized("a valid bearer token is required".into())),
            },
            SimulatedAuth::Oauth2 { .. } => match bearer() {
                Some(given) if valid_token(&given) => Ok(()),
                _ => Err(Denied::Unauthorized("an unexpired access token is required".into())),
            },
            SimulatedAuth::Hmac { secrets, max_skew_secs } => {
                let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
                signature::verify(
                    secrets,
                    header(signature::TIMESTAMP_HEADER),
                    header(signature::SIGNATURE_HEADER),
                    body,
                    now.timestamp(),
                    *max_skew_secs,
                )
                .map_err(|error| Denied::Unauthorized(error.to_string()))
            }
        }
    }

    /// Checks a token request's client credentials (HTTP Basic, RFC 6749 §2.3.1).
    pub fn client_authenticated(&self, headers: &HeaderMap) -> bool {
        let SimulatedAuth::Oauth2 {
            client_id,
            client_secret,
            ..
        } = &self.auth
        else {
            return false;
        };
        let Some(encoded) = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Basic "))
        else {
            return false;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        decoded.is_some_and(|pair| pair == format!("{client_id}:{client_secret}"))
    }
}
