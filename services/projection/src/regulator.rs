//! The regulators' API over the read models: the platforms in a regulator's remit, how each
//! handles our notices, and the evidence of every notice. Outside its remit a platform or a
//! class answers 404, exactly like one that does not exist. Every request a regulator
//! makes is written to the access audit, or not answered.

use crate::dossier::requests::{self, Builder, DossierStatus};
use crate::dossier::DossierRequest;
use crate::remit::{PlatformInRemit, Remit};
use crate::statistics::{self, Figures, Period, PeriodFigures, Selection, SELECTED};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use dijkwacht_domain::ContentClass;
use dijkwacht_http::openapi::OperationBuilder;
use dijkwacht_http::{ApiError, Caller, DocumentedRouter, Edge, FieldError, Limits, SCOPE_OPERATE};
use dijkwacht_runtime::{EventStore, SharedClock};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use std::sync::{Arc, Mutex};

/// A regulator's key carries it.
pub const SCOPE_COMPLIANCE_READ: &str = "compliance:read";

/// The state of the regulators' routes.
#[derive(Clone)]
pub struct RegulatorApi {
    pub store: EventStore,
    pub clock: SharedClock,
    pub limits: Limits,
    /// What builds dossiers; absent where no signing key is configured.
    pub dossiers: Option<Builder>,
    /// The dashboard's cookie is `Secure` (sent over HTTPS only) everywhere but the demo.
    pub secure_cookies: bool,
}

impl Edge for RegulatorApi {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The regulators' routes with their OpenAPI description.
pub fn documented() -> DocumentedRouter<RegulatorApi> {
    DocumentedRouter::new()
        .route("get", "/v1/regulator/platforms", get(platforms), |op| {
            op.summary("The platforms in the caller's remit")
                .scope(SCOPE_COMPLIANCE_READ)
                .json_response::<Vec<PlatformInRemit>>(200, "by id")
        })
        .route(
            "get",
            "/v1/regulator/platforms/{platform_id}/compliance",
            get(compliance),
            |op| {
                selection(
                    op.summary("How a platform handles our notices, in total and per class and period")
                        .scope(SCOPE_COMPLIANCE_READ)
                        .path_parameter("platform_id", "the platform registry id"),
                )
                .query_parameter("period", false, "`day`, `month` (default) or `year`")
                .json_response::<Compliance>(200, "the figures")
                .error(422, "a parameter is malformed; the pointer names it")
                .error(404, "no such platform in the caller's remit, or a class outside it")
            },
        )
        .route(
            "get",
            "/v1/regulator/platforms/{platform_id}/notices",
            get(notices),
            |op| {
                selection(
                    op.summary("The notices to a platform, each with its evidence timeline, oldest first")
                        .scope(SCOPE_COMPLIANCE_READ)
                        .path_parameter("platform_id", "the platform registry id"),
                )
                .query_parameter("after", false, "the last case id of the previous page")
                .query_parameter("limit", false, "1-1000, 100 by default")
                .json_response::<NoticePage>(200, "one page")
                .error(422, "a parameter is malformed; the pointer names it")
                .error(404, "no such platform in the caller's remit, or a class outside it")
            },
        )
        .route("post", "/v1/regulator/dossiers", post(requests::request), |op| {
            op.summary("Ask for a signed enforcement dossier on a platform; it is built in the background")
                .scope(SCOPE_COMPLIANCE_READ)
                .json_body::<DossierRequest>()
                .json_response::<DossierStatus>(202, "asked for: fetch it at `location`")
                .error(404, "no such platform in the caller's remit, or a class outside it")
                .error(409, "no signing key is configured")
        })
        .route(
            "get",
            "/v1/regulator/dossiers/{dossier_id}",
            get(requests::fetch),
            |op| {
                op.summary("A dossier the caller asked for: the .tar once finished, where it stands before")
                    .scope(SCOPE_COMPLIANCE_READ)
                    .path_parameter("dossier_id", "as the request answered")
                    .response(
                        200,
                        "the dossier folder as a .tar (verify: sha256sum -c MANIFEST; openssl pkeyutl -verify ...)",
                        Some(("application/x-tar", json!({"type": "string", "format": "binary"}))),
                    )
                    .json_response::<DossierStatus>(202, "not finished yet")
                    .error(404, "no such dossier of the caller's")
                    .error(409, "it could not be built; the reason is given")
            },
        )
        .route("get", "/v1/operator/regulator-access", get(access_audit), |op| {
            op.summary("The regulators' requests, newest first")
                .scope(SCOPE_OPERATE)
                .query_parameter("regulator", false, "only this regulator's")
                .query_parameter("limit", false, "1-1000, 100 by default")
                .json_response::<Vec<Access>>(200, "who asked what, when, and how large the answer was")
        })
}

/// The routes, every regulator's request audited.
pub fn router(api: RegulatorApi) -> axum::Router {
    dijkwacht_http::routes(documented(), api.clone()).layer(axum::middleware::from_fn_with_state(api, audited))
}

/// The parameters that choose which notices count.
fn selection(op: OperationBuilder<'_>) -> OperationBuilder<'_> {
    op.query_parameter("from", false, "RFC 3339 instant; notices delivered at or after it")
        .query_parameter("to", false, "RFC 3339 instant; notices delivered before it")
        .query_parameter("class", false, "one class of content (`csam`, `ncii`, ...)")
}

/// A regulator, identified, with its remit. Naming it marks the request for the audit.
pub struct Regulator {
    pub id: String,
    pub remit: Remit,
}

impl FromRequestParts<RegulatorApi> for Regulator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &RegulatorApi) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, api).await?;
        let principal = caller.require(SCOPE_COMPLIANCE_READ)?;
        if principal.kind != "regulator" {
            return Err(ApiError::Forbidden(SCOPE_COMPLIANCE_READ));
        }
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.name(&principal.id);
        }
        Ok(Self {
            id: principal.id.clone(),
            remit: Remit::of(api.store.pool(), &principal.id).await?,
        })
    }
}

