//! The bodies of the HTTP API, as partners see them. Their JSON Schemas are generated into
//! `schemas/` and must not change under a partner without a new version.

use chrono::{DateTime, Utc};
use dijkwacht_domain::{CaseId, ReportId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/reports`: one report by a partner, naming one or more locations.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitReport {
    /// The partner's own reference; identifies the report for the partner.
    pub partner_reference: String,
    pub items: Vec<ReportItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportItem {
    /// http(s) URL of the content, at most 2,048 characters.
    pub url: String,
    #[serde(default)]
    pub hashes: Vec<HashInput>,
    /// What the partner believes the content is (one of our classes, e.g. `csam`).
    #[serde(default)]
    pub claimed_category: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashInput {
    /// `md5`, `sha1`, `sha256` or `pdq`.
    pub algorithm: String,
    /// Hexadecimal digest.
    pub value: String,
    /// PDQ quality, 0–100.
    #[serde(default)]
    pub quality: Option<u8>,
}

/// `202 Accepted`: the report's events are committed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReportAccepted {
    pub report_id: ReportId,
    pub cases: Vec<CaseRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CaseRef {
    pub case_id: CaseId,
    /// The URL as normalised.
    pub url: String,
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

/// Every 4xx answer: what was wrong and where.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the offending value; empty for the whole request.
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}
