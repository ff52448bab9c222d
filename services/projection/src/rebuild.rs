//! Rebuilding what is derived from the events alone — the read models, and each case's
//! wake-ups and operator-queue entry: after a bug fix, after restoring a backup, after an
//! upgrade from before wake-ups, and in tests as the reference the projection must equal.
//!
//! Online: the read models are built anew in tables of their own while the API keeps
//! answering from the live ones, then swapped in within one transaction. A case that changed
//! meanwhile is projected again inside that transaction, which holds the live tables; the
//! projection stage's writes wait for it, fail on the tables swapped out, and are redone on
//! the new ones.

use crate::{project_into, ReadModels};
use chrono::{DateTime, Utc};
use dijkwacht_domain::{Case, CaseId};
use dijkwacht_runtime::{EventStore, StoreError};
use futures::StreamExt;
use sqlx::{PgConnection, Row};

/// Cases loaded and projected per round.
pub const CHUNK: i64 = 1000;
/// Rounds in flight at once: one loads and decides while the database writes another.
const CONCURRENT_CHUNKS: usize = 4;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub cases: usize,
    /// Cases whose stream cannot be read; they are left out and listed by `verify`.
    pub unreadable: usize,
    /// Cases that changed while the rebuild ran, projected again at the swap.
    pub caught_up: usize,
}

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub cases: u64,
    pub of: u64,
}

/// Rebuilds every read model and rewrites every case's wake-ups as of `now`.
pub async fn rebuild(store: &EventStore, now: DateTime<Utc>) -> Result<Rebuilt, StoreError> {
    rebuild_with(store, now, CHUNK, |_| {}).await
}

/// [`rebuild`], `chunk` cases at a time, telling `progress` after each chunk.
pub async fn rebuild_with(
    store: &EventStore,
    now: DateTime<Utc>,
    chunk: i64,
    mut progress: impl FnMut(Progress),
) -> Result<Rebuilt, StoreError> {
    let pool = store.pool();
    let next = ReadModels::NEXT;
    for (live, fresh) in next.pairs() {
        sqlx::query(&format!("DROP TABLE IF EXISTS {fresh}"))
            .execute(pool)
            .await?;
        sqlx::query(&format!("CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)"))
            .execute(pool)
            .await?;
        // LIKE copies columns and indexes, not the table's own settings (fill factor,
        // autovacuum thresholds): the migrations tuned those for how the table is written.
        let settings: Option<Vec<String>> =
            sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE oid = $1::regclass")
                .bind(live)
                .fetch_one(pool)
                .await?;
        if let Some(settings) = settings.filter(|settings| !settings.is_empty()) {
            sqlx::query(&format!("ALTER TABLE {fresh} SET ({})", settings.join(", ")))
                .execute(pool)
                .await?;
        }
    }
    // Every event up to here is in the rebuild; those after it are caught up at the swap.
    let mark: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(pool)
        .await?;
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT stream_id FROM events WHERE position <= $1 ORDER BY stream_id")
            .bind(mark.unwrap_or(0))
            .fetch_all(pool)
            .await?;
    let of = ids.len() as u64;
    progress(Progress { cases: 0, of });
    let chunks: Vec<Vec<CaseId>> = ids
        .chunks(chunk.max(1) as usize)
        .map(|chunk| chunk.iter().copied().map(CaseId).collect())
        .collect();
    let mut chunks = futures::stream::iter(chunks)
        .map(|ids| async move {
            let loaded = store.load(&ids).await?;
            let cases: Vec<&Case> = loaded.cases.values().map(|loaded| loaded.case.as_ref()).collect();
            project_into(pool, &cases, next).await?;
            store.rewrite_waits(&cases, now).await?;
            Ok::<_, StoreError>((cases.len(), loaded.unreadable.len()))
        })
        .buffer_unordered(CONCURRENT_CHUNKS);
    let mut rebuilt = Rebuilt::default();
    while let Some(done) = chunks.next().await {
        let (cases, unreadable) = done?;
        rebuilt.cases += cases;
        rebuilt.unreadable += unreadable;
        progress(Progress {
            cases: (rebuilt.cases + rebuilt.unreadable) as u64,
            of,
        });
    }
    rebuilt.caught_up = swap(store, mark.unwrap_or(0)).await?;
    Ok(rebuilt)
}

