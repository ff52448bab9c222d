//! The event store: per-case streams in PostgreSQL, hash-chained, with the outbox written
//! in the same transaction as the events it will publish.

use crate::canonical::write_canonical;
use crate::telemetry::TraceParent;
use crate::topics::Topic;
use chrono::{DateTime, SecondsFormat, Utc};
use dijkwacht_domain::{Case, CaseEvent, CaseId, Command, Refusal, WaitLimits, SCHEMA_VERSION};
use futures::TryStreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use std::collections::HashMap;
use uuid::Uuid;

pub type Hash = [u8; 32];
const GENESIS: Hash = [0; 32];

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
    pub case: Case,
    pub head_hash: Hash,
    /// The trace of the work behind the latest event, which a wake-up continues.
    pub trace: Option<TraceParent>,
}

impl LoadedCase {
    pub fn new(id: CaseId) -> Self {
        Self {
            case: Case::new(id),
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
    /// The case with `events` applied.
    pub case: Case,
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
        self.case.apply(&event, now);
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
}

const SELECT_EVENTS: &str = "SELECT position, stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash FROM events";

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            waits: WaitLimits::default(),
        }
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

    /// Loads the current state of every case named, in one query. Unknown ids load as new.
    pub async fn load(&self, ids: &[CaseId]) -> Result<Loaded, StoreError> {
        Self::load_with(&self.pool, ids).await
    }

