//! Whole-log anchoring. Each case's hash chain shows an edit inside a stream, but not the
//! removal of its last events or of a whole stream. A checkpoint closes that gap: a Merkle
//! root over the head (version and hash) of every stream as of a position of the log,
//! signed and stored, each naming the one before. `dijkwacht verify` recomputes the latest
//! root from the events: a stream cut short or gone before that position no longer adds up.
//!
//! The tree: a leaf is `SHA-256(0x00 ‖ stream id ‖ version (u32 BE) ‖ head hash)`, leaves in
//! stream-id order; a node is `SHA-256(0x01 ‖ left ‖ right)`, and a last node without a
//! partner is carried up as it is (the shape of RFC 6962 §2.1).

use crate::signing::{self, SigningKey};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use std::time::Duration;

const FORMAT: &str = "dijkwacht-checkpoint/1";
/// One process takes a checkpoint at a time.
const CHECKPOINT_LOCK: i64 = 0x646a_6b77_6368_6b70; // "djkwchkp"

/// A signed checkpoint, as stored and as a dossier carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    pub sequence: i64,
    /// Every event at or before this position of the log is covered.
    pub position: i64,
    pub streams: i64,
    /// The Merkle root over the streams' heads, hex.
    pub root: String,
    /// What was signed: these fields, one per line.
    pub statement: String,
    /// The Ed25519 signature of `statement`, hex.
    pub signature: String,
    pub key_id: String,
    pub taken_at: DateTime<Utc>,
}

/// Builds a Merkle root from leaves in order, holding only one node per level.
#[derive(Default)]
struct Tree {
    /// (height, hash) of the completed subtrees, highest first.
    stack: Vec<(u32, [u8; 32])>,
    leaves: i64,
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

impl Tree {
    fn push(&mut self, stream_id: uuid::Uuid, version: i32, head: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        hasher.update(stream_id.as_bytes());
        hasher.update((version as u32).to_be_bytes());
        hasher.update(head);
        let mut current = (0u32, <[u8; 32]>::from(hasher.finalize()));
        while let Some(&(height, left)) = self.stack.last() {
            if height != current.0 {
                break;
            }
            self.stack.pop();
            current = (height + 1, node(&left, &current.1));
        }
        self.stack.push(current);
        self.leaves += 1;
    }

