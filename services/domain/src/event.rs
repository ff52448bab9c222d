//! Past-tense facts about a case. Each variant is one event type in the event store; the
//! payload is what a regulator needs to see later, never the media itself.

use crate::hash::{HashAlgorithm, MediaHash};
use crate::ids::{CaseId, NoticeId, PartnerId, PlatformId, ReportId};
use crate::notice::Notice;
use crate::taxonomy::{ContentClass, LegalGround};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bumped when a payload changes shape; stored next to every event.
pub const SCHEMA_VERSION: i16 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum CaseEvent {
    ReportReceived(ReportReceived),
    ReportedAgain(ReportedAgain),
    Reappeared(Reappeared),
    HostResolved(HostResolved),
    Classified(Classified),
    ReviewRequested(ReviewRequested),
    NoticeIssued(NoticeIssued),
    DispatchStarted(DispatchStarted),
    NoticeDelivered(NoticeDelivered),
    DispatchFailed(DispatchFailed),
    StillOnline(StillOnline),
    RemovalVerified(RemovalVerified),
    CaseClosed(CaseClosed),
}

impl CaseEvent {
    /// The event type as stored and as shown in the API.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ReportReceived(_) => "ReportReceived",
            Self::ReportedAgain(_) => "ReportedAgain",
            Self::Reappeared(_) => "Reappeared",
            Self::HostResolved(_) => "HostResolved",
            Self::Classified(_) => "Classified",
            Self::ReviewRequested(_) => "ReviewRequested",
            Self::NoticeIssued(_) => "NoticeIssued",
            Self::DispatchStarted(_) => "DispatchStarted",
            Self::NoticeDelivered(_) => "NoticeDelivered",
            Self::DispatchFailed(_) => "DispatchFailed",
            Self::StillOnline(_) => "StillOnline",
            Self::RemovalVerified(_) => "RemovalVerified",
            Self::CaseClosed(_) => "CaseClosed",
        }
    }
}

/// The location a case is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Location {
    /// Normalised URL.
    pub url: String,
    #[serde(default)]
    pub hashes: Vec<MediaHash>,
}

/// Who reported a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reporter {
    Partner {
        partner_id: PartnerId,
        partner_reference: String,
    },
    /// A member of the public, known only by the reference on their receipt. Whatever
    /// personal data they chose to give is kept outside the event store, erasable.
    Public { public_reference: String },
}

impl Reporter {
    pub fn partner_id(&self) -> Option<&PartnerId> {
        match self {
            Reporter::Partner { partner_id, .. } => Some(partner_id),
            Reporter::Public { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportReceived {
    pub report_id: ReportId,
    pub reporter: Reporter,
    pub location: Location,
    /// What the reporter believes it is; evidence for classification, never a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_class: Option<ContentClass>,
    /// The closed case of the same location, when this report is a reappearance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reappearance_of: Option<CaseId>,
}

/// Another report of a location whose case is still open: evidence, not a new case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportedAgain {
    pub report_id: ReportId,
    pub reporter: Reporter,
    /// Hashes the case did not know yet.
    #[serde(default)]
    pub new_hashes: Vec<MediaHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_class: Option<ContentClass>,
}

/// The location of this closed case was reported again: the content is back, and a new
/// case takes it from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reappeared {
    pub report_id: ReportId,
    pub new_case_id: CaseId,
}

/// Who holds the location, from the platform registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostResolved {
    pub platform_id: PlatformId,
    pub platform_name: String,
    /// The registry domain the URL's host matched.
    pub matched_domain: String,
    /// Where notices for this platform go.
    pub notice_endpoint: String,
}

/// What supported a classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    HashListMatch {
        list: String,
        list_version: i64,
        algorithm: HashAlgorithm,
        value: String,
        /// Hamming distance for perceptual hashes; absent for exact matches.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distance: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Classified {
    pub class: ContentClass,
    /// Absent for harmful-but-lawful classes, which are flagged against the platform's terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_ground: Option<LegalGround>,
    pub evidence: Evidence,
    pub automated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// No hash list, rule or prior decision matched.
    NoAutomatedMatch,
    /// The host is not in the platform registry.
    UnknownHost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewRequested {
    pub reason: ReviewReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeIssued {
    /// Boxed: a notice is far larger than any other event.
    pub notice: Box<Notice>,
}

/// How a notice travels to the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    Http { endpoint: String },
}

/// Recorded before the notice leaves, so a crash mid-send is visible and retried with the
/// same idempotency key instead of forgotten or duplicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispatchStarted {
    pub notice_id: NoticeId,
    pub attempt: u32,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeDelivered {
    pub notice_id: NoticeId,
    pub attempt: u32,
    /// The platform's own reference for the notice, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispatchFailed {
    pub notice_id: NoticeId,
    pub attempt: u32,
    pub reason: String,
    /// When the next attempt is due; absent when dispatch has given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// A removal check found the location still answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StillOnline {
    /// HTTP status seen; absent when the host could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub next_check_at: DateTime<Utc>,
}

/// A removal check found the location gone (only the status is looked at, never content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RemovalVerified {
    pub http_status: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseOutcome {
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseClosed {
    pub outcome: CaseOutcome,
}
