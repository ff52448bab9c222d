//! Our classes of content, their place in the DSA Transparency Database vocabulary and the
//! legal provision that makes them illegal on a given date.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a reported location holds, in the organisation's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentClass {
    Csam,
    CsamAiGenerated,
    Grooming,
    /// Non-consensual sharing of intimate images.
    Ncii,
    SexualDeepfake,
    Sextortion,
    Doxing,
    CyberHarassment,
    TerroristContent,
    HateSpeech,
    // Harmful but lawful: flagged against the platform's terms, never called illegal.
    Violence,
    AnimalCruelty,
    SelfHarm,
    EatingDisorder,
}

impl ContentClass {
    pub const ALL: [ContentClass; 14] = [
        Self::Csam,
        Self::CsamAiGenerated,
        Self::Grooming,
        Self::Ncii,
        Self::SexualDeepfake,
        Self::Sextortion,
        Self::Doxing,
        Self::CyberHarassment,
        Self::TerroristContent,
        Self::HateSpeech,
        Self::Violence,
        Self::AnimalCruelty,
        Self::SelfHarm,
        Self::EatingDisorder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csam => "csam",
            Self::CsamAiGenerated => "csam_ai_generated",
            Self::Grooming => "grooming",
            Self::Ncii => "ncii",
            Self::SexualDeepfake => "sexual_deepfake",
            Self::Sextortion => "sextortion",
            Self::Doxing => "doxing",
            Self::CyberHarassment => "cyber_harassment",
            Self::TerroristContent => "terrorist_content",
            Self::HateSpeech => "hate_speech",
            Self::Violence => "violence",
            Self::AnimalCruelty => "animal_cruelty",
            Self::SelfHarm => "self_harm",
            Self::EatingDisorder => "eating_disorder",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == value)
    }

    /// Harmful but lawful content has no legal removal duty: notices cite the platform's terms.
    pub fn is_lawful_but_harmful(self) -> bool {
        matches!(
            self,
            Self::Violence | Self::AnimalCruelty | Self::SelfHarm | Self::EatingDisorder
        )
    }

    /// Child sexual abuse offences: DSA Art. 16(2)(c) lets the notifier stay unnamed.
    pub fn is_child_sexual_abuse(self) -> bool {
        matches!(self, Self::Csam | Self::CsamAiGenerated | Self::Grooming)
    }

    /// `STATEMENT_CATEGORY_*` of the DSA Transparency Database.
    pub fn tdb_category(self) -> &'static str {
        match self {
            Self::Csam | Self::CsamAiGenerated | Self::Grooming => "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
            Self::Ncii | Self::SexualDeepfake | Self::Sextortion | Self::CyberHarassment => {
                "STATEMENT_CATEGORY_CYBER_VIOLENCE"
            }
            Self::Doxing => "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
            Self::TerroristContent => "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
            Self::HateSpeech => "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
            Self::Violence => "STATEMENT_CATEGORY_VIOLENCE",
            Self::AnimalCruelty => "STATEMENT_CATEGORY_ANIMAL_WELFARE",
            Self::SelfHarm | Self::EatingDisorder => "STATEMENT_CATEGORY_SELF_HARM",
        }
    }

    /// `KEYWORD_*` identifiers of the DSA Transparency Database.
    pub fn tdb_keywords(self) -> &'static [&'static str] {
        match self {
            Self::Csam => &["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"],
            Self::CsamAiGenerated => &[
                "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
                "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
            ],
            Self::Grooming => &["KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS"],
            Self::Ncii => &["KEYWORD_NON_CONSENSUAL_IMAGE_SHARING"],
            Self::SexualDeepfake => &["KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"],
            Self::Sextortion => &["KEYWORD_CYBER_HARASSMENT"],
            Self::CyberHarassment => &["KEYWORD_CYBER_HARASSMENT", "KEYWORD_CYBER_STALKING"],
            Self::Doxing | Self::Violence => &["KEYWORD_OTHER"],
            Self::TerroristContent => &["KEYWORD_TERRORIST_CONTENT"],
            Self::HateSpeech => &["KEYWORD_HATE_SPEECH", "KEYWORD_INCITEMENT_VIOLENCE_HATRED"],
            Self::AnimalCruelty => &["KEYWORD_ANIMAL_HARM"],
            Self::SelfHarm => &["KEYWORD_SELF_MUTILATION"],
            Self::EatingDisorder => &["KEYWORD_CONTENT_PROMOTING_EATING_DISORDERS"],
        }
    }

    /// `DECISION_GROUND_*` a platform would use when acting on our notice.
    pub fn tdb_decision_ground(self) -> &'static str {
        if self.is_lawful_but_harmful() {
            "DECISION_GROUND_INCOMPATIBLE_CONTENT"
        } else {
            "DECISION_GROUND_ILLEGAL_CONTENT"
        }
    }

    /// The provision that makes this class illegal on `date`, if any.
    pub fn legal_ground(self, date: NaiveDate) -> Option<LegalGround> {
        LEGAL_GROUNDS
            .iter()
            .find(|row| {
                row.classes.contains(&self)
                    && row.valid_from <= date
                    && row.valid_until.is_none_or(|until| date <= until)
            })
            .map(|row| LegalGround {
                jurisdiction: "NL".to_owned(),
                provision: row.provision.to_owned(),
                valid_from: row.valid_from,
                valid_until: row.valid_until,
            })
    }
}

