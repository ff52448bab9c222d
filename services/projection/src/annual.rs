//! The trusted flagger's yearly report (DSA Art. 22(3)): the notices of a year counted by
//! hosting provider, by type of content (the Transparency Database's statement categories)
//! and by the action the provider took, with the procedures that keep the flagger
//! independent. Counts only: no location, no person.

use chrono::{DateTime, TimeZone, Utc};
use dijkwacht_domain::{ContentClass, NoticePolicy};
use minijinja::{context, Environment};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnnualReport {
    pub year: i32,
    pub organisation: String,
    pub designated_by: String,
    pub designation_reference: String,
    pub generated_at: DateTime<Utc>,
    /// Notices delivered in the year.
    pub notices: i64,
    pub by_provider: Vec<Count>,
    /// By `STATEMENT_CATEGORY_*`.
    pub by_content_type: Vec<Count>,
    /// By the provider's decision (`DECISION_*`; one notice may count under several), or
    /// `refused`, `removal_verified_without_decision`, `no_action_reported`.
    pub by_action: Vec<Count>,
    /// The procedures that keep the trusted flagger independent, as configured.
    pub procedures: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Count {
    pub key: String,
    /// A readable name where there is one (the provider's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub notices: i64,
}

/// Counts the notices delivered in `year`.
pub async fn report(
    pool: &PgPool,
    year: i32,
    applicant: &NoticePolicy,
    procedures: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<AnnualReport> {
    let start = Utc
        .with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("{year} is not a year"))?;
    let end = Utc
        .with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("{year} is not a year"))?;
    const IN_YEAR: &str = "f.delivered_at >= $1 AND f.delivered_at < $2";
    let by_provider: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT f.platform_id, coalesce(p.name, f.platform_id), count(*) FROM notice_facts f \
         LEFT JOIN platforms p USING (platform_id) WHERE {IN_YEAR} GROUP BY 1, 2 ORDER BY 3 DESC, 1"
    ))
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    let by_class: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT f.content_class, count(*) FROM notice_facts f WHERE {IN_YEAR} GROUP BY 1"
    ))
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    let by_action: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT action, count(*) FROM ( \
             SELECT jsonb_array_elements_text(f.decisions) AS action FROM notice_facts f \
                 WHERE {IN_YEAR} AND f.decisions <> '[]'::jsonb \
             UNION ALL \
             SELECT CASE WHEN f.rejection_reason IS NOT NULL THEN 'refused' \
                         WHEN f.removed_at IS NOT NULL THEN 'removal_verified_without_decision' \
                         ELSE 'no_action_reported' END \
                 FROM notice_facts f WHERE {IN_YEAR} AND f.decisions = '[]'::jsonb \
         ) actions GROUP BY 1 ORDER BY 2 DESC, 1"
    ))
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    let mut by_category: BTreeMap<String, i64> = BTreeMap::new();
    for (class, notices) in by_class {
        let category = ContentClass::parse(&class).map_or("STATEMENT_CATEGORY_OTHER", ContentClass::tdb_category);
        *by_category.entry(category.to_owned()).or_default() += notices;
    }
    let mut by_content_type: Vec<Count> = by_category
        .into_iter()
        .map(|(key, notices)| Count {
            key,
            name: None,
            notices,
        })
        .collect();
    by_content_type.sort_by(|a, b| b.notices.cmp(&a.notices).then(a.key.cmp(&b.key)));
    Ok(AnnualReport {
        year,
        organisation: applicant.organisation.clone(),
        designated_by: applicant.designated_by.clone(),
        designation_reference: applicant.designation_reference.clone(),
        generated_at: now,
        notices: by_provider.iter().map(|(_, _, notices)| notices).sum(),
        by_provider: by_provider
            .into_iter()
            .map(|(key, name, notices)| Count {
                key,
                name: Some(name),
                notices,
            })
            .collect(),
        by_content_type,
        by_action: by_action
            .into_iter()
            .map(|(key, notices)| Count {
                key,
                name: None,
                notices,
            })
            .collect(),
        procedures: procedures.to_owned(),
    })
}

/// The report as a printable page.
pub fn html(report: &AnnualReport) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("annual", include_str!("annual.html.j2"))?;
    Ok(env.get_template("annual")?.render(context! { report })?)
}
