//! Past-tense facts about a case. Each variant is one event type in the event store; the
//! payload is what a regulator needs to see later, never the media itself.

use crate::event_enum::case_events;
use crate::hash::{HashAlgorithm, MediaHash};
use crate::ids::{CaseId, NoticeId, PartnerId, PlatformId, ReportId};
use crate::notice::Notice;
use crate::taxonomy::{ContentClass, LegalGround};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bumped when a payload changes shape; stored next to every event.
pub const SCHEMA_VERSION: i16 = 1;

case_events! {
    /// Everything that can happen to a case: one variant, one event type.
    ReportReceived,
    ReportedAgain,
    Reappeared,
    HostResolved,
    Classified,
    ReviewRequested,
    ReviewClaimed,
    AnalystDecided,
    ForwardedToHotline,
    ForwardStarted,
    ForwardSent,
    ForwardFailed,
    ForwardConfirmed,
    Retracted,
    NoticeIssued,
    DispatchStarted,
    NoticeDelivered,
    DispatchFailed,
    DispatchAbandoned,
    DispatchDeferred,
    PlatformRejected,
    WithdrawalStarted,
    NoticeWithdrawn,
    WithdrawalFailed,
    ReceiptAcknowledged,
    PlatformDecided,
    DeadlineSet,
    ChaseRequested,
    ChaseStarted,
    ReminderSent,
    Escalated,
    ChaseFailed,
    StillOnline,
    RemovalVerified,
    StillRemoved,
    RejectionAssessed,
    RegulatorDecided,
    HeldForPolice,
    ReferralStarted,
    ReferredToPolice,
    ReferralFailed,
    PoliceHoldExtended,
    PoliceHoldLapsed,
    PoliceReleased,
    PoliceChecksAllowed,
    HeldLocationChecked,
    CaseClosed,
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
    /// Our own reappearance watch: the location of a case whose content was verified
    /// removed answers again (`ReportReceived::reappearance_of` names that case).
    ReappearanceWatch,
    /// A hosting provider's hash check matched material it found on its own servers.
    HashCheck { provider_id: String },
}

impl Reporter {
    pub fn partner_id(&self) -> Option<&PartnerId> {
        match self {
            Reporter::Partner { partner_id, .. } => Some(partner_id),
            Reporter::Public { .. } | Reporter::ReappearanceWatch | Reporter::HashCheck { .. } => None,
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

/// How the host was found in the platform registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum HostMatch {
    /// The URL's host is a registered domain or a subdomain of one.
    Domain { domain: String },
    /// The host resolved to an address inside a registered range.
    IpRange { address: String, range: String },
}

/// The hosting provider whose address range serves the location, where it is not the
/// platform itself: the next party to ask when the platform does not act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostingProvider {
    pub provider_id: PlatformId,
    pub name: String,
    pub country: String,
    pub address: String,
    pub range: String,
}

/// Who holds the location, from the platform registry: the platform (found by domain, or by
/// address range when the domain is unknown), which receives the notice, and the hosting
/// provider behind it when that is someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostResolved {
    pub platform_id: PlatformId,
    pub platform_name: String,
    /// ISO 3166-1 alpha-2 country of establishment.
    pub country: String,
    /// Whether the platform is subject to the DSA's notice-and-action duties (established
    /// or offering services in the EU).
    pub dsa_platform: bool,
    pub matched: HostMatch,
    /// Where notices for this platform go.
    pub notice_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting_provider: Option<HostingProvider>,
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
    /// A rule on normalised URLs (exact, domain or path prefix).
    UrlRule { rule_id: String },
    /// An analyst decided the same location or the same hash before.
    PriorDecision { case_id: CaseId },
    /// The reporter is trusted to classify this category itself.
    TrustedClaim { partner_id: PartnerId },
    /// Analysts decided; two where the four-eyes rule applies.
    AnalystReview { analysts: Vec<String> },
    /// The location of that case, classified and noticed there, answers again after its
    /// content was verified removed.
    Reappearance { case_id: CaseId },
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
    /// A police-first rule asks an analyst whether the police must see it before any notice.
    PoliceFirst,
}

