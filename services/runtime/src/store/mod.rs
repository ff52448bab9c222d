//! The event store: per-case streams in PostgreSQL, hash-chained, with the outbox written
//! in the same transaction as the events it will publish.

mod cache;
mod rows;

pub(crate) use rows::recorded_event_json;

use crate::telemetry::TraceParent;
use crate::topics::Topic;
use cache::CaseCache;
use chrono::{DateTime, Utc};
use dijkwacht_domain::{Case, CaseEvent, CaseId, Command, Refusal, WaitLimits};
use futures::TryStreamExt;
use rows::{chain_hash, folded_row, ChainedRows, StoredRow, GENESIS};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

pub type Hash = [u8; 32];

/// Why an event was written and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// `partner:<id>`, `stage:<name>`, `analyst:<id>`.
    pub actor: String,
    /// Position of the event that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation: Option<i64>,
    /// The report that set this chain of events going: the case's first report for events
    /// the stages decide, the report itself for what intake records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<Uuid>,
    /// The trace of the work that decided this event, which the next hop continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
}

impl Metadata {
    /// Who acts, within the trace of the span the caller runs in (a request, a stage's
    /// handling of one message).
    pub fn actor(actor: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            causation: None,
            correlation: None,
            traceparent: TraceParent::current(),
        }
    }

    pub fn traced(mut self, traceparent: Option<TraceParent>) -> Self {
        self.traceparent = traceparent;
        self
    }

    pub fn caused_by(mut self, position: i64) -> Self {
        self.causation = Some(position);
        self
    }

    pub fn correlated_with(mut self, correlation: Uuid) -> Self {
        self.correlation = Some(correlation);
        self
    }
}

/// An event as stored, and as carried on every Kafka topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordedEvent {
    pub position: i64,
    pub case_id: CaseId,
    /// 1-based position within the case's stream.
    pub version: u32,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Metadata,
    pub event: CaseEvent,
}

/// A case as loaded for deciding: its state and what an append must chain to.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// Shared with the process's case cache: copied only when a load or a decision
    /// changes it.
    pub case: Arc<Case>,
    pub head_hash: Hash,
    /// The trace of the work behind the latest event, which a wake-up continues.
    pub trace: Option<TraceParent>,
}

impl LoadedCase {
    pub fn new(id: CaseId) -> Self {
        Self {
            case: Arc::new(Case::new(id)),
            head_hash: GENESIS,
            trace: None,
        }
    }
}

/// One case's change: where its stream stood when it was loaded, the events decided on it,
/// and the state they lead to, from which the case's next wake-up is derived.
#[derive(Debug, Clone)]
pub struct CaseChange {
    pub base_version: u32,
    pub base_hash: Hash,
    /// The case with `events` applied; copied from the loaded state on the first event.
    pub case: Arc<Case>,
    pub events: Vec<(CaseEvent, Metadata)>,
}

impl CaseChange {
    pub fn new(loaded: LoadedCase) -> Self {
        Self {
            base_version: loaded.case.version,
            base_hash: loaded.head_hash,
            case: loaded.case,
            events: Vec::new(),
        }
    }

    /// Decides `command` on the case as changed so far and records what it yields.
    pub fn decide(&mut self, command: Command, metadata: &Metadata, now: DateTime<Utc>) -> Result<(), Refusal> {
        for event in self.case.decide(command, now)? {
            self.record(event, metadata.clone(), now);
        }
        Ok(())
    }