impl fmt::Display for ContentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The legal provision cited in a notice, with the period in which it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LegalGround {
    pub jurisdiction: String,
    pub provision: String,
    pub valid_from: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<NaiveDate>,
}

struct LegalGroundRow {
    classes: &'static [ContentClass],
    provision: &'static str,
    valid_from: NaiveDate,
    valid_until: Option<NaiveDate>,
}

const fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) => date,
        None => panic!("invalid date in the legal ground table"),
    }
}

use ContentClass::*;

/// Dutch provisions by validity. The Sexual Offences Act (Wet seksuele misdrijven) renumbered
/// the sexual offences on 2024-07-01; where the new number is unconfirmed the old row stays
/// open-ended until the table is amended.
const LEGAL_GROUNDS: &[LegalGroundRow] = &[
    LegalGroundRow {
        classes: &[Csam, CsamAiGenerated],
        provision: "art. 240b Wetboek van Strafrecht",
        valid_from: date(2002, 10, 1),
        valid_until: Some(date(2024, 6, 30)),
    },
    LegalGroundRow {
        classes: &[Csam, CsamAiGenerated],
        provision: "art. 252 Wetboek van Strafrecht",
        valid_from: date(2024, 7, 1),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[Grooming],
        provision: "art. 248e Wetboek van Strafrecht",
        valid_from: date(2010, 1, 1),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[Ncii, SexualDeepfake],
        provision: "art. 139h Wetboek van Strafrecht",
        valid_from: date(2020, 1, 1),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[Sextortion],
        provision: "art. 317 Wetboek van Strafrecht",
        valid_from: date(1886, 3, 3),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[Doxing],
        provision: "art. 285d Wetboek van Strafrecht",
        valid_from: date(2024, 1, 1),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[CyberHarassment],
        provision: "art. 285b Wetboek van Strafrecht",
        valid_from: date(2000, 1, 1),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[TerroristContent],
        provision: "Regulation (EU) 2021/784, art. 2(7)",
        valid_from: date(2022, 6, 7),
        valid_until: None,
    },
    LegalGroundRow {
        classes: &[HateSpeech],
        provision: "art. 137d Wetboek van Strafrecht",
        valid_from: date(1992, 1, 1),
        valid_until: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_identifiers(enumeration: &str) -> Vec<String> {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../reference/dsa-tdb-enumerations.json")).unwrap();
        reference["enumerations"][enumeration]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_identifier_is_verbatim_from_the_transparency_database() {
        let categories = reference_identifiers("STATEMENT_CATEGORIES");
        let keywords = reference_identifiers("KEYWORDS");
        let grounds = reference_identifiers("DECISION_GROUNDS");
        for class in ContentClass::ALL {
            assert!(categories.iter().any(|c| c == class.tdb_category()), "{class}");
            assert!(grounds.iter().any(|g| g == class.tdb_decision_ground()), "{class}");
            for keyword in class.tdb_keywords() {
                assert!(keywords.iter().any(|k| k == keyword), "{class}: {keyword}");
            }
        }
    }

    #[test]
    fn csam_provision_follows_the_2024_renumbering() {
        let before = Csam.legal_ground(date(2024, 6, 30)).unwrap();
        let after = Csam.legal_ground(date(2024, 7, 1)).unwrap();
        assert_eq!(before.provision, "art. 240b Wetboek van Strafrecht");
        assert_eq!(after.provision, "art. 252 Wetboek van Strafrecht");
    }

    #[test]
    fn harmful_but_lawful_classes_have_no_legal_ground() {
        for class in ContentClass::ALL {
            let ground = class.legal_ground(date(2026, 1, 1));
            assert_eq!(ground.is_none(), class.is_lawful_but_harmful(), "{class}");
        }
    }

    #[test]
    fn names_round_trip() {
        for class in ContentClass::ALL {
            assert_eq!(ContentClass::parse(class.as_str()), Some(class));
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
        }
    }
}
