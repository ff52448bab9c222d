//! The vocabulary of the EU's DSA Transparency Database, in which platforms record their
//! decisions (statements of reasons) and in which they answer us. Read from the
//! Commission's own list (`reference/dsa-tdb-enumerations.json`, copied verbatim), so an
//! identifier is accepted exactly as the Database spells it and a new one is a file update.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// One list of identifiers of the Database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enumeration {
    DecisionVisibilities,
    DecisionMonetaries,
    DecisionProvisions,
    DecisionAccounts,
    DecisionGrounds,
    StatementCategories,
    AutomatedDecisions,
    Keywords,
    ContentTypes,
    SourceTypes,
}

impl Enumeration {
    pub const ALL: [Enumeration; 10] = [
        Self::DecisionVisibilities,
        Self::DecisionMonetaries,
        Self::DecisionProvisions,
        Self::DecisionAccounts,
        Self::DecisionGrounds,
        Self::StatementCategories,
        Self::AutomatedDecisions,
        Self::Keywords,
        Self::ContentTypes,
        Self::SourceTypes,
    ];

    /// Its name in the Commission's file.
    pub fn key(self) -> &'static str {
        match self {
            Self::DecisionVisibilities => "DECISION_VISIBILITIES",
            Self::DecisionMonetaries => "DECISION_MONETARIES",
            Self::DecisionProvisions => "DECISION_PROVISIONS",
            Self::DecisionAccounts => "DECISION_ACCOUNTS",
            Self::DecisionGrounds => "DECISION_GROUNDS",
            Self::StatementCategories => "STATEMENT_CATEGORIES",
            Self::AutomatedDecisions => "AUTOMATED_DECISIONS",
            Self::Keywords => "KEYWORDS",
            Self::ContentTypes => "CONTENT_TYPES",
            Self::SourceTypes => "SOURCE_TYPES",
        }
    }

    /// Every identifier it accepts on input, as the Database spells it. Categories include
    /// the two removed on 2025-07-01, which older payloads still carry.
    pub fn identifiers(self) -> Vec<&'static str> {
        let mut identifiers: Vec<&'static str> = VOCABULARY
            .get(self.key())
            .map(|labels| labels.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if self == Self::StatementCategories {
            identifiers.extend(RETIRED_CATEGORIES);
        }
        identifiers
    }

    pub fn accepts(self, identifier: &str) -> bool {
        self.identifiers().contains(&identifier)
    }

    /// The Database's label for an identifier ("Removal of content").
    pub fn label(self, identifier: &str) -> Option<&'static str> {
        VOCABULARY.get(self.key())?.get(identifier).map(String::as_str)
    }
}

/// Statement categories removed from the Database on 2025-07-01.
pub const RETIRED_CATEGORIES: [&str; 2] = [
    "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
    "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
];

/// The decisions that take the content out of view: what a removal check then confirms.
pub const VISIBILITY_REMOVED: [&str; 2] = [
    "DECISION_VISIBILITY_CONTENT_REMOVED",
    "DECISION_VISIBILITY_CONTENT_DISABLED",
];

type Vocabulary = BTreeMap<String, BTreeMap<String, String>>;

static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct File {
        enumerations: Vocabulary,
    }
    let file: File = serde_json::from_str(include_str!("../reference/dsa-tdb-enumerations.json"))
        .expect("the Transparency Database vocabulary is valid JSON");
    file.enumerations
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_is_read_from_the_commissions_file() {
        let sizes: Vec<usize> = Enumeration::ALL.iter().map(|e| e.identifiers().len()).collect();
        assert_eq!(sizes, vec![7, 3, 4, 2, 2, 16 + 2, 3, 69, 8, 4]);
        assert!(Enumeration::DecisionVisibilities.accepts("DECISION_VISIBILITY_CONTENT_REMOVED"));
        assert!(Enumeration::StatementCategories.accepts("STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"));
        assert!(!Enumeration::DecisionGrounds.accepts("DECISION_GROUND_MADE_UP"));
        assert_eq!(
            Enumeration::DecisionVisibilities.label("DECISION_VISIBILITY_CONTENT_REMOVED"),
            Some("Removal of content")
        );
    }
}
