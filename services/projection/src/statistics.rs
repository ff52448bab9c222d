//! How a platform handles our notices, per class and period: the figures a regulator acts
//! on, computed from the notice facts (and so from the events alone). A notice counts in
//! the period it was delivered in; times to receipt and removal run from its delivery.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;

/// The length of the periods figures are given for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    #[default]
    Month,
    Year,
}

impl Period {
    fn as_sql(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// Which notices to count.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub platform_id: String,
    /// From this instant (inclusive) to `to` (exclusive); open where absent.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only these classes; every class where absent.
    pub classes: Option<Vec<String>>,
    pub period: Period,
}

/// What the notices of one selection came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Figures {
    /// Notices the platform accepted delivery of.
    pub notices_sent: i64,
    /// Receipts the platform confirmed (DSA Art. 16(4)).
    pub receipts: i64,
    pub median_seconds_to_receipt: Option<f64>,
    /// The platform's decisions by Transparency Database identifier (`DECISION_*`); one
    /// decision may name several.
    pub decisions: BTreeMap<String, i64>,
    /// Locations we verified gone after the notice.
    pub removals_verified: i64,
    /// Shares of the notices sent whose content we verified gone within each time.
    pub removed_within: RemovedWithin,
    pub median_seconds_to_removal: Option<f64>,
    pub p90_seconds_to_removal: Option<f64>,
    pub max_seconds_to_removal: Option<f64>,
    /// Notices past their deadline without a receipt, a decision or a removal.
    pub ignored: i64,
    pub reminders: i64,
    pub escalations: i64,
    /// Removed content that came back online.
    pub reappearances: i64,
    /// Notices the platform refused, or decided to leave up, by the reason it gave.
    pub rejections: i64,
    pub rejections_by_reason: BTreeMap<String, i64>,
    /// Rejections an analyst upheld: our notice was wrong.
    pub rejections_upheld: i64,
    /// Our precision record: the share of notices sent that no upheld rejection proved
    /// wrong (DSA Art. 22(6)).
    pub precision: Option<f64>,
    /// Cases held back for the police before their notice; the hold is not the platform's
    /// time.
    pub held_for_police: i64,
    pub median_seconds_on_police_hold: Option<f64>,
}

/// Shares of the notices sent, removed within each time from delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemovedWithin {
    pub hour_1: Option<f64>,
    pub hours_12: Option<f64>,
    pub hours_24: Option<f64>,
    pub hours_72: Option<f64>,
    /// Of the notices with a deadline, the share removed by it.
    pub own_deadline: Option<f64>,
}

/// The figures of one class in one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PeriodFigures {
    pub class: String,
    pub period_start: DateTime<Utc>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The whole selection, and each class in each period of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statistics {
    pub total: Figures,
    pub periods: Vec<PeriodFigures>,
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl Selection {
    /// Binds the platform, the window and the classes as `$1` to `$4`, as every query over a
    /// selection of notice facts numbers them.
    pub(crate) fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.platform_id)
            .bind(self.from)
            .bind(self.to)
            .bind(&self.classes)
    }
}

/// Which group a row of the grouped queries belongs to: the total, or a class in a period.
type Group = Option<(String, DateTime<Utc>)>;

/// The notice facts (aliased `f`) of a selection, as every query over one filters them:
/// `$1` platform, `$2` from, `$3` to, `$4` classes, bound by [`Selection::bind`].
pub(crate) const SELECTED: &str = "f.platform_id = $1 \
     AND ($2::timestamptz IS NULL OR f.counted_at >= $2) AND ($3::timestamptz IS NULL OR f.counted_at < $3) \
     AND ($4::text[] IS NULL OR f.content_class = ANY($4))";
/// The period a fact counts in; `$5` the period's length.
const BUCKET: &str = "date_trunc($5, counted_at, 'UTC')";

