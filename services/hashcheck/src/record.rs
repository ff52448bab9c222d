//! What a check leaves behind: counts per provider and day, and for each match only, a hit
//! record naming the list entry it matched. A hash that matched nothing is never written.
//! A match on material online at a URL can open a case, through intake like any report.

use crate::answer::{Answer, ListedHit};
use crate::api::HashCheckRequest;
use crate::providers::Provider;
use chrono::{DateTime, Utc};
use dijkwacht_domain::event::{Location, Reporter};
use dijkwacht_domain::{CaseId, MediaHash};
use dijkwacht_http::ApiError;
use dijkwacht_intake::submission::{submit, Outcome, Submission, SubmitError};
use dijkwacht_intake::validate::ValidItem;
use dijkwacht_runtime::EventStore;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// What a checked batch leaves: the cases its matches online opened (when the provider's
/// open cases), then its counts and hit records. The case of each URL.
pub async fn keep(
    store: &EventStore,
    provider: &Provider,
    now: DateTime<Utc>,
    request: &HashCheckRequest,
    urls: &[Option<String>],
    answers: &[Answer],
) -> Result<BTreeMap<String, CaseId>, ApiError> {
    let found: Vec<_> = answers
        .iter()
        .zip(&request.hashes)
        .zip(urls)
        .filter_map(|((answer, sent), url)| match (answer, url) {
            (Answer::Listed(hit), Some(url)) if provider.settings.open_cases => Some((
                url.clone(),
                MediaHash::parse(sent.algorithm, &sent.value, sent.quality).expect("checked when the batch was read"),
                hit.class,
            )),
            _ => None,
        })
        .collect();
    let cases = open_cases(store, &provider.id, &found, now)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let hits: Vec<HitRecord> = answers
        .iter()
        .zip(urls)
        .filter_map(|(answer, url)| match answer {
            Answer::Listed(hit) => Some(HitRecord {
                hit: hit.clone(),
                url: url.clone(),
                case_id: url.as_ref().and_then(|url| cases.get(url).copied()),
            }),
            _ => None,
        })
        .collect();
    let not_checked = answers.iter().filter(|a| matches!(a, Answer::NotChecked(_))).count();
    record(
        store.pool(),
        &provider.id,
        now,
        (answers.len() as u64, not_checked as u64),
        &hits,
    )
    .await?;
    if !hits.is_empty() {
        tracing::info!(provider = %provider.id, hits = hits.len(), checks = answers.len(), "hash check matched");
    }
    Ok(cases)
}

/// One match, as recorded.
#[derive(Debug, Clone)]
pub struct HitRecord {
    pub hit: ListedHit,
    /// Where the provider found the material online; `None` for an upload it blocked.
    pub url: Option<String>,
    pub case_id: Option<CaseId>,
}

/// A batch's counts and hits, in one transaction (or one statement when nothing matched).
async fn record(
    pool: &PgPool,
    provider_id: &str,
    now: DateTime<Utc>,
    (checks, not_checked): (u64, u64),
    hits: &[HitRecord],
) -> Result<(), sqlx::Error> {
    const COUNT: &str = "INSERT INTO hash_check_daily (provider_id, day, checks, not_checked) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (provider_id, day) DO UPDATE SET checks = hash_check_daily.checks + EXCLUDED.checks, \
             not_checked = hash_check_daily.not_checked + EXCLUDED.not_checked";
    let count = sqlx::query(COUNT)
        .bind(provider_id)
        .bind(now.date_naive())
        .bind(checks as i64)
        .bind(not_checked as i64);
    if hits.is_empty() {
        count.execute(pool).await?;
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    count.execute(&mut *tx).await?;
    let column = |f: fn(&HitRecord) -> Option<String>| hits.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO hash_check_hits (provider_id, checked_at, list, list_version, algorithm, listed_value, class, distance, url, case_id) \
         SELECT $1, $2, h.list, h.list_version, h.algorithm, h.listed_value, h.class, h.distance, h.url, h.case_id \
         FROM UNNEST($3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::uuid[]) \
             AS h (list, list_version, algorithm, listed_value, class, distance, url, case_id)",
    )
    .bind(provider_id)
    .bind(now)
    .bind(column(|h| Some(h.hit.list.clone())))
    .bind(hits.iter().map(|h| h.hit.list_version).collect::<Vec<_>>())
    .bind(column(|h| Some(h.hit.algorithm.as_str().to_owned())))
    .bind(column(|h| Some(h.hit.listed_value.clone())))
    .bind(column(|h| Some(h.hit.class.as_str().to_owned())))
    .bind(hits.iter().map(|h| h.hit.distance.map(|d| d as i32)).collect::<Vec<_>>())
    .bind(column(|h| h.url.clone()))
    .bind(hits.iter().map(|h| h.case_id.map(|id| id.0)).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Material a provider found online that matched: one report from the provider, one case
/// per location (a location already open gets the report as a repeat). The case of each URL.
async fn open_cases(
    store: &EventStore,
    provider_id: &str,
    found: &[(String, MediaHash, dijkwacht_domain::ContentClass)],
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, CaseId>, SubmitError> {
    let mut by_url: BTreeMap<&str, ValidItem> = BTreeMap::new();
    for (url, hash, class) in found {
        let item = by_url.entry(url).or_insert_with(|| ValidItem {
            location: Location {
                url: url.clone(),
                hashes: vec![],
            },
            claimed_class: Some(*class),
        });
        if !item.location.hashes.contains(hash) {
            item.location.hashes.push(hash.clone());
        }
    }
    if by_url.is_empty() {
        return Ok(BTreeMap::new());
    }
    let submission = Submission {
        reporter: Reporter::HashCheck {
            provider_id: provider_id.to_owned(),
        },
        // Only reports with a partner reference are idempotent by their body.
        body_sha256: [0; 32],
        items: by_url.into_values().collect(),
        public_contact: None,
        trace: dijkwacht_runtime::telemetry::TraceParent::current(),
    };
    let outcome = submit(store, std::slice::from_ref(&submission), now).await?;
    Ok(match outcome.into_iter().next() {
        Some(Outcome::Accepted(accepted) | Outcome::Replayed(accepted)) => accepted
            .cases
            .into_iter()
            .map(|case| (case.url, case.case_id))
            .collect(),
        Some(Outcome::ReferenceTaken { .. }) | None => BTreeMap::new(),
    })
}

/// Who blocked on a list entry, for the delisting of a false positive: each provider with
/// its number of hits and the first and last.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockedOn {
    pub provider_id: String,
    pub hits: i64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

pub async fn blocked_on(pool: &PgPool, list: &str, listed_value: &str) -> Result<Vec<BlockedOn>, sqlx::Error> {
    sqlx::query_as(
        "SELECT provider_id, count(*) AS hits, min(checked_at) AS first, max(checked_at) AS last \
         FROM hash_check_hits WHERE list = $1 AND listed_value = $2 GROUP BY provider_id ORDER BY provider_id",
    )
    .bind(list)
    .bind(listed_value.trim().to_ascii_lowercase())
    .fetch_all(pool)
    .await
}
