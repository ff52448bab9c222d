//! The process's metrics: counters and gauges by name and labels, written only by the typed
//! telemetry events ([`super::events`]), read as Prometheus text at `/metrics` and exported
//! over OTLP when a collector is configured.
//!
//! Written by hand because it is small and hot: one lock per emitted event (a batch, not a
//! message), no allocation for a series that exists.

use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge};
use opentelemetry::KeyValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows (Prometheus `_total`).
    Counter,
    /// The latest reading.
    Gauge,
}

/// One metric: its name, what it means, and its kind. Defined once, next to the event that
/// writes it.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// The label names, in the order the event gives their values.
    pub labels: &'static [&'static str],
}

type Series = BTreeMap<Vec<String>, f64>;

/// Every series of every metric written so far.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, (Metric, Series)>>,
    /// Where each metric is also exported, once a collector is configured.
    otlp: OnceLock<Otlp>,
}

/// The process's registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// Adds `by` to a counter's series.
    pub fn add(&self, metric: &Metric, values: &[&str], by: u64) {
        debug_assert_eq!(metric.kind, Kind::Counter);
        self.update(metric, values, |value| *value += by as f64);
    }

    /// Sets a gauge's series.
    pub fn set(&self, metric: &Metric, values: &[&str], to: f64) {
        debug_assert_eq!(metric.kind, Kind::Gauge);
        self.update(metric, values, |value| *value = to);
    }

    fn update(&self, metric: &Metric, values: &[&str], change: impl FnOnce(&mut f64)) {
        debug_assert_eq!(metric.labels.len(), values.len(), "{}", metric.name);
        let mut families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut new_metric = false;
        let (_, series) = families.entry(metric.name).or_insert_with(|| {
            new_metric = true;
            (*metric, Series::new())
        });
        match series.iter_mut().find(|(labels, _)| labels.iter().eq(values.iter())) {
            Some((_, value)) => change(value),
            None => {
                let mut value = 0.0;
                change(&mut value);
                series.insert(values.iter().map(|v| (*v).to_owned()).collect(), value);
            }
        }
        drop(families);
        if let (true, Some(otlp)) = (new_metric, self.otlp.get()) {
            otlp.observe(metric);
        }
    }

    /// Exports every metric, present and future, through `meter` as well.
    pub fn export_to(&'static self, meter: Meter) {
        let otlp = self.otlp.get_or_init(|| Otlp {
            meter,
            instruments: Mutex::default(),
        });
        let existing: Vec<Metric> = {
            let families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            families.values().map(|(metric, _)| *metric).collect()
        };
        for metric in &existing {
            otlp.observe(metric);
        }
    }

    /// A series' value, if it was ever written.
    pub fn value(&self, metric: &Metric, values: &[&str]) -> Option<f64> {
        let families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, series) = families.get(metric.name)?;
        series
            .get(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
            .copied()
    }

    /// The sum of a metric's series whose labels include `filter` (name, value) pairs.
    pub fn sum(&self, metric: &Metric, filter: &[(&str, &str)]) -> f64 {
        let families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some((_, series)) = families.get(metric.name) else {
            return 0.0;
        };
        series
            .iter()
            .filter(|(labels, _)| {
                filter.iter().all(|(name, wanted)| {
                    metric
                        .labels
                        .iter()
                        .position(|label| label == name)
                        .is_some_and(|index| labels[index] == *wanted)
                })
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = String::new();
        for (name, (metric, series)) in families.iter() {
            let kind = match metric.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(text, "# HELP {name} {}", metric.help);
            let _ = writeln!(text, "# TYPE {name} {kind}");
            for (values, value) in series {
                let _ = writeln!(text, "{name}{} {value}", labels(metric.labels, values));
            }
        }
        text
    }

    fn observe(&self, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
        let families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some((metric, series)) = families.get(name) else {
            return vec![];
        };
        series
            .iter()
            .map(|(values, value)| {
                let attributes = metric
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(label, value)| KeyValue::new(*label, value.clone()))
                    .collect();
                (attributes, *value)
            })
            .collect()
    }
}

fn labels(names: &[&str], values: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// The OTLP side: an observable instrument per metric, read from the process's registry
/// at each collection; the instruments live as long as the registry.
#[derive(Debug)]
struct Otlp {
    meter: Meter,
    instruments: Mutex<Vec<Instrument>>,
}

#[derive(Debug)]
enum Instrument {
    Counter(ObservableCounter<f64>),
    Gauge(ObservableGauge<f64>),
}

impl Otlp {
    fn observe(&self, metric: &Metric) {
        let name = metric.name;
        let report = move |observe: &dyn Fn(f64, &[KeyValue])| {
            for (attributes, value) in registry().observe(name) {
                observe(value, &attributes);
            }
        };
        let instrument = match metric.kind {
            // OTLP names carry no `_total`; Prometheus exporters add it back.
            Kind::Counter => Instrument::Counter(
                self.meter
                    .f64_observable_counter(name.trim_end_matches("_total"))
                    .with_description(metric.help)
                    .with_callback(move |observer| report(&|value, attributes| observer.observe(value, attributes)))
                    .build(),
            ),
            Kind::Gauge => Instrument::Gauge(
                self.meter
                    .f64_observable_gauge(name)
                    .with_description(metric.help)
                    .with_callback(move |observer| report(&|value, attributes| observer.observe(value, attributes)))
                    .build(),
            ),
        };
        self.instruments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(instrument);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: Metric = Metric {
        name: "test_requests_total",
        help: "Requests.",
        kind: Kind::Counter,
        labels: &["route", "status"],
    };
    const DEPTH: Metric = Metric {
        name: "test_depth",
        help: "Depth.",
        kind: Kind::Gauge,
        labels: &[],
    };

    #[test]
    fn counters_add_up_per_series_and_render_as_prometheus_text() {
        let registry = Registry::default();
        registry.add(&REQUESTS, &["/a", "200"], 2);
        registry.add(&REQUESTS, &["/a", "200"], 3);
        registry.add(&REQUESTS, &["/b \"x\"", "500"], 1);
        registry.set(&DEPTH, &[], 7.0);
        registry.set(&DEPTH, &[], 4.0);
        assert_eq!(registry.value(&REQUESTS, &["/a", "200"]), Some(5.0));
        assert_eq!(registry.sum(&REQUESTS, &[("status", "500")]), 1.0);
        assert_eq!(
            registry.render(),
            "# HELP test_depth Depth.\n# TYPE test_depth gauge\ntest_depth 4\n\
             # HELP test_requests_total Requests.\n# TYPE test_requests_total counter\n\
             test_requests_total{route=\"/a\",status=\"200\"} 5\n\
             test_requests_total{route=\"/b \\\"x\\\"\",status=\"500\"} 1\n"
        );
    }
}
