//! The matching index: every listed hash in memory, answering exact lookups without hashing
//! the key again and PDQ near-duplicate queries without a linear scan.
//!
//! Exact digests (md5, sha1, sha256) are uniformly distributed already, so their first
//! eight bytes, mixed with a per-index secret so nobody can aim at one bucket, place them in
//! an open-addressing table.
//!
//! PDQ uses multi-index hashing (Norouzi, Punjani and Fleet, 2012): the 256 bits are cut into
//! 16 chunks of 16 bits. If two hashes differ in at most `t` bits, then by pigeonhole at
//! least one chunk differs in at most `t / 16` bits, so probing, per chunk, every value
//! within that radius of the query's chunk finds every match. Each chunk is a direct-indexed
//! table (65,536 buckets) of entry ids; candidates are confirmed by full distance.

use dijkwacht_domain::{ContentClass, HashAlgorithm};

/// Which list an entry came from, and what the list says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    /// Index into [`MatchingIndex::lists`].
    pub list: u16,
    pub class: ContentClass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    pub name: String,
    pub version: i64,
    /// Largest PDQ Hamming distance that counts as a match for this list.
    pub pdq_max_distance: u32,
}

/// A hash found in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub entry: EntryRef,
    /// Position of the entry in its table: stable for the life of the index.
    pub id: u32,
    /// Hamming distance for PDQ; 0 for exact hashes.
    pub distance: u32,
}

pub const PDQ_DEFAULT_MAX_DISTANCE: u32 = 31;
/// PDQ hashes below this quality are too unreliable to match (ThreatExchange guidance).
pub const PDQ_MIN_QUALITY: u8 = 50;

/// A 256-bit PDQ hash as four words, most significant first.
pub type Pdq = [u64; 4];

pub fn parse_pdq(hex: &str) -> Option<Pdq> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut words = [0u64; 4];
    for (i, word) in words.iter_mut().enumerate() {
        *word = u64::from_str_radix(&hex[i * 16..(i + 1) * 16], 16).ok()?;
    }
    Some(words)
}

pub fn pdq_distance(a: &Pdq, b: &Pdq) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn chunk(hash: &Pdq, index: usize) -> u16 {
    (hash[index / 4] >> (48 - 16 * (index % 4))) as u16
}

/// Exact digests of one length in an open-addressing table, at most half full.
#[derive(Debug)]
struct DigestTable {
    width: usize,
    /// Concatenated digests, `width` bytes each.
    digests: Vec<u8>,
    /// The first list entry of each digest.
    entries: Vec<EntryRef>,
    /// Entries of the same digest in other lists or classes: rare, but a caller that may
    /// see only some classes must still find the one it may see.
    also: std::collections::HashMap<u32, Vec<EntryRef>>,
    /// Entry id + 1 per slot; 0 is empty.
    slots: Vec<u32>,
    mask: usize,
    secret: u64,
}

impl DigestTable {
    fn new(width: usize, secret: u64) -> Self {
        Self {
            width,
            digests: Vec::new(),
            entries: Vec::new(),
            also: std::collections::HashMap::new(),
            slots: vec![0; 16],
            mask: 15,
            secret,
        }
    }

    fn slot_of(&self, digest: &[u8]) -> usize {
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        // The digest is already uniform; the secret only keeps an adversary from choosing
        // digests that all land in one place.
        let mixed = (u64::from_le_bytes(head) ^ self.secret).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 16) as usize & self.mask
    }

    fn digest(&self, id: usize) -> &[u8] {
        &self.digests[id * self.width..(id + 1) * self.width]
    }

    fn insert(&mut self, digest: &[u8], entry: EntryRef) {
        if let Some(id) = self.find(digest) {
            let more = self.also.entry(id as u32).or_default();
            if self.entries[id] != entry && !more.contains(&entry) {
                more.push(entry);
            }
            return;
        }
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let id = self.entries.len();
        self.digests.extend_from_slice(digest);
        self.entries.push(entry);
        self.place(id);
    }

    fn place(&mut self, id: usize) {
        let mut slot = self.slot_of(self.digest(id));
        while self.slots[slot] != 0 {
            slot = (slot + 1) & self.mask;
        }
        self.slots[slot] = id as u32 + 1;
    }

    fn grow(&mut self) {
        self.slots = vec![0; self.slots.len() * 2];
        self.mask = self.slots.len() - 1;
        for id in 0..self.entries.len() {
            self.place(id);
        }
    }

    fn find(&self, digest: &[u8]) -> Option<usize> {
        let mut slot = self.slot_of(digest);
        loop {
            match self.slots[slot] {
                0 => return None,
                occupied => {
                    let id = occupied as usize - 1;
                    if self.digest(id) == digest {
                        return Some(id);
                    }
                }
            }
            slot = (slot + 1) & self.mask;
        }
    }
}

