//! Readiness: every stage reports when its consumer has joined its group.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, Arc<AtomicBool>>>>,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub ready: bool,
    pub components: BTreeMap<&'static str, bool>,
}

impl Health {
    /// Registers a component as not ready; the returned flag marks it ready.
    pub fn register(&self, name: &'static str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().insert(name, flag.clone());
        flag
    }

    pub fn report(&self) -> HealthReport {
        let components: BTreeMap<_, _> = self
            .lock()
            .iter()
            .map(|(name, flag)| (*name, flag.load(Ordering::Acquire)))
            .collect();
        HealthReport {
            ready: components.values().all(|ready| *ready),
            components,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Arc<AtomicBool>>> {
        self.components.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
