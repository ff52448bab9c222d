//! What analysts decide after delivery: whether a platform's refusal (or its decision to
//! leave the content up) stands, and what the authority an escalated case went to decided.
//! Both close the case or move it on through the one command path.

use crate::FollowupApi;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Json;
use dijkwacht_domain::{Case, CaseId, Command};
use dijkwacht_http::{case_id, execute_one, json_body, ApiError, Caller, DocumentedRouter, SCOPE_REVIEW};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionVerdict {
    /// The platform is right: the case closes as rejected, and counts against our precision.
    Uphold,
    /// The platform is wrong: the case goes to the competent authority's queue.
    Contest,
}

/// `POST /v1/followup/cases/{case_id}/rejection-assessment`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectionAssessment {
    pub verdict: RejectionVerdict,
    /// Why, for the record a regulator may read.
    #[schemars(length(min = 1, max = 2000))]
    pub explanation: String,
}

/// `POST /v1/followup/cases/{case_id}/regulator-decision`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegulatorDecision {
    /// What the authority decided (an order issued, a finding), in the analyst's words.
    #[schemars(length(min = 1, max = 2000))]
    pub decision: String,
    /// The authority's own reference for its decision.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub reference: Option<String>,
}

/// Where a case stands after an analyst's or a hotline's decision.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CaseMoved {
    pub case_id: CaseId,
    pub status: String,
    pub version: u32,
}

impl CaseMoved {
    pub fn of(case: &Case) -> Self {
        Self {
            case_id: case.id,
            status: case.status.as_str().to_owned(),
            version: case.version,
        }
    }
}

pub(crate) fn routes(router: DocumentedRouter<FollowupApi>) -> DocumentedRouter<FollowupApi> {
    router
        .route(
            "post",
            "/v1/followup/cases/{case_id}/rejection-assessment",
            post(assess_rejection),
            |op| {
                op.summary(
                    "Uphold or contest a platform's refusal of a notice (or its decision to leave the content up)",
                )
                .scope(SCOPE_REVIEW)
                .path_parameter("case_id", "from the analyst tasks (assess_rejection)")
                .json_body::<RejectionAssessment>()
                .json_response::<CaseMoved>(200, "closed as rejected, or escalated to the authority")
                .error(404, "no such case")
                .error(409, "the platform has not refused the notice, or the case is closed")
            },
        )
        .route(
            "post",
            "/v1/followup/cases/{case_id}/regulator-decision",
            post(record_regulator_decision),
            |op| {
                op.summary("Record the decision of the authority an escalated case went to; the case closes")
                    .scope(SCOPE_REVIEW)
                    .path_parameter("case_id", "an escalated case")
                    .json_body::<RegulatorDecision>()
                    .json_response::<CaseMoved>(200, "recorded (or recorded before)")
                    .error(404, "no such case")
                    .error(409, "the case was not escalated to an authority, or is closed")
            },
        )
}

async fn assess_rejection(
    State(api): State<FollowupApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<CaseMoved>, ApiError> {
    let analyst_id = caller.analyst()?;
    let assessment: RejectionAssessment = json_body(&body)?;
    let command = Command::AssessRejection {
        analyst_id: analyst_id.clone(),
        upheld: assessment.verdict == RejectionVerdict::Uphold,
        explanation: assessment.explanation,
    };
    moved(&api, case_id(&raw)?, command, analyst_id).await
}

async fn record_regulator_decision(
    State(api): State<FollowupApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<CaseMoved>, ApiError> {
    let analyst_id = caller.analyst()?;
    let decision: RegulatorDecision = json_body(&body)?;
    let command = Command::RecordRegulatorDecision {
        analyst_id: analyst_id.clone(),
        decision: decision.decision,
        reference: decision.reference,
    };
    moved(&api, case_id(&raw)?, command, analyst_id).await
}

async fn moved(
    api: &FollowupApi,
    case_id: CaseId,
    command: Command,
    analyst_id: String,
) -> Result<Json<CaseMoved>, ApiError> {
    let case = execute_one(
        &api.store,
        api.clock.now(),
        case_id,
        None,
        command,
        format!("analyst:{analyst_id}"),
    )
    .await?;
    Ok(Json(CaseMoved::of(&case)))
}
