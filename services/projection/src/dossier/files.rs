//! The dossier's files that grow with the number of notices, written row by row as the
//! store streams them.

use super::Dossier;
use crate::statistics::{Selection, SELECTED};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use minijinja::{context, Environment};
use sqlx::{PgPool, Row};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::LazyLock;

/// A notice's times, in its row's order.
const TIMES: [&str; 6] = [
    "issued_at",
    "delivered_at",
    "deadline_at",
    "receipt_at",
    "decided_at",
    "removed_at",
];

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("head", include_str!("head.html.j2"))
        .expect("the dossier's summary template parses");
    env.add_template("row", include_str!("row.html.j2"))
        .expect("the dossier's row template parses");
    env
});

fn instant(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// `notices.csv` and `dossier.html`; returns the number of notices.
pub async fn notices(pool: &PgPool, selection: &Selection, dossier: &Dossier, folder: &Path) -> anyhow::Result<u64> {
    let mut csv = csv::Writer::from_writer(BufWriter::new(std::fs::File::create(folder.join("notices.csv"))?));
    let header = ["case_id", "notice_id", "class", "url"]
        .into_iter()
        .chain(TIMES)
        .chain(["rejection_reason", "reminders", "events", "chain_head"]);
    csv.write_record(header)?;
    let mut html = BufWriter::new(std::fs::File::create(folder.join("dossier.html"))?);
    html.write_all(TEMPLATES.get_template("head")?.render(context! { dossier })?.as_bytes())?;
    let sql = format!(
        "SELECT f.case_id, f.notice_id, f.content_class, s.url, f.issued_at, f.delivered_at, f.deadline_at, \
             f.receipt_at, f.decided_at, f.removed_at, f.rejection_reason, f.reminders, \
             (SELECT count(*) FROM events e WHERE e.stream_id = f.case_id) AS events, \
             (SELECT e.hash FROM events e WHERE e.stream_id = f.case_id ORDER BY e.stream_version DESC LIMIT 1) AS head \
         FROM notice_facts f JOIN case_summaries s USING (case_id) WHERE {SELECTED} AND f.notice_id IS NOT NULL \
         ORDER BY f.case_id"
    );
    let mut rows = selection.bind(sqlx::query(&sql)).fetch(pool);
    let row_template = TEMPLATES.get_template("row")?;
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        let case_id: uuid::Uuid = row.try_get("case_id")?;
        let notice_id: uuid::Uuid = row.try_get("notice_id")?;
        let head: Option<Vec<u8>> = row.try_get("head")?;
        let times: Vec<String> = TIMES
            .iter()
            .map(|column| row.try_get::<Option<DateTime<Utc>>, _>(*column).map(instant))
            .collect::<Result<_, _>>()?;
        let class: String = row.try_get("content_class")?;
        let url: String = row.try_get("url")?;
        let reason: Option<String> = row.try_get("rejection_reason")?;
        let reminders: i32 = row.try_get("reminders")?;
        let events: i64 = row.try_get("events")?;
        let head = head.map(hex::encode).unwrap_or_default();
        let mut record = vec![case_id.to_string(), notice_id.to_string(), class.clone(), url.clone()];
        record.extend(times.iter().cloned());
        record.extend([
            reason.clone().unwrap_or_default(),
            reminders.to_string(),
            events.to_string(),
            head.clone(),
        ]);
        csv.write_record(&record)?;
        html.write_all(
            row_template
                .render(context! { case_id, notice_id, class, url, times, reason, reminders, head })?
                .as_bytes(),
        )?;
        count += 1;
    }
    csv.flush()?;
    html.write_all(b"</tbody></table>\n</body>\n</html>\n")?;
    html.flush()?;
    Ok(count)
}

/// `timeline.csv`: every event of the selected notices' cases, in each case's order.
pub async fn timeline(pool: &PgPool, selection: &Selection, folder: &Path) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(BufWriter::new(std::fs::File::create(folder.join("timeline.csv"))?));
    csv.write_record(["case_id", "version", "event_type", "recorded_at", "hash"])?;
    let sql = format!(
        "SELECT e.stream_id, e.stream_version, e.event_type, e.recorded_at, e.hash \
         FROM notice_facts f JOIN events e ON e.stream_id = f.case_id WHERE {SELECTED} AND f.notice_id IS NOT NULL \
         ORDER BY e.stream_id, e.stream_version"
    );
    let mut rows = selection.bind(sqlx::query(&sql)).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let case_id: uuid::Uuid = row.try_get("stream_id")?;
        let version: i32 = row.try_get("stream_version")?;
        let event_type: String = row.try_get("event_type")?;
        let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        csv.write_record([
            case_id.to_string(),
            version.to_string(),
            event_type,
            recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            hex::encode(hash),
        ])?;
    }
    csv.flush()?;
    Ok(())
}
