//! Platforms, simulated: the outside world for demos and tests.
//!
//! Notices arrive by API at `POST /notices` (the default platform) or
//! `POST /platforms/{id}/notices` (a configured one, with its authentication and behaviour:
//! see [`platform::Behaviour`]), and by e-mail through the simulated mail server
//! ([`smtp`]). Each is deduplicated (by `Idempotency-Key`, or by Message-ID) and refused
//! when it lacks a DSA Art. 16(2) element. `GET /notices` and `GET /mail` list what arrived;
//! `GET /notices/stats` counts raw requests and messages as well as distinct notices.
//! Every path under `/content/` answers 200 until the platform "removed" it, a configurable
//! delay after a notice named it, then 410. Time comes from a [`Clock`], so tests decide
//! when a removal happens. It serves placeholder text, never media.
//!
//! [`Clock`]: dijkwacht_runtime::Clock

pub mod platform;
pub mod smtp;

use crate::platform::{Behaviour, Denied, SimulatedAuth};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_runtime::{signature, SharedClock};
use mail_parser::MimeHeaders;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CONTENT_PREFIX: &str = "/content/";
/// The platform behind `POST /notices`: no authentication, answers at once.
pub const DEFAULT_PLATFORM: &str = "default";

/// A notice received by API: `N` is the notice itself, parsed, or as the simulator keeps it,
/// as text — a parsed tree took about 16 KB a notice, most of the memory of a bench run of
/// 20,000 notices.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedNotice<N = Value> {
    pub platform: String,
    pub notice_reference: String,
    pub received_at: DateTime<Utc>,
    pub idempotency_key: String,
    /// The sender's W3C trace context, if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The notice exactly as it arrived.
    pub notice: N,
}

impl ReceivedNotice<Box<str>> {
    fn parsed(&self) -> ReceivedNotice {
        ReceivedNotice {
            platform: self.platform.clone(),
            notice_reference: self.notice_reference.clone(),
            received_at: self.received_at,
            idempotency_key: self.idempotency_key.clone(),
            traceparent: self.traceparent.clone(),
            notice: serde_json::from_str(&self.notice).expect("kept as the text of parsed JSON"),
        }
    }
}

/// A withdrawal of an earlier notice, by API or e-mail.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedWithdrawal {
    pub platform: String,
    /// The notice withdrawn.
    pub withdraws: String,
    pub received_at: DateTime<Utc>,
    /// `api` or `email`.
    pub by: &'static str,
}

/// A case sent to a simulated partner — forwarded to a hotline abroad, or referred to the
/// police — once per idempotency key; `hotline` is the partner it reached.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedForward {
    pub hotline: String,
    pub idempotency_key: String,
    /// Whether it came signed (`X-Dijkwacht-Signature`).
    pub signed: bool,
    pub received_at: DateTime<Utc>,
    /// The forward exactly as it arrived.
    pub forward: Value,
}

/// A reminder of an earlier notice, or an escalation to the hosting provider behind a
/// platform, by API or e-mail; once per idempotency key (or Message-ID).
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedFollowUp {
    /// The platform (or hosting provider) it reached: a simulated platform's id, or the
    /// mailbox it went to.
    pub to: String,
    /// `reminder` or `escalation`.
    pub kind: String,
    pub notice_id: String,
    pub number: Option<u64>,
    pub received_at: DateTime<Utc>,
    pub by: &'static str,
    pub key: String,
}

/// One message as the mail server took it.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedMail {
    pub queued_as: String,
    pub received_at: DateTime<Utc>,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    /// Whether the session was encrypted (STARTTLS) when the message was sent.
    pub secured: bool,
    pub authenticated_as: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Option<String>,
    pub auto_submitted: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// The machine-readable notices attached as JSON (`notice.json`, or one
    /// `notice-{id}.json` each in a grouped message).
    pub notices: Vec<Value>,
    /// The names of every attachment, in order.
    pub attachments: Vec<String>,
    /// What was missing from the notice; a message missing nothing is acted on.
    pub missing: Vec<&'static str>,
    /// A second copy of a Message-ID already received.
    pub duplicate: bool,
}

/// The SMTP envelope and session facts of a message.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub from: String,
    pub recipients: Vec<String>,
    pub secured: bool,
    pub authenticated_as: Option<String>,
}

