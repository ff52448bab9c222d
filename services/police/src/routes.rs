//! The referrals, as the police and analysts work them.

use crate::{PoliceApi, SCOPE_POLICE};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use dijkwacht_dispatch::registry::DEFAULT_HOLD_FOR;
use dijkwacht_domain::{Case, CaseId, Command, ReferralFacts};
use dijkwacht_http::{
    case_id, execute_one, json_body, list_limit, ApiError, Caller, DocumentedRouter, FieldError, ListQuery,
    SCOPE_REVIEW,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest a hold may be extended to, from now: a referral is not a place to park a case.
const LONGEST_HOLD: chrono::TimeDelta = chrono::TimeDelta::days(365);

/// `POST /v1/police/referrals/{case_id}/release`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    #[serde(default)]
    #[schemars(length(min = 1, max = 2000))]
    pub note: Option<String>,
}

/// `POST /v1/police/referrals/{case_id}/extension`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// Until when the case stays held (RFC 3339); later than now, at most a year ahead.
    pub until: DateTime<Utc>,
    #[serde(default)]
    #[schemars(length(min = 1, max = 2000))]
    pub note: Option<String>,
}

/// `POST /v1/police/referrals/{case_id}/removal-checks`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovalChecks {
    /// Whether we may look at the location (its HTTP status only) while the case is held.
    pub allowed: bool,
}

/// `POST /v1/police/referrals/{case_id}/referred-by-hand`: an analyst referred the case by
/// other means (the police partner's channel failed, or it has none).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferredByHand {
    /// The police's reference for it.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub reference: Option<String>,
}

/// Who works the referral: an analyst (every referral) or the police partner (its own).
enum Viewer {
    Analyst(String),
    Police(String),
}

impl Viewer {
    fn of(caller: &Caller) -> Result<Self, ApiError> {
        if let Ok(analyst_id) = caller.analyst() {
            return Ok(Self::Analyst(analyst_id));
        }
        let principal = caller.require(SCOPE_POLICE)?;
        if principal.kind != "partner" {
            return Err(ApiError::Forbidden(SCOPE_POLICE));
        }
        Ok(Self::Police(principal.id.clone()))
    }

    /// How the viewer is recorded in events.
    fn actor(&self) -> String {
        match self {
            Self::Analyst(id) => format!("analyst:{id}"),
            Self::Police(id) => format!("partner:{id}"),
        }
    }

    /// The police see the referrals addressed to them; anything else does not exist.
    fn may_see(&self, facts: &ReferralFacts) -> bool {
        match self {
            Self::Analyst(_) => true,
            Self::Police(partner_id) => facts.partner_id.0 == *partner_id,
        }
    }

    fn partner(&self) -> Option<&str> {
        match self {
            Self::Analyst(_) => None,
            Self::Police(partner_id) => Some(partner_id),
        }
    }
}

pub(crate) fn routes(router: DocumentedRouter<PoliceApi>) -> DocumentedRouter<PoliceApi> {
    let scopes = "`police` (the partner's own referrals) or `review` (analysts, every referral)";
    router
        .route("get", "/v1/police/referrals", get(list), |op| {
            op.summary("The cases referred to the police, newest first")
                .scope(SCOPE_POLICE)
                .query_parameter("limit", false, "1–1000, 100 when not given")
                .json_response::<Vec<ReferralFacts>>(200, scopes)
                .error(422, "a query parameter is malformed")
        })
        .route("get", "/v1/police/referrals/{case_id}", get(read), |op| {
            op.summary("The facts of one referred case: location, hashes, assessment, hold — never media")
                .scope(SCOPE_POLICE)
                .path_parameter("case_id", "as the referral gave it")
                .json_response::<ReferralFacts>(200, scopes)
                .error(404, "no case referred to this partner has this id")
        })
        .route("post", "/v1/police/referrals/{case_id}/release", post(release), |op| {
            op.summary("Release the hold: the notice and removal checks go on as for any case")
                .scope(SCOPE_POLICE)
                .path_parameter("case_id", "a held case")
                .json_body::<Release>()
                .json_response::<ReferralFacts>(200, "released (or released before)")
                .error(404, "no case referred to this partner has this id")
                .error(409, "the case is not held (retracted or closed)")
        })
        .route("post", "/v1/police/referrals/{case_id}/extension", post(extend), |op| {
            op.summary("Hold the case longer")
                .scope(SCOPE_POLICE)
                .path_parameter("case_id", "a held case")
                .json_body::<Extension>()
                .json_response::<ReferralFacts>(200, "held until the new time")
                .error(404, "no case referred to this partner has this id")
                .error(409, "the case is not held")
                .error(422, "`until` is not in the future, or more than a year ahead")
        })
        .route(
            "post",
            "/v1/police/referrals/{case_id}/removal-checks",
            post(allow_checks),
            |op| {
                op.summary(
                    "Allow (or stop) status checks of the location while the case is held: whether it is still online, never its content",
                )
                .scope(SCOPE_POLICE)
                .path_parameter("case_id", "a held case")
                .json_body::<RemovalChecks>()
                .json_response::<ReferralFacts>(200, "recorded; the first check is due at once")
                .error(404, "no case referred to this partner has this id")
                .error(409, "the case is not held")
            },
        )
        .route(
            "post",
            "/v1/police/referrals/{case_id}/referred-by-hand",
            post(referred_by_hand),
            |op| {
                op.summary("Record a referral an analyst made by other means (the analyst task refer_by_hand)")
                    .scope(SCOPE_REVIEW)
                    .path_parameter("case_id", "a held case whose referral has not reached the police")
                    .json_body::<ReferredByHand>()
                    .json_response::<ReferralFacts>(200, "recorded; the hold runs from now")
                    .error(404, "no such referral")
                    .error(409, "an automatic attempt is in flight, or the case is not held")
            },
        )
}