/// Where the regulator of a request is named, for the audit to read after the answer.
#[derive(Clone, Default)]
struct AuditSlot(Arc<Mutex<Option<String>>>);

impl AuditSlot {
    fn name(&self, regulator_id: &str) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(regulator_id.to_owned());
    }

    fn regulator(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Writes every regulator's request to the access audit with the size of its answer; an
/// answer whose access cannot be recorded is not given.
async fn audited(State(api): State<RegulatorApi>, mut request: Request, next: Next) -> Response {
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), ToString::to_string);
    let response = next.run(request).await;
    let Some(regulator_id) = slot.regulator() else {
        return response;
    };
    let (parts, body) = response.into_parts();
    // A download says its length and streams; any other answer is measured here.
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<i64>().ok());
    let (answer, answer_bytes) = match declared {
        Some(length) => (body, length),
        None => match axum::body::to_bytes(body, usize::MAX).await {
            Ok(answer) => {
                let length = answer.len() as i64;
                (Body::from(answer), length)
            }
            Err(error) => return ApiError::Internal(format!("reading the answer: {error}")).into_response(),
        },
    };
    let recorded = record_access(
        &api,
        &regulator_id,
        &method,
        &target,
        parts.status.as_u16(),
        answer_bytes,
    )
    .await;
    match recorded {
        Ok(_) => Response::from_parts(parts, answer),
        Err(error) => ApiError::Internal(format!("recording the access of {regulator_id}: {error}")).into_response(),
    }
}