#[derive(Default)]
struct Inbox {
    notices: Vec<ReceivedNotice<Box<str>>>,
    withdrawals: Vec<ReceivedWithdrawal>,
    follow_ups: Vec<ReceivedFollowUp>,
    forwards: Vec<ReceivedForward>,
    /// Answers to send to dijkwacht once due.
    pending_answers: Vec<PendingAnswer>,
    answers_sent: usize,
    by_key: HashMap<(String, String), usize>,
    mail: Vec<ReceivedMail>,
    /// Content path → when the platform takes it down.
    removals: HashMap<String, DateTime<Utc>>,
    /// Every notice request, duplicates and refusals included: what a sender really sent.
    raw_posts: usize,
    raw_posts_by_platform: HashMap<String, usize>,
    /// Notice requests per platform, for behaviours that change after the first few.
    answered: HashMap<String, u32>,
    /// OAuth access tokens issued → (platform, expiry).
    tokens: HashMap<String, (String, DateTime<Utc>)>,
    tokens_issued: usize,
}

/// A signed answer the platform will send when it is due.
struct PendingAnswer {
    platform_id: String,
    secret: String,
    due_at: DateTime<Utc>,
    body: Value,
}

#[derive(Clone)]
pub struct Simulator {
    inbox: Arc<Mutex<Inbox>>,
    /// Where platforms answer: the base URL of dijkwacht's API, once it is known.
    answers_to: Arc<Mutex<Option<String>>>,
    clock: SharedClock,
    removal_delay: TimeDelta,
    platforms: Arc<HashMap<String, Behaviour>>,
}

impl Simulator {
    pub fn new(clock: SharedClock, removal_delay: TimeDelta) -> Self {
        Self {
            inbox: Arc::new(Mutex::new(Inbox::default())),
            answers_to: Arc::new(Mutex::new(None)),
            clock,
            removal_delay,
            platforms: Arc::new(HashMap::new()),
        }
    }

    /// Adds platforms with their behaviours, served at `/platforms/{id}/notices`.
    pub fn with_platforms(mut self, platforms: impl IntoIterator<Item = (String, Behaviour)>) -> Self {
        let mut all = (*self.platforms).clone();
        all.extend(platforms);
        self.platforms = Arc::new(all);
        self
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/notices", post(receive_default_notice).get(list_notices))
            .route("/notices/stats", get(stats))
            .route("/platforms/{platform}/notices", post(receive_platform_notice))
            .route("/platforms/{platform}/oauth/token", post(issue_token))
            .route("/mail", get(list_mail))
            .route("/follow-ups", get(list_follow_ups))
            .route("/hotlines/{hotline}/forwards", post(receive_forward).get(list_forwards))
            // The police take referrals the way a hotline abroad takes forwards.
            .route("/police/{hotline}/referrals", post(receive_forward).get(list_forwards))
            .route("/content/{*path}", get(content))
            .with_state(self.clone())
    }

    /// Every notice received by API, in arrival order.
    pub fn notices(&self) -> Vec<ReceivedNotice> {
        self.lock().notices.iter().map(ReceivedNotice::parsed).collect()
    }

    /// How many notices arrived by API: [`Simulator::notices`] without the copy.
    pub fn notice_count(&self) -> usize {
        self.lock().notices.len()
    }

    /// Every withdrawal received, in arrival order, once per withdrawn notice.
    pub fn withdrawals(&self) -> Vec<ReceivedWithdrawal> {
        self.lock().withdrawals.clone()
    }

    /// Platforms that answer send their answers to the API at `base_url`.
    pub fn answer_to(&self, base_url: &str) {
        *self.answers_to.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(base_url.to_owned());
    }

    /// The uploader puts the content at `url` back: it answers 200 again until the next
    /// notice about it takes it down once more.
    pub fn reupload(&self, url: &str) {
        if let Some(path) = url::Url::parse(url).ok().map(|u| u.path().to_owned()) {
            self.lock().removals.remove(&path);
        }
    }

    /// Every case forwarded to a simulated hotline, in arrival order.
    pub fn forwards(&self) -> Vec<ReceivedForward> {
        self.lock().forwards.clone()
    }

    /// Answers sent and acknowledged so far.
    pub fn answers_sent(&self) -> usize {
        self.lock().answers_sent
    }

