//! Configuration read and checked whole before anything starts: every part's own section,
//! the parts named, the files the settings name. `dijkwacht --check-config` stops here, so a
//! deployment can check each service's configuration without a database or a broker.

use crate::parts::{selected, PARTS};
use anyhow::Context;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::reference::ReferenceData;
use dijkwacht_runtime::Part;
use dijkwacht_simulator::platform::Behaviour;
use std::collections::BTreeMap;

/// The settings of a process, checked.
pub struct Checked {
    /// What it runs, in start order.
    pub parts: Vec<&'static dyn Part>,
    pub simulator_platforms: BTreeMap<String, Behaviour>,
    pub reference: Option<ReferenceData>,
}

/// Checks every part's configuration (not only those this process runs: a deployment's
/// processes share it), and reads the files the settings name.
pub fn check(settings: &Settings) -> anyhow::Result<Checked> {
    for part in PARTS {
        part.check(settings)?;
    }
    Ok(Checked {
        parts: selected(settings)?,
        simulator_platforms: serde_json::from_value(settings.simulator_platforms.clone())
            .context("simulator_platforms")?,
        reference: match &settings.reference_file {
            Some(file) => Some(ReferenceData::from_file(file)?),
            None => None,
        },
    })
}