/// Catches up on the cases that changed since `mark` and swaps the new tables in; returns
/// how many cases it caught up on.
async fn swap(store: &EventStore, mark: i64) -> Result<usize, StoreError> {
    let pool = store.pool();
    let mut tx = pool.begin().await?;
    let live: Vec<&str> = ReadModels::LIVE.pairs().iter().map(|(live, _)| *live).collect();
    sqlx::query(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", live.join(", ")))
        .execute(&mut *tx)
        .await?;
    let changed: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT stream_id FROM events WHERE position > $1")
        .bind(mark)
        .fetch_all(&mut *tx)
        .await?;
    let changed: Vec<CaseId> = changed.into_iter().map(CaseId).collect();
    let loaded = EventStore::load_with(&mut *tx, &changed).await?;
    let cases: Vec<&Case> = loaded.cases.values().map(|loaded| loaded.case.as_ref()).collect();
    // Projected through the pool: the new tables are not locked, and nothing else writes them.
    project_into(pool, &cases, ReadModels::NEXT).await?;
    let views = dependent_views(&mut tx).await?;
    for (name, _) in &views {
        sqlx::query(&format!("DROP VIEW {name}")).execute(&mut *tx).await?;
    }
    for (live, fresh) in ReadModels::NEXT.pairs() {
        let names = index_names(&mut tx, live, fresh).await?;
        sqlx::query(&format!("DROP TABLE {live}")).execute(&mut *tx).await?;
        sqlx::query(&format!("ALTER TABLE {fresh} RENAME TO {live}"))
            .execute(&mut *tx)
            .await?;
        // The indexes keep the names the migrations gave them.
        for (generated, kept) in names {
            sqlx::query(&format!("ALTER INDEX {generated} RENAME TO {kept}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    for (name, definition) in &views {
        sqlx::query(&format!("CREATE VIEW {name} AS {definition}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(cases.len())
}

/// The views over the live read models, with their definitions.
async fn dependent_views(tx: &mut PgConnection) -> Result<Vec<(String, String)>, sqlx::Error> {
    let live: Vec<String> = ReadModels::LIVE
        .pairs()
        .iter()
        .map(|(live, _)| (*live).to_owned())
        .collect();
    let rows = sqlx::query(
        "SELECT DISTINCT v.relname AS name, pg_get_viewdef(v.oid) AS definition \
         FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
         JOIN pg_class t ON t.oid = d.refobjid \
         WHERE t.relname = ANY($1) AND v.relkind = 'v' AND v.relnamespace = t.relnamespace",
    )
    .bind(&live)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("name")?, row.try_get("definition")?)))
        .collect()
}

/// The new table's indexes paired with the names of the live table's indexes of the same
/// definition.
async fn index_names(tx: &mut PgConnection, live: &str, fresh: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let indexes = |table: &str| {
        sqlx::query_as::<_, (String, String)>(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
        )
        .bind(table.to_owned())
    };
    let kept: Vec<(String, String)> = indexes(live).fetch_all(&mut *tx).await?;
    let generated: Vec<(String, String)> = indexes(fresh).fetch_all(&mut *tx).await?;
    // A definition without its own name and table, to match one index with the other.
    let shape = |name: &str, table: &str, definition: &str| {
        definition
            .replacen(&format!("INDEX {name} ON"), "INDEX ON", 1)
            .replace(&format!(" {table} "), " TABLE ")
            .replace(&format!(".{table} "), ".TABLE ")
    };
    Ok(generated
        .iter()
        .filter_map(|(name, definition)| {
            let wanted = shape(name, fresh, definition);
            kept.iter()
                .find(|(kept_name, kept_definition)| shape(kept_name, live, kept_definition) == wanted)
                .map(|(kept_name, _)| (name.clone(), kept_name.clone()))
        })
        .collect())
}