    /// Sends the answers that are due, on the simulator's clock, until `shutdown`; an
    /// answer that is not taken is tried again.
    pub async fn send_answers(self, mut shutdown: dijkwacht_runtime::Shutdown) {
        let http = reqwest::Client::new();
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let Some(base) = self
                .answers_to
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
            else {
                continue;
            };
            let now = self.clock.now();
            let due: Vec<PendingAnswer> = {
                let mut inbox = self.lock();
                let (due, later) = std::mem::take(&mut inbox.pending_answers)
                    .into_iter()
                    .partition(|answer| answer.due_at <= now);
                inbox.pending_answers = later;
                due
            };
            for answer in due {
                let body = serde_json::to_vec(&answer.body).expect("an answer serialises");
                let timestamp = now.timestamp();
                let sent = http
                    .post(format!("{base}/v1/platforms/{}/events", answer.platform_id))
                    .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
                    .header(
                        signature::SIGNATURE_HEADER,
                        signature::sign(answer.secret.as_bytes(), timestamp, &body),
                    )
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|response| response.status());
                let mut inbox = self.lock();
                match sent {
                    Ok(status) if status.is_success() => inbox.answers_sent += 1,
                    // A notice dijkwacht has no record of yet, a restart: later.
                    _ => inbox.pending_answers.push(answer),
                }
            }
        }
    }

    /// Plans the answers of `platform` to `notice`: a receipt now, a decision when the
    /// content comes down.
    fn plan_answers(&self, inbox: &mut Inbox, platform: &str, behaviour: &Behaviour, notice: &Value) {
        let (Some(answers), Some(notice_id)) = (&behaviour.answers, notice["notice_id"].as_str()) else {
            return;
        };
        let platform_id = answers.platform_id.clone().unwrap_or_else(|| platform.to_owned());
        let now = self.clock.now();
        let mut plan = |due_at, body| {
            inbox.pending_answers.push(PendingAnswer {
                platform_id: platform_id.clone(),
                secret: answers.secret.clone(),
                due_at,
                body,
            })
        };
        if answers.receipt {
            plan(
                now,
                json!({"type": "receipt", "event_id": format!("{notice_id}-receipt"), "notice_id": notice_id, "received_at": now}),
            );
        }
        if answers.decision && !behaviour.never_removes {
            let decided_at = now + self.removal_delay;
            plan(
                decided_at,
                json!({
                    "type": "decision",
                    "event_id": format!("{notice_id}-decision"),
                    "notice_id": notice_id,
                    "decided_at": decided_at,
                    "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
                    "decision_ground": notice["tdb_decision_ground"].as_str().unwrap_or("DECISION_GROUND_ILLEGAL_CONTENT"),
                    "category": notice["tdb_category"].as_str().unwrap_or("STATEMENT_CATEGORY_OTHER_VIOLATION_TC"),
                    "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED",
                    "statement_of_reasons_id": format!("SOR-{notice_id}"),
                }),
            );
        }
    }

    /// Every reminder and escalation received, in arrival order, once each.
    pub fn follow_ups(&self) -> Vec<ReceivedFollowUp> {
        self.lock().follow_ups.clone()
    }

    /// Every message the mail server took, in arrival order, duplicates included.
    pub fn mail(&self) -> Vec<ReceivedMail> {
        self.lock().mail.clone()
    }

    /// Every notice request so far, duplicates and refusals included.
    pub fn raw_posts(&self) -> usize {
        self.lock().raw_posts
    }

    /// Notice requests to one platform, duplicates and refusals included.
    pub fn raw_posts_to(&self, platform: &str) -> usize {
        self.lock().raw_posts_by_platform.get(platform).copied().unwrap_or(0)
    }

    /// OAuth tokens handed out so far.
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// Withdraws every token issued, as a platform does when it rotates its keys.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn behaviour(&self, platform: &str) -> Option<&Behaviour> {
        self.platforms.get(platform)
    }

    /// Records a reminder or escalation once per key.
    fn follow_up(&self, inbox: &mut Inbox, to: &str, message: &Value, by: &'static str, key: &str) {
        if inbox.follow_ups.iter().any(|seen| seen.key == key) {
            return;
        }
        inbox.follow_ups.push(ReceivedFollowUp {
            to: to.to_owned(),
            kind: message["type"].as_str().unwrap_or_default().to_owned(),
            notice_id: message["notice_id"].as_str().unwrap_or_default().to_owned(),
            number: message["number"].as_u64(),
            received_at: self.clock.now(),
            by,
            key: key.to_owned(),
        });
    }

    /// Records a withdrawal (once per notice) and calls off removals not yet done.
    fn withdraw(&self, inbox: &mut Inbox, platform: &str, withdrawal: &Value, by: &'static str) {
        let Some(withdraws) = withdrawal["withdraws"].as_str() else {
            return;
        };
        let now = self.clock.now();
        for url in withdrawal["locations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["url"].as_str())
        {
            if let Some(path) = url::Url::parse(url).ok().map(|u| u.path().to_owned()) {
                if inbox.removals.get(&path).is_some_and(|at| *at > now) {
                    inbox.removals.remove(&path);
                }
            }
        }
        if !inbox.withdrawals.iter().any(|w| w.withdraws == withdraws) {
            inbox.withdrawals.push(ReceivedWithdrawal {
                platform: platform.to_owned(),
                withdraws: withdraws.to_owned(),
                received_at: now,
                by,
            });
        }
    }

    fn schedule_removals(&self, inbox: &mut Inbox, notice: &Value, never_removes: bool) {
        if never_removes {
            return;
        }
        let remove_at = self.clock.now() + self.removal_delay;
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
    }

    /// The platform whose mailbox `address` is, if one is configured for it.
    fn platform_of_mailbox(&self, address: &str) -> Option<(&String, &Behaviour)> {
        self.platforms.iter().find(|(_, behaviour)| {
            behaviour
                .mailbox
                .as_deref()
                .is_some_and(|mailbox| mailbox.eq_ignore_ascii_case(address))
        })
    }

    /// A recipient the mail server bounces (550): none given, or the mailbox of a platform
    /// that takes no e-mail (it has an API or a form only).
    pub(crate) fn refuses_mail_for(&self, address: &str) -> bool {
        address.is_empty() || self.platform_of_mailbox(address).is_some_and(|(_, b)| b.refuses_mail)
    }

    /// Takes one message from the mail server; returns its queue id.
    pub(crate) fn receive_mail(&self, transcript: &Transcript, data: &[u8]) -> String {
        let parsed = mail_parser::MessageParser::default().parse(data);
        let now = self.clock.now();
        let mut inbox = self.lock();
        let queued_as = format!("SIM-MAIL-{:06}", inbox.mail.len() + 1);
        let header = |name: &str| {
            parsed
                .as_ref()
                .and_then(|message| message.header_raw(name))
                .map(|value| value.trim().to_owned())
        };
        let attachment = |name: &str| {
            parsed.as_ref().and_then(|message| {
                message
                    .attachments()
                    .find(|part| part.attachment_name() == Some(name))
                    .and_then(|part| serde_json::from_slice::<Value>(part.contents()).ok())
            })
        };
        if let Some(withdrawal) = attachment("withdrawal.json") {
            let platform = transcript.recipients.first().cloned().unwrap_or_default();
            self.withdraw(&mut inbox, &platform, &withdrawal, "email");
        }
        if let Some(follow_up) = attachment("follow-up.json") {
            let to = transcript.recipients.first().cloned().unwrap_or_default();
            let key = header("Message-ID").unwrap_or_default();
            self.follow_up(&mut inbox, &to, &follow_up, "email", &key);
        }
        let notices: Vec<Value> = parsed
            .as_ref()
            .map(|message| {
                message
                    .attachments()
                    .filter(|part| {
                        part.attachment_name()
                            .is_some_and(|name| name.starts_with("notice") && name.ends_with(".json"))
                    })
                    .filter_map(|part| serde_json::from_slice::<Value>(part.contents()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let attachments: Vec<String> = parsed
            .as_ref()
            .map(|message| {
                message
                    .attachments()
                    .filter_map(|part| part.attachment_name().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let message_id = header("Message-ID");
        let duplicate = message_id
            .as_ref()
            .is_some_and(|id| inbox.mail.iter().any(|mail| mail.message_id.as_ref() == Some(id)));
        let missing = match notices.is_empty() {
            false => notices.iter().flat_map(missing_elements).collect(),
            true if attachment("withdrawal.json").is_some() || attachment("follow-up.json").is_some() => vec![],
            true => vec!["the notice.json attachment"],
        };
        if !duplicate && missing.is_empty() {
            let platform = transcript.recipients.iter().find_map(|to| self.platform_of_mailbox(to));
            let never_removes = platform.is_some_and(|(_, behaviour)| behaviour.never_removes);
            for notice in &notices {
                self.schedule_removals(&mut inbox, notice, never_removes);
                if let Some((id, behaviour)) = platform {
                    self.plan_answers(&mut inbox, id, behaviour, notice);
                }
            }
        }
        let mail = ReceivedMail {
            queued_as: queued_as.clone(),
            received_at: now,
            envelope_from: transcript.from.clone(),
            recipients: transcript.recipients.clone(),
            secured: transcript.secured,
            authenticated_as: transcript.authenticated_as.clone(),
            message_id,
            in_reply_to: header("In-Reply-To"),
            subject: parsed.as_ref().and_then(|m| m.subject()).map(str::to_owned),
            reply_to: header("Reply-To"),
            auto_submitted: header("Auto-Submitted"),
            text: parsed.as_ref().and_then(|m| m.body_text(0)).map(|t| t.into_owned()),
            html: parsed.as_ref().and_then(|m| m.body_html(0)).map(|t| t.into_owned()),
            notices,
            attachments,
            missing,
            duplicate,
        };
        inbox.mail.push(mail);
        queued_as
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

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn receive_default_notice(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    receive_notice(sim, DEFAULT_PLATFORM.to_owned(), headers, body).await
}

async fn receive_platform_notice(
    State(sim): State<Simulator>,
    Path(platform): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive_notice(sim, platform, headers, body).await
}

async fn receive_notice(sim: Simulator, platform: String, headers: HeaderMap, body: Bytes) -> Response {
    let behaviour = match sim.behaviour(&platform) {
        Some(behaviour) => behaviour.clone(),
        None if platform == DEFAULT_PLATFORM => Behaviour::default(),
        None => return answer(StatusCode::NOT_FOUND, json!({"error": "no such platform"})),
    };
    let request_number = {
        let mut inbox = sim.lock();
        inbox.raw_posts += 1;
        *inbox.raw_posts_by_platform.entry(platform.clone()).or_default() += 1;
        let answered = inbox.answered.entry(platform.clone()).or_default();
        *answered += 1;
        *answered
    };
    if behaviour.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.delay_ms)).await;
    }
    if behaviour.no_api {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "this platform takes no notices by API"}),
        );
    }
    let now = sim.clock.now();
    let admitted = behaviour.admit(&headers, &body, now, |token| {
        sim.lock()
            .tokens
            .get(token)
            .is_some_and(|(owner, expires)| *owner == platform && *expires > now)
    });
    if let Err(Denied::Unauthorized(why)) = admitted {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": why}));
    }
    if request_number <= behaviour.unavailable_first {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily unavailable"}),
        );
    }
    if request_number <= behaviour.unavailable_first + behaviour.throttle_first {
        let mut response = answer(StatusCode::TOO_MANY_REQUESTS, json!({"error": "slow down"}));
        response
            .headers_mut()
            .insert("retry-after", behaviour.retry_after_secs.into());
        return response;
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "Idempotency-Key header is required"}),
        );
    };
    let Ok(notice) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, json!({"error": "the body is not JSON"}));
    };
    if notice["type"] == "withdrawal" {
        let mut inbox = sim.lock();
        sim.withdraw(&mut inbox, &platform, &notice, "api");
        return answer(StatusCode::OK, json!({"withdrawn": notice["withdraws"]}));
    }
    if notice["type"] == "reminder" || notice["type"] == "escalation" {
        let mut inbox = sim.lock();
        sim.follow_up(&mut inbox, &platform, &notice, "api", &key);
        if notice["type"] == "escalation" {
            if let Some(escalated) = notice.get("notice") {
                sim.schedule_removals(&mut inbox, escalated, behaviour.never_removes);
            }
        }
        return answer(StatusCode::OK, json!({"received": notice["type"]}));
    }
    // One notice, or a grouped message listing several.
    let notices: Vec<Value> = match notice.get("notices").and_then(Value::as_array) {
        Some(notices) => notices.clone(),
        None => vec![notice],
    };
    let missing: Vec<&str> = notices.iter().flat_map(missing_elements).collect();
    if notices.is_empty() || !missing.is_empty() {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "incomplete notice", "reason": "incomplete notice", "missing": missing}),
        );
    }
    if let Some(reason) = &behaviour.rejects {
        return answer(StatusCode::UNPROCESSABLE_ENTITY, json!({"reason": reason}));
    }
    let mut inbox = sim.lock();
    if let Some(&index) = inbox.by_key.get(&(platform.clone(), key.clone())) {
        let original = &inbox.notices[index];
        return answer(
            StatusCode::OK,
            json!({"notice_reference": original.notice_reference, "duplicate": true}),
        );
    }
    let reference = format!("SIM-{:06}", inbox.notices.len() + 1);
    let index = inbox.notices.len();
    let traceparent = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    inbox.by_key.insert((platform.clone(), key.clone()), index);
    for notice in notices {
        sim.schedule_removals(&mut inbox, &notice, behaviour.never_removes);
        sim.plan_answers(&mut inbox, &platform, &behaviour, &notice);
        inbox.notices.push(ReceivedNotice {
            platform: platform.clone(),
            notice_reference: reference.clone(),
            received_at: now,
            idempotency_key: key.clone(),
            traceparent: traceparent.clone(),
            notice: notice.to_string().into(),
        });
    }
    answer(StatusCode::ACCEPTED, json!({"notice_reference": reference}))
}