    /// The root; that of no streams is the hash of nothing.
    fn root(mut self) -> [u8; 32] {
        let Some(mut current) = self.stack.pop().map(|(_, hash)| hash) else {
            return Sha256::digest([]).into();
        };
        while let Some((_, left)) = self.stack.pop() {
            current = node(&left, &current);
        }
        current
    }
}

/// The root over every stream's head as of `position`, and the number of streams.
pub async fn root_at(pool: &PgPool, position: i64) -> Result<([u8; 32], i64), sqlx::Error> {
    let mut rows = sqlx::query(
        "SELECT DISTINCT ON (stream_id) stream_id, stream_version, hash FROM events \
         WHERE position <= $1 ORDER BY stream_id, stream_version DESC",
    )
    .bind(position)
    .fetch(pool);
    let mut tree = Tree::default();
    while let Some(row) = rows.try_next().await? {
        let hash: Vec<u8> = row.try_get("hash")?;
        tree.push(row.try_get("stream_id")?, row.try_get("stream_version")?, &hash);
    }
    let streams = tree.leaves;
    Ok((tree.root(), streams))
}

/// The last position at which the log is complete: every transaction that could still
/// commit an event at or before it has ended. Waits for those in flight, at most `patience`.
async fn settled_position(pool: &PgPool, patience: Duration) -> Result<Option<i64>, sqlx::Error> {
    // Positions come from a sequence: an event committed later than this read either holds a
    // position above `position`, or belongs to a transaction that was running at the read,
    // whose xid is below `xmax`.
    let (position, xmax): (Option<i64>, String) =
        sqlx::query_as("SELECT (SELECT max(position) FROM events), pg_snapshot_xmax(pg_current_snapshot())::text")
            .fetch_one(pool)
            .await?;
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        let settled: bool = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8")
            .bind(&xmax)
            .fetch_one(pool)
            .await?;
        if settled {
            return Ok(position);
        }
        if tokio::time::Instant::now() >= give_up {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn statement(
    sequence: i64,
    position: i64,
    streams: i64,
    root: &str,
    previous: &str,
    taken_at: DateTime<Utc>,
) -> String {
    format!(
        "{FORMAT}\nsequence {sequence}\nposition {position}\nstreams {streams}\nroot {root}\nprevious {previous}\ntaken_at {}\n",
        taken_at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// Takes a checkpoint unless another process is taking one, or the log has not moved since
/// the last; returns it when taken.
pub async fn take(pool: &PgPool, key: &SigningKey, now: DateTime<Utc>) -> anyhow::Result<Option<Checkpoint>> {
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(CHECKPOINT_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !locked {
        return Ok(None);
    }
    let taken = take_locked(pool, key, now).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(CHECKPOINT_LOCK)
        .execute(&mut *lock)
        .await?;
    taken
}

async fn take_locked(pool: &PgPool, key: &SigningKey, now: DateTime<Utc>) -> anyhow::Result<Option<Checkpoint>> {
    let Some(position) = settled_position(pool, Duration::from_secs(60)).await? else {
        tracing::warn!("no checkpoint: transactions on the event log stayed open for a minute");
        return Ok(None);
    };
    let latest = latest(pool).await?;
    if latest.as_ref().is_some_and(|latest| latest.position >= position) {
        return Ok(None);
    }
    let (root, streams) = root_at(pool, position).await?;
    let root = hex::encode(root);
    let sequence = latest.as_ref().map_or(1, |latest| latest.sequence + 1);
    let previous = latest
        .as_ref()
        .map_or_else(|| "none".to_owned(), |latest| latest.root.clone());
    let statement = statement(sequence, position, streams, &root, &previous, now);
    let signature = hex::encode(key.sign(statement.as_bytes()));
    key.register(pool, now).await?;
    sqlx::query(
        "INSERT INTO checkpoints (sequence, position, streams, root, statement, signature, key_id, taken_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(sequence)
    .bind(position)
    .bind(streams)
    .bind(&root)
    .bind(&statement)
    .bind(&signature)
    .bind(key.id())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(Some(Checkpoint {
        sequence,
        position,
        streams,
        root,
        statement,
        signature,
        key_id: key.id(),
        taken_at: now,
    }))
}

pub async fn latest(pool: &PgPool) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT sequence, position, streams, root, statement, signature, key_id, taken_at FROM checkpoints \
         ORDER BY sequence DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(|row| checkpoint_of(&row)).transpose()
}

fn checkpoint_of(row: &sqlx::postgres::PgRow) -> Result<Checkpoint, sqlx::Error> {
    Ok(Checkpoint {
        sequence: row.try_get("sequence")?,
        position: row.try_get("position")?,
        streams: row.try_get("streams")?,
        root: row.try_get("root")?,
        statement: row.try_get("statement")?,
        signature: row.try_get("signature")?,
        key_id: row.try_get("key_id")?,
        taken_at: row.try_get("taken_at")?,
    })
}

/// Takes a checkpoint every `every` until shutdown.
pub async fn keep_taking(
    pool: PgPool,
    key: std::sync::Arc<SigningKey>,
    clock: crate::SharedClock,
    every: Duration,
    mut shutdown: crate::Shutdown,
) {
    loop {
        match take(&pool, &key, clock.now()).await {
            Ok(Some(checkpoint)) => tracing::info!(
                sequence = checkpoint.sequence,
                position = checkpoint.position,
                streams = checkpoint.streams,
                "checkpoint of the event log taken"
            ),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "taking a checkpoint of the event log failed"),
        }
        if shutdown.sleep_or_stop(every).await {
            return;
        }
    }
}

/// What is wrong with the checkpoints: each one's signature by a key we signed with, each
/// naming the root before it, and the latest one's root against the events as they are.
pub async fn verify(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT c.sequence, c.position, c.streams, c.root, c.statement, c.signature, c.key_id, c.taken_at, \
             k.public_key_pem \
         FROM checkpoints c LEFT JOIN signing_keys k USING (key_id) ORDER BY c.sequence",
    )
    .fetch_all(pool)
    .await?;
    let mut problems = Vec::new();
    let mut previous = "none".to_owned();
    let mut last = None;
    for row in &rows {
        let checkpoint = checkpoint_of(row)?;
        let name = format!("checkpoint {}", checkpoint.sequence);
        let public: Option<String> = row.try_get("public_key_pem")?;
        let signed = public
            .as_deref()
            .and_then(|pem| signing::public_key_of(pem).ok())
            .zip(hex::decode(&checkpoint.signature).ok())
            .is_some_and(|(public, signature)| signing::verify(&public, checkpoint.statement.as_bytes(), &signature));
        let expected = statement(
            checkpoint.sequence,
            checkpoint.position,
            checkpoint.streams,
            &checkpoint.root,
            &previous,
            checkpoint.taken_at,
        );
        if !signed {
            problems.push(format!(
                "{name}: its signature does not verify with key {}",
                checkpoint.key_id
            ));
        } else if checkpoint.statement != expected {
            problems.push(format!(
                "{name}: its fields or its link to the checkpoint before were changed"
            ));
        }
        previous = checkpoint.root.clone();
        last = Some(checkpoint);
    }
    if let Some(last) = last {
        let (root, streams) = root_at(pool, last.position).await?;
        if hex::encode(root) != last.root {
            problems.push(format!(
                "checkpoint {} (position {}): the log no longer adds up to its root: {} stream(s) now, {} then; \
                 events at or before that position were removed or changed",
                last.sequence, last.position, streams, last.streams
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u8) -> (uuid::Uuid, i32, [u8; 32]) {
        (uuid::Uuid::from_bytes([n; 16]), n as i32, [n; 32])
    }

    fn root_of(leaves: &[(uuid::Uuid, i32, [u8; 32])]) -> [u8; 32] {
        let mut tree = Tree::default();
        for (id, version, head) in leaves {
            tree.push(*id, *version, head);
        }
        tree.root()
    }

    #[test]
    fn the_root_is_that_of_the_tree_drawn_by_hand() {
        let leaf_hash = |(id, version, head): (uuid::Uuid, i32, [u8; 32])| -> [u8; 32] {
            let mut hasher = Sha256::new();
            hasher.update([0u8]);
            hasher.update(id.as_bytes());
            hasher.update((version as u32).to_be_bytes());
            hasher.update(head);
            hasher.finalize().into()
        };
        let [a, b, c] = [leaf(1), leaf(2), leaf(3)].map(leaf_hash);
        assert_eq!(root_of(&[leaf(1), leaf(2), leaf(3)]), node(&node(&a, &b), &c));
        assert_eq!(root_of(&[leaf(1)]), a);
    }

    #[test]
    fn a_shorter_stream_or_a_missing_one_changes_the_root() {
        let all = [leaf(1), leaf(2), leaf(3), leaf(4), leaf(5)];
        let root = root_of(&all);
        let mut shortened = all;
        shortened[2].1 -= 1;
        assert_ne!(root_of(&shortened), root);
        assert_ne!(root_of(&[leaf(1), leaf(2), leaf(4), leaf(5)]), root);
    }
}