/// An analyst took a case from the review queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewClaimed {
    pub analyst_id: String,
    /// Until then only this analyst may decide; absent in claims recorded before claims expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// What an analyst concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The content is of this class and should be taken down (or flagged, if lawful).
    Actionable {
        class: ContentClass,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        legal_ground: Option<LegalGround>,
    },
    /// Nothing to act on.
    NotActionable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnalystDecided {
    pub analyst_id: String,
    pub verdict: Verdict,
    pub explanation: String,
    /// The four-eyes rule applies and a second analyst has yet to confirm.
    pub awaiting_confirmation: bool,
    /// The analyst refers the case to the police before any notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub police_referral: Option<crate::police::PoliceReferral>,
}

/// CSAM hosted abroad, in a country whose hotline is in the network: that hotline acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ForwardedToHotline {
    pub country: String,
    pub partner_id: PartnerId,
}

/// Recorded before the forward leaves for the hotline, as a notice's attempt is; the case
/// id is its idempotency key there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ForwardStarted {
    pub partner_id: PartnerId,
    pub attempt: u32,
    pub channel: Channel,
}

/// The hotline took the forwarded case; it confirms that it acts on it by `confirm_by`, or
/// the case closes unconfirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ForwardSent {
    pub partner_id: PartnerId,
    pub attempt: u32,
    /// The hotline's own reference for it, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub confirm_by: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ForwardFailed {
    pub partner_id: PartnerId,
    pub attempt: u32,
    pub reason: String,
    /// When the next attempt is due; absent when an analyst forwards it by other means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// The hotline confirmed that it acts on the forwarded case (or an analyst recorded its
/// confirmation, received by other means).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ForwardConfirmed {
    pub partner_id: PartnerId,
    /// Who recorded it: `partner:ID` (the hotline itself) or `analyst:ID`.
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The classification no longer holds (its hash was delisted): no notice, no follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Retracted {
    pub reason: String,
}

impl ReviewReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAutomatedMatch => "no_automated_match",
            Self::UnknownHost => "unknown_host",
            Self::PoliceFirst => "police_first",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewRequested {
    pub reason: ReviewReason,
    /// The police-first rule that asks the analyst to consider a referral to the police.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub police_first: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeIssued {
    /// Boxed: a notice is far larger than any other event.
    pub notice: Box<Notice>,
}

/// How a notice travels to the platform. Addresses only: credentials stay in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// The platform's notice API (HTTPS).
    Http { endpoint: String },
    /// E-mail to the platform's abuse or notice address.
    Email { to: String },
    /// The platform takes notices only through a web form: an analyst submits it by hand.
    Manual {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form_url: Option<String>,
    },
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Email { .. } => "email",
            Self::Manual { .. } => "manual",
        }
    }
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
    /// The id of the message that carried the notice (an e-mail's Message-ID), so answers
    /// and bounces can be matched to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The analyst who submitted it by hand (web-form platforms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispatchFailed {
    pub notice_id: NoticeId,
    pub attempt: u32,
    pub reason: String,
    /// When the next attempt is due; absent when dispatch has given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    /// This attempt's channel is done with (its attempts used up, or it cannot take the
    /// notice at all): the next attempt goes to the platform's next channel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub channel_exhausted: bool,
}

/// The next attempt waits for our own pace towards the platform (its rate limit, or its
/// circuit breaker while it keeps failing): not an attempt, nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispatchDeferred {
    pub notice_id: NoticeId,
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// No channel of the platform is left to try: an analyst delivers the notice by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispatchAbandoned {
    pub notice_id: NoticeId,
    pub reason: String,
}

/// The platform refused the notice (HTTP 409/422 or an explicit refusal): a fact about our
/// precision that regulators may ask for, and an analyst's task to assess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlatformRejected {
    pub notice_id: NoticeId,
    /// The platform's id for its answer, when the refusal came as one: the same answer
    /// twice is recorded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_event_id: Option<String>,
    /// The attempt the refusal answered; absent when it came later as a platform's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub reason: String,
    /// The platform's answer as received, cut to a few kilobytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// The case was retracted after its notice reached the platform: a withdrawal referencing
