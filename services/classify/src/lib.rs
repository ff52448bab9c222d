//! The classify stage: who holds a reported location, and what the hash lists say it is.
//! Clear evidence classifies automatically; anything else goes to an analyst.

use dijkwacht_domain::{
    Case, CaseEvent, CaseStatus, Classified, Command, ContentClass, Evidence, HashAlgorithm, HostResolved, MediaHash,
    PlatformId,
};
use dijkwacht_runtime::{RecordedEvent, Stage, StageError, Topic};
use sqlx::{PgPool, Row};

pub struct ClassifyStage {
    pool: PgPool,
}

impl ClassifyStage {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The platform whose registered domain is the URL's host or the closest parent of it.
    pub async fn resolve_host(&self, url: &str) -> Result<Option<HostResolved>, StageError> {
        let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT p.platform_id, p.name, p.notice_endpoint, d.domain FROM platform_domains d \
             JOIN platforms p USING (platform_id) WHERE d.domain = ANY($1) ORDER BY length(d.domain) DESC LIMIT 1",
        )
        .bind(domain_and_parents(&host))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(HostResolved {
                platform_id: PlatformId(row.try_get("platform_id")?),
                platform_name: row.try_get("name")?,
                matched_domain: row.try_get("domain")?,
                notice_endpoint: row.try_get("notice_endpoint")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// The first listed, non-delisted exact hash among the location's hashes.
    pub async fn match_hashes(
        &self,
        hashes: &[MediaHash],
        conduct_date: chrono::NaiveDate,
    ) -> Result<Option<Classified>, StageError> {
        let exact: Vec<&MediaHash> = hashes.iter().filter(|h| h.algorithm != HashAlgorithm::Pdq).collect();
        if exact.is_empty() {
            return Ok(None);
        }
        let algorithms: Vec<&str> = exact.iter().map(|h| h.algorithm.as_str()).collect();
        let values: Vec<&str> = exact.iter().map(|h| h.value.as_str()).collect();
        let row = sqlx::query(
            "SELECT e.list, l.version, e.algorithm, e.value, e.class FROM hash_list_entries e \
             JOIN hash_lists l ON l.name = e.list \
             WHERE e.delisted_at IS NULL AND (e.algorithm, e.value) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             ORDER BY e.list, e.algorithm LIMIT 1",
        )
        .bind(&algorithms)
        .bind(&values)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let class_name: String = row.try_get("class")?;
        let class = ContentClass::parse(&class_name)
            .ok_or_else(|| StageError::Permanent(format!("hash list class {class_name:?} is not a known class")))?;
        let algorithm = match exact
            .iter()
            .find(|h| h.algorithm.as_str() == row.get::<String, _>("algorithm"))
        {
            Some(hash) => hash.algorithm,
            None => return Ok(None),
        };
        Ok(Some(Classified {
            class,
            legal_ground: class.legal_ground(conduct_date),
            evidence: Evidence::HashListMatch {
                list: row.try_get("list")?,
                list_version: row.try_get("version")?,
                algorithm,
                value: row.try_get("value")?,
                distance: None,
            },
            automated: true,
        }))
    }
}

/// `a.b.example` → `[a.b.example, b.example, example]`.
fn domain_and_parents(host: &str) -> Vec<String> {
    let mut domains = vec![host.to_owned()];
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        domains.push(parent.to_owned());
        rest = parent;
    }
    domains
}

impl Stage for ClassifyStage {
    fn name(&self) -> &'static str {
        "classify"
    }

    fn topics(&self) -> &'static [Topic] {
        &[Topic::Reports]
    }

    async fn command_for(&self, event: &RecordedEvent, case: &Case) -> Result<Option<Command>, StageError> {
        let CaseEvent::ReportReceived(report) = &event.event else {
            return Ok(None);
        };
        if case.status != CaseStatus::Received {
            return Ok(None);
        }
        let host = self.resolve_host(&report.location.url).await?;
        let classification = self
            .match_hashes(&report.location.hashes, event.recorded_at.date_naive())
            .await?;
        Ok(Some(Command::Classify { host, classification }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_matches_itself_and_every_parent_domain() {
        assert_eq!(
            domain_and_parents("cdn.videos.example"),
            vec!["cdn.videos.example", "videos.example", "example"]
        );
        assert_eq!(domain_and_parents("127.0.0.1"), vec!["127.0.0.1", "0.0.1", "0.1", "1"]);
    }
}
