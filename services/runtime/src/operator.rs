//! The operator queue: cases that cannot move on by themselves, each with its reason.
//! States the domain knows to be stuck are written with every append (see `timers`); a
//! stage adds what it finds on the way: a refused command, an unreadable stream, a timer
//! that keeps firing without effect. The next change of the case clears its entry.

use chrono::{DateTime, Utc};
use dijkwacht_domain::CaseId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StuckCase {
    pub case_id: CaseId,
    /// A short code: `host_unknown`, `dispatch_gave_up`, `refused`, `unreadable`,
    /// `stage_made_no_progress`.
    pub reason: String,
    /// What happened, in words, when a stage found it.
    pub detail: Option<String>,
    /// The case version the entry is about.
    pub version: u32,
    pub since: DateTime<Utc>,
}

/// Puts a case in the queue (or updates its entry).
pub async fn flag(
    pool: &PgPool,
    case_id: CaseId,
    version: u32,
    reason: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    flag_in(&mut conn, case_id, version, reason, detail, now).await
}

pub(crate) async fn flag_in(
    conn: &mut PgConnection,
    case_id: CaseId,
    version: u32,
    reason: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO operator_queue (case_id, reason, detail, version, since) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (case_id) DO UPDATE SET reason = EXCLUDED.reason, detail = EXCLUDED.detail, \
             version = EXCLUDED.version, since = EXCLUDED.since",
    )
    .bind(case_id.0)
    .bind(reason)
    .bind(detail)
    .bind(version as i32)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct QueueRow {
    case_id: uuid::Uuid,
    reason: String,
    detail: Option<String>,
    version: i32,
    since: DateTime<Utc>,
}

/// The queue, oldest first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<StuckCase>, sqlx::Error> {
    let rows: Vec<QueueRow> = sqlx::query_as(
        "SELECT case_id, reason, detail, version, since FROM operator_queue ORDER BY since, case_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| StuckCase {
            case_id: CaseId(row.case_id),
            reason: row.reason,
            detail: row.detail,
            version: row.version as u32,
            since: row.since,
        })
        .collect())
}

pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM operator_queue")
        .fetch_one(pool)
        .await
}
