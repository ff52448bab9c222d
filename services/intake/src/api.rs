//! The bodies of the HTTP API, as partners see them. Their JSON Schemas are generated into
//! `schemas/` and must not change under a partner without a new version.

use chrono::{DateTime, Utc};
use dijkwacht_domain::{CaseId, ContentClass, HashAlgorithm, ReportId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use dijkwacht_http::error::{ErrorBody, FieldError};

/// `POST /v1/reports`: one report by a partner, naming one or more locations.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitReport {
    /// The partner's own reference; identifies the report: sending it again is answered
    /// with the original result.
    #[schemars(length(min = 1, max = 200))]
    pub partner_reference: String,
    /// The reported locations, each at most once.
    #[schemars(length(min = 1, max = 10000))]
    pub items: Vec<ReportItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportItem {
    /// http(s) URL of the content, at most 2,048 characters.
    #[schemars(length(min = 1, max = 2048), pattern(r"^[hH][tT][tT][pP][sS]?://\S+$"))]
    pub url: String,
    /// Hashes of the media at the location; never the media itself.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub hashes: Vec<HashInput>,
    /// What the partner believes the content is.
    #[serde(default)]
    pub claimed_category: Option<ContentClass>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashInput {
    pub algorithm: HashAlgorithm,
    /// Hexadecimal digest: 32 digits for md5, 40 for sha1, 64 for sha256 and pdq.
    #[schemars(pattern(r"^[0-9a-fA-F]{32,64}$"))]
    pub value: String,
    /// PDQ quality, 0–100; hashes below 50 are not matched.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub quality: Option<u8>,
}

/// `202 Accepted` (or `200` for a report sent before): the report's events are committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportAccepted {
    pub report_id: ReportId,
    pub cases: Vec<CaseRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseRef {
    pub case_id: CaseId,
    /// The URL as normalised.
    pub url: String,
    /// The location already had an open case, reported earlier (by anyone); this report
    /// was added to it.
    pub existing: bool,
}

/// `GET /v1/reports/{report_id}` and `GET /v1/reports?partner_reference=...`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReportStatus {
    pub report_id: ReportId,
    pub partner_reference: String,
    pub received_at: DateTime<Utc>,
    pub cases: Vec<CaseStatusRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CaseStatusRef {
    pub case_id: CaseId,
    pub url: String,
    pub existing: bool,
    pub status: String,
}

/// One line of the answer to `POST /v1/reports/bulk`, for the input line of the same number.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BulkLineResult {
    /// 1-based line number in the request body.
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<ReportId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<Vec<CaseRef>>,
    /// The report was sent before under this reference; nothing was added.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// `GET /v1/cases/{case_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CaseView {
    pub case_id: CaseId,
    pub status: String,
    pub url: String,
    pub events: Vec<CaseEventView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CaseEventView {
    #[serde(rename = "type")]
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
}
