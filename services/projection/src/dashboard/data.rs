//! What the dashboard shows of each platform in the caller's remit.

use crate::remit::{PlatformInRemit, Remit};
use crate::statistics::{self, Figures, Period, Selection};
use chrono::{DateTime, Utc};
use dijkwacht_runtime::auth::Principal;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub signed_in_as: String,
    pub platforms: Vec<Panel>,
}

#[derive(Debug, Serialize)]
pub struct Panel {
    pub platform: PlatformInRemit,
    pub figures: Figures,
    /// Notices sent by how long their content took to go, from delivery.
    pub removal_times: Vec<Bucket>,
    pub months: Vec<Month>,
}

#[derive(Debug, Serialize)]
pub struct Bucket {
    pub label: &'static str,
    pub notices: i64,
}

#[derive(Debug, Serialize)]
pub struct Month {
    pub month: DateTime<Utc>,
    pub notices_sent: i64,
    /// Of the notices with a deadline, the share removed by it.
    pub within_deadline: Option<f64>,
    pub ignored: i64,
    pub precision: Option<f64>,
}

const BUCKETS: [&str; 6] = ["≤ 1 h", "1–12 h", "12–24 h", "24–72 h", "> 72 h", "not removed"];

pub async fn dashboard(
    pool: &PgPool,
    principal: &Principal,
    remit: &Remit,
    now: DateTime<Utc>,
) -> Result<Dashboard, sqlx::Error> {
    let classes = remit.classes_for(None).unwrap_or_default();
    let mut platforms = Vec::new();
    for platform in remit.platforms(pool).await? {
        let selection = Selection {
            platform_id: platform.platform_id.clone(),
            from: None,
            to: None,
            classes: classes.clone(),
            period: Period::Month,
        };
        let figures = statistics::compute(pool, &selection, now).await?.total;
        let counts: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT CASE WHEN removed_at IS NULL THEN 5 \
                         WHEN removed_at - delivered_at <= interval '1 hour' THEN 0 \
                         WHEN removed_at - delivered_at <= interval '12 hours' THEN 1 \
                         WHEN removed_at - delivered_at <= interval '24 hours' THEN 2 \
                         WHEN removed_at - delivered_at <= interval '72 hours' THEN 3 ELSE 4 END AS bucket, count(*) \
             FROM notice_facts WHERE platform_id = $1 AND delivered_at IS NOT NULL \
                 AND ($2::text[] IS NULL OR content_class = ANY($2)) GROUP BY 1",
        )
        .bind(&platform.platform_id)
        .bind(&classes)
        .fetch_all(pool)
        .await?;
        let removal_times = BUCKETS
            .iter()
            .enumerate()
            .map(|(index, label)| Bucket {
                label,
                notices: counts
                    .iter()
                    .find(|(bucket, _)| *bucket as usize == index)
                    .map_or(0, |(_, notices)| *notices),
            })
            .collect();
        type Row = (DateTime<Utc>, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT date_trunc('month', counted_at, 'UTC'), count(delivered_at), \
                 count(deadline_at) FILTER (WHERE delivered_at IS NOT NULL), \
                 count(*) FILTER (WHERE removed_at <= deadline_at AND delivered_at IS NOT NULL), \
                 count(*) FILTER (WHERE delivered_at IS NOT NULL AND deadline_at < $3 AND receipt_at IS NULL \
                     AND decided_at IS NULL AND removed_at IS NULL AND rejection_reason IS NULL), \
                 count(*) FILTER (WHERE rejection_upheld AND delivered_at IS NOT NULL) \
             FROM notice_facts WHERE platform_id = $1 AND ($2::text[] IS NULL OR content_class = ANY($2)) \
             GROUP BY 1 ORDER BY 1",
        )
        .bind(&platform.platform_id)
        .bind(&classes)
        .bind(now)
        .fetch_all(pool)
        .await?;
        let share = |count: i64, of: i64| (of > 0).then(|| count as f64 / of as f64);
        let months = rows
            .into_iter()
            .map(|(month, sent, with_deadline, within, ignored, upheld)| Month {
                month,
                notices_sent: sent,
                within_deadline: share(within, with_deadline),
                ignored,
                precision: share(sent - upheld, sent),
            })
            .collect();
        platforms.push(Panel {
            platform,
            figures,
            removal_times,
            months,
        });
    }
    Ok(Dashboard {
        signed_in_as: format!("{} {}", principal.kind, principal.id),
        platforms,
    })
}
