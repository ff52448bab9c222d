//! What a hosting provider sends to `POST /v1/hash-check` and what it gets back.

use dijkwacht_domain::{CaseId, ContentClass, HashAlgorithm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A batch of hashes to check; each is answered on its own, in the same order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashCheckRequest {
    /// At most 10,000 (the server's `max_batch`); a longer batch is refused whole with 413.
    #[schemars(length(min = 1))]
    pub hashes: Vec<HashToCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashToCheck {
    pub algorithm: HashAlgorithm,
    /// Hexadecimal, either case: 32 digits for md5, 40 for sha1, 64 for sha256 and pdq.
    #[schemars(regex(pattern = r"^([0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"))]
    pub value: String,
    /// PDQ only, and required for it: the quality the hasher reported, 0–100. Below 50 the
    /// hash is too unreliable to compare, and the answer is `not_checked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub quality: Option<u8>,
    /// Where the material is online on the provider's servers, when it was found there
    /// after upload; absent when an upload is being checked before it goes online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub url: Option<String>,
}

/// The answers, one per hash of the request, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HashCheckAnswer {
    pub results: Vec<CheckResult>,
}

/// The answer for one hash. It never names a list or an entry: a provider learns whether
/// to block, and as what, nothing that would let it enumerate a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckResult {
    /// Listed as this class (one the provider's key may check).
    Match {
        class: ContentClass,
        /// PDQ only: the Hamming distance to the nearest listed hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distance: Option<u32>,
        /// The case opened for the material at `url`, when the provider's hits open cases.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<CaseId>,
    },
    /// Not listed as any class the provider's key may check.
    NoMatch,
    /// Not compared at all (a PDQ hash of too low a quality): neither listed nor unlisted.
    NotChecked { reason: String },
}