async fn list(
    State(api): State<PoliceApi>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<ReferralFacts>>, ApiError> {
    let viewer = Viewer::of(&caller)?;
    let limit = list_limit(query)?;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT case_id FROM case_summaries \
         WHERE police_partner_id IS NOT NULL AND ($1::text IS NULL OR police_partner_id = $1) \
         ORDER BY police_held_at DESC, case_id LIMIT $2",
    )
    .bind(viewer.partner())
    .bind(limit)
    .fetch_all(api.store.pool())
    .await?;
    let ids: Vec<CaseId> = ids.into_iter().map(CaseId).collect();
    let loaded = api.store.load(&ids).await?;
    let referrals = ids
        .iter()
        .filter_map(|id| loaded.cases.get(id))
        .filter_map(|loaded| ReferralFacts::of(&loaded.case))
        .filter(|facts| viewer.may_see(facts))
        .collect();
    Ok(Json(referrals))
}

async fn read(
    State(api): State<PoliceApi>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<ReferralFacts>, ApiError> {
    let viewer = Viewer::of(&caller)?;
    let case = api.store.load_one(case_id(&raw)?).await?.case;
    visible(&viewer, &case).map(Json)
}

/// The facts of a referral the viewer may see; 404 for every other case, as for one that
/// does not exist.
fn visible(viewer: &Viewer, case: &Case) -> Result<ReferralFacts, ApiError> {
    ReferralFacts::of(case)
        .filter(|facts| viewer.may_see(facts))
        .ok_or(ApiError::NotFound)
}

/// Decides the command `decide` makes of a referral the viewer may see, through the one
/// command path; the referral's facts as they are after.
async fn work(
    api: &PoliceApi,
    viewer: &Viewer,
    raw: &str,
    decide: impl FnOnce(&Case) -> Command,
) -> Result<Json<ReferralFacts>, ApiError> {
    let case_id = case_id(raw)?;
    let case = api.store.load_one(case_id).await?.case;
    visible(viewer, &case)?;
    let command = decide(&case);
    let case = execute_one(&api.store, api.clock.now(), case_id, None, command, viewer.actor()).await?;
    visible(viewer, &case).map(Json)
}

async fn release(
    State(api): State<PoliceApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<ReferralFacts>, ApiError> {
    let viewer = Viewer::of(&caller)?;
    let release: Release = json_body(&body)?;
    let recorded_by = viewer.actor();
    work(&api, &viewer, &raw, |_| Command::ReleaseFromPoliceHold {
        recorded_by,
        note: release.note,
    })
    .await
}

async fn extend(
    State(api): State<PoliceApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<ReferralFacts>, ApiError> {
    let viewer = Viewer::of(&caller)?;
    let extension: Extension = json_body(&body)?;
    let now = api.clock.now();
    if extension.until <= now {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "/until",
            format!("must be later than now ({now})"),
        )]));
    }
    if extension.until > now + LONGEST_HOLD {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "/until",
            "a hold is extended by at most a year at a time",
        )]));
    }
    let recorded_by = viewer.actor();
    work(&api, &viewer, &raw, |_| Command::ExtendPoliceHold {
        until: extension.until,
        recorded_by,
        note: extension.note,
    })
    .await
}

async fn allow_checks(
    State(api): State<PoliceApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<ReferralFacts>, ApiError> {
    let viewer = Viewer::of(&caller)?;
    let checks: RemovalChecks = json_body(&body)?;
    let recorded_by = viewer.actor();
    work(&api, &viewer, &raw, |_| Command::AllowHeldChecks {
        allowed: checks.allowed,
        recorded_by,
    })
    .await
}

/// The hold runs from now for as long as the police partner's entry says.
async fn referred_by_hand(
    State(api): State<PoliceApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<ReferralFacts>, ApiError> {
    let analyst_id = caller.analyst()?;
    let referred: ReferredByHand = json_body(&body)?;
    let viewer = Viewer::Analyst(analyst_id.clone());
    work(&api, &viewer, &raw, |case| {
        let hold_for = case
            .police
            .held
            .as_ref()
            .and_then(|held| api.directory.police(&held.partner_id.0))
            .map_or(DEFAULT_HOLD_FOR, |route| route.hold_for);
        Command::RecordManualReferral {
            analyst_id,
            reference: referred.reference,
            hold_for,
        }
    })
    .await
}