/// Computes the statistics of a selection; `now` decides which deadlines have passed.
pub async fn compute(pool: &PgPool, selection: &Selection, now: DateTime<Utc>) -> Result<Statistics, sqlx::Error> {
    let seconds = |from: &str, to: &str| format!("extract(epoch FROM {to} - {from})::float8");
    let removal = seconds("delivered_at", "removed_at");
    let sql = format!(
        "SELECT GROUPING(content_class) = 1 AS total, content_class, {BUCKET} AS period_start, \
             count(delivered_at) AS sent, \
             count(receipt_at) FILTER (WHERE delivered_at IS NOT NULL) AS receipts, \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY {receipt}) AS median_receipt, \
             count(removed_at) FILTER (WHERE delivered_at IS NOT NULL) AS removals, \
             count(*) FILTER (WHERE removed_at - delivered_at <= interval '1 hour') AS within_1h, \
             count(*) FILTER (WHERE removed_at - delivered_at <= interval '12 hours') AS within_12h, \
             count(*) FILTER (WHERE removed_at - delivered_at <= interval '24 hours') AS within_24h, \
             count(*) FILTER (WHERE removed_at - delivered_at <= interval '72 hours') AS within_72h, \
             count(deadline_at) FILTER (WHERE delivered_at IS NOT NULL) AS with_deadline, \
             count(*) FILTER (WHERE removed_at <= deadline_at AND delivered_at IS NOT NULL) AS within_deadline, \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY {removal}) AS median_removal, \
             percentile_cont(0.9) WITHIN GROUP (ORDER BY {removal}) AS p90_removal, \
             max({removal}) AS max_removal, \
             count(*) FILTER (WHERE delivered_at IS NOT NULL AND deadline_at < $6 AND receipt_at IS NULL \
                 AND decided_at IS NULL AND removed_at IS NULL AND rejection_reason IS NULL) AS ignored, \
             coalesce(sum(reminders), 0)::int8 AS reminders, \
             coalesce(sum(escalations), 0)::int8 AS escalations, \
             count(*) FILTER (WHERE reappeared) AS reappearances, \
             count(rejection_reason) FILTER (WHERE delivered_at IS NOT NULL) AS rejections, \
             count(*) FILTER (WHERE rejection_upheld AND delivered_at IS NOT NULL) AS upheld, \
             count(police_held_at) AS held, \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY {hold}) AS median_hold \
         FROM notice_facts f WHERE {SELECTED} GROUP BY GROUPING SETS ((), (content_class, {BUCKET})) \
         ORDER BY total DESC, period_start, content_class",
        receipt = seconds("delivered_at", "receipt_at"),
        hold = seconds("police_held_at", "police_released_at"),
    );
    let rows = selection
        .bind(sqlx::query(&sql))
        .bind(selection.period.as_sql())
        .bind(now)
        .fetch_all(pool)
        .await?;
    let mut groups: Vec<(Group, Figures)> = Vec::with_capacity(rows.len());
    for row in rows {
        let share = |count: i64, of: i64| (of > 0).then(|| count as f64 / of as f64);
        let sent: i64 = row.try_get("sent")?;
        let upheld: i64 = row.try_get("upheld")?;
        let with_deadline: i64 = row.try_get("with_deadline")?;
        let figures = Figures {
            notices_sent: sent,
            receipts: row.try_get("receipts")?,
            median_seconds_to_receipt: row.try_get("median_receipt")?,
            decisions: BTreeMap::new(),
            removals_verified: row.try_get("removals")?,
            removed_within: RemovedWithin {
                hour_1: share(row.try_get("within_1h")?, sent),
                hours_12: share(row.try_get("within_12h")?, sent),
                hours_24: share(row.try_get("within_24h")?, sent),
                hours_72: share(row.try_get("within_72h")?, sent),
                own_deadline: share(row.try_get("within_deadline")?, with_deadline),
            },
            median_seconds_to_removal: row.try_get("median_removal")?,
            p90_seconds_to_removal: row.try_get("p90_removal")?,
            max_seconds_to_removal: row.try_get("max_removal")?,
            ignored: row.try_get("ignored")?,
            reminders: row.try_get("reminders")?,
            escalations: row.try_get("escalations")?,
            reappearances: row.try_get("reappearances")?,
            rejections: row.try_get("rejections")?,
            rejections_by_reason: BTreeMap::new(),
            rejections_upheld: upheld,
            precision: share(sent - upheld, sent),
            held_for_police: row.try_get("held")?,
            median_seconds_on_police_hold: row.try_get("median_hold")?,
        };
        groups.push((group_of(&row)?, figures));
    }
    let decisions = counted_by(
        pool,
        selection,
        "d.value",
        "notice_facts f CROSS JOIN LATERAL jsonb_array_elements_text(f.decisions) AS d",
        "TRUE",
    )
    .await?;
    let reasons = counted_by(
        pool,
        selection,
        "rejection_reason",
        "notice_facts f",
        "rejection_reason IS NOT NULL AND delivered_at IS NOT NULL",
    )
    .await?;
    for (group, figures) in &mut groups {
        figures.decisions = decisions.get(group).cloned().unwrap_or_default();
        figures.rejections_by_reason = reasons.get(group).cloned().unwrap_or_default();
    }
    let mut statistics = Statistics::default();
    for (group, figures) in groups {
        match group {
            None => statistics.total = figures,
            Some((class, period_start)) => statistics.periods.push(PeriodFigures {
                class,
                period_start,
                figures,
            }),
        }
    }
    Ok(statistics)
}

fn group_of(row: &sqlx::postgres::PgRow) -> Result<Group, sqlx::Error> {
    if row.try_get::<bool, _>("total")? {
        return Ok(None);
    }
    Ok(Some((row.try_get("content_class")?, row.try_get("period_start")?)))
}

/// Counts of `key` per group, for the figures that are counts by name.
async fn counted_by(
    pool: &PgPool,
    selection: &Selection,
    key: &str,
    from: &str,
    condition: &str,
) -> Result<BTreeMap<Group, BTreeMap<String, i64>>, sqlx::Error> {
    let sql = format!(
        "SELECT GROUPING(content_class) = 1 AS total, content_class, {BUCKET} AS period_start, {key} AS name, \
             count(*) AS n \
         FROM {from} WHERE {condition} AND {SELECTED} \
         GROUP BY GROUPING SETS (({key}), (content_class, {BUCKET}, {key}))",
    );
    let rows = selection
        .bind(sqlx::query(&sql))
        .bind(selection.period.as_sql())
        .fetch_all(pool)
        .await?;
    let mut counts: BTreeMap<Group, BTreeMap<String, i64>> = BTreeMap::new();
    for row in rows {
        counts
            .entry(group_of(&row)?)
            .or_default()
            .insert(row.try_get("name")?, row.try_get("n")?);
    }
    Ok(counts)
}
