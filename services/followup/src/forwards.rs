//! A partner hotline confirms here that it acts on a case we forwarded to it; an analyst
//! records a confirmation that came by other means. Either closes the case.

use crate::analysts::CaseMoved;
use crate::FollowupApi;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Json;
use dijkwacht_domain::Command;
use dijkwacht_http::{case_id, execute_one, json_body, ApiError, Caller, DocumentedRouter, SCOPE_REPORTS_WRITE};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/forwards/{case_id}/confirmation`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfirmation {
    /// The hotline's own reference for the case.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub reference: Option<String>,
    /// What the hotline does with it, in its words.
    #[serde(default)]
    #[schemars(length(min = 1, max = 2000))]
    pub note: Option<String>,
}

pub(crate) fn routes(router: DocumentedRouter<FollowupApi>) -> DocumentedRouter<FollowupApi> {
    router.route("post", "/v1/forwards/{case_id}/confirmation", post(confirm), |op| {
        op.summary(
            "The hotline a case was forwarded to confirms that it acts on it (or an analyst records that it did)",
        )
        .scope(SCOPE_REPORTS_WRITE)
        .path_parameter("case_id", "our reference, as the forward gave it")
        .json_body::<ForwardConfirmation>()
        .json_response::<CaseMoved>(200, "recorded, or recorded before; the case is closed")
        .error(404, "no case forwarded to this hotline has this id")
        .error(409, "the case was retracted")
    })
}

async fn confirm(
    State(api): State<FollowupApi>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<CaseMoved>, ApiError> {
    let case_id = case_id(&raw)?;
    let recorded_by = match caller.analyst() {
        Ok(analyst_id) => format!("analyst:{analyst_id}"),
        Err(_) => {
            let principal = caller.require(SCOPE_REPORTS_WRITE)?;
            // Another partner learns nothing, not even that the case exists.
            let case = api.store.load_one(case_id).await?.case;
            let forwarded_to = case.forwarded.as_ref().map(|forwarded| forwarded.partner_id.0.as_str());
            if principal.kind != "partner" || forwarded_to != Some(principal.id.as_str()) {
                return Err(ApiError::NotFound);
            }
            format!("partner:{}", principal.id)
        }
    };
    let confirmation: ForwardConfirmation = json_body(&body)?;
    let command = Command::ConfirmForward {
        recorded_by: recorded_by.clone(),
        reference: confirmation.reference,
        note: confirmation.note,
    };
    let case = execute_one(&api.store, api.clock.now(), case_id, None, command, recorded_by).await?;
    Ok(Json(CaseMoved::of(&case)))
}
