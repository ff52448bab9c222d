//! What analysts do for dispatch: see the notices waiting for a hand (a web form to fill
//! in, a notice no channel took, a platform's refusal to assess), with the text to paste
//! in the platform's language, and record a notice they submitted.

use crate::pace::BreakerState;
use crate::registry::{Directory, PlatformRoute};
use crate::render::Templates;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use dijkwacht_domain::{Case, CaseId, Channel, Command};
use dijkwacht_http::{list_limit, ApiError, Caller, DocumentedRouter, Edge, Limits, ListQuery};
use dijkwacht_runtime::{EventStore, SharedClock};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::sync::Arc;

pub use dijkwacht_http::{SCOPE_OPERATE, SCOPE_REVIEW};

#[derive(Clone)]
pub struct DispatchApi {
    pub store: EventStore,
    pub clock: SharedClock,
    pub limits: Limits,
    pub directory: Directory,
    pub templates: Arc<Templates>,
}

impl Edge for DispatchApi {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// A message as an analyst pastes it into a platform's form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MessageToPaste {
    pub language: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DispatchTask {
    pub case_id: CaseId,
    /// `submit_notice` (the platform takes notices through a web form only),
    /// `deliver_by_hand` (no channel took it), `assess_rejection` (the platform refused it,
    /// or decided to leave the content up), `withdraw_by_hand`, or `forward_by_hand` (the
    /// hotline abroad could not be reached by its API).
    pub task: String,
    pub since: DateTime<Utc>,
    pub platform_id: Option<String>,
    pub platform_name: Option<String>,
    /// The form to fill in, where the platform has one.
    pub form_url: Option<String>,
    /// Why the task exists: dispatch's last failure, or the platform's refusal.
    pub reason: Option<String>,
    /// The notice in the platform's language, complete; absent when it could not be
    /// rendered (the reason says why).
    pub message: Option<MessageToPaste>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualSubmission {
    /// What the platform's form answered (a ticket number, say), kept with the delivery.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SubmissionRecorded {
    pub case_id: CaseId,
    pub status: String,
    pub version: u32,
}

/// Our pace towards one platform, as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PlatformPace {
    pub platform_id: String,
    pub name: String,
    /// Notices per second at most; absent when unlimited.
    pub per_second: Option<f64>,
    pub breaker_failures: u32,
    pub breaker_cooldown_secs: i64,
    /// As a dispatch process last saw it: `closed`, `open` or `half_open`.
    pub breaker: BreakerState,
    /// Failed attempts in a row.
    pub failures: u32,
    pub open_until: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The dispatch part's routes with their OpenAPI description.
pub fn documented() -> DocumentedRouter<DispatchApi> {
    DocumentedRouter::new()
        .route("get", "/v1/dispatch/tasks", get(tasks), |op| {
            op.summary("Notices waiting for an analyst's hand, oldest first, with the text to paste")
                .scope(SCOPE_REVIEW)
                .query_parameter("limit", false, "at most this many (1-1000, default 100)")
                .json_response::<Vec<DispatchTask>>(200, "the tasks")
                .error(422, "malformed query")
        })
        .route("get", "/v1/dispatch/pace", get(pace), |op| {
            op.summary("Each platform's rate limit and circuit breaker")
                .scope(SCOPE_OPERATE)
                .json_response::<Vec<PlatformPace>>(200, "every platform in the registry, by id")
        })
        .route(
            "post",
            "/v1/dispatch/tasks/{case_id}/submission",
            post(record_submission),
            |op| {
                op.summary("Record a notice an analyst submitted by hand (a web form, or after dispatch gave up)")
                    .scope(SCOPE_REVIEW)
                    .path_parameter("case_id", "from the tasks")
                    .json_body::<ManualSubmission>()
                    .json_response::<SubmissionRecorded>(200, "recorded (or recorded before)")
                    .error(404, "no such case")
                    .error(
                        409,
                        "the case has no notice, is closed, or an automatic attempt is in flight",
                    )
            },
        )
}

async fn pace(State(api): State<DispatchApi>, caller: Caller) -> Result<Json<Vec<PlatformPace>>, ApiError> {
    caller.require(SCOPE_OPERATE)?;
    let rows = sqlx::query("SELECT platform_id, breaker, failures, open_until, updated_at FROM dispatch_pace")
        .fetch_all(api.store.pool())
        .await?;
    let mut seen = std::collections::HashMap::new();
    for row in rows {
        let breaker = match row.try_get::<String, _>("breaker")?.as_str() {
            "open" => BreakerState::Open,
            "half_open" => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        };
        let platform_id: String = row.try_get("platform_id")?;
        seen.insert(
            platform_id,
            (
                breaker,
                row.try_get::<i32, _>("failures")? as u32,
                row.try_get("open_until")?,
                row.try_get("updated_at")?,
            ),
        );
    }
    let mut platforms: Vec<PlatformPace> = api
        .directory
        .all()
        .into_iter()
        .map(|route| {
            let (breaker, failures, open_until, updated_at) =
                seen.get(&route.platform_id)
                    .cloned()
                    .unwrap_or((BreakerState::Closed, 0, None, None));
            PlatformPace {
                platform_id: route.platform_id.clone(),
                name: route.name.clone(),
                per_second: route.pace.per_second,
                breaker_failures: route.pace.breaker_failures,
                breaker_cooldown_secs: route.pace.breaker_cooldown_secs,
                breaker,
                failures,
                open_until,
                updated_at,
            }
        })
        .collect();
    platforms.sort_by(|a, b| a.platform_id.cmp(&b.platform_id));
    Ok(Json(platforms))
}

async fn tasks(
    State(api): State<DispatchApi>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<DispatchTask>>, ApiError> {
    caller.analyst()?;
    let rows = sqlx::query("SELECT case_id, task, since FROM analyst_tasks ORDER BY since, case_id LIMIT $1")
        .bind(list_limit(query)?)
        .fetch_all(api.store.pool())
        .await?;
    let ids: Vec<CaseId> = rows
        .iter()
        .map(|row| row.try_get("case_id").map(CaseId))
        .collect::<Result<_, _>>()?;
    let loaded = api.store.load(&ids).await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows {
        let case_id = CaseId(row.try_get("case_id")?);
        let Some(case) = loaded.cases.get(&case_id).map(|loaded| &loaded.case) else {
            continue;
        };
        let route = case
            .host
            .as_ref()
            .and_then(|host| api.directory.get(&host.platform_id.0));
        tasks.push(task(
            &api,
            case,
            route.as_deref(),
            row.try_get("task")?,
            row.try_get("since")?,
        ));
    }
    Ok(Json(tasks))
}

fn task(
    api: &DispatchApi,
    case: &Case,
    route: Option<&PlatformRoute>,
    task: String,
    since: DateTime<Utc>,
) -> DispatchTask {
    let form_url = match case.dispatch.in_flight.as_ref().map(|in_flight| &in_flight.channel) {
        Some(Channel::Manual { form_url }) => form_url.clone(),
        _ => None,
    };
    let reason = case
        .dispatch
        .rejected
        .as_ref()
        .map(|rejected| rejected.reason.clone())
        .or_else(|| case.dispatch.gave_up_reason.clone())
        .or_else(|| case.forward.gave_up_reason.clone())
        .or_else(|| {
            let decision = case.followup.decision.as_ref().filter(|_| case.platform_declined())?;
            let visibility = match decision.decision_visibility.as_slice() {
                [] => "no restriction of visibility".to_owned(),
                restrictions => restrictions.join(", "),
            };
            Some(format!(
                "the platform decided to leave the content up ({visibility}; {})",
                decision.decision_ground
            ))
        });
    let (message, render_failure) = match (route, &case.notice) {
        (Some(route), Some(notice)) => {
            let subject = crate::render::Subject {
                notices: &[notice],
                platform_name: &route.name,
            };
            match api
                .templates
                .render(subject, "manual", &route.language, route.templates_dir.as_deref())
            {
                Ok(rendered) => (
                    Some(MessageToPaste {
                        language: rendered.language,
                        subject: rendered.subject,
                        text: rendered.text,
                    }),
                    None,
                ),
                Err(error) => (None, Some(error.to_string())),
            }
        }
        _ => (None, None),
    };
    DispatchTask {
        case_id: case.id,
        task,
        since,
        platform_id: case.host.as_ref().map(|host| host.platform_id.to_string()),
        platform_name: case.host.as_ref().map(|host| host.platform_name.clone()),
        form_url,
        reason: reason.or(render_failure),
        message,
    }
}

async fn record_submission(
    State(api): State<DispatchApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<SubmissionRecorded>, ApiError> {
    let analyst = caller.analyst()?;
    let case_id = dijkwacht_http::case_id(&raw)?;
    let submission: ManualSubmission = dijkwacht_http::json_body(&body)?;
    let command = Command::RecordManualSubmission {
        analyst_id: analyst.clone(),
        reference: submission.reference,
    };
    let case = dijkwacht_http::execute_one(
        &api.store,
        api.clock.now(),
        case_id,
        None,
        command,
        format!("analyst:{analyst}"),
    )
    .await?;
    Ok(Json(SubmissionRecorded {
        case_id,
        status: case.status.as_str().to_owned(),
        version: case.version,
    }))
}
