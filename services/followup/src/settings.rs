//! The follow-up part's configuration section, `[followup]` (`DIJKWACHT_FOLLOWUP__KEY` in
//! the environment): deadlines, the chase, and how signed platform answers are checked.
//! Spans are written as people write them: `"24h"`, `"30m"`, `"5s"`.

use chrono::TimeDelta;
use dijkwacht_domain::followup::{default_deadlines, DeadlineRule, FollowupPolicy, PlatformKind};
use dijkwacht_domain::ContentClass;
use dijkwacht_runtime::span;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FollowupSettings {
    /// How long a platform has, by class and kind of platform; the first rule that fits
    /// wins. Absent: the defaults of `docs/legal.md` §5.
    pub deadlines: Option<Vec<DeadlineSetting>>,
    /// Between removal checks once a deadline has passed.
    #[serde(deserialize_with = "span::one")]
    pub recheck_every: TimeDelta,
    /// Between rounds of the chase: reminders, then escalations.
    #[serde(deserialize_with = "span::one")]
    pub remind_every: TimeDelta,
    /// Reminders before the first escalation.
    pub reminders: u32,
    /// The ladder after the reminders: the hosting provider behind the platform, then the
    /// competent authority's queue.
    pub hosting_provider: bool,
    pub regulator: bool,
    /// The same, per class: `[followup.classes.terrorist_content] reminders = 0`.
    pub classes: BTreeMap<ContentClass, ClassChase>,
    /// After a verified removal, when to look again whether the content is back, counted
    /// from the removal: `["1d", "7d", "30d"]`; `[]` closes the case at the removal.
    #[serde(deserialize_with = "span::list")]
    pub watch: Vec<TimeDelta>,
    /// How far the timestamp of a signed platform answer may be from our clock.
    #[serde(deserialize_with = "span::one")]
    pub answer_window: TimeDelta,
}

impl Default for FollowupSettings {
    fn default() -> Self {
        let policy = FollowupPolicy::default();
        Self {
            deadlines: None,
            recheck_every: policy.recheck_every,
            remind_every: policy.remind_every,
            reminders: policy.reminders,
            hosting_provider: policy.hosting_provider,
            regulator: policy.regulator,
            classes: BTreeMap::new(),
            watch: policy.watch,
            answer_window: TimeDelta::minutes(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSetting {
    #[serde(default)]
    pub class: Option<ContentClass>,
    #[serde(default)]
    pub platform: Option<PlatformKind>,
    #[serde(deserialize_with = "span::one")]
    pub within: TimeDelta,
    pub basis: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassChase {
    pub reminders: Option<u32>,
    pub hosting_provider: Option<bool>,
    pub regulator: Option<bool>,
}

pub const SECTION: &str = "followup";

impl FollowupSettings {
    /// The section as the configuration gives it, checked.
    pub fn from_settings(
        settings: &dijkwacht_runtime::config::Settings,
    ) -> Result<Self, dijkwacht_runtime::config::ConfigError> {
        settings.section(SECTION)
    }

    pub fn from_section(section: &serde_json::Value) -> Result<Self, dijkwacht_runtime::config::ConfigError> {
        dijkwacht_runtime::config::section(SECTION, section)
    }

    pub fn deadline_rules(&self) -> Vec<DeadlineRule> {
        match &self.deadlines {
            None => default_deadlines(),
            Some(rules) => rules
                .iter()
                .map(|rule| DeadlineRule {
                    class: rule.class,
                    platform: rule.platform,
                    within: rule.within,
                    basis: rule.basis.clone(),
                })
                .collect(),
        }
    }

    /// How a case of `class` is chased.
    pub fn policy_for(&self, class: Option<ContentClass>) -> FollowupPolicy {
        let own = class
            .and_then(|class| self.classes.get(&class))
            .cloned()
            .unwrap_or_default();
        FollowupPolicy {
            recheck_every: self.recheck_every,
            remind_every: self.remind_every,
            reminders: own.reminders.unwrap_or(self.reminders),
            hosting_provider: own.hosting_provider.unwrap_or(self.hosting_provider),
            regulator: own.regulator.unwrap_or(self.regulator),
            watch: self.watch.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spans_deadlines_and_class_overrides_are_read() {
        let settings = FollowupSettings::from_section(&json!({
            "remind_every": "12h",
            "deadlines": [{"class": "terrorist_content", "within": "1h", "basis": "TCO"}, {"within": "2d", "basis": "policy"}],
            "classes": {"terrorist_content": {"reminders": 0}}
        }))
        .unwrap();
        assert_eq!(settings.remind_every, TimeDelta::hours(12));
        let rules = settings.deadline_rules();
        assert_eq!(rules[1].within, TimeDelta::days(2));
        assert_eq!(settings.policy_for(Some(ContentClass::TerroristContent)).reminders, 0);
        assert_eq!(settings.policy_for(Some(ContentClass::Csam)).reminders, 2);
        assert_eq!(
            settings.policy_for(None).watch,
            vec![TimeDelta::days(1), TimeDelta::days(7), TimeDelta::days(30)]
        );
        let unwatched = FollowupSettings::from_section(&json!({"watch": []})).unwrap();
        assert!(unwatched.policy_for(None).watch.is_empty());
    }

    #[test]
    fn a_span_that_is_not_one_says_so() {
        let error = FollowupSettings::from_section(&json!({"remind_every": "soon"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"soon\" is not a span"), "{error}");
    }
}
