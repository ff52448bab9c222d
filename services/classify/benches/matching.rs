//! The matching index against the obvious alternatives, in the same run:
//! * exact lookups on a 10-million-entry SHA-256 list vs `std::collections::HashSet`;
//! * PDQ queries on 1 million hashes vs brute force, with recall.
//!
//! Run with `make bench`. Environment: BENCH_EXACT_ENTRIES (10000000), BENCH_PDQ_ENTRIES
//! (1000000). Hashes are uniformly random: real PDQ hashes cluster, which makes buckets
//! uneven; the recall guarantee does not depend on it, the speed-up does.

use dijkwacht_classify::index::{pdq_distance, IndexBuilder, ListInfo, Pdq};
use dijkwacht_domain::{ContentClass, HashAlgorithm};
use std::collections::HashSet;
use std::hint::black_box;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, and good enough to spread test data.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn digest(&mut self) -> [u8; 32] {
        let mut digest = [0u8; 32];
        for chunk in digest.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        digest
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn list() -> ListInfo {
    ListInfo {
        name: "bench".into(),
        version: 1,
        pdq_max_distance: 31,
    }
}

fn exact(entries: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let digests: Vec<[u8; 32]> = (0..entries).map(|_| rng.digest()).collect();
    let started = Instant::now();
    let mut builder = IndexBuilder::new(rng.next());
    let l = builder.list(list());
    for digest in &digests {
        builder.add_exact(l, HashAlgorithm::Sha256, digest, ContentClass::Csam);
    }
    let index = builder.build();
    let index_build = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let set: HashSet<[u8; 32]> = digests.iter().copied().collect();
    let set_build = started.elapsed().as_secs_f64();

    // Half the queries are listed, half are not.
    let queries: Vec<[u8; 32]> = (0..2_000_000)
        .map(|i| {
            if i % 2 == 0 {
                digests[(rng.next() as usize) % entries]
            } else {
                rng.digest()
            }
        })
        .collect();
    let started = Instant::now();
    let mut found = 0usize;
    for query in &queries {
        found += usize::from(index.exact(HashAlgorithm::Sha256, black_box(query)).is_some());
    }
    let index_rate = queries.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut found_set = 0usize;
    for query in &queries {
        found_set += usize::from(set.contains(black_box(query)));
    }
    let set_rate = queries.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(found, found_set, "the index and the HashSet agree");
    println!(
        "exact sha256, {entries} entries, {} queries (half listed):",
        queries.len()
    );
    println!("  matching index  {index_rate:>12.0} lookups/s  (built in {index_build:.1} s)");
    println!("  HashSet         {set_rate:>12.0} lookups/s  (built in {set_build:.1} s)");
    println!("  ratio           {:.2} of HashSet", index_rate / set_rate);
}

fn pdq(entries: usize) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let hashes: Vec<Pdq> = (0..entries)
        .map(|_| [rng.next(), rng.next(), rng.next(), rng.next()])
        .collect();
    let started = Instant::now();
    let mut builder = IndexBuilder::new(rng.next());
    let l = builder.list(list());
    for hash in &hashes {
        builder.add_pdq(l, *hash, ContentClass::Csam);
    }
    let index = builder.build();
    let build = started.elapsed().as_secs_f64();

    // Near a listed hash at 0-31 bits (the threshold included), and unrelated queries.
    let mut queries: Vec<Pdq> = Vec::new();
    for i in 0..1_000 {
        let mut query = hashes[(rng.next() as usize) % entries];
        let distance = if i % 4 == 0 { 31 } else { (rng.next() % 32) as usize };
        let mut flipped = HashSet::new();
        while flipped.len() < distance {
            flipped.insert((rng.next() % 256) as usize);
        }
        for bit in flipped {
            query[bit / 64] ^= 1 << (bit % 64);
        }
        queries.push(query);
    }
    for _ in 0..1_000 {
        queries.push([rng.next(), rng.next(), rng.next(), rng.next()]);
    }

    let started = Instant::now();
    let answers: Vec<_> = queries.iter().map(|q| index.pdq(black_box(q), None)).collect();
    let index_rate = queries.len() as f64 / started.elapsed().as_secs_f64();
    let brute_queries = &queries[..queries.len().min(400)];
    let started = Instant::now();
    let expected: Vec<_> = brute_queries
        .iter()
        .map(|q| index.pdq_brute_force(black_box(q), None))
        .collect();
    let brute_rate = brute_queries.len() as f64 / started.elapsed().as_secs_f64();
    let (mut relevant, mut retrieved) = (0usize, 0usize);
    for (truth, answer) in expected.iter().zip(&answers) {
        relevant += truth.len();
        retrieved += truth.iter().filter(|t| answer.contains(t)).count();
        assert_eq!(truth, answer, "the index answers exactly as brute force");
    }
    // Every near query must find its own source (at distance <= 31).
    let near_found = answers[..1_000]
        .iter()
        .filter(|a| a.iter().any(|h| h.distance <= 31))
        .count();
    let sample = pdq_distance(&queries[0], &hashes[0]);
    black_box(sample);
    println!(
        "pdq, {entries} entries, {} queries (1000 within 31 bits of a listed hash, 1000 random):",
        queries.len()
    );
    println!("  matching index  {index_rate:>10.0} queries/s  (built in {build:.1} s)");
    println!(
        "  brute force     {brute_rate:>10.0} queries/s  (on the first {} queries)",
        brute_queries.len()
    );
    println!("  speed-up        {:.0}x", index_rate / brute_rate);
    println!(
        "  recall          {:.1} % ({retrieved} of {relevant} brute-force matches); near queries matched: {near_found} of 1000",
        100.0 * retrieved as f64 / relevant.max(1) as f64
    );
}

fn main() {
    exact(env("BENCH_EXACT_ENTRIES", 10_000_000));
    pdq(env("BENCH_PDQ_ENTRIES", 1_000_000));
}
