//! How an event is laid out in its row: the columns of an insert, chained per stream; the
//! canonical form the hash covers; and the way back from a row to a typed event.

use super::{CaseChange, Hash, Metadata, RecordedEvent, StoreError};
use crate::canonical::{to_canonical_bytes, write_json};
use crate::telemetry::TraceParent;
use chrono::{DateTime, SecondsFormat, Utc};
use dijkwacht_domain::{CaseEvent, CaseId, SCHEMA_VERSION};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::io::Write as _;
use uuid::Uuid;

/// What the first event of a stream chains to.
pub(super) const GENESIS: Hash = [0; 32];

/// What loading needs of a row: the event, when it was recorded, its metadata and hash.
pub(super) fn folded_row(
    row: &sqlx::postgres::PgRow,
) -> Result<(CaseEvent, DateTime<Utc>, Metadata, Hash), StoreError> {
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
    let tagged = tagged_event(event_type, payload).map_err(corrupt)?;
    let event: CaseEvent = serde_json::from_str(&tagged).map_err(|e| corrupt(e.to_string()))?;
    let metadata: Metadata = serde_json::from_str(metadata).map_err(|e| corrupt(e.to_string()))?;
    Ok((event, row.try_get("recorded_at")?, metadata, hash))
}

/// The JSON of a typed event from its stored columns, as text: the payload is an object,
/// and the event's type goes in as its tag.
fn tagged_event(event_type: &str, payload: &str) -> Result<String, String> {
    let body = payload
        .trim()
        .strip_prefix('{')
        .ok_or_else(|| "payload is not an object".to_owned())?;
    let tag = serde_json::to_string(event_type).map_err(|e| e.to_string())?;
    let separator = if body.trim_start().starts_with('}') { "" } else { "," };
    Ok(format!("{{\"type\":{tag}{separator}{body}"))
}

/// A [`RecordedEvent`]'s JSON, as every topic carries it, spliced from the stored columns'
/// text: what the relay publishes without parsing the event and writing it again. Only the
/// shape is checked here; a consumer that cannot read the event dead-letters it.
pub(crate) fn recorded_event_json(
    position: i64,
    stream_id: Uuid,
    version: i32,
    recorded_at: DateTime<Utc>,
    event_type: &str,
    payload: &str,
    metadata: &str,
) -> Result<Vec<u8>, String> {
    if !metadata.trim_start().starts_with('{') {
        return Err("metadata is not an object".into());
    }
    let event = tagged_event(event_type, payload)?;
    let recorded_at = serde_json::to_string(&recorded_at).map_err(|e| e.to_string())?;
    let mut json = Vec::with_capacity(event.len() + metadata.len() + 160);
    write!(
        json,
        "{{\"position\":{position},\"case_id\":\"{stream_id}\",\"version\":{version},\"recorded_at\":{recorded_at},\
         \"metadata\":{metadata},\"event\":{event}}}"
    )
    .map_err(|e| e.to_string())?;
    Ok(json)
}

pub(super) fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// What the hash covers: everything stored about the event except its global position,
/// which the database assigns after the hash is computed. The canonical JSON of
/// `{metadata, payload, recorded_at, schema_version, stream_id, stream_version, type}`,
/// written directly (keys in sorted order) around the payload's and metadata's canonical
/// JSON, which the caller wrote once (and may store as they are).
pub(super) fn canonical_event(
    stream_id: Uuid,
    version: i32,
    event_type: &str,
    schema_version: i16,
    recorded_at: DateTime<Utc>,
    canonical_payload: &str,
    canonical_metadata: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical_payload.len() + canonical_metadata.len() + 200);
    out.extend_from_slice(b"{\"metadata\":");
    out.extend_from_slice(canonical_metadata.as_bytes());
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(canonical_payload.as_bytes());
    let recorded_at = recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
    write!(
        out,
        ",\"recorded_at\":\"{recorded_at}\",\"schema_version\":{schema_version},\"stream_id\":\"{stream_id}\",\"stream_version\":{version},\"type\":"
    )
    .expect("writing to memory cannot fail");
    write_json(event_type, &mut out);
    out.push(b'}');
    out
}

/// Canonical JSON as text: it is what the store keeps, too.
fn canonical_text(value: &Value) -> String {
    String::from_utf8(to_canonical_bytes(value)).expect("JSON is UTF-8")
}