/// PDQ hashes with one direct-indexed table per 16-bit chunk, in compressed-row form.
#[derive(Debug, Default)]
struct PdqTable {
    hashes: Vec<Pdq>,
    entries: Vec<EntryRef>,
    /// Per chunk: `offsets[v]..offsets[v + 1]` indexes `ids` for chunk value `v`.
    offsets: Vec<Vec<u32>>,
    ids: Vec<Vec<u32>>,
}

impl PdqTable {
    fn build(hashes: Vec<Pdq>, entries: Vec<EntryRef>) -> Self {
        let mut offsets = Vec::with_capacity(16);
        let mut ids = Vec::with_capacity(16);
        for c in 0..16 {
            let mut counts = vec![0u32; 65_537];
            for hash in &hashes {
                counts[chunk(hash, c) as usize + 1] += 1;
            }
            for v in 1..counts.len() {
                counts[v] += counts[v - 1];
            }
            let mut cursor = counts.clone();
            let mut bucketed = vec![0u32; hashes.len()];
            for (id, hash) in hashes.iter().enumerate() {
                let value = chunk(hash, c) as usize;
                bucketed[cursor[value] as usize] = id as u32;
                cursor[value] += 1;
            }
            offsets.push(counts);
            ids.push(bucketed);
        }
        Self {
            hashes,
            entries,
            offsets,
            ids,
        }
    }

    fn query(&self, query: &Pdq, max_distance: u32, masks: &[u16], hits: &mut Vec<(u32, u32)>) {
        if self.hashes.is_empty() {
            return;
        }
        for c in 0..16 {
            let value = chunk(query, c);
            for mask in masks {
                let probe = (value ^ mask) as usize;
                let (start, end) = (self.offsets[c][probe] as usize, self.offsets[c][probe + 1] as usize);
                for &id in &self.ids[c][start..end] {
                    let distance = pdq_distance(query, &self.hashes[id as usize]);
                    if distance <= max_distance {
                        hits.push((id, distance));
                    }
                }
            }
        }
        hits.sort_unstable();
        hits.dedup();
    }
}

/// Every 16-bit mask with at most `radius` bits set.
fn masks_within(radius: u32) -> Vec<u16> {
    (0..=u16::MAX).filter(|m| m.count_ones() <= radius).collect()
}

/// Builds a [`MatchingIndex`]; entries may come in any order.
#[derive(Debug)]
pub struct IndexBuilder {
    lists: Vec<ListInfo>,
    md5: DigestTable,
    sha1: DigestTable,
    sha256: DigestTable,
    pdq_hashes: Vec<Pdq>,
    pdq_entries: Vec<EntryRef>,
}

impl IndexBuilder {
    /// `secret` keeps exact-table placement unpredictable; take it from the OS.
    pub fn new(secret: u64) -> Self {
        Self {
            lists: Vec::new(),
            md5: DigestTable::new(16, secret),
            sha1: DigestTable::new(20, secret),
            sha256: DigestTable::new(32, secret),
            pdq_hashes: Vec::new(),
            pdq_entries: Vec::new(),
        }
    }

    /// Registers a list; entries refer to it by the returned number.
    pub fn list(&mut self, info: ListInfo) -> u16 {
        self.lists.push(info);
        (self.lists.len() - 1) as u16
    }