/// Writes one regulator's request to the access audit.
pub async fn record_access(
    api: &RegulatorApi,
    regulator_id: &str,
    method: &str,
    target: &str,
    status: u16,
    answer_bytes: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO regulator_access (regulator_id, method, target, status, answer_bytes, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(regulator_id)
    .bind(method)
    .bind(target)
    .bind(status as i16)
    .bind(answer_bytes)
    .bind(api.clock.now())
    .execute(api.store.pool())
    .await?;
    Ok(())
}

async fn platforms(
    State(api): State<RegulatorApi>,
    regulator: Regulator,
) -> Result<Json<Vec<PlatformInRemit>>, ApiError> {
    Ok(Json(regulator.remit.platforms(api.store.pool()).await?))
}

/// What a regulator asks to count.
#[derive(Debug, Default, Deserialize)]
pub struct SelectionQuery {
    from: Option<String>,
    to: Option<String>,
    class: Option<String>,
    period: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// The query of a request, each malformed parameter named by its pointer.
struct Asked {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    class: Option<String>,
    period: Period,
    after: Option<uuid::Uuid>,
    limit: i64,
}

fn asked(query: Result<Query<SelectionQuery>, QueryRejection>) -> Result<Asked, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![FieldError::new("", e.body_text())]))?;
    let mut errors = Vec::new();
    let mut instant = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|text| match DateTime::parse_from_rfc3339(text) {
                Ok(at) => Some(at.with_timezone(&Utc)),
                Err(error) => {
                    errors.push(FieldError::new(
                        format!("/{name}"),
                        format!("not an RFC 3339 instant: {error}"),
                    ));
                    None
                }
            })
    };
    let from = instant("from", &query.from);
    let to = instant("to", &query.to);
    let class = query.class.filter(|class| {
        let known = ContentClass::parse(class).is_some();
        if !known {
            errors.push(FieldError::new(
                "/class",
                format!("{class:?} is not a class of content"),
            ));
        }
        known
    });
    let period = match query.period.as_deref() {
        None | Some("month") => Period::Month,
        Some("day") => Period::Day,
        Some("year") => Period::Year,
        Some(other) => {
            errors.push(FieldError::new(
                "/period",
                format!("{other:?} is not day, month or year"),
            ));
            Period::Month
        }
    };
    let after = query
        .after
        .as_deref()
        .and_then(|text| match uuid::Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError::new("/after", format!("{text:?} is not a case id")));
                None
            }
        });
    let limit = match query.limit.as_deref().map(str::parse::<i64>) {
        None => 100,
        Some(Ok(limit)) if (1..=1000).contains(&limit) => limit,
        Some(_) => {
            errors.push(FieldError::new("/limit", "a whole number from 1 to 1000"));
            100
        }
    };
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            errors.push(FieldError::new("/to", "must be after `from`"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(Asked {
        from,
        to,
        class,
        period,
        after,
        limit,
    })
}

/// The platform and the classes a request may see, or 404.
async fn in_remit(
    api: &RegulatorApi,
    regulator: &Regulator,
    platform_id: &str,
    class: Option<&str>,
) -> Result<(PlatformInRemit, Option<Vec<String>>), ApiError> {
    let platform = regulator
        .remit
        .platform(api.store.pool(), platform_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let classes = regulator.remit.classes_for(class).ok_or(ApiError::NotFound)?;
    Ok((platform, classes))
}

/// How a platform handles our notices over a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Compliance {
    pub platform: PlatformInRemit,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The classes counted; every class in the caller's remit where absent.
    pub classes: Option<Vec<String>>,
    pub period: Period,
    pub total: Figures,
    /// Each class in each period, oldest first.
    pub periods: Vec<PeriodFigures>,
}

async fn compliance(
    State(api): State<RegulatorApi>,
    regulator: Regulator,
    Path(platform_id): Path<String>,
    query: Result<Query<SelectionQuery>, QueryRejection>,
) -> Result<Json<Compliance>, ApiError> {
    let asked = asked(query)?;
    let (platform, classes) = in_remit(&api, &regulator, &platform_id, asked.class.as_deref()).await?;
    let selection = Selection {
        platform_id: platform.platform_id.clone(),
        from: asked.from,
        to: asked.to,
        classes: classes.clone(),
        period: asked.period,
    };
    let statistics = statistics::compute(api.store.pool(), &selection, api.clock.now()).await?;
    Ok(Json(Compliance {
        platform,
        from: asked.from,
        to: asked.to,
        classes,
        period: asked.period,
        total: statistics.total,
        periods: statistics.periods,
    }))
}

/// A page of notices with their evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoticePage {
    pub notices: Vec<NoticeEvidence>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<uuid::Uuid>,
}

/// One notice and what happened to it, each fact with the hash of the event recording it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeEvidence {
    pub case_id: uuid::Uuid,
    pub notice_id: uuid::Uuid,
    pub class: String,
    /// The location the notice named.
    pub url: String,
    pub issued_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub receipt_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    /// Every event of the case, in order: its type, when it was recorded and its hash in
    /// the case's chain (`dijkwacht verify` recomputes them). Never a payload.
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    pub version: i32,
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 of the event in its case's hash chain, hex.
    pub hash: String,
}

