//! Readiness: every part reports whether it can do its work, and if not, why — a stage until
//! its consumer joined its group, the relay while it cannot publish or falls behind.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, Readiness>>>,
}

/// One component's readiness: ready, or the reason it is not.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Mutex<Option<String>>>);

impl Readiness {
    pub fn ready(&self) {
        *self.lock() = None;
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    pub fn problem(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub ready: bool,
    /// Each component, `"ready"` or the reason it is not.
    pub components: BTreeMap<&'static str, String>,
}

impl Health {
    /// Registers a component as not ready, for `reason`; the returned handle changes that.
    pub fn register(&self, name: &'static str, reason: impl Into<String>) -> Readiness {
        let readiness = Readiness(Arc::new(Mutex::new(Some(reason.into()))));
        self.lock().insert(name, readiness.clone());
        readiness
    }

    pub fn report(&self) -> HealthReport {
        let problems: BTreeMap<_, _> = self
            .lock()
            .iter()
            .map(|(name, readiness)| (*name, readiness.problem()))
            .collect();
        HealthReport {
            ready: problems.values().all(Option::is_none),
            components: problems
                .into_iter()
                .map(|(name, problem)| (name, problem.unwrap_or_else(|| "ready".into())))
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Readiness>> {
        self.components.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
