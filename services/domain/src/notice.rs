//! The content of a DSA Art. 16 notice from a trusted flagger. Composed from the case alone,
//! so the same case always yields the same notice text.

use crate::case::Case;
use crate::decide::Refusal;
use crate::event::{Evidence, Location};
use crate::ids::{CaseId, NoticeId, PlatformId};
use crate::taxonomy::{ContentClass, LegalGround};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who sends notices and under which designation: configuration, not case data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticePolicy {
    pub organisation: String,
    pub contact_email: String,
    /// The Digital Services Coordinator that awarded trusted-flagger status.
    pub designated_by: String,
    pub designation_reference: String,
}

/// DSA Art. 16(2)(c): name and e-mail of the notifier (an organisation, never a victim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Notifier {
    pub name: String,
    pub email: String,
}

/// The notifier's status under DSA Art. 22, which obliges the platform to give priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TrustedFlaggerMarking {
    pub organisation: String,
    pub designated_by: String,
    pub designation_reference: String,
    pub legal_basis: String,
    /// `SOURCE_TRUSTED_FLAGGER` in the Transparency Database vocabulary.
    pub tdb_source_type: String,
}

/// Why the content must go: illegal under a provision, or against the platform's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Illegality {
    Illegal { legal_ground: LegalGround },
    IncompatibleWithTerms,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Notice {
    pub notice_id: NoticeId,
    pub case_id: CaseId,
    pub platform_id: PlatformId,
    pub issued_at: DateTime<Utc>,
    pub trusted_flagger: TrustedFlaggerMarking,
    /// Art. 16(2)(c); omitted for child sexual abuse material, as the article allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifier: Option<Notifier>,
    /// Art. 16(2)(b): the exact locations and what else identifies the content.
    pub locations: Vec<Location>,
    pub content_class: ContentClass,
    pub illegality: Illegality,
    /// `STATEMENT_CATEGORY_*`.
    pub tdb_category: String,
    /// `KEYWORD_*`.
    pub tdb_keywords: Vec<String>,
    /// `DECISION_GROUND_*` the platform is asked to apply.
    pub tdb_decision_ground: String,
    /// Art. 16(2)(a): why the information is illegal, facts and provision.
    pub explanation: String,
    /// What the assessment rests on, exactly as recorded; absent in notices issued before
    /// notices named their evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The analysts' own explanation, when analysts classified the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<String>,
    /// When the location was reported to us, and when it was assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessed_at: Option<DateTime<Utc>>,
    /// Art. 16(2)(d).
    pub good_faith_statement: String,
    pub requested_action: String,
}

const GOOD_FAITH_STATEMENT: &str = "We confirm in good faith that the information and allegations in this notice are accurate and complete (Art. 16(2)(d) Regulation (EU) 2022/2065).";

impl Notice {
    /// The notice for a classified, host-resolved case. `issued_at` dates the legal ground.
    pub fn compose(
        case: &Case,
        policy: &NoticePolicy,
        notice_id: NoticeId,
        issued_at: DateTime<Utc>,
    ) -> Result<Notice, Refusal> {
        let report = case.report.as_ref().ok_or(Refusal::NoSuchCase)?;
        let classification = case.classification.as_ref().ok_or(Refusal::NotClassified)?;
        let host = case.host.as_ref().ok_or(Refusal::HostUnknown)?;
        let class = classification.class;
        let illegality = match &classification.legal_ground {
            Some(ground) => Illegality::Illegal {
                legal_ground: ground.clone(),
            },
            None if class.is_lawful_but_harmful() => Illegality::IncompatibleWithTerms,
            None => return Err(Refusal::NoLegalGround(class)),
        };
        let notifier = (!class.is_child_sexual_abuse()).then(|| Notifier {
            name: policy.organisation.clone(),
            email: policy.contact_email.clone(),
        });
        Ok(Notice {
            notice_id,
            case_id: case.id,
            platform_id: host.platform_id.clone(),
            issued_at,
            trusted_flagger: TrustedFlaggerMarking {
                organisation: policy.organisation.clone(),
                designated_by: policy.designated_by.clone(),
                designation_reference: policy.designation_reference.clone(),
                legal_basis: "Art. 22 Regulation (EU) 2022/2065 (Digital Services Act)".to_owned(),
                tdb_source_type: "SOURCE_TRUSTED_FLAGGER".to_owned(),
            },
            notifier,
            locations: vec![report.location.clone()],
            content_class: class,
            explanation: explanation(&Facts {
                class,
                illegality: &illegality,
                location: &report.location,
                platform: &host.platform_name,
                evidence: &classification.evidence,
                assessment: case.assessment.as_deref(),
            }),
            illegality,
            evidence: Some(classification.evidence.clone()),
            assessment: case.assessment.clone(),
            reported_at: case.received_at,
            assessed_at: case.classified_at,
            tdb_category: class.tdb_category().to_owned(),
            tdb_keywords: class.tdb_keywords().iter().map(|k| (*k).to_owned()).collect(),
            tdb_decision_ground: class.tdb_decision_ground().to_owned(),
            good_faith_statement: GOOD_FAITH_STATEMENT.to_owned(),
            requested_action:
                "Remove or disable access to the content at the locations listed, with priority (Art. 22(1) DSA)."
                    .to_owned(),
        })
    }
}