async fn notices(
    State(api): State<RegulatorApi>,
    regulator: Regulator,
    Path(platform_id): Path<String>,
    query: Result<Query<SelectionQuery>, QueryRejection>,
) -> Result<Json<NoticePage>, ApiError> {
    let asked = asked(query)?;
    let (platform, classes) = in_remit(&api, &regulator, &platform_id, asked.class.as_deref()).await?;
    let pool = api.store.pool();
    let selection = Selection {
        platform_id: platform.platform_id,
        from: asked.from,
        to: asked.to,
        classes,
        period: asked.period,
    };
    let sql = format!(
        "SELECT f.case_id, f.notice_id, f.content_class, s.url, f.issued_at, f.delivered_at, f.deadline_at, \
             f.receipt_at, f.decided_at, f.removed_at \
         FROM notice_facts f JOIN case_summaries s USING (case_id) \
         WHERE {SELECTED} AND f.notice_id IS NOT NULL AND ($5::uuid IS NULL OR f.case_id > $5) \
         ORDER BY f.case_id LIMIT $6"
    );
    let rows = selection
        .bind(sqlx::query(&sql))
        .bind(asked.after)
        .bind(asked.limit)
        .fetch_all(pool)
        .await?;
    let mut notices = Vec::with_capacity(rows.len());
    for row in &rows {
        notices.push(NoticeEvidence {
            case_id: row.try_get("case_id")?,
            notice_id: row.try_get("notice_id")?,
            class: row.try_get("content_class")?,
            url: row.try_get("url")?,
            issued_at: row.try_get("issued_at")?,
            delivered_at: row.try_get("delivered_at")?,
            deadline_at: row.try_get("deadline_at")?,
            receipt_at: row.try_get("receipt_at")?,
            decided_at: row.try_get("decided_at")?,
            removed_at: row.try_get("removed_at")?,
            timeline: Vec::new(),
        });
    }
    let ids: Vec<uuid::Uuid> = notices.iter().map(|notice| notice.case_id).collect();
    let events = sqlx::query(
        "SELECT stream_id, stream_version, event_type, recorded_at, hash FROM events \
         WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for event in events {
        let case_id: uuid::Uuid = event.try_get("stream_id")?;
        let hash: Vec<u8> = event.try_get("hash")?;
        if let Some(notice) = notices.iter_mut().find(|notice| notice.case_id == case_id) {
            notice.timeline.push(TimelineEntry {
                version: event.try_get("stream_version")?,
                event_type: event.try_get("event_type")?,
                recorded_at: event.try_get("recorded_at")?,
                hash: hex::encode(hash),
            });
        }
    }
    let next_after = (notices.len() as i64 == asked.limit)
        .then(|| notices.last().map(|notice| notice.case_id))
        .flatten();
    Ok(Json(NoticePage { notices, next_after }))
}

/// One request of a regulator, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Access {
    pub regulator_id: String,
    pub method: String,
    /// The path and query asked for.
    pub target: String,
    pub status: u16,
    pub answer_bytes: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AccessQuery {
    regulator: Option<String>,
    limit: Option<i64>,
}

async fn access_audit(
    State(api): State<RegulatorApi>,
    caller: Caller,
    query: Result<Query<AccessQuery>, QueryRejection>,
) -> Result<Json<Vec<Access>>, ApiError> {
    caller.require(SCOPE_OPERATE)?;
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![FieldError::new("", e.body_text())]))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "/limit",
            "a whole number from 1 to 1000",
        )]));
    }
    let rows = sqlx::query(
        "SELECT regulator_id, method, target, status, answer_bytes, at FROM regulator_access \
         WHERE ($1::text IS NULL OR regulator_id = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(&query.regulator)
    .bind(limit)
    .fetch_all(api.store.pool())
    .await?;
    let mut accesses = Vec::with_capacity(rows.len());
    for row in rows {
        accesses.push(Access {
            regulator_id: row.try_get("regulator_id")?,
            method: row.try_get("method")?,
            target: row.try_get("target")?,
            status: row.try_get::<i16, _>("status")? as u16,
            answer_bytes: row.try_get("answer_bytes")?,
            at: row.try_get("at")?,
        });
    }
    Ok(Json(accesses))
}
