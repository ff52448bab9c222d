//! Dossiers asked for through the API: a regulator asks, an API process builds it in the
//! background (one at a time per dossier: its claim lapses if the process dies, and another
//! builds it again), and the finished `.tar` is kept in the database in parts, so any API
//! process can hand it out.

use super::{build, Context, DossierRequest};
use crate::regulator::{Regulator, RegulatorApi};
use crate::remit::PlatformInRemit;
use crate::settings::RegulatorSettings;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::NoticePolicy;
use dijkwacht_http::{json_body, ApiError, FieldError};
use dijkwacht_runtime::signing::SigningKey;
use dijkwacht_runtime::{SharedClock, Shutdown};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// The `.tar` is kept in parts of this size.
const PART_BYTES: usize = 1 << 20;
/// How long a claim on a dossier keeps other processes from building it.
const CLAIM: TimeDelta = TimeDelta::minutes(10);

/// Where a dossier stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DossierStatus {
    pub dossier_id: uuid::Uuid,
    pub platform_id: String,
    /// `requested`, `building`, `finished` or `failed`.
    pub status: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it could not be built.
    pub failure: Option<String>,
    /// Where the finished `.tar` is fetched.
    pub location: String,
}

/// `POST /v1/regulator/dossiers`.
pub async fn request(
    State(api): State<RegulatorApi>,
    regulator: Regulator,
    body: Bytes,
) -> Result<(StatusCode, Json<DossierStatus>), ApiError> {
    let request: DossierRequest = json_body(&body)?;
    if let (Some(from), Some(to)) = (request.from, request.to) {
        if from >= to {
            return Err(ApiError::Invalid(vec![FieldError::new("/to", "must be after `from`")]));
        }
    }
    if api.dossiers.is_none() {
        return Err(ApiError::Conflict(
            "dossiers cannot be signed here: no [regulator] signing_key is configured".into(),
        ));
    }
    let platform = regulator
        .remit
        .platform(api.store.pool(), &request.platform_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let classes = regulator
        .remit
        .classes_for(request.class.as_deref())
        .ok_or(ApiError::NotFound)?;
    let dossier_id = uuid::Uuid::now_v7();
    let requested_at = api.clock.now();
    sqlx::query(
        "INSERT INTO dossiers (dossier_id, regulator_id, platform_id, request, classes, requested_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'requested')",
    )
    .bind(dossier_id)
    .bind(&regulator.id)
    .bind(&platform.platform_id)
    .bind(serde_json::to_value(&request)?)
    .bind(&classes)
    .bind(requested_at)
    .execute(api.store.pool())
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DossierStatus {
            dossier_id,
            platform_id: platform.platform_id,
            status: "requested".into(),
            requested_at,
            finished_at: None,
            failure: None,
            location: location(dossier_id),
        }),
    ))
}

fn location(dossier_id: uuid::Uuid) -> String {
    format!("/v1/regulator/dossiers/{dossier_id}")
}

/// `GET /v1/regulator/dossiers/{id}`: the `.tar` once finished, where it stands before.
pub async fn fetch(
    State(api): State<RegulatorApi>,
    regulator: Regulator,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let dossier_id = uuid::Uuid::parse_str(&raw).map_err(|_| ApiError::NotFound)?;
    let pool = api.store.pool().clone();
    let row = sqlx::query(
        "SELECT platform_id, status, requested_at, finished_at, failure, bytes FROM dossiers \
         WHERE dossier_id = $1 AND regulator_id = $2",
    )
    .bind(dossier_id)
    .bind(&regulator.id)
    .fetch_optional(&pool)
    .await?
    .ok_or(ApiError::NotFound)?;
    let status = DossierStatus {
        dossier_id,
        platform_id: row.try_get("platform_id")?,
        status: row.try_get("status")?,
        requested_at: row.try_get("requested_at")?,
        finished_at: row.try_get("finished_at")?,
        failure: row.try_get("failure")?,
        location: location(dossier_id),
    };
    match status.status.as_str() {
        "finished" => {
            let bytes: i64 = row.try_get("bytes")?;
            let parts = futures::stream::iter(0..)
                .then(move |seq: i32| {
                    let pool = pool.clone();
                    async move {
                        sqlx::query_scalar::<_, Vec<u8>>(
                            "SELECT bytes FROM dossier_parts WHERE dossier_id = $1 AND seq = $2",
                        )
                        .bind(dossier_id)
                        .bind(seq)
                        .fetch_optional(&pool)
                        .await
                    }
                })
                .take_while(|part| std::future::ready(!matches!(part, Ok(None))))
                .map(|part| part.map(|part| Bytes::from(part.unwrap_or_default())));
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                    (header::CONTENT_LENGTH, bytes.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"dossier-{dossier_id}.tar\""),
                    ),
                ],
                Body::from_stream(parts),
            )
                .into_response())
        }
        "failed" => Err(ApiError::Conflict(format!(
            "the dossier could not be built ({}); ask for a new one",
            status.failure.unwrap_or_default()
        ))),
        _ => Ok((StatusCode::ACCEPTED, Json(status)).into_response()),
    }
}