    /// [`EventStore::load`] on a given connection or transaction.
    pub async fn load_with<'e, E: PgExecutor<'e>>(executor: E, ids: &[CaseId]) -> Result<Loaded, StoreError> {
        let uuids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let mut loaded = Loaded {
            cases: ids.iter().map(|id| (*id, LoadedCase::new(*id))).collect(),
            unreadable: HashMap::new(),
        };
        // The JSON as text, parsed once straight into the typed event: loading is what every
        // stage and a rebuild spend most of their time on.
        let mut rows = sqlx::query(
            "SELECT stream_id, stream_version, event_type, recorded_at, payload::text AS payload, \
                 metadata::text AS metadata, hash FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version",
        )
        .bind(&uuids)
        .fetch(executor);
        while let Some(row) = rows.try_next().await? {
            let case_id = CaseId(row.try_get("stream_id")?);
            if loaded.unreadable.contains_key(&case_id) {
                continue;
            }
            match folded_row(&row) {
                Ok((event, recorded_at, metadata, hash)) => {
                    let entry = loaded.cases.entry(case_id).or_insert_with(|| LoadedCase::new(case_id));
                    entry.case.apply(&event, recorded_at);
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
        Ok(loaded)
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
        let recorded = self.append_in(&mut tx, changes, recorded_at).await?;
        tx.commit().await.map_err(conflict_or_database)?;
        Ok(recorded)
    }

    /// [`EventStore::append`] inside a transaction the caller commits: the events, their
    /// outbox rows and the wake-ups the new states imply, together.
    pub(crate) async fn append_in(
        &self,
        tx: &mut PgConnection,
        changes: &[CaseChange],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let changed: Vec<&CaseChange> = changes.iter().filter(|change| !change.is_empty()).collect();
        let rows = ChainedRows::build(&changed, recorded_at);
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let inserted = sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash) \
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::int2[], $5::jsonb[], $6::jsonb[], $7::timestamptz[], $8::bytea[], $9::bytea[]) \
             RETURNING position, stream_id, stream_version",
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
        let (mut outbox_positions, mut outbox_topics) = (Vec::new(), Vec::new());
        for (i, event) in rows.events.into_iter().enumerate() {
            let position = positions[&(rows.stream_ids[i], rows.versions[i])];
            outbox_positions.push(position);
            outbox_topics.push(Topic::for_event(&event).name());
            recorded.push(RecordedEvent {
                position,
                case_id: CaseId(rows.stream_ids[i]),
                version: rows.versions[i] as u32,
                recorded_at,
                metadata: rows.metadata_structs[i].clone(),
                event,
            });
        }
        sqlx::query("INSERT INTO outbox (position, topic) SELECT * FROM UNNEST($1::int8[], $2::text[]) ORDER BY 1")
            .bind(&outbox_positions)
            .bind(&outbox_topics)
            .execute(&mut *tx)
            .await?;
        let cases: Vec<&Case> = changed.iter().map(|change| &change.case).collect();
        crate::timers::write_waits(tx, &cases, &self.waits, recorded_at).await?;
        Ok(recorded)
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

/// What loading needs of a row: the event, when it was recorded, its metadata and hash.
fn folded_row(row: &sqlx::postgres::PgRow) -> Result<(CaseEvent, DateTime<Utc>, Metadata, Hash), StoreError> {
    let stream_id: Uuid = row.try_get("stream_id")?;
    let version: i32 = row.try_get("stream_version")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        case_id: stream_id,
        version,
        reason,
    };
    let event_type: &str = row.try_get("event_type")?;
    let payload: &str = row.try_get("payload")?;
    let metadata: &str = row.try_get("metadata")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    let hash: Hash = hash.try_into().map_err(|_| corrupt("a hash is not 32 bytes".into()))?;
    // The payload is an object; the event's type goes in as its tag.
    let body = payload
        .trim()
        .strip_prefix('{')
        .ok_or_else(|| corrupt("payload is not an object".into()))?;
    let tag = serde_json::to_string(event_type).map_err(|e| corrupt(e.to_string()))?;
    let separator = if body.trim_start().starts_with('}') { "" } else { "," };
    let tagged = format!("{{\"type\":{tag}{separator}{body}");
    let event: CaseEvent = serde_json::from_str(&tagged).map_err(|e| corrupt(e.to_string()))?;
    let metadata: Metadata = serde_json::from_str(metadata).map_err(|e| corrupt(e.to_string()))?;
    Ok((event, row.try_get("recorded_at")?, metadata, hash))
}

fn conflict_or_database(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("events_stream_version_unique") => StoreError::Conflict,
        _ => StoreError::Database(error),
    }
}

fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// What the hash covers: everything stored about the event except its global position,
/// which the database assigns after the hash is computed. The canonical JSON of
/// `{metadata, payload, recorded_at, schema_version, stream_id, stream_version, type}`,
/// written directly (keys in sorted order) rather than built as a value first.
fn canonical_event(
    stream_id: Uuid,
    version: i32,
    event_type: &str,
    schema_version: i16,
    recorded_at: DateTime<Utc>,
    payload: &Value,
    metadata: &Value,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"metadata\":");
    write_canonical(metadata, &mut out);
    out.extend_from_slice(b",\"payload\":");
    write_canonical(payload, &mut out);
    let recorded_at = recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let tail = format!(
        ",\"recorded_at\":\"{recorded_at}\",\"schema_version\":{schema_version},\"stream_id\":\"{stream_id}\",\"stream_version\":{version},\"type\":"
    );
    out.extend_from_slice(tail.as_bytes());
    write_canonical(&Value::String(event_type.to_owned()), &mut out);
    out.push(b'}');
    out
}

/// Splits a serialized event into its type tag and payload, as stored in separate columns.
fn split_event(event: &CaseEvent) -> (String, Value) {
    let mut value = serde_json::to_value(event).expect("events serialize to JSON");
    let object = value.as_object_mut().expect("events are internally tagged objects");
    object.remove("type");
    (event.type_name().to_owned(), value)
}

/// Column arrays for one multi-row insert, chained per stream.
#[derive(Default)]
struct ChainedRows {
    stream_ids: Vec<Uuid>,
    versions: Vec<i32>,
    types: Vec<String>,
    schema_versions: Vec<i16>,
    payloads: Vec<Value>,
    metadata: Vec<Value>,
    metadata_structs: Vec<Metadata>,
    recorded_at: Vec<DateTime<Utc>>,
    prev_hashes: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
    events: Vec<CaseEvent>,
}