    /// Records an event as decided (by [`CaseChange::decide`], or by a test setting a scene).
    pub fn record(&mut self, event: CaseEvent, metadata: Metadata, now: DateTime<Utc>) {
        Arc::make_mut(&mut self.case).apply(&event, now);
        self.events.push((event, metadata));
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Cases as loaded for deciding; a stream with an event that cannot be read is set apart
/// with the reason, so one poisoned case never blocks the others.
#[derive(Debug, Default)]
pub struct Loaded {
    pub cases: HashMap<CaseId, LoadedCase>,
    pub unreadable: HashMap<CaseId, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to one of the streams first: reload and decide again.
    #[error("a case changed since it was loaded")]
    Conflict,
    #[error("stored event {case_id}@{version} cannot be read: {reason}")]
    Corrupt {
        case_id: Uuid,
        version: i32,
        reason: String,
    },
    /// A stream holds an event that cannot be read: the case is set apart for operators.
    #[error("case {case_id} cannot be loaded: {reason}")]
    Unreadable { case_id: CaseId, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What an append wrote in a transaction not committed yet: hand it to
/// [`EventStore::committed`] once it is.
#[derive(Debug, Default)]
pub(crate) struct Appended {
    pub(crate) recorded: Vec<RecordedEvent>,
    /// Per changed case: its hash and trace after the append.
    heads: Vec<(Hash, Option<TraceParent>)>,
}

/// A break in a stream's hash chain, found by [`EventStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub case_id: Uuid,
    pub version: i32,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    /// How long each waiting state may last: every append derives its cases' wake-ups
    /// from these, in the same transaction.
    waits: WaitLimits,
    /// The latest committed states of recent cases, shared by every clone of this store in
    /// the process; `None` reads every stream in full.
    cache: Option<Arc<CaseCache>>,
    /// Told of every commit that wrote outbox rows, so a relay in this process publishes at
    /// once instead of at its next poll.
    appended: Arc<Notify>,
}

/// The advisory lock every transaction that appends events holds shared until it ends
/// (see [`EventStore::committed_through`]).
pub const APPENDING: i64 = 0x646a_6b77_6170_7064; // "djkwappd"

const SELECT_EVENTS: &str = "SELECT position, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash FROM events";

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            waits: WaitLimits::default(),
            cache: None,
            appended: Arc::new(Notify::new()),
        }
    }

