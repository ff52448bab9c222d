//! Every part of dijkwacht. A part's crate holds its stage, routes, configuration and
//! telemetry; it joins the binary here, by one line.

use anyhow::bail;
use dijkwacht_runtime::config::{ConfigError, Settings};
use dijkwacht_runtime::relay::RelayPart;
use dijkwacht_runtime::Part;
use std::path::Path;

/// In the order a process starts them.
pub const PARTS: &[&dyn Part] = &[
    &dijkwacht_intake::Intake,
    &RelayPart,
    &dijkwacht_classify::Classify,
    &dijkwacht_notices::Notices,
    &dijkwacht_dispatch::Dispatch,
    &dijkwacht_followup::Followup,
    &dijkwacht_projection::Projection,
    &dijkwacht_hashcheck::HashCheck,
    &dijkwacht_police::Police,
];

/// The settings from defaults, `file` and the environment, with every part's section.
pub fn load_settings(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let sections: Vec<&str> = PARTS.iter().flat_map(|part| part.sections()).copied().collect();
    Settings::load(file, &sections)
}

/// The names `run --only` takes.
pub fn runnable() -> impl Iterator<Item = &'static str> {
    PARTS.iter().filter(|part| part.runs_alone()).map(|part| part.name())
}

/// The parts the settings name (every runnable one when they name none), in start order.
pub fn selected(settings: &Settings) -> anyhow::Result<Vec<&'static dyn Part>> {
    if let Some(names) = &settings.parts {
        for name in names {
            if !runnable().any(|known| known == name.trim()) {
                let known: Vec<&str> = runnable().collect();
                bail!("unknown part {name:?}; the parts are {}", known.join(", "));
            }
        }
    }
    Ok(PARTS
        .iter()
        .copied()
        .filter(|part| part.runs_alone() && settings.runs(part.name()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dijkwacht_domain::StageKind;

    #[test]
    fn every_stage_a_case_can_wait_for_is_a_part() {
        for kind in StageKind::ALL {
            assert!(
                runnable().any(|name| name == kind.name()),
                "cases wait for {}, which no part runs",
                kind.name()
            );
        }
    }

    #[test]
    fn names_and_sections_are_each_owned_once() {
        let names: Vec<&str> = PARTS.iter().map(|part| part.name()).collect();
        let sections: Vec<&str> = PARTS.iter().flat_map(|part| part.sections()).copied().collect();
        for list in [names, sections] {
            let mut unique = list.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), list.len(), "named twice in {list:?}");
        }
    }

    #[test]
    fn an_unknown_part_is_refused_with_the_known_ones() {
        let settings = Settings {
            parts: Some(vec!["classify".into(), "clasify".into()]),
            ..Settings::default()
        };
        let error = selected(&settings).err().expect("refused").to_string();
        assert!(error.contains("\"clasify\"") && error.contains("hash-check"), "{error}");
        assert!(
            !error.contains("police"),
            "police runs with the API, not alone: {error}"
        );
    }
}