/// OAuth 2.0 client credentials: a token for a client that proves itself with HTTP Basic.
async fn issue_token(State(sim): State<Simulator>, Path(platform): Path<String>, headers: HeaderMap) -> Response {
    let Some(behaviour) = sim.behaviour(&platform) else {
        return answer(StatusCode::NOT_FOUND, json!({"error": "no such platform"}));
    };
    let SimulatedAuth::Oauth2 {
        token_lifetime_secs, ..
    } = behaviour.auth
    else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "this platform issues no tokens"}),
        );
    };
    if !behaviour.client_authenticated(&headers) {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let expires = sim.clock.now() + TimeDelta::seconds(token_lifetime_secs as i64);
    let mut inbox = sim.lock();
    inbox.tokens.insert(token.clone(), (platform, expires));
    inbox.tokens_issued += 1;
    answer(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": token_lifetime_secs}),
    )
}

/// Counts for tests across processes: raw requests and messages, distinct notices.
async fn stats(State(sim): State<Simulator>) -> Json<Value> {
    let inbox = sim.lock();
    Json(json!({
        "raw_posts": inbox.raw_posts,
        "notices": inbox.notices.len(),
        "raw_mail": inbox.mail.len(),
        "mail": inbox.mail.iter().filter(|mail| !mail.duplicate).count(),
        "tokens_issued": inbox.tokens_issued,
        "withdrawals": inbox.withdrawals.len(),
        "follow_ups": inbox.follow_ups.len(),
        "answers_sent": inbox.answers_sent,
    }))
}

