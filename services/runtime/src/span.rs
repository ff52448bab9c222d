//! Spans of time in configuration and reference data, written as people write them:
//! `"24h"`, `"30m"`, `"7d"`. One reading for every part, so one wording when it is wrong.

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer};

/// For `#[serde(deserialize_with = "dijkwacht_runtime::span::one")]`.
pub fn one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TimeDelta, D::Error> {
    parse(&String::deserialize(deserializer)?)
}

/// A list of spans: `["1d", "7d", "30d"]`.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<TimeDelta>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|written| parse(written))
        .collect()
}

/// An optional span (with `#[serde(default)]`).
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TimeDelta>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|written| parse(&written))
        .transpose()
}

fn parse<E: serde::de::Error>(written: &str) -> Result<TimeDelta, E> {
    let parsed = humantime::parse_duration(written)
        .map_err(|error| E::custom(format!("{written:?} is not a span like \"24h\" or \"30m\": {error}")))?;
    TimeDelta::from_std(parsed).map_err(E::custom)
}
