//! The analysts' review queue: list, claim, decide. Decisions are events with the analyst's
//! id; the four-eyes rule is the domain's; a decision on a case that changed since the
//! analyst looked at it is refused with the version to reload.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use dijkwacht_domain::{
    CaseId, Command, ContentClass, LegalGround, PartnerId, PoliceReferral, ReferralReason, Verdict,
};
use dijkwacht_http::case_id;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub use dijkwacht_http::SCOPE_REVIEW;

/// Which classes need a second analyst before a notice goes out, and how long a claim
/// keeps other analysts off a case.
#[derive(Debug, Clone)]
pub struct ReviewPolicy {
    pub four_eyes: Vec<ContentClass>,
    pub claim_lease: chrono::TimeDelta,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReviewItem {
    pub case_id: CaseId,
    pub url: String,
    pub received_at: DateTime<Utc>,
    /// Why automation could not decide.
    pub reason: Option<String>,
    pub claimed_category: Option<String>,
    pub claimed_by: Option<String>,
    /// Send this back as `expected_version` with the decision.
    pub version: u32,
}

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    pub category: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// The case version the analyst saw; a changed case refuses the decision (409).
    pub expected_version: u32,
    /// `actionable` or `not_actionable`.
    pub verdict: String,
    /// Required for `actionable`.
    #[serde(default)]
    pub class: Option<ContentClass>,
    /// The provision the analyst applies, where it differs from the one the taxonomy gives
    /// for the class on the date of the conduct (e.g. "art. 139h Wetboek van Strafrecht").
    #[serde(default)]
    #[schemars(length(min = 1, max = 500))]
    pub legal_ground: Option<String>,
    #[schemars(length(min = 1, max = 10000))]
    pub explanation: String,
    /// Refer the case to the police before any notice (an actionable verdict only): no notice
    /// is composed and nothing touches the location until the police release it.
    #[serde(default)]
    pub refer_to_police: Option<ReferToPolice>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferToPolice {
    /// Why: at least one.
    #[schemars(length(min = 1))]
    pub reasons: Vec<ReferralReason>,
    /// The law-enforcement partner; may be left out when only one is registered.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub partner_id: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1, max = 2000))]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReviewOutcome {
    pub case_id: CaseId,
    pub status: String,
    /// The four-eyes rule applies and a second analyst has yet to confirm.
    pub awaiting_confirmation: bool,
    pub version: u32,
}

/// Pending cases, oldest first.
pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<Vec<ReviewItem>>, ApiError> {
    caller.analyst()?;
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![crate::api::FieldError::new("", e.body_text())]))?;
    let category = query.category.filter(|c| !c.is_empty());
    if let Some(category) = &category {
        if ContentClass::parse(category).is_none() {
            return Err(ApiError::Invalid(vec![crate::api::FieldError::new(
                "",
                format!("unknown category {category:?}"),
            )]));
        }
    }
    let rows = sqlx::query(
        "SELECT case_id, url, received_at, review_reason, claimed_class, claimed_by, version FROM case_summaries \
         WHERE review_queued_at IS NOT NULL AND ($1::text IS NULL OR claimed_class = $1) \
         ORDER BY review_queued_at, case_id LIMIT $2",
    )
    .bind(&category)
    .bind(query.limit.unwrap_or(100).clamp(1, 1000))
    .fetch_all(state.store.pool())
    .await?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(ReviewItem {
                case_id: CaseId(row.try_get("case_id")?),
                url: row.try_get("url")?,
                received_at: row.try_get("received_at")?,
                reason: row.try_get("review_reason")?,
                claimed_category: row.try_get("claimed_class")?,
                claimed_by: row.try_get("claimed_by")?,
                version: row.try_get::<i32, _>("version")? as u32,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(items))
}

/// Decides `command` on the case as it is at `expected_version` (or as it is now), through
/// the one command path.
async fn execute(
    state: &AppState,
    case_id: CaseId,
    expected_version: Option<u32>,
    command: Command,
    actor: &str,
) -> Result<std::sync::Arc<dijkwacht_domain::Case>, ApiError> {
    dijkwacht_http::execute_one(
        &state.store,
        state.clock.now(),
        case_id,
        expected_version,
        command,
        format!("analyst:{actor}"),
    )
    .await
}

pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let analyst = caller.analyst()?;
    let id = case_id(&raw)?;
    let case = execute(
        &state,
        id,
        None,
        Command::ClaimReview {
            analyst_id: analyst.clone(),
            lease: state.review.claim_lease,
        },
        &analyst,
    )
    .await?;
    Ok(Json(ReviewOutcome {
        case_id: id,
        status: case.status.as_str().to_owned(),
        awaiting_confirmation: case.pending_decision.is_some(),
        version: case.version,
    })
    .into_response())
}

pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let analyst = caller.analyst()?;
    let id = case_id(&raw)?;
    let decision: ReviewDecision = dijkwacht_http::json_body(&body)?;
    if decision.explanation.trim().is_empty() || decision.explanation.contains('\0') {
        return Err(ApiError::Invalid(vec![crate::api::FieldError::new(
            "/explanation",
            "explain the decision (and no NUL characters)",
        )]));
    }
    let loaded = state.store.load_one(id).await?;
    let conduct_date = loaded
        .case
        .received_at
        .unwrap_or_else(|| state.clock.now())
        .date_naive();
    // A host that was unknown when the case arrived may be registered by now.
    let host = match (&loaded.case.host, &loaded.case.report) {
        (None, Some(report)) => {
            let registry = state.registry.fresh(state.store.pool()).await?;
            registry.resolve(state.resolver.as_ref(), &report.location.url).await
        }
        _ => None,
    };
    let verdict = match (decision.verdict.as_str(), decision.class) {
        ("actionable", Some(class)) => Verdict::Actionable {
            class,
            legal_ground: match decision
                .legal_ground
                .filter(|g| !g.trim().is_empty() && !g.contains('\0'))
            {
                Some(provision) => Some(LegalGround {
                    jurisdiction: state.home_country.clone(),
                    provision,
                    // Named by the analyst for this conduct: valid from the conduct's date.
                    valid_from: conduct_date,
                    valid_until: None,
                }),
                None => class.legal_ground(conduct_date),
            },
        },
        ("not_actionable", _) => Verdict::NotActionable,
        ("actionable", None) => {
            return Err(ApiError::Invalid(vec![crate::api::FieldError::new(
                "/class",
                "an actionable verdict names the class",
            )]))
        }
        _ => {
            return Err(ApiError::Invalid(vec![crate::api::FieldError::new(
                "/verdict",
                "actionable or not_actionable",
            )]))
        }
    };
    let police_referral = match decision.refer_to_police {
        Some(_) if verdict == Verdict::NotActionable => {
            return Err(ApiError::Invalid(vec![crate::api::FieldError::new(
                "/refer_to_police",
                "only an actionable verdict is referred to the police",
            )]))
        }
        Some(referral) => Some(police_referral(&state, referral).await?),
        None => None,
    };
    let four_eyes = matches!(verdict, Verdict::Actionable { class, .. } if state.review.four_eyes.contains(&class));
    let command = Command::DecideReview {
        analyst_id: analyst.clone(),
        verdict,
        explanation: decision.explanation,
        four_eyes,
        host,
        police_referral,
    };
    let case = execute(&state, id, Some(decision.expected_version), command, &analyst).await?;
    Ok((
        StatusCode::OK,
        Json(ReviewOutcome {
            case_id: id,
            status: case.status.as_str().to_owned(),
            awaiting_confirmation: case.pending_decision.is_some(),
            version: case.version,
        }),
    )
        .into_response())
}

/// The referral as the decider takes it: reasons given, addressed to a registered
/// law-enforcement partner (the only one, when the analyst names none).
async fn police_referral(state: &AppState, referral: ReferToPolice) -> Result<PoliceReferral, ApiError> {
    let invalid =
        |pointer: &str, message: String| ApiError::Invalid(vec![crate::api::FieldError::new(pointer, message)]);
    if referral.reasons.is_empty() {
        return Err(invalid("/refer_to_police/reasons", "give at least one reason".into()));
    }
    let police: Vec<String> =
        sqlx::query_scalar("SELECT partner_id FROM partners WHERE police IS NOT NULL ORDER BY partner_id")
            .fetch_all(state.store.pool())
            .await?;
    let partner_id = match (referral.partner_id, police.as_slice()) {
        (Some(named), _) if police.contains(&named) => named,
        (Some(named), _) => {
            return Err(invalid(
                "/refer_to_police/partner_id",
                format!("{named:?} is no law-enforcement partner; the registered ones are {police:?}"),
            ))
        }
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(invalid(
                "/refer_to_police",
                "no law-enforcement partner is registered (a partner with `police` in the reference data)".into(),
            ))
        }
        (None, _) => {
            return Err(invalid(
                "/refer_to_police/partner_id",
                format!("name the law-enforcement partner: one of {police:?}"),
            ))
        }
    };
    let mut reasons = referral.reasons;
    reasons.sort();
    reasons.dedup();
    Ok(PoliceReferral {
        partner_id: PartnerId(partner_id),
        reasons,
        note: referral.note.filter(|note| !note.trim().is_empty()),
    })
}