    /// Adds one entry. Returns false (and adds nothing) for a malformed value or a PDQ hash
    /// whose quality is known and too low.
    pub fn add(
        &mut self,
        list: u16,
        algorithm: HashAlgorithm,
        hex: &str,
        quality: Option<u8>,
        class: ContentClass,
    ) -> bool {
        match algorithm {
            HashAlgorithm::Pdq => {
                if quality.is_some_and(|q| q < PDQ_MIN_QUALITY) {
                    return false;
                }
                let Some(hash) = parse_pdq(hex) else { return false };
                self.add_pdq(list, hash, class);
            }
            exact => {
                let Ok(digest) = hex_bytes(hex) else { return false };
                return self.add_exact(list, exact, &digest, class);
            }
        }
        true
    }

    /// Adds an exact digest given as raw bytes.
    pub fn add_exact(&mut self, list: u16, algorithm: HashAlgorithm, digest: &[u8], class: ContentClass) -> bool {
        let table = match algorithm {
            HashAlgorithm::Md5 => &mut self.md5,
            HashAlgorithm::Sha1 => &mut self.sha1,
            HashAlgorithm::Sha256 => &mut self.sha256,
            HashAlgorithm::Pdq => return false,
        };
        if digest.len() != table.width {
            return false;
        }
        table.insert(digest, EntryRef { list, class });
        true
    }

    /// Adds a PDQ hash given as words.
    pub fn add_pdq(&mut self, list: u16, hash: Pdq, class: ContentClass) {
        self.pdq_hashes.push(hash);
        self.pdq_entries.push(EntryRef { list, class });
    }

    pub fn build(self) -> MatchingIndex {
        let max_distance = self
            .lists
            .iter()
            .map(|l| l.pdq_max_distance)
            .max()
            .unwrap_or(PDQ_DEFAULT_MAX_DISTANCE)
            .min(255);
        MatchingIndex {
            masks: masks_within(max_distance / 16),
            max_distance,
            lists: self.lists,
            md5: self.md5,
            sha1: self.sha1,
            sha256: self.sha256,
            pdq: PdqTable::build(self.pdq_hashes, self.pdq_entries),
        }
    }
}

fn hex_bytes(hex: &str) -> Result<Vec<u8>, ()> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return Err(());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| ()))
        .collect()
}

#[derive(Debug)]
pub struct MatchingIndex {
    lists: Vec<ListInfo>,
    md5: DigestTable,
    sha1: DigestTable,
    sha256: DigestTable,
    pdq: PdqTable,
    /// The largest per-list threshold: what the chunk probes must cover.
    max_distance: u32,
    masks: Vec<u16>,
}

impl MatchingIndex {
    pub fn empty() -> Self {
        IndexBuilder::new(0).build()
    }

    pub fn lists(&self) -> &[ListInfo] {
        &self.lists
    }