async fn list_notices(State(sim): State<Simulator>) -> Json<Vec<ReceivedNotice>> {
    Json(sim.notices())
}

/// A partner hotline abroad takes a forwarded case: once per idempotency key, answering
/// with its own reference.
async fn receive_forward(
    State(sim): State<Simulator>,
    Path(hotline): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(forward) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, json!({"error": "not JSON"}));
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let now = sim.clock.now();
    let mut inbox = sim.lock();
    let known = inbox
        .forwards
        .iter()
        .position(|received| received.hotline == hotline && received.idempotency_key == key);
    let number = match known {
        Some(index) => index + 1,
        None => {
            inbox.forwards.push(ReceivedForward {
                hotline: hotline.clone(),
                idempotency_key: key,
                signed: headers.contains_key(signature::SIGNATURE_HEADER),
                received_at: now,
                forward,
            });
            inbox.forwards.len()
        }
    };
    answer(
        StatusCode::ACCEPTED,
        json!({"notice_reference": format!("{}-{number}", hotline.to_uppercase())}),
    )
}

async fn list_forwards(State(sim): State<Simulator>) -> Json<Vec<ReceivedForward>> {
    Json(sim.forwards())
}

async fn list_follow_ups(State(sim): State<Simulator>) -> Json<Vec<ReceivedFollowUp>> {
    Json(sim.follow_ups())
}

async fn list_mail(State(sim): State<Simulator>) -> Json<Vec<ReceivedMail>> {
    Json(sim.mail())
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
