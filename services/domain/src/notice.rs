//! The content of a DSA Art. 16 notice from a trusted flagger. Composed from the case alone,
//! so the same case always yields the same notice text.

use crate::case::Case;
use crate::decide::Refusal;
use crate::event::Location;
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
            explanation: explanation(class, &illegality, &report.location, &host.platform_name),
            illegality,
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

fn explanation(class: ContentClass, illegality: &Illegality, location: &Location, platform: &str) -> String {
    let hashes = match location.hashes.len() {
        0 => String::new(),
        1 => " The media there matches 1 hash listed below.".to_owned(),
        n => format!(" The media there matches {n} hashes listed below."),
    };
    let what = describe(class);
    match illegality {
        Illegality::Illegal { legal_ground } => format!(
            "The content at {url} on {platform} was assessed as {what}.{hashes} Making it available is an offence under {provision} ({jurisdiction}).",
            url = location.url,
            provision = legal_ground.provision,
            jurisdiction = legal_ground.jurisdiction,
        ),
        Illegality::IncompatibleWithTerms => format!(
            "The content at {url} on {platform} was assessed as {what}.{hashes} It is not illegal as such; we flag it as incompatible with your terms and conditions.",
            url = location.url,
        ),
    }
}

fn describe(class: ContentClass) -> &'static str {
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