/// the notice goes out on the channel the notice went by. Recorded before it leaves, like
/// a notice's attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawalStarted {
    pub notice_id: NoticeId,
    pub attempt: u32,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeWithdrawn {
    pub notice_id: NoticeId,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The analyst who withdrew it by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawalFailed {
    pub notice_id: NoticeId,
    pub attempt: u32,
    pub reason: String,
    /// When the next attempt is due; absent when an analyst must withdraw it by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// The platform confirmed that it received the notice (DSA Art. 16(4)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiptAcknowledged {
    pub notice_id: NoticeId,
    /// The platform's id for its answer: the same answer twice is recorded once.
    pub platform_event_id: String,
    /// When the platform says it received the notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

/// The platform's decision on the notice (DSA Art. 16(5)), in the vocabulary of the EU
/// Transparency Database, identifiers verbatim (`crate::tdb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlatformDecided {
    pub notice_id: NoticeId,
    pub platform_event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// `DECISION_VISIBILITY_*`, none or several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decision_visibility: Vec<String>,
    /// What "other restriction" meant, where the platform said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_visibility_other: Option<String>,
    /// `DECISION_MONETARY_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_monetary: Option<String>,
    /// `DECISION_PROVISION_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_provision: Option<String>,
    /// `DECISION_ACCOUNT_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_account: Option<String>,
    /// `DECISION_GROUND_*`.
    pub decision_ground: String,
    /// `STATEMENT_CATEGORY_*`, including the two retired in 2025.
    pub category: String,
    /// `AUTOMATED_DECISION_*` (DSA Art. 16(6)).
    pub automated_decision: String,
    /// The id of the platform's statement of reasons in the Transparency Database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_of_reasons_id: Option<String>,
}

impl PlatformDecided {
    /// Whether the decision takes the content out of view (removed or access disabled).
    pub fn removes_content(&self) -> bool {
        self.decision_visibility
            .iter()
            .any(|visibility| crate::tdb::VISIBILITY_REMOVED.contains(&visibility.as_str()))
    }
}

/// How long the platform has to act on the delivered notice, from what and why: policy by
/// class and kind of platform (DSA Art. 22(1) sets no hours; the law does for terrorist
/// content). Statistics measure "within its deadline" against this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineSet {
    pub notice_id: NoticeId,
    pub due_at: DateTime<Utc>,
    /// From delivery to `due_at`.
    pub within_secs: i64,
    /// Where the deadline comes from ("Regulation (EU) 2021/784 Art. 3(3)", "policy").
    pub basis: String,
}

/// What follow-up sends, or hands on, when a platform does not act by its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chase {
    /// The notice again, to the platform, on the channel it went by.
    Reminder { number: u32 },
    /// The notice to the hosting provider behind the platform.
    HostingProvider {
        step: u32,
        provider_id: PlatformId,
        name: String,
    },
    /// A round that passes without a reminder: the platform has answered and is at work.
    Skipped,
}

/// Follow-up asks dispatch to send a chase (dispatch records its attempts as for a notice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChaseRequested {
    pub notice_id: NoticeId,
    pub chase: Chase,
}

/// Recorded before the chase leaves, as a notice's attempt is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChaseStarted {
    pub notice_id: NoticeId,
    pub chase: Chase,
    pub attempt: u32,
    pub channel: Channel,
}

/// A reminder referencing the notice reached the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReminderSent {
    pub notice_id: NoticeId,
    pub number: u32,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Who a case was escalated to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EscalationTarget {
    HostingProvider {
        provider_id: PlatformId,
        name: String,
    },
    /// The queue of the competent authority.
    Regulator {
        authority: Authority,
    },
}

/// The authority competent for a class of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    /// The authority for online child sexual abuse material (in the Netherlands the ATKM).
    CsamAuthority,
    /// The competent authority for terrorist-content removal orders (TCO Art. 12).
    TerrorismAuthority,
    /// The Digital Services Coordinator, for the platform's DSA duties.
    DigitalServicesCoordinator,
}

impl Authority {
    pub fn for_class(class: ContentClass) -> Self {
        if class.is_child_sexual_abuse() {
            Self::CsamAuthority
        } else if class == ContentClass::TerroristContent {
            Self::TerrorismAuthority
        } else {
            Self::DigitalServicesCoordinator
        }
    }
}