    pub fn len(&self) -> usize {
        self.md5.entries.len() + self.sha1.entries.len() + self.sha256.entries.len() + self.pdq.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for an exact digest (raw bytes), if listed.
    pub fn exact(&self, algorithm: HashAlgorithm, digest: &[u8]) -> Option<Hit> {
        let table = match algorithm {
            HashAlgorithm::Md5 => &self.md5,
            HashAlgorithm::Sha1 => &self.sha1,
            HashAlgorithm::Sha256 => &self.sha256,
            HashAlgorithm::Pdq => return None,
        };
        if digest.len() != table.width {
            return None;
        }
        table.find(digest).map(|id| Hit {
            entry: table.entries[id],
            id: id as u32,
            distance: 0,
        })
    }

    pub fn exact_hex(&self, algorithm: HashAlgorithm, hex: &str) -> Option<Hit> {
        self.exact(algorithm, &hex_bytes(hex).ok()?)
    }

    /// Every list entry of an exact digest (raw bytes): the first as [`MatchingIndex::exact`]
    /// finds it, then the same digest in other lists.
    pub fn exact_all(&self, algorithm: HashAlgorithm, digest: &[u8]) -> impl Iterator<Item = Hit> + '_ {
        let first = self.exact(algorithm, digest);
        let table = match algorithm {
            HashAlgorithm::Md5 => &self.md5,
            HashAlgorithm::Sha1 => &self.sha1,
            HashAlgorithm::Pdq | HashAlgorithm::Sha256 => &self.sha256,
        };
        let more = first
            .and_then(|hit| table.also.get(&hit.id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        first.into_iter().chain(more.iter().map(move |entry| Hit {
            entry: *entry,
            id: first.map_or(0, |hit| hit.id),
            distance: 0,
        }))
    }

    /// Every listed PDQ hash within its list's threshold of `query`, nearest first. A query
    /// whose quality is known and below [`PDQ_MIN_QUALITY`] matches nothing.
    pub fn pdq(&self, query: &Pdq, quality: Option<u8>) -> Vec<Hit> {
        if quality.is_some_and(|q| q < PDQ_MIN_QUALITY) {
            return vec![];
        }
        let mut raw = Vec::new();
        self.pdq.query(query, self.max_distance, &self.masks, &mut raw);
        let mut hits: Vec<Hit> = raw
            .into_iter()
            .map(|(id, distance)| Hit {
                entry: self.pdq.entries[id as usize],
                id,
                distance,
            })
            .filter(|hit| hit.distance <= self.lists[hit.entry.list as usize].pdq_max_distance)
            .collect();
        hits.sort_by_key(|hit| (hit.distance, hit.id));
        hits
    }

    /// The same answer as [`MatchingIndex::pdq`], by comparing with every entry: the
    /// reference for tests and benchmarks.
    pub fn pdq_brute_force(&self, query: &Pdq, quality: Option<u8>) -> Vec<Hit> {
        if quality.is_some_and(|q| q < PDQ_MIN_QUALITY) {
            return vec![];
        }
        let mut hits: Vec<Hit> = self
            .pdq
            .hashes
            .iter()
            .enumerate()
            .map(|(id, hash)| Hit {
                entry: self.pdq.entries[id],
                id: id as u32,
                distance: pdq_distance(query, hash),
            })
            .filter(|hit| hit.distance <= self.lists[hit.entry.list as usize].pdq_max_distance)
            .collect();
        hits.sort_by_key(|hit| (hit.distance, hit.id));
        hits
    }

    /// The listed PDQ hash of a hit, as hex.
    pub fn pdq_hex(&self, id: u32) -> String {
        self.pdq.hashes[id as usize]
            .iter()
            .map(|w| format!("{w:016x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(max: u32) -> ListInfo {
        ListInfo {
            name: "l".into(),
            version: 1,
            pdq_max_distance: max,
        }
    }

    fn hex(hash: &Pdq) -> String {
        hash.iter().map(|w| format!("{w:016x}")).collect()
    }

    /// `base` with the given bit positions flipped.
    fn flipped(base: Pdq, bits: &[usize]) -> Pdq {
        let mut hash = base;
        for bit in bits {
            hash[bit / 64] ^= 1 << (bit % 64);
        }
        hash
    }

    #[test]
    fn exact_lookups_find_listed_digests_only() {
        let mut builder = IndexBuilder::new(42);
        let l = builder.list(list(31));
        for i in 0..10_000u32 {
            let digest = format!("{:064x}", u128::from(i) * 0x9E37_79B9_7F4A_7C15_F39C);
            assert!(builder.add(l, HashAlgorithm::Sha256, &digest, None, ContentClass::Csam));
        }
        assert!(builder.add(l, HashAlgorithm::Md5, &"ab".repeat(16), None, ContentClass::Ncii));
        let index = builder.build();
        let present = format!("{:064x}", 77u128 * 0x9E37_79B9_7F4A_7C15_F39C);
        assert_eq!(
            index.exact_hex(HashAlgorithm::Sha256, &present).unwrap().entry.class,
            ContentClass::Csam
        );
        assert!(index.exact_hex(HashAlgorithm::Sha256, &"cd".repeat(32)).is_none());
        assert_eq!(
            index
                .exact_hex(HashAlgorithm::Md5, &"ab".repeat(16))
                .unwrap()
                .entry
                .class,
            ContentClass::Ncii
        );
        assert!(
            index.exact_hex(HashAlgorithm::Sha1, &"ab".repeat(20)).is_none(),
            "algorithms do not mix"
        );
    }

    #[test]
    fn pdq_matches_up_to_the_threshold_and_not_beyond() {
        let base = [
            0x0123_4567_89ab_cdef,
            0xfedc_ba98_7654_3210,
            0x0f0f_0f0f_f0f0_f0f0,
            0x1234_5678_9abc_def0,
        ];
        let mut builder = IndexBuilder::new(7);
        let l = builder.list(list(31));
        builder.add(l, HashAlgorithm::Pdq, &hex(&base), Some(90), ContentClass::Csam);
        let index = builder.build();
        // Spread the flips over all chunks, the worst case for the pigeonhole argument.
        let spread = |n: usize| -> Vec<usize> { (0..n).map(|i| (i * 8) % 256 + i / 32).collect() };
        for (distance, expected) in [(0, true), (20, true), (31, true), (32, false)] {
            let query = flipped(base, &spread(distance));
            assert_eq!(pdq_distance(&query, &base), distance as u32);
            let hits = index.pdq(&query, Some(100));
            assert_eq!(!hits.is_empty(), expected, "distance {distance}");
            if expected {
                assert_eq!(hits[0].distance, distance as u32);
            }
        }
        assert!(
            index.pdq(&base, Some(49)).is_empty(),
            "a low-quality query matches nothing"
        );
    }

    #[test]
    fn low_quality_list_entries_are_not_indexed() {
        let mut builder = IndexBuilder::new(7);
        let l = builder.list(list(31));
        assert!(!builder.add(l, HashAlgorithm::Pdq, &"ab".repeat(32), Some(49), ContentClass::Csam));
        assert!(builder
            .build()
            .pdq(&parse_pdq(&"ab".repeat(32)).unwrap(), None)
            .is_empty());
    }

    fn pdq_strategy() -> impl Strategy<Value = Pdq> {
        any::<[u64; 4]>()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random entries, queries near some of them (at, just inside and just beyond each
        /// list's threshold) and random queries: the index answers exactly as brute force.
        #[test]
        fn pdq_answers_exactly_as_brute_force(
            entries in prop::collection::vec(pdq_strategy(), 1..400),
            thresholds in prop::collection::vec(prop::sample::select(vec![10u32, 16, 31, 32, 47, 63]), 1..4),
            picks in prop::collection::vec((any::<prop::sample::Index>(), 0u32..70, any::<u64>()), 1..40),
        ) {
            let mut builder = IndexBuilder::new(3);
            let lists: Vec<u16> = thresholds.iter().map(|t| builder.list(list(*t))).collect();
            for (i, entry) in entries.iter().enumerate() {
                builder.add(lists[i % lists.len()], HashAlgorithm::Pdq, &hex(entry), None, ContentClass::Csam);
            }
            let index = builder.build();
            for (pick, distance, seed) in picks {
                let target = entries[pick.index(entries.len())];
                let threshold = thresholds[pick.index(thresholds.len())];
                // Flip exactly `distance` distinct bits, or the threshold itself and one more.
                let distance = match seed % 3 { 0 => threshold, 1 => threshold + 1, _ => distance } as usize;
                let mut bits: Vec<usize> = (0..256).collect();
                let mut state = seed | 1;
                for i in 0..distance.min(256) {
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                    bits.swap(i, i + (state as usize) % (256 - i));
                }
                let query = flipped(target, &bits[..distance.min(256)]);
                prop_assert_eq!(index.pdq(&query, None), index.pdq_brute_force(&query, None));
            }
            let random = [picks_seed(&entries), 0, u64::MAX, 42];
            prop_assert_eq!(index.pdq(&random, None), index.pdq_brute_force(&random, None));
        }
    }

    fn picks_seed(entries: &[Pdq]) -> u64 {
        entries.iter().fold(0, |acc, e| acc ^ e[0].rotate_left(7))
    }
}