    /// Notified after each commit that appended events in this process.
    pub fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    /// Keeps the latest states of up to `capacity` cases in memory (0: none).
    pub fn with_case_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Arc::new(CaseCache::new(capacity)));
        self
    }

    pub fn with_waits(mut self, waits: WaitLimits) -> Self {
        self.waits = waits;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn waits(&self) -> &WaitLimits {
        &self.waits
    }

    /// Loads the current state of every case named, in one query; unknown ids load as new.
    /// Of a case the cache knows, only the events appended since are read.
    pub async fn load(&self, ids: &[CaseId]) -> Result<Loaded, StoreError> {
        let known = self.cache.as_ref().map(|cache| cache.get(ids)).unwrap_or_default();
        let (loaded, advanced) = read_after(&self.pool, ids, known).await?;
        if let Some(cache) = &self.cache {
            cache.put(advanced.iter().map(|id| loaded.cases[id].clone()));
        }
        Ok(loaded)
    }

    /// [`EventStore::load`] inside a transaction, which may still roll back: it uses the
    /// cache but does not add to it.
    pub async fn load_in(&self, tx: &mut PgConnection, ids: &[CaseId]) -> Result<Loaded, StoreError> {
        let known = self.cache.as_ref().map(|cache| cache.get(ids)).unwrap_or_default();
        Ok(read_after(tx, ids, known).await?.0)
    }

    /// Every case named, read in full on a given connection or transaction.
    pub async fn load_with<'e, E: PgExecutor<'e>>(executor: E, ids: &[CaseId]) -> Result<Loaded, StoreError> {
        Ok(read_after(executor, ids, HashMap::new()).await?.0)
    }

    /// One case; an unreadable stream is an error here.
    pub async fn load_one(&self, id: CaseId) -> Result<LoadedCase, StoreError> {
        let mut loaded = self.load(&[id]).await?;
        if let Some(reason) = loaded.unreadable.remove(&id) {
            return Err(StoreError::Unreadable { case_id: id, reason });
        }
        Ok(loaded.cases.remove(&id).unwrap_or_else(|| LoadedCase::new(id)))
    }

    /// Every event of one case, oldest first.
    pub async fn read_stream(&self, id: CaseId) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!("{SELECT_EVENTS} WHERE stream_id = $1 ORDER BY stream_version");
        let rows = sqlx::query(&sql).bind(id.0).fetch_all(&self.pool).await?;
        rows.iter().map(|row| StoredRow::from_row(row)?.decode()).collect()
    }

    /// Appends the changes of several cases in one transaction, with their outbox rows and
    /// wake-ups. All or nothing: a conflict on any case rolls back every case. Services
    /// change cases through [`EventStore::execute`] or [`EventStore::transact`]; this is
    /// their last step, and the way tests set a scene.
    pub async fn append(
        &self,
        changes: &[CaseChange],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if changes.iter().all(CaseChange::is_empty) {
            return Ok(vec![]);
        }
        let mut tx = self.pool.begin().await?;
        let appended = self.append_in(&mut tx, changes, recorded_at).await?;
        tx.commit().await.map_err(conflict_or_database)?;
        self.committed(changes, &appended);
        Ok(appended.recorded)
    }

    /// Once an append's transaction committed: the new states of its `changes` are kept
    /// for the next load.
    pub(crate) fn committed(&self, changes: &[CaseChange], appended: &Appended) {
        if !appended.recorded.is_empty() {
            self.appended.notify_one();
        }
        let Some(cache) = &self.cache else {
            return;
        };
        let changed = changes.iter().filter(|change| !change.is_empty());
        cache.put(changed.zip(&appended.heads).map(|(change, (hash, trace))| LoadedCase {
            case: Arc::clone(&change.case),
            head_hash: *hash,
            trace: trace.clone(),
        }));
    }

    /// [`EventStore::append`] inside a transaction the caller commits: the events, their
    /// outbox rows and the wake-ups the new states imply, together.
    pub(crate) async fn append_in(
        &self,
        tx: &mut PgConnection,
        changes: &[CaseChange],
        recorded_at: DateTime<Utc>,
    ) -> Result<Appended, StoreError> {
        let changed: Vec<&CaseChange> = changes.iter().filter(|change| !change.is_empty()).collect();
        let mut rows = ChainedRows::build(&changed, recorded_at);
        if rows.is_empty() {
            return Ok(Appended::default());
        }
        let topics: Vec<&str> = rows.events.iter().map(|event| Topic::for_event(event).name()).collect();
        // The events and their outbox rows in one statement: a round trip fewer per append,
        // which matters when an append carries a case or two. Outbox ids follow positions.
        let inserted = sqlx::query(
            "WITH appended AS ( \
                 INSERT INTO events (stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash) \
                 SELECT e.* FROM (SELECT pg_advisory_xact_lock_shared($10)) AS appending, \
                     UNNEST($1::uuid[], $2::int4[], $3::text[], $4::int2[], $5::text[]::jsonb[], $6::text[]::jsonb[], $7::timestamptz[], $8::bytea[], $9::bytea[]) AS e \
                 RETURNING position, stream_id, stream_version), \
             queued AS ( \
                 INSERT INTO outbox (position, topic) \
                 SELECT a.position, t.topic FROM appended a \
                 JOIN UNNEST($1::uuid[], $2::int4[], $11::text[]) AS t (stream_id, stream_version, topic) \
                     ON t.stream_id = a.stream_id AND t.stream_version = a.stream_version \
                 ORDER BY a.position) \
             SELECT position, stream_id, stream_version FROM appended",
        )
        .bind(&rows.stream_ids)
        .bind(&rows.versions)
        .bind(&rows.types)
        .bind(&rows.schema_versions)
        .bind(&rows.payloads)
        .bind(&rows.metadata)
        .bind(&rows.recorded_at)
        .bind(&rows.prev_hashes)
        .bind(&rows.hashes)
        .bind(APPENDING)
        .bind(&topics)
        .fetch_all(&mut *tx)
        .await
        .map_err(conflict_or_database)?;

        let mut positions: HashMap<(Uuid, i32), i64> = HashMap::with_capacity(inserted.len());
        for row in &inserted {
            positions.insert(
                (row.try_get("stream_id")?, row.try_get("stream_version")?),
                row.try_get("position")?,
            );
        }
        let mut recorded = Vec::with_capacity(rows.len());
        for (i, event) in std::mem::take(&mut rows.events).into_iter().enumerate() {
            recorded.push(RecordedEvent {
                position: positions[&(rows.stream_ids[i], rows.versions[i])],
                case_id: CaseId(rows.stream_ids[i]),
                version: rows.versions[i] as u32,
                recorded_at,
                metadata: rows.metadata_structs[i].clone(),
                event,
            });
        }
        let cases: Vec<&Case> = changed.iter().map(|change| change.case.as_ref()).collect();
        crate::timers::write_waits(tx, &cases, &self.waits, recorded_at).await?;
        Ok(Appended {
            recorded,
            heads: rows.heads,
        })
    }

    /// The position up to which every event is committed. Positions are drawn in insert
    /// order but commit in any order, so below the highest visible one a transaction may
    /// still be filling a gap. Every append holds [`APPENDING`] shared until it ends; taking
    /// it alone waits, for a moment, until none is in flight, and then no gap is left open.
    pub async fn committed_through(&self) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Appends queue behind this lock while it waits: never let them wait long.
        sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *tx).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPENDING)
            .execute(&mut *tx)
            .await?;
        let through: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(through.unwrap_or(0))
    }

    /// Writes the wake-ups and operator-queue entries of `cases` afresh from their states,
    /// as an append would: for a rebuild, or cases recorded before wake-ups existed.
    pub async fn rewrite_waits(&self, cases: &[&Case], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::timers::write_waits(&mut tx, cases, &self.waits, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Recomputes every stream's hash chain. Returns the breaks found; empty means intact.
    pub async fn verify(&self) -> Result<Vec<ChainBreak>, StoreError> {
        let sql = format!("{SELECT_EVENTS} ORDER BY stream_id, stream_version");
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        let mut breaks = Vec::new();
        let mut previous: Option<(Uuid, i32, Hash)> = None;
        while let Some(row) = rows.try_next().await? {
            let stored = StoredRow::from_row(&row)?;
            let (expected_version, expected_prev) = match previous {
                Some((stream, version, hash)) if stream == stored.stream_id => (version + 1, hash),
                _ => (1, GENESIS),
            };
            let mut fail = |reason| {
                breaks.push(ChainBreak {
                    case_id: stored.stream_id,
                    version: stored.stream_version,
                    reason,
                })
            };
            if stored.stream_version != expected_version {
                fail("a version is missing before this event");
            } else if stored.prev_hash != expected_prev {
                fail("prev_hash does not match the previous event's hash");
            } else if chain_hash(&stored.prev_hash, &stored.canonical_bytes()) != stored.hash {
                fail("the event's content does not match its hash");
            }
            previous = Some((stored.stream_id, stored.stream_version, stored.hash));
        }
        Ok(breaks)
    }
}

/// Reads the events after those of the `known` states and folds them on: the known ones
/// for what the cache holds, new cases for the rest. Also names the cases that had events
/// to read.
async fn read_after<'e, E: PgExecutor<'e>>(
    executor: E,
    ids: &[CaseId],
    mut known: HashMap<CaseId, LoadedCase>,
) -> Result<(Loaded, Vec<CaseId>), StoreError> {
    let uuids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let after: Vec<i32> = ids
        .iter()
        .map(|id| known.get(id).map_or(0, |loaded| loaded.case.version as i32))
        .collect();
    let mut loaded = Loaded {
        cases: ids
            .iter()
            .map(|id| (*id, known.remove(id).unwrap_or_else(|| LoadedCase::new(*id))))
            .collect(),
        unreadable: HashMap::new(),
    };
    // The JSON as text, parsed once straight into the typed event: loading is what every
    // stage and a rebuild spend most of their time on. `OFFSET 0` keeps the planner from
    // flattening the lateral subquery into a merge join over the whole index: each case
    // is one index probe for the events after those already known.
    let mut rows = sqlx::query(
        "SELECT e.stream_id, e.stream_version, e.event_type, e.recorded_at, e.payload::text AS payload, \
             e.metadata::text AS metadata, e.hash \
         FROM UNNEST($1::uuid[], $2::int4[]) AS k (stream_id, after) \
         CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.stream_id = k.stream_id AND e.stream_version > k.after OFFSET 0) e \
         ORDER BY e.stream_id, e.stream_version",
    )
    .bind(&uuids)
    .bind(&after)
    .fetch(executor);
    let mut advanced = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let case_id = CaseId(row.try_get("stream_id")?);
        if loaded.unreadable.contains_key(&case_id) {
            continue;
        }
        if advanced.last() != Some(&case_id) {
            advanced.push(case_id);
        }
        match folded_row(&row) {
            Ok((event, recorded_at, metadata, hash)) => {
                let entry = loaded.cases.entry(case_id).or_insert_with(|| LoadedCase::new(case_id));
                Arc::make_mut(&mut entry.case).apply(&event, recorded_at);
                entry.head_hash = hash;
                entry.trace = metadata.traceparent;
            }
            Err(error @ StoreError::Corrupt { .. }) => {
                loaded.cases.remove(&case_id);
                loaded.unreadable.insert(case_id, error.to_string());
            }
            Err(other) => return Err(other),
        }
    }
    advanced.retain(|id| loaded.cases.contains_key(id));
    Ok((loaded, advanced))
}

fn conflict_or_database(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("events_stream_version_unique") => StoreError::Conflict,
        _ => StoreError::Database(error),
    }
}