/// Splits a serialized event into its type tag and payload, as stored in separate columns.
fn split_event(event: &CaseEvent) -> (&'static str, Value) {
    let mut value = serde_json::to_value(event).expect("events serialize to JSON");
    let object = value.as_object_mut().expect("events are internally tagged objects");
    object.remove("type");
    (event.type_name(), value)
}

/// Column arrays for one multi-row insert, chained per stream.
#[derive(Default)]
pub(super) struct ChainedRows {
    pub(super) stream_ids: Vec<Uuid>,
    pub(super) versions: Vec<i32>,
    pub(super) types: Vec<&'static str>,
    pub(super) schema_versions: Vec<i16>,
    /// Canonical JSON text, as hashed and as stored.
    pub(super) payloads: Vec<String>,
    pub(super) metadata: Vec<String>,
    pub(super) metadata_structs: Vec<Metadata>,
    pub(super) recorded_at: Vec<DateTime<Utc>>,
    pub(super) prev_hashes: Vec<Vec<u8>>,
    pub(super) hashes: Vec<Vec<u8>>,
    pub(super) events: Vec<CaseEvent>,
    /// Per changed case, in order: its hash and trace after these rows.
    pub(super) heads: Vec<(Hash, Option<TraceParent>)>,
}

impl ChainedRows {
    pub(super) fn build(changes: &[&CaseChange], recorded_at: DateTime<Utc>) -> Self {
        let mut rows = Self::default();
        for change in changes {
            let mut prev = change.base_hash;
            for (offset, (event, metadata_struct)) in change.events.iter().enumerate() {
                let metadata = serde_json::to_value(metadata_struct).expect("metadata serializes");
                let metadata = canonical_text(&metadata);
                let version = (change.base_version as usize + offset + 1) as i32;
                let (event_type, payload) = split_event(event);
                let payload = canonical_text(&payload);
                let canonical = canonical_event(
                    change.case.id.0,
                    version,
                    event_type,
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
                rows.metadata.push(metadata);
                rows.metadata_structs.push(metadata_struct.clone());
                rows.recorded_at.push(recorded_at);
                rows.prev_hashes.push(prev.to_vec());
                rows.hashes.push(hash.to_vec());
                rows.events.push(event.clone());
                prev = hash;
            }
            let trace = change
                .events
                .last()
                .and_then(|(_, metadata)| metadata.traceparent.clone());
            rows.heads.push((prev, trace));
        }
        rows
    }

    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// One row of `events`, as read back.
pub(super) struct StoredRow {
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
    pub(super) fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, StoreError> {
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

    pub(super) fn canonical_bytes(&self) -> Vec<u8> {
        canonical_event(
            self.stream_id,
            self.stream_version,
            &self.event_type,
            self.schema_version,
            self.recorded_at,
            &canonical_text(&self.payload),
            &canonical_text(&self.metadata),
        )
    }

    /// The event, typed; the row is consumed so its JSON is moved, not copied, into it.
    pub(super) fn decode(self) -> Result<RecordedEvent, StoreError> {
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

    #[test]
    fn the_spliced_message_reads_as_the_recorded_event() {
        let recorded = RecordedEvent {
            position: 41,
            case_id: CaseId(Uuid::from_u128(9)),
            version: 2,
            recorded_at: DateTime::from_timestamp(1_780_000_000, 123_456_000).unwrap(),
            metadata: Metadata::actor("stage:classify").caused_by(40),
            event: CaseEvent::Retracted(dijkwacht_domain::Retracted {
                reason: "a \"quoted\" reason".into(),
            }),
        };
        let (event_type, payload) = split_event(&recorded.event);
        let json = recorded_event_json(
            recorded.position,
            recorded.case_id.0,
            recorded.version as i32,
            recorded.recorded_at,
            event_type,
            &payload.to_string(),
            &serde_json::to_string(&recorded.metadata).unwrap(),
        )
        .unwrap();
        assert_eq!(serde_json::from_slice::<RecordedEvent>(&json).unwrap(), recorded);
        let not_an_object = recorded_event_json(1, Uuid::nil(), 1, recorded.recorded_at, "Retracted", "\"x\"", "{}");
        assert_eq!(not_an_object.unwrap_err(), "payload is not an object");
    }

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
        let written = canonical_event(
            stream_id,
            3,
            "Classified",
            1,
            at,
            &canonical_text(&payload),
            &canonical_text(&metadata),
        );
        assert_eq!(
            String::from_utf8(written).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
