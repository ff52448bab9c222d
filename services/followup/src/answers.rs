//! Platforms answer our notices here: a receipt (DSA Art. 16(4)), a decision (16(5)) in the
//! Transparency Database's vocabulary, or a refusal. Each request is signed with one of the
//! platform's secrets (see `dijkwacht_runtime::signature`); each answer carries the
//! platform's own event id and is recorded once however often it is sent.

use crate::FollowupApi;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use chrono::{DateTime, Utc};
use dijkwacht_domain::tdb::Enumeration;
use dijkwacht_domain::{
    CaseId, Command, NoticeId, PlatformAnswer, PlatformDecided, PlatformRejected, ReceiptAcknowledged,
};
use dijkwacht_http::{execute_one, json_body, ApiError, DocumentedRouter};
use dijkwacht_runtime::secret::SecretRef;
use dijkwacht_runtime::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/platforms/{platform_id}/events`: one answer to one of our notices.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlatformEvent {
    /// The platform received the notice (DSA Art. 16(4)).
    Receipt(Receipt),
    /// The platform decided on the notice (DSA Art. 16(5)).
    Decision(Box<Decision>),
    /// The platform refuses to act on the notice, and says why.
    Rejection(Rejection),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The platform's id for this answer; the same id again is recorded once.
    #[schemars(length(min = 1, max = 200))]
    pub event_id: String,
    /// Our notice, as its `notice_id` (also sent as `Idempotency-Key`).
    pub notice_id: NoticeId,
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
}

/// A decision as the platform records it in the Transparency Database, identifiers
/// verbatim.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[schemars(length(min = 1, max = 200))]
    pub event_id: String,
    pub notice_id: NoticeId,
    #[serde(default)]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub decision_visibility: Vec<DecisionVisibility>,
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub decision_visibility_other: Option<String>,
    #[serde(default)]
    pub decision_monetary: Option<DecisionMonetary>,
    #[serde(default)]
    pub decision_provision: Option<DecisionProvision>,
    #[serde(default)]
    pub decision_account: Option<DecisionAccount>,
    pub decision_ground: DecisionGround,
    pub category: StatementCategory,
    pub automated_decision: AutomatedDecision,
    /// The statement of reasons' id in the Transparency Database.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub statement_of_reasons_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    #[schemars(length(min = 1, max = 200))]
    pub event_id: String,
    pub notice_id: NoticeId,
    #[schemars(length(min = 1, max = 2000))]
    pub reason: String,
}

/// One identifier of a Transparency Database list: any string to serde, the list's
/// identifiers to the schema, which the body is checked against first.
macro_rules! tdb_identifier {
    ($name:ident, $enumeration:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": $doc,
                    "type": "string",
                    "enum": $enumeration.identifiers(),
                })
            }
        }
    };
}

tdb_identifier!(
    DecisionVisibility,
    Enumeration::DecisionVisibilities,
    "`DECISION_VISIBILITY_*` of the Transparency Database."
);
tdb_identifier!(
    DecisionMonetary,
    Enumeration::DecisionMonetaries,
    "`DECISION_MONETARY_*` of the Transparency Database."
);
tdb_identifier!(
    DecisionProvision,
    Enumeration::DecisionProvisions,
    "`DECISION_PROVISION_*` of the Transparency Database."
);
tdb_identifier!(
    DecisionAccount,
    Enumeration::DecisionAccounts,
    "`DECISION_ACCOUNT_*` of the Transparency Database."
);
tdb_identifier!(
    DecisionGround,
    Enumeration::DecisionGrounds,
    "`DECISION_GROUND_*` of the Transparency Database."
);
tdb_identifier!(
    StatementCategory,
    Enumeration::StatementCategories,
    "`STATEMENT_CATEGORY_*` of the Transparency Database, with the two retired on 2025-07-01."
);
tdb_identifier!(
    AutomatedDecision,
    Enumeration::AutomatedDecisions,
    "`AUTOMATED_DECISION_*` of the Transparency Database (DSA Art. 16(6))."
);

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AnswerRecorded {
    /// False when this event id was recorded before: nothing changed.
    pub recorded: bool,
}

impl PlatformEvent {
    fn notice_id(&self) -> NoticeId {
        match self {
            Self::Receipt(receipt) => receipt.notice_id,
            Self::Decision(decision) => decision.notice_id,
            Self::Rejection(rejection) => rejection.notice_id,
        }
    }

    fn event_id(&self) -> &str {
        match self {
            Self::Receipt(receipt) => &receipt.event_id,
            Self::Decision(decision) => &decision.event_id,
            Self::Rejection(rejection) => &rejection.event_id,
        }
    }

    fn into_answer(self) -> PlatformAnswer {
        match self {
            Self::Receipt(receipt) => PlatformAnswer::Receipt(ReceiptAcknowledged {
                notice_id: receipt.notice_id,
                platform_event_id: receipt.event_id,
                received_at: receipt.received_at,
            }),
            Self::Decision(decision) => PlatformAnswer::Decision(PlatformDecided {
                // Read field by field: the box is moved out of once.
                notice_id: decision.notice_id,
                platform_event_id: decision.event_id,
                decided_at: decision.decided_at,
                decision_visibility: decision.decision_visibility.into_iter().map(|v| v.0).collect(),
                decision_visibility_other: decision.decision_visibility_other,
                decision_monetary: decision.decision_monetary.map(|v| v.0),
                decision_provision: decision.decision_provision.map(|v| v.0),
                decision_account: decision.decision_account.map(|v| v.0),
                decision_ground: decision.decision_ground.0,
                category: decision.category.0,
                automated_decision: decision.automated_decision.0,
                statement_of_reasons_id: decision.statement_of_reasons_id,
            }),
            Self::Rejection(rejection) => PlatformAnswer::Rejection(PlatformRejected {
                notice_id: rejection.notice_id,
                platform_event_id: Some(rejection.event_id),
                attempt: None,
                reason: rejection.reason,
                answer: None,
            }),
        }
    }
}

pub(crate) fn routes(router: DocumentedRouter<FollowupApi>) -> DocumentedRouter<FollowupApi> {
    router.route(
        "post",
        "/v1/platforms/{platform_id}/events",
        post(record_answer),
        |op| {
            op.summary("A platform's receipt, decision or refusal of one of our notices, signed")
                .path_parameter("platform_id", "the platform's id in our registry")
                .header_parameter(TIMESTAMP_HEADER, "Unix seconds when the request was signed")
                .header_parameter(
                    SIGNATURE_HEADER,
                    "sha256=HEX: HMAC-SHA256 of `{timestamp}.{body}` with one of the platform's secrets",
                )
                .json_body::<PlatformEvent>()
                .json_response::<AnswerRecorded>(200, "recorded, or recorded before under this event id")
                .error(
                    401,
                    "unsigned, signed with an unknown secret, or outside the time window",
                )
                .error(404, "no notice of this platform has this id")
                .error(409, "the answer contradicts the case")
        },
    )
}

async fn record_answer(
    State(api): State<FollowupApi>,
    Path(platform_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AnswerRecorded>, ApiError> {
    let secrets = answer_secrets(&api, &platform_id).await?;
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let now = api.clock.now();
    signature::verify(
        &secrets,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now.timestamp(),
        api.answer_window.num_seconds(),
    )
    .map_err(|error| ApiError::BadSignature(error.to_string()))?;
    let event: PlatformEvent = json_body(&body)?;
    let case_id = case_of_notice(&api, event.notice_id()).await?;
    let loaded = api.store.load_one(case_id).await?;
    let ours = loaded
        .case
        .notice
        .as_ref()
        .is_some_and(|notice| notice.platform_id.0 == platform_id);
    if !ours {
        return Err(ApiError::NotFound);
    }
    let recorded_before = loaded.case.followup.answer_ids.contains(event.event_id());
    execute_one(
        &api.store,
        now,
        case_id,
        None,
        Command::RecordPlatformAnswer(event.into_answer()),
        format!("platform:{platform_id}"),
    )
    .await?;
    Ok(Json(AnswerRecorded {
        recorded: !recorded_before,
    }))
}

/// The platform's signing secrets; a platform that has none (or is unknown) cannot answer
/// here, and is told no more than that the signature does not hold.
async fn answer_secrets(api: &FollowupApi, platform_id: &str) -> Result<Vec<String>, ApiError> {
    let named: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT answer_secrets FROM platforms WHERE platform_id = $1")
            .bind(platform_id)
            .fetch_optional(api.store.pool())
            .await?;
    let named: Vec<SecretRef> = named
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| ApiError::Internal(format!("answer secrets of {platform_id}: {error}")))?
        .unwrap_or_default();
    let secrets: Vec<String> = named
        .iter()
        .filter_map(|secret| match secret.read() {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(platform_id, %error, "an answer secret cannot be read");
                None
            }
        })
        .collect();
    if secrets.is_empty() {
        return Err(ApiError::BadSignature(
            "no secret is on record to check this platform's signature".into(),
        ));
    }
    Ok(secrets)
}

async fn case_of_notice(api: &FollowupApi, notice_id: NoticeId) -> Result<CaseId, ApiError> {
    let case_id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT stream_id FROM events WHERE event_type = 'NoticeIssued' \
         AND (payload -> 'notice' ->> 'notice_id')::uuid = $1 LIMIT 1",
    )
    .bind(notice_id.0)
    .fetch_optional(api.store.pool())
    .await?;
    case_id.map(CaseId).ok_or(ApiError::NotFound)
}