struct Facts<'a> {
    class: ContentClass,
    illegality: &'a Illegality,
    location: &'a Location,
    platform: &'a str,
    evidence: &'a Evidence,
    assessment: Option<&'a str>,
}

/// The explanation says what the assessment rests on and nothing more: a hash-list match
/// is claimed only when one was recorded.
fn explanation(facts: &Facts) -> String {
    let what = describe(facts.class);
    let basis = match facts.evidence {
        Evidence::HashListMatch {
            list,
            list_version,
            algorithm,
            distance,
            ..
        } => match distance {
            Some(distance) => format!(
                "The media there matches an entry of hash list {list} (version {list_version}) by {algorithm} at Hamming distance {distance}.",
                algorithm = algorithm.as_str(),
            ),
            None => format!(
                "The media there matches an entry of hash list {list} (version {list_version}) exactly, by {algorithm}.",
                algorithm = algorithm.as_str(),
            ),
        },
        Evidence::UrlRule { rule_id } => format!("The location matches our URL rule {rule_id}."),
        Evidence::PriorDecision { case_id } => {
            format!("Our analysts assessed the same location or media before (case {case_id}).")
        }
        Evidence::Reappearance { case_id } => format!(
            "We assessed the content at this location before (case {case_id}); it was removed after our notice and the location answers again."
        ),
        Evidence::TrustedClaim { partner_id } => {
            format!("Partner hotline {partner_id}, trusted to assess this category, classified it so.")
        }
        Evidence::AnalystReview { analysts } => match facts.assessment {
            Some(assessment) => format!(
                "{} of our analysts assessed it: \"{assessment}\"",
                analysts.len().max(1)
            ),
            None => format!("{} of our analysts assessed it.", analysts.len().max(1)),
        },
    };
    let url = &facts.location.url;
    let platform = facts.platform;
    match facts.illegality {
        Illegality::Illegal { legal_ground } => format!(
            "The content at {url} on {platform} was assessed as {what}. {basis} Making it available is an offence under {provision} ({jurisdiction}).",
            provision = legal_ground.provision,
            jurisdiction = legal_ground.jurisdiction,
        ),
        Illegality::IncompatibleWithTerms => format!(
            "The content at {url} on {platform} was assessed as {what}. {basis} It is not illegal as such; we flag it as incompatible with your terms and conditions.",
        ),
    }
}

pub fn describe(class: ContentClass) -> &'static str {
    match class {
        ContentClass::Csam => "child sexual abuse material",
        ContentClass::CsamAiGenerated => "AI-generated child sexual abuse material",
        ContentClass::Grooming => "sexual enticement of a minor (grooming)",
        ContentClass::Ncii => "intimate images shared without consent",
        ContentClass::SexualDeepfake => "a sexual deepfake made without consent",
        ContentClass::Sextortion => "sexual extortion",
        ContentClass::Doxing => "personal data published to intimidate (doxing)",
        ContentClass::CyberHarassment => "cyber harassment",
        ContentClass::TerroristContent => "terrorist content",
        ContentClass::HateSpeech => "incitement to hatred or violence",
        ContentClass::Violence => "graphic violence",
        ContentClass::AnimalCruelty => "animal cruelty",
        ContentClass::SelfHarm => "promotion of self-harm",
        ContentClass::EatingDisorder => "promotion of eating disorders",
    }
}
