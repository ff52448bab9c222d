//! Analysts' decisions by location and by hash, so the classify stage decides the same way
//! next time. Derived from classifications by analysts; the latest decision on a key wins,
//! so projecting in any order, or again, gives the same table.

use dijkwacht_domain::{Case, Evidence};
use sqlx::PgConnection;

pub async fn upsert(db: &mut PgConnection, cases: &[&Case], table: &str) -> Result<(), sqlx::Error> {
    let (mut kinds, mut keys, mut classes, mut case_ids, mut decided_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for case in cases {
        let (Some(classified), Some(at), Some(report)) = (&case.classification, case.classified_at, &case.report)
        else {
            continue;
        };
        if !matches!(classified.evidence, Evidence::AnalystReview { .. }) {
            continue;
        }
        let hash_keys = report.location.hashes.iter().map(|hash| ("hash", hash.key()));
        for (kind, key) in [("url", report.location.url.clone())].into_iter().chain(hash_keys) {
            kinds.push(kind);
            keys.push(key);
            classes.push(classified.class.as_str());
            case_ids.push(case.id.0);
            decided_at.push(at);
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    // One row per key in a statement: ON CONFLICT cannot touch a row twice.
    sqlx::query(&format!(
        "INSERT INTO {table} (kind, key, class, case_id, decided_at) \
         SELECT DISTINCT ON (kind, key) * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[]) \
             AS d (kind, key, class, case_id, decided_at) \
         ORDER BY kind, key, decided_at DESC, case_id \
         ON CONFLICT (kind, key) DO UPDATE SET class = EXCLUDED.class, case_id = EXCLUDED.case_id, decided_at = EXCLUDED.decided_at \
         WHERE ({table}.decided_at, {table}.case_id) < (EXCLUDED.decided_at, EXCLUDED.case_id)"
    ))
    .bind(&kinds)
    .bind(&keys)
    .bind(&classes)
    .bind(&case_ids)
    .bind(&decided_at)
    .execute(db)
    .await?;
    Ok(())
}
