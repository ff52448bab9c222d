//! The matching index as the classify stage and the hash check use it: built from the
//! hash-list tables, replaced whole when a list changes (a list's version is bumped on every
//! change). The old index answers until the new one is complete, and the new one is read
//! from one snapshot of the tables, so no listed hash is ever missing from the one in use.

use crate::index::{IndexBuilder, ListInfo, MatchingIndex};
use dijkwacht_domain::{ContentClass, HashAlgorithm};
use futures::TryStreamExt;
use sqlx::{PgPool, Row};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Sum of versions and number of lists: changes whenever any list changes.
pub type Fingerprint = (i64, i64);

#[derive(Clone)]
pub struct SharedIndex {
    current: Arc<RwLock<(Fingerprint, Arc<MatchingIndex>)>>,
}

async fn fingerprint<'c>(db: impl sqlx::PgExecutor<'c>) -> Result<Fingerprint, sqlx::Error> {
    sqlx::query_as("SELECT coalesce(sum(version), 0)::int8, count(*) FROM hash_lists")
        .fetch_one(db)
        .await
}

/// Reads every listed, non-delisted entry into a new index, with the fingerprint of the
/// lists it holds: all from one snapshot, so lists, versions and entries agree.
pub async fn build(pool: &PgPool) -> Result<(Fingerprint, MatchingIndex), sqlx::Error> {
    let mut tx = crate::snapshot(pool).await?;
    let print = fingerprint(&mut *tx).await?;
    let secret = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes"));
    let mut builder = IndexBuilder::new(secret);
    let lists = sqlx::query("SELECT name, version, pdq_max_distance FROM hash_lists ORDER BY name")
        .fetch_all(&mut *tx)
        .await?;
    let mut numbers = std::collections::HashMap::new();
    for row in lists {
        let name: String = row.try_get("name")?;
        let number = builder.list(ListInfo {
            name: name.clone(),
            version: row.try_get("version")?,
            pdq_max_distance: row.try_get::<i32, _>("pdq_max_distance")?.max(0) as u32,
        });
        numbers.insert(name, number);
    }
    let mut rows =
        sqlx::query("SELECT list, algorithm, value, class, quality FROM hash_list_entries WHERE delisted_at IS NULL")
            .fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        let list: String = row.try_get("list")?;
        let algorithm: String = row.try_get("algorithm")?;
        let class: String = row.try_get("class")?;
        let (Some(&number), Ok(algorithm), Some(class)) = (
            numbers.get(&list),
            serde_json::from_value::<HashAlgorithm>(serde_json::Value::String(algorithm)),
            ContentClass::parse(&class),
        ) else {
            continue;
        };
        let quality: Option<i16> = row.try_get("quality")?;
        let value: String = row.try_get("value")?;
        builder.add(number, algorithm, &value, quality.map(|q| q.clamp(0, 100) as u8), class);
    }
    drop(rows);
    tx.commit().await?;
    Ok((print, builder.build()))
}

impl SharedIndex {
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let (print, index) = build(pool).await?;
        Ok(Self {
            current: Arc::new(RwLock::new((print, Arc::new(index)))),
        })
    }

    pub fn current(&self) -> Arc<MatchingIndex> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// Rebuilds if any list changed since the last build; returns whether it did.
    pub async fn refresh(&self, pool: &PgPool) -> Result<bool, sqlx::Error> {
        let print = fingerprint(pool).await?;
        if self.current.read().unwrap_or_else(|p| p.into_inner()).0 == print {
            return Ok(false);
        }
        let (print, index) = build(pool).await?;
        let index = Arc::new(index);
        tracing::info!(
            entries = index.len(),
            lists = index.lists().len(),
            "hash-list index rebuilt"
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (print, index);
        Ok(true)
    }

    /// Keeps the index fresh until shutdown.
    pub async fn keep_fresh(self, pool: PgPool, every: Duration, shutdown: dijkwacht_runtime::Shutdown) {
        shutdown
            .refresh_every(every, "the hash lists", || async {
                self.refresh(&pool).await.map(|_| ())
            })
            .await
    }
}
