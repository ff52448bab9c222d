//! Hash lists as operators change them: importing entries (idempotent) and delisting one,
//! which withdraws every open classification that rested on it.

use chrono::{DateTime, Utc};
use dijkwacht_domain::{CaseId, Command, ContentClass, HashAlgorithm, MediaHash};
use dijkwacht_runtime::{CaseCommand, CommandError, EventStore, Metadata, StoreError};
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::io::BufRead;

/// One entry as a file gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct EntryLine {
    pub algorithm: HashAlgorithm,
    pub value: String,
    /// One of our classes, or a category of the source mapped with `--map`.
    pub category: String,
    #[serde(default)]
    pub quality: Option<u8>,
}

#[derive(Debug, Clone)]
pub struct ListSettings {
    pub name: String,
    /// Required when the list is new; otherwise changes the recorded source when given.
    pub source: Option<String>,
    /// Changes the list's PDQ threshold when given (31 for a new list otherwise).
    pub pdq_max_distance: Option<u32>,
    /// The source's categories → our classes.
    pub categories: BTreeMap<String, ContentClass>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub added: u64,
    pub already_listed: u64,
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
    #[error("reading line {line}: {source}")]
    Read { line: u64, source: std::io::Error },
    #[error("the list {0} is new: name its source (e.g. --source IWF)")]
    SourceRequired(String),
    #[error("the list {list} has no entry {value}")]
    NoSuchEntry { list: String, value: String },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const BATCH: usize = 5_000;

fn parse_line(text: &str, csv: bool) -> Result<EntryLine, String> {
    if !csv {
        return serde_json::from_str(text).map_err(|e| format!("not a hash entry: {e}"));
    }
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let (Some(algorithm), Some(value), Some(category)) = (fields.first(), fields.get(1), fields.get(2)) else {
        return Err("expected algorithm,value,category[,quality]".into());
    };
    Ok(EntryLine {
        algorithm: serde_json::from_value(serde_json::Value::String(algorithm.to_ascii_lowercase()))
            .map_err(|_| format!("unknown algorithm {algorithm:?} (md5, sha1, sha256, pdq)"))?,
        value: (*value).to_owned(),
        category: (*category).to_owned(),
        quality: match fields.get(3).filter(|q| !q.is_empty()) {
            Some(q) => Some(q.parse().map_err(|_| format!("quality {q:?} is not 0-100"))?),
            None => None,
        },
    })
}

/// Imports entries from CSV (`algorithm,value,category[,quality]`, optional header) or NDJSON.
/// Entries already listed are left as they are, so a rerun after an interruption adds only
/// what is missing. Bad lines are reported and skipped.
pub async fn import(
    pool: &PgPool,
    list: &ListSettings,
    input: impl BufRead,
    csv: bool,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
    mut rejected: impl FnMut(u64, String),
) -> Result<ImportSummary, ListError> {
    let exists: Option<bool> = sqlx::query_scalar("SELECT true FROM hash_lists WHERE name = $1")
        .bind(&list.name)
        .fetch_optional(pool)
        .await?;
    if exists.is_none() && list.source.is_none() {
        return Err(ListError::SourceRequired(list.name.clone()));
    }
    // What is not given keeps its value: a re-import must not reset a list's settings. (An
    // upsert would not do: the row it proposes breaks NOT NULL before the conflict is seen.)
    let save = match exists {
        None => "INSERT INTO hash_lists (name, source, pdq_max_distance) VALUES ($1, $2, coalesce($3, 31))",
        Some(_) => {
            "UPDATE hash_lists SET source = coalesce($2, source), pdq_max_distance = coalesce($3, pdq_max_distance) \
             WHERE name = $1"
        }
    };
    sqlx::query(save)
        .bind(&list.name)
        .bind(&list.source)
        .bind(list.pdq_max_distance.map(|d| d as i32))
        .execute(pool)
        .await?;
    for (category, class) in &list.categories {
        sqlx::query(
            "INSERT INTO hash_list_categories (list, source_category, class) VALUES ($1, $2, $3) \
             ON CONFLICT (list, source_category) DO UPDATE SET class = EXCLUDED.class",
        )
        .bind(&list.name)
        .bind(category)
        .bind(class.as_str())
        .execute(pool)
        .await?;
    }
    let mut summary = ImportSummary::default();
    let mut batch: Vec<MediaHash> = Vec::with_capacity(BATCH);
    let mut classes: Vec<ContentClass> = Vec::with_capacity(BATCH);
    let mut bytes = 0u64;
    for (number, line) in input.lines().enumerate() {
        let number = number as u64 + 1;
        let line = line.map_err(|source| ListError::Read { line: number, source })?;
        bytes += line.len() as u64 + 1;
        progress(bytes);
        let text = line.trim();
        if text.is_empty() || (csv && number == 1 && text.to_ascii_lowercase().starts_with("algorithm")) {
            continue;
        }
        summary.lines += 1;
        let entry = parse_line(text, csv).and_then(|entry| {
            let class = ContentClass::parse(&entry.category)
                .or_else(|| list.categories.get(&entry.category).copied())
                .ok_or_else(|| format!("category {:?} is not a class and not mapped with --map", entry.category))?;
            let hash = MediaHash::parse(entry.algorithm, &entry.value, entry.quality).map_err(|e| e.to_string())?;
            Ok((hash, class))
        });
        match entry {
            Ok((hash, class)) => {
                batch.push(hash);
                classes.push(class);
            }
            Err(message) => {
                summary.rejected += 1;
                rejected(number, message);
            }
        }
        if batch.len() >= BATCH {
            insert(pool, &list.name, &mut batch, &mut classes, now, &mut summary).await?;
        }
    }
    insert(pool, &list.name, &mut batch, &mut classes, now, &mut summary).await?;
    if summary.added > 0 {
        sqlx::query("UPDATE hash_lists SET version = version + 1 WHERE name = $1")
            .bind(&list.name)
            .execute(pool)
            .await?;
    }
    Ok(summary)
}

async fn insert(
    pool: &PgPool,
    list: &str,
    batch: &mut Vec<MediaHash>,
    classes: &mut Vec<ContentClass>,
    now: DateTime<Utc>,
    summary: &mut ImportSummary,
) -> Result<(), ListError> {
    if batch.is_empty() {
        return Ok(());
    }
    let algorithms: Vec<&str> = batch.iter().map(|h| h.algorithm.as_str()).collect();
    let values: Vec<&str> = batch.iter().map(|h| h.value.as_str()).collect();
    let qualities: Vec<Option<i16>> = batch.iter().map(|h| h.quality.map(i16::from)).collect();
    let class_names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
    let added = sqlx::query(
        "INSERT INTO hash_list_entries (list, algorithm, value, class, quality, added_at) \
         SELECT $1, e.algorithm, e.value, e.class, e.quality, $6 \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int2[]) AS e (algorithm, value, class, quality) \
         ON CONFLICT (list, algorithm, value) DO NOTHING",
    )
    .bind(list)
    .bind(&algorithms)
    .bind(&values)
    .bind(&class_names)
    .bind(&qualities)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    summary.added += added;
    summary.already_listed += batch.len() as u64 - added;
    batch.clear();
    classes.clear();
    Ok(())
}

/// Delists an entry and retracts every open case whose classification rests on it.
/// Returns the retracted cases.
pub async fn delist(
    store: &EventStore,
    list: &str,
    value: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<CaseId>, ListError> {
    let value = value.trim().to_ascii_lowercase();
    let pool = store.pool();
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE hash_list_entries SET delisted_at = $3, delist_reason = $4 WHERE list = $1 AND value = $2 AND delisted_at IS NULL",
    )
    .bind(list)
    .bind(&value)
    .bind(now)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(ListError::NoSuchEntry {
            list: list.to_owned(),
            value,
        });
    }
    sqlx::query("UPDATE hash_lists SET version = version + 1 WHERE name = $1")
        .bind(list)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let candidates: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM events WHERE event_type = 'Classified' \
         AND payload -> 'evidence' ->> 'value' = $1 AND payload -> 'evidence' ->> 'list' = $2",
    )
    .bind(&value)
    .bind(list)
    .fetch_all(pool)
    .await?;
    retract(store, candidates, list, &value, reason, now).await
}

/// Retracts every case whose current classification rests on the delisted entry: each
/// decided on the case as it is when appended (a concurrent change makes it decide again).
async fn retract(
    store: &EventStore,
    candidates: Vec<uuid::Uuid>,
    list: &str,
    value: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<CaseId>, ListError> {
    let metadata = Metadata::actor("operator:delisting");
    let commands: Vec<CaseCommand> = candidates
        .into_iter()
        .map(|id| {
            let command = Command::RetractDelisted {
                list: list.to_owned(),
                value: value.to_owned(),
                reason: format!("hash delisted from {list}: {reason}"),
            };
            CaseCommand::new(CaseId(id), command, metadata.clone())
        })
        .collect();
    let executed = store.execute(&commands, now).await?;
    let retracted: std::collections::BTreeSet<CaseId> = executed.recorded.iter().map(|event| event.case_id).collect();
    Ok(retracted.into_iter().collect())
}