/// The case climbed one step of its escalation ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Escalated {
    pub notice_id: NoticeId,
    pub step: u32,
    pub to: EscalationTarget,
    /// How the message went, for a step that sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChaseFailed {
    pub notice_id: NoticeId,
    pub chase: Chase,
    pub attempt: u32,
    pub reason: String,
    /// When the next attempt is due; absent when this chase is given up (the next round
    /// of follow-up chases again).
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
    /// The first check of the reappearance watch; absent when there is no watch and the
    /// case closes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<DateTime<Utc>>,
}

/// A check of the reappearance watch found the location still gone (or unreachable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StillRemoved {
    /// HTTP status seen; absent when the host could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The next check; absent after the last, when the case closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<DateTime<Utc>>,
}

/// An analyst assessed the platform's refusal of the notice (or its decision to leave the
/// content up): upheld, the notice was wrong and the case closes as rejected — our
/// precision record counts it; contested, the case goes to the competent authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RejectionAssessed {
    pub analyst_id: String,
    pub upheld: bool,
    pub explanation: String,
}

/// The competent authority decided on an escalated case, as an analyst recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegulatorDecided {
    pub analyst_id: String,
    pub authority: Authority,
    /// What the authority decided, in the analyst's words (an order issued, a finding).
    pub decision: String,
    /// The authority's own reference for its decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Analysts referred the case to the police before anything else: from now on no notice is
/// composed and nothing touches the location, until the police (or an analyst) release it.
/// The referral itself is sent attempt by attempt, as a notice is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeldForPolice {
    /// The law-enforcement partner the referral goes to.
    pub partner_id: PartnerId,
    pub reasons: Vec<crate::police::ReferralReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The analysts whose decision it was (two under the four-eyes rule).
    pub analysts: Vec<String>,
}

/// Recorded before the referral leaves, as a notice's attempt is; the case id is its
/// idempotency key at the police.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReferralStarted {
    pub partner_id: PartnerId,
    pub attempt: u32,
    pub channel: Channel,
}

/// The police received the referral; the hold lasts until `hold_until`, unless they release
/// or extend it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReferredToPolice {
    pub partner_id: PartnerId,
    pub attempt: u32,
    /// The police's own reference for it, when they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub hold_until: DateTime<Utc>,
    /// The analyst who referred it by other means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReferralFailed {
    pub partner_id: PartnerId,
    pub attempt: u32,
    pub reason: String,
    /// When the next attempt is due; absent when an analyst must refer it by other means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// The police (or an analyst at their request) need the hold longer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoliceHoldExtended {
    pub until: DateTime<Utc>,
    /// `partner:ID` (the police partner itself) or `analyst:ID`.
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The hold ran out without a word from the police: an analyst asks them and releases or
/// extends it. Never a notice by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoliceHoldLapsed {
    pub hold_until: DateTime<Utc>,
}

/// The police have what they need: the normal path (notice, removal checks) goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoliceReleased {
    /// `partner:ID` (the police partner itself) or `analyst:ID`.
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The police allow (or no longer allow) us to look at the location while they hold the case:
/// its HTTP status only, as a removal check does, so they learn whether it is still online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PoliceChecksAllowed {
    pub allowed: bool,
    /// `partner:ID` (the police partner itself) or `analyst:ID`.
    pub recorded_by: String,
}

/// A status check of a held case's location, allowed by the police. Not a removal check: no
/// notice has gone out, and nothing follows from it but the next check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeldLocationChecked {
    pub online: bool,
    /// HTTP status seen; absent when the host could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub next_check_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseOutcome {
    /// Verified removed (and, where watched, not back within the watch).
    Removed,
    /// An analyst found nothing to act on.
    NotActionable,
    /// The platform refused the notice and an analyst upheld its refusal.
    Rejected,
    /// The competent authority decided on the escalated case.
    RegulatorDecided,
    /// Forwarded to the hotline of the hosting country, which confirmed it acts on it.
    Forwarded,
    /// Forwarded, and no confirmation came within the window.
    ForwardUnconfirmed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseClosed {
    pub outcome: CaseOutcome,
}
