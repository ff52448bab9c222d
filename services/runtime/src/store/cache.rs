//! The latest states of the cases a process loaded or changed recently, so that loading one
//! again reads only the events appended since. Every stage loads each case it handles, and
//! the projection loads a case once per event; without this, a case of seven events is read
//! back and parsed about forty times on its way through the pipeline.
//!
//! An entry is always a state the database committed: the fold of the stream's first
//! `version` events. Loading asks the database for what came after, so an entry that
//! another process has overtaken is brought up to date, never served stale. Streams only
//! grow; an edit of an event already folded here goes unnoticed until the entry is evicted
//! or the process restarts, as it would for any reader that had read it before
//! (`dijkwacht verify` finds edits).

use super::LoadedCase;
use dijkwacht_domain::CaseId;
use std::collections::HashMap;
use std::mem;
use std::sync::Mutex;

/// At most `capacity` cases, in two generations: an entry found in the old one moves to
/// the young one, and when the young one is full the old one is dropped. Cheaper than an
/// exact least-recently-used order and as good for a pipeline, where a case is wanted
/// again within seconds or not at all.
#[derive(Debug)]
pub(crate) struct CaseCache {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<CaseId, LoadedCase>,
    old: HashMap<CaseId, LoadedCase>,
}

impl CaseCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            generations: Mutex::new(Generations::default()),
        }
    }

    /// The known states of those of `ids` that are here.
    pub(crate) fn get(&self, ids: &[CaseId]) -> HashMap<CaseId, LoadedCase> {
        let mut generations = self.lock();
        let mut found = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(loaded) = generations.young.get(id) {
                found.insert(*id, loaded.clone());
            } else if let Some(loaded) = generations.old.remove(id) {
                found.insert(*id, loaded.clone());
                generations.insert(loaded, self.capacity);
            }
        }
        found
    }

    /// Keeps committed states, each unless a later one is already here.
    pub(crate) fn put(&self, states: impl IntoIterator<Item = LoadedCase>) {
        let mut generations = self.lock();
        for loaded in states {
            let known = generations
                .young
                .get(&loaded.case.id)
                .or_else(|| generations.old.get(&loaded.case.id));
            if known.is_none_or(|known| known.case.version < loaded.case.version) {
                generations.old.remove(&loaded.case.id);
                generations.insert(loaded, self.capacity);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock leaves whole entries only: the maps are still sound.
        self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Generations {
    fn insert(&mut self, loaded: LoadedCase, capacity: usize) {
        if self.young.len() >= capacity.div_ceil(2) {
            self.old = mem::take(&mut self.young);
        }
        self.young.insert(loaded.case.id, loaded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u128, version: u32) -> LoadedCase {
        let mut loaded = LoadedCase::new(CaseId(uuid::Uuid::from_u128(id)));
        std::sync::Arc::make_mut(&mut loaded.case).version = version;
        loaded
    }

    fn versions(cache: &CaseCache, ids: &[u128]) -> Vec<Option<u32>> {
        let ids: Vec<CaseId> = ids.iter().map(|id| CaseId(uuid::Uuid::from_u128(*id))).collect();
        let found = cache.get(&ids);
        ids.iter().map(|id| found.get(id).map(|l| l.case.version)).collect()
    }

    #[test]
    fn a_later_state_replaces_an_earlier_one_and_never_the_reverse() {
        let cache = CaseCache::new(10);
        cache.put([at(1, 3)]);
        cache.put([at(1, 2)]);
        assert_eq!(versions(&cache, &[1]), [Some(3)]);
        cache.put([at(1, 5)]);
        assert_eq!(versions(&cache, &[1, 2]), [Some(5), None]);
    }

    #[test]
    fn it_holds_at_most_its_capacity_and_keeps_what_was_wanted_lately() {
        let cache = CaseCache::new(4);
        for id in 1..=4 {
            cache.put([at(id, 1)]);
        }
        // 1 and 2 went to the old generation when 3 came; asking for 1 keeps it.
        assert_eq!(versions(&cache, &[1]), [Some(1)]);
        for id in 5..=6 {
            cache.put([at(id, 1)]);
        }
        let held = versions(&cache, &[1, 2, 3, 4, 5, 6]);
        assert!(held.iter().flatten().count() <= 4, "{held:?}");
        assert_eq!(held[5], Some(1), "the newest is kept: {held:?}");
        assert_eq!(held[1], None, "the least wanted is gone: {held:?}");
    }
}