/// What an API process needs to build dossiers.
#[derive(Clone)]
pub struct Builder {
    pub key: Arc<SigningKey>,
    pub applicant: Arc<NoticePolicy>,
    pub settings: Arc<RegulatorSettings>,
}

impl Builder {
    /// Builds the dossiers asked for, one at a time, until shutdown.
    pub async fn run(self, pool: PgPool, clock: SharedClock, mut shutdown: Shutdown) {
        let poll = Duration::from_millis(self.settings.dossier_poll_ms);
        loop {
            // A dossier abandoned at shutdown is built again once its claim lapses.
            let Some(built) = shutdown
                .within_grace(dijkwacht_runtime::shutdown::GRACE, self.build_next(&pool, &clock))
                .await
            else {
                return;
            };
            match built {
                Ok(true) if !shutdown.is_triggered() => continue,
                Ok(true) => return,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "looking for a dossier to build failed"),
            }
            if shutdown.sleep_or_stop(poll).await {
                return;
            }
        }
    }

    /// Claims and builds one waiting dossier; whether there was one.
    pub async fn build_next(&self, pool: &PgPool, clock: &SharedClock) -> anyhow::Result<bool> {
        let now = clock.now();
        let claimed = sqlx::query(
            "UPDATE dossiers SET status = 'building', claimed_until = $2 WHERE dossier_id = ( \
                 SELECT dossier_id FROM dossiers \
                 WHERE status = 'requested' OR (status = 'building' AND claimed_until < $1) \
                 ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING dossier_id, platform_id, request, classes",
        )
        .bind(now)
        .bind(now + CLAIM)
        .fetch_optional(pool)
        .await?;
        let Some(claimed) = claimed else { return Ok(false) };
        let dossier_id: uuid::Uuid = claimed.try_get("dossier_id")?;
        let outcome = self.build_one(pool, clock, dossier_id, &claimed).await;
        match outcome {
            Ok(()) => tracing::info!(%dossier_id, "dossier built"),
            Err(error) => {
                tracing::warn!(%dossier_id, %error, "dossier could not be built");
                sqlx::query(
                    "UPDATE dossiers SET status = 'failed', failure = $2, finished_at = $3 WHERE dossier_id = $1",
                )
                .bind(dossier_id)
                .bind(format!("{error:#}"))
                .bind(clock.now())
                .execute(pool)
                .await?;
            }
        }
        Ok(true)
    }

    async fn build_one(
        &self,
        pool: &PgPool,
        clock: &SharedClock,
        dossier_id: uuid::Uuid,
        claimed: &sqlx::postgres::PgRow,
    ) -> anyhow::Result<()> {
        let request: DossierRequest = serde_json::from_value(claimed.try_get("request")?)?;
        let platform_id: String = claimed.try_get("platform_id")?;
        let provider = PlatformInRemit::load(pool, &platform_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the platform {platform_id} is no longer registered"))?;
        let context = Context {
            applicant: &self.applicant,
            coordinator: self.settings.coordinator(&provider.country),
            provider,
            classes: claimed.try_get("classes")?,
            key: &self.key,
            now: clock.now(),
        };
        let scratch = tempfile::tempdir()?;
        let built = build(pool, &request, &context, dossier_id, scratch.path()).await?;
        let mut tar = std::fs::File::open(&built.tar)?;
        let mut tx = pool.begin().await?;
        // A claim that lapsed may have left parts of an earlier attempt.
        sqlx::query("DELETE FROM dossier_parts WHERE dossier_id = $1")
            .bind(dossier_id)
            .execute(&mut *tx)
            .await?;
        let mut total = 0i64;
        let mut buffer = vec![0u8; PART_BYTES];
        for seq in 0.. {
            let read = read_full(&mut tar, &mut buffer)?;
            if read == 0 {
                break;
            }
            sqlx::query("INSERT INTO dossier_parts (dossier_id, seq, bytes) VALUES ($1, $2, $3)")
                .bind(dossier_id)
                .bind(seq)
                .bind(&buffer[..read])
                .execute(&mut *tx)
                .await?;
            total += read as i64;
        }
        sqlx::query("UPDATE dossiers SET status = 'finished', finished_at = $2, bytes = $3 WHERE dossier_id = $1")
            .bind(dossier_id)
            .bind(clock.now())
            .bind(total)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}
