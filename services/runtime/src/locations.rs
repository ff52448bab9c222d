//! The location index: which case a URL's reports go to — its latest. Intake writes it for
//! every new case; follow-up does when its reappearance watch opens one. Both read it with
//! [`lock`] and write it with [`repoint`] inside the transaction that appends the cases'
//! events, so a location never has two open cases.

use crate::commands::Attempt;
use dijkwacht_domain::CaseId;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

/// The latest case of each URL that has one, locked until the transaction ends.
pub async fn lock(tx: &mut PgConnection, urls: &[&str]) -> Result<HashMap<String, CaseId>, sqlx::Error> {
    let rows = sqlx::query("SELECT url, case_id FROM case_locations WHERE url = ANY($1) ORDER BY url FOR UPDATE")
        .bind(urls)
        .fetch_all(&mut *tx)
        .await?;
    let mut latest = HashMap::with_capacity(rows.len());
    for row in rows {
        latest.insert(row.try_get("url")?, CaseId(row.try_get("case_id")?));
    }
    Ok(latest)
}

/// Points every location at its latest case. New locations are inserted only if nobody
/// inserted them meanwhile (else the decision is made again); moved ones (reappearances)
/// were locked by [`lock`].
pub async fn repoint(
    tx: &mut PgConnection,
    before: &HashMap<String, CaseId>,
    after: &HashMap<String, CaseId>,
) -> Result<(), Attempt> {
    let (mut new_urls, mut new_ids, mut moved_urls, mut moved_ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (url, case_id) in after {
        match before.get(url) {
            None => {
                new_urls.push(url.as_str());
                new_ids.push(case_id.0);
            }
            Some(old) if old != case_id => {
                moved_urls.push(url.as_str());
                moved_ids.push(case_id.0);
            }
            Some(_) => {}
        }
    }
    if !new_urls.is_empty() {
        let inserted = sqlx::query(
            "INSERT INTO case_locations (url, case_id) SELECT * FROM UNNEST($1::text[], $2::uuid[]) ON CONFLICT (url) DO NOTHING",
        )
        .bind(&new_urls)
        .bind(&new_ids)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != new_urls.len() as u64 {
            return Err(Attempt::Contended);
        }
    }
    if !moved_urls.is_empty() {
        sqlx::query(
            "UPDATE case_locations c SET case_id = m.case_id FROM UNNEST($1::text[], $2::uuid[]) AS m (url, case_id) WHERE c.url = m.url",
        )
        .bind(&moved_urls)
        .bind(&moved_ids)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
