//! A platform, simulated: the outside world for demos and tests.
//!
//! It receives notices at `POST /notices` (deduplicated by `Idempotency-Key`, rejecting a
//! notice that lacks a DSA Art. 16(2) element), lists them at `GET /notices`, and serves
//! every path under `/content/` with 200 until it has "removed" that path, a configurable
//! delay after a notice named it, then with 410. Time comes from a [`Clock`], so tests
//! decide when the removal happens. It serves placeholder text, never media.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_runtime::SharedClock;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CONTENT_PREFIX: &str = "/content/";

#[derive(Debug, Clone, Serialize)]
pub struct ReceivedNotice {
    pub notice_reference: String,
    pub received_at: DateTime<Utc>,
    pub idempotency_key: String,
    /// The notice exactly as it arrived.
    pub notice: Value,
}

#[derive(Default)]
struct Inbox {
    notices: Vec<ReceivedNotice>,
    by_key: HashMap<String, usize>,
    /// Content path → when the platform takes it down.
    removals: HashMap<String, DateTime<Utc>>,
    /// Every `POST /notices`, duplicates and refusals included: what a sender really sent.
    raw_posts: usize,
}

#[derive(Clone)]
pub struct Simulator {
    inbox: Arc<Mutex<Inbox>>,
    clock: SharedClock,
    removal_delay: TimeDelta,
}

impl Simulator {
    pub fn new(clock: SharedClock, removal_delay: TimeDelta) -> Self {
        Self {
            inbox: Arc::new(Mutex::new(Inbox::default())),
            clock,
            removal_delay,
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/notices", post(receive_notice).get(list_notices))
            .route("/notices/stats", get(stats))
            .route("/content/{*path}", get(content))
            .with_state(self.clone())
    }

    /// Every notice received, in arrival order.
    pub fn notices(&self) -> Vec<ReceivedNotice> {
        self.lock().notices.clone()
    }

    /// Every `POST /notices` so far, duplicates and refusals included.
    pub fn raw_posts(&self) -> usize {
        self.lock().raw_posts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The DSA Art. 16(2) elements a notice must carry, and the trusted-flagger marking.
fn missing_elements(notice: &Value) -> Vec<&'static str> {
    let text = |key: &str| {
        notice
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mut missing = Vec::new();
    if !text("explanation") {
        missing.push("explanation (Art. 16(2)(a))");
    }
    let has_location = notice
        .get("locations")
        .and_then(Value::as_array)
        .is_some_and(|locations| {
            !locations.is_empty() && locations.iter().all(|l| l.get("url").and_then(Value::as_str).is_some())
        });
    if !has_location {
        missing.push("locations with exact URLs (Art. 16(2)(b))");
    }
    let csam = notice.get("tdb_category").and_then(Value::as_str) == Some("STATEMENT_CATEGORY_PROTECTION_OF_MINORS");
    let has_notifier = notice
        .get("notifier")
        .is_some_and(|n| n.get("name").is_some() && n.get("email").is_some());
    if !csam && !has_notifier {
        missing.push("notifier name and e-mail (Art. 16(2)(c))");
    }
    if !text("good_faith_statement") {
        missing.push("good-faith statement (Art. 16(2)(d))");
    }
    if notice.get("trusted_flagger").is_none() {
        missing.push("trusted-flagger marking (Art. 22)");
    }
    missing
}

async fn receive_notice(State(sim): State<Simulator>, headers: HeaderMap, Json(notice): Json<Value>) -> Response {
    sim.lock().raw_posts += 1;
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Idempotency-Key header is required"})),
        )
            .into_response();
    };
    let missing = missing_elements(&notice);
    if !missing.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "incomplete notice", "missing": missing})),
        )
            .into_response();
    }
    let now = sim.clock.now();
    let mut inbox = sim.lock();
    if let Some(&index) = inbox.by_key.get(&key) {
        let original = &inbox.notices[index];
        return (
            StatusCode::OK,
            Json(json!({"notice_reference": original.notice_reference, "duplicate": true})),
        )
            .into_response();
    }
    let remove_at = now + sim.removal_delay;
    for url in notice["locations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["url"].as_str())
    {
        if let Some(path) = url::Url::parse(url).ok().map(|u| u.path().to_owned()) {
            inbox.removals.entry(path).or_insert(remove_at);
        }
    }
    let index = inbox.notices.len();
    let reference = format!("SIM-{:06}", index + 1);
    inbox.by_key.insert(key.clone(), index);
    inbox.notices.push(ReceivedNotice {
        notice_reference: reference.clone(),
        received_at: now,
        idempotency_key: key,
        notice,
    });
    (StatusCode::ACCEPTED, Json(json!({"notice_reference": reference}))).into_response()
}

/// Counts for tests across processes: raw POSTs and distinct notices.
async fn stats(State(sim): State<Simulator>) -> Json<Value> {
    let inbox = sim.lock();
    Json(json!({"raw_posts": inbox.raw_posts, "notices": inbox.notices.len()}))
}

async fn list_notices(State(sim): State<Simulator>) -> Json<Vec<ReceivedNotice>> {
    Json(sim.notices())
}

async fn content(State(sim): State<Simulator>, Path(path): Path<String>) -> Response {
    let full_path = format!("{CONTENT_PREFIX}{path}");
    let removed = sim
        .lock()
        .removals
        .get(&full_path)
        .is_some_and(|at| sim.clock.now() >= *at);
    if removed {
        (StatusCode::GONE, "removed after a notice\n").into_response()
    } else {
        (
            StatusCode::OK,
            "simulated content placeholder (no media is ever served)\n",
        )
            .into_response()
    }
}
