//! Evidence besides hash lists, in the order the classify stage consults it.

use dijkwacht_domain::{CaseId, ContentClass, Evidence, MediaHash, PartnerId};
use sqlx::{PgPool, Row};

/// A class and what supports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub class: ContentClass,
    pub evidence: Evidence,
}

fn class_of(row: &sqlx::postgres::PgRow) -> Result<Option<ContentClass>, sqlx::Error> {
    Ok(ContentClass::parse(&row.try_get::<String, _>("class")?))
}

/// The most specific URL rule for a normalised URL: exact, then the longest prefix, then the
/// closest domain.
pub async fn url_rule(pool: &PgPool, url: &str) -> Result<Option<Finding>, sqlx::Error> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let row = sqlx::query(
        "SELECT rule_id, class FROM url_rules WHERE \
             (kind = 'exact' AND pattern = $1) \
          OR (kind = 'prefix' AND starts_with($1, pattern)) \
          OR (kind = 'domain' AND pattern = ANY($2)) \
         ORDER BY CASE kind WHEN 'exact' THEN 0 WHEN 'prefix' THEN 1 ELSE 2 END, length(pattern) DESC LIMIT 1",
    )
    .bind(url)
    .bind(crate::host::domain_and_parents(&host))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(class_of(&row)?.map(|class| Finding {
        class,
        evidence: Evidence::UrlRule {
            rule_id: row.get("rule_id"),
        },
    }))
}

/// An analyst's earlier decision on the same location or one of the same hashes.
pub async fn prior_decision(pool: &PgPool, url: &str, hashes: &[MediaHash]) -> Result<Option<Finding>, sqlx::Error> {
    let keys: Vec<String> = hashes.iter().map(MediaHash::key).collect();
    let row = sqlx::query(
        "SELECT class, case_id FROM prior_decisions WHERE (kind = 'url' AND key = $1) OR (kind = 'hash' AND key = ANY($2)) \
         ORDER BY kind DESC, decided_at DESC LIMIT 1",
    )
    .bind(url)
    .bind(&keys)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(class_of(&row)?.map(|class| Finding {
        class,
        evidence: Evidence::PriorDecision {
            case_id: CaseId(row.get("case_id")),
        },
    }))
}

/// The reporter's own category, where the partner is trusted for it.
pub async fn trusted_claim(
    pool: &PgPool,
    partner: Option<&PartnerId>,
    claimed: Option<ContentClass>,
) -> Result<Option<Finding>, sqlx::Error> {
    let (Some(partner), Some(class)) = (partner, claimed) else {
        return Ok(None);
    };
    let trusted: Option<bool> =
        sqlx::query_scalar("SELECT true FROM partner_trust WHERE partner_id = $1 AND class = $2")
            .bind(&partner.0)
            .bind(class.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(trusted.map(|_| Finding {
        class,
        evidence: Evidence::TrustedClaim {
            partner_id: partner.clone(),
        },
    }))
}
