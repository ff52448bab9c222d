//! Verifying a dossier as its recipient would, and more: every listed file against the
//! manifest, the manifest against its signature and the key the dossier names, and (with the
//! store at hand) every event hash of its timeline against the events as stored.

use super::{sha256_file, Dossier, LISTED, MANIFEST, PUBLIC_KEY, SIGNATURE};
use dijkwacht_runtime::signing;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::path::Path;

/// What a verification found: nothing, or each problem by the file it is in.
#[derive(Debug, Default)]
pub struct Verification {
    pub problems: Vec<String>,
    /// Events of the timeline compared with the store.
    pub events_checked: u64,
}

/// Checks the dossier in `folder`; `store` also compares its event hashes with the store
/// and its key with the keys we have signed with.
pub async fn verify(folder: &Path, store: Option<&PgPool>) -> anyhow::Result<Verification> {
    let mut found = Verification::default();
    let manifest = std::fs::read_to_string(folder.join(MANIFEST))?;
    let mut listed: Vec<&str> = Vec::new();
    for (number, line) in manifest.lines().enumerate() {
        let Some((digest, file)) = line.split_once("  ") else {
            found
                .problems
                .push(format!("{MANIFEST} line {}: not `DIGEST  FILE`", number + 1));
            continue;
        };
        listed.push(file);
        match sha256_file(&folder.join(file)) {
            Ok(actual) if actual == digest => {}
            Ok(_) => found
                .problems
                .push(format!("{file}: its SHA-256 is not the one in {MANIFEST}")),
            Err(error) => found.problems.push(format!("{file}: {error}")),
        }
    }
    for file in LISTED {
        if !listed.contains(&file) {
            found.problems.push(format!("{MANIFEST} does not list {file}"));
        }
    }
    let public_pem = std::fs::read_to_string(folder.join(PUBLIC_KEY))?;
    let public = signing::public_key_of(&public_pem).map_err(|reason| anyhow::anyhow!("{PUBLIC_KEY}: {reason}"))?;
    let signature = std::fs::read(folder.join(SIGNATURE))?;
    if !signing::verify(&public, manifest.as_bytes(), &signature) {
        found
            .problems
            .push(format!("{SIGNATURE}: not a signature of {MANIFEST} by {PUBLIC_KEY}"));
    }
    let dossier: Dossier = serde_json::from_slice(&std::fs::read(folder.join("dossier.json"))?)?;
    let key_id = signing::key_id(&public);
    if dossier.signing_key_id != key_id {
        found.problems.push(format!(
            "dossier.json names the key {}, {PUBLIC_KEY} is {key_id}",
            dossier.signing_key_id
        ));
    }
    if let Some(anchor) = &dossier.checkpoint {
        let checkpoint = &anchor.checkpoint;
        let signed = signing::public_key_of(&anchor.public_key_pem)
            .ok()
            .filter(|public| signing::key_id(public) == checkpoint.key_id)
            .zip(hex::decode(&checkpoint.signature).ok())
            .is_some_and(|(public, signature)| signing::verify(&public, checkpoint.statement.as_bytes(), &signature));
        if !signed {
            found.problems.push(format!(
                "dossier.json: checkpoint {} is not signed by the key it names",
                checkpoint.sequence
            ));
        }
    }
    if let Some(pool) = store {
        let ours: Option<String> = sqlx::query_scalar("SELECT public_key_pem FROM signing_keys WHERE key_id = $1")
            .bind(&key_id)
            .fetch_optional(pool)
            .await?;
        if ours.as_deref() != Some(public_pem.as_str()) {
            found
                .problems
                .push(format!("{PUBLIC_KEY}: {key_id} is not a key this system signed with"));
        }
        check_timeline(folder, pool, &mut found).await?;
    }
    Ok(found)
}

/// Compares `timeline.csv` with the events as stored, a batch of cases at a time.
async fn check_timeline(folder: &Path, pool: &PgPool, found: &mut Verification) -> anyhow::Result<()> {
    const BATCH: usize = 1000;
    let mut reader = csv::Reader::from_path(folder.join("timeline.csv"))?;
    let mut batch: Vec<(uuid::Uuid, i32, String, u64)> = Vec::with_capacity(BATCH);
    for (index, record) in reader.records().enumerate() {
        let record = record?;
        let line = index as u64 + 2;
        let case_id =
            uuid::Uuid::parse_str(&record[0]).map_err(|e| anyhow::anyhow!("timeline.csv line {line}: {e}"))?;
        let version: i32 = record[1]
            .parse()
            .map_err(|e| anyhow::anyhow!("timeline.csv line {line}: {e}"))?;
        batch.push((case_id, version, record[4].to_owned(), line));
        if batch.len() == BATCH {
            compare(pool, &batch, found).await?;
            batch.clear();
        }
    }
    compare(pool, &batch, found).await
}

async fn compare(
    pool: &PgPool,
    batch: &[(uuid::Uuid, i32, String, u64)],
    found: &mut Verification,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = batch.iter().map(|(case_id, ..)| *case_id).collect();
    let versions: Vec<i32> = batch.iter().map(|(_, version, ..)| *version).collect();
    let rows = sqlx::query(
        "SELECT e.stream_id, e.stream_version, e.hash FROM events e \
         JOIN UNNEST($1::uuid[], $2::int4[]) AS wanted (case_id, version) \
             ON e.stream_id = wanted.case_id AND e.stream_version = wanted.version",
    )
    .bind(&ids)
    .bind(&versions)
    .fetch_all(pool)
    .await?;
    let mut stored: HashMap<(uuid::Uuid, i32), String> = HashMap::with_capacity(rows.len());
    for row in rows {
        let hash: Vec<u8> = row.try_get("hash")?;
        stored.insert(
            (row.try_get("stream_id")?, row.try_get("stream_version")?),
            hex::encode(hash),
        );
    }
    for (case_id, version, hash, line) in batch {
        found.events_checked += 1;
        match stored.get(&(*case_id, *version)) {
            Some(actual) if actual == hash => {}
            Some(_) => found.problems.push(format!(
                "timeline.csv line {line}: case {case_id} version {version} differs from the store"
            )),
            None => found.problems.push(format!(
                "timeline.csv line {line}: case {case_id} version {version} is not in the store"
            )),
        }
    }
    Ok(())
}