impl ChainedRows {
    fn build(changes: &[&CaseChange], recorded_at: DateTime<Utc>) -> Self {
        let mut rows = Self::default();
        for change in changes {
            let mut prev = change.base_hash;
            for (offset, (event, metadata_struct)) in change.events.iter().enumerate() {
                let metadata = serde_json::to_value(metadata_struct).expect("metadata serializes");
                let version = (change.base_version as usize + offset + 1) as i32;
                let (event_type, payload) = split_event(event);
                let canonical = canonical_event(
                    change.case.id.0,
                    version,
                    &event_type,
                    SCHEMA_VERSION,
                    recorded_at,
                    &payload,
                    &metadata,
                );
                let hash = chain_hash(&prev, &canonical);
                rows.stream_ids.push(change.case.id.0);
                rows.versions.push(version);
                rows.types.push(event_type);
                rows.schema_versions.push(SCHEMA_VERSION);
                rows.payloads.push(payload);
                rows.metadata.push(metadata.clone());
                rows.metadata_structs.push(metadata_struct.clone());
                rows.recorded_at.push(recorded_at);
                rows.prev_hashes.push(prev.to_vec());
                rows.hashes.push(hash.to_vec());
                rows.events.push(event.clone());
                prev = hash;
            }
        }
        rows
    }

    fn len(&self) -> usize {
        self.events.len()
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// One row of `events`, as read back.
pub(crate) struct StoredRow {
    pub position: i64,
    pub stream_id: Uuid,
    pub stream_version: i32,
    pub event_type: String,
    pub schema_version: i16,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl StoredRow {
    pub(crate) fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, StoreError> {
        let stream_id: Uuid = row.try_get("stream_id")?;
        let stream_version: i32 = row.try_get("stream_version")?;
        let corrupt = |reason: &str| StoreError::Corrupt {
            case_id: stream_id,
            version: stream_version,
            reason: reason.to_owned(),
        };
        let to_hash = |bytes: Vec<u8>| -> Result<Hash, StoreError> {
            bytes.try_into().map_err(|_| corrupt("a hash is not 32 bytes"))
        };
        Ok(Self {
            position: row.try_get("position")?,
            stream_id,
            stream_version,
            event_type: row.try_get("event_type")?,
            schema_version: row.try_get("schema_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            prev_hash: to_hash(row.try_get("prev_hash")?)?,
            hash: to_hash(row.try_get("hash")?)?,
        })
    }

    fn canonical_bytes(&self) -> Vec<u8> {
        canonical_event(
            self.stream_id,
            self.stream_version,
            &self.event_type,
            self.schema_version,
            self.recorded_at,
            &self.payload,
            &self.metadata,
        )
    }

    /// The event, typed; the row is consumed so its JSON is moved, not copied, into it.
    pub(crate) fn decode(self) -> Result<RecordedEvent, StoreError> {
        let (case_id, version) = (self.stream_id, self.stream_version);
        let corrupt = |reason: String| StoreError::Corrupt {
            case_id,
            version,
            reason,
        };
        let mut tagged = self.payload;
        tagged
            .as_object_mut()
            .ok_or_else(|| corrupt("payload is not an object".into()))?
            .insert("type".into(), Value::String(self.event_type));
        Ok(RecordedEvent {
            position: self.position,
            case_id: CaseId(self.stream_id),
            version: self.stream_version as u32,
            recorded_at: self.recorded_at,
            metadata: serde_json::from_value(self.metadata).map_err(|e| corrupt(e.to_string()))?,
            event: serde_json::from_value(tagged).map_err(|e| corrupt(e.to_string()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::to_canonical_bytes;

    #[test]
    fn the_hashed_form_is_the_canonical_json_of_the_stored_columns() {
        let (stream_id, at) = (
            Uuid::from_u128(7),
            DateTime::from_timestamp(1_780_000_000, 123_456_000).unwrap(),
        );
        let payload = serde_json::json!({"z": [1, "\u{e9}\"q"], "a": {"y": null, "b": true}});
        let metadata = serde_json::json!({"actor": "stage:classify", "causation": 42});
        let expected = to_canonical_bytes(&serde_json::json!({
            "stream_id": stream_id, "stream_version": 3, "type": "Classified", "schema_version": 1,
            "recorded_at": at.to_rfc3339_opts(SecondsFormat::Micros, true), "payload": payload, "metadata": metadata,
        }));
        let written = canonical_event(stream_id, 3, "Classified", 1, at, &payload, &metadata);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
