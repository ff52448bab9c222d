//! Accepting reports durably: idempotent per partner reference, de-duplicated per location,
//! many reports per transaction. Every entry point — the API, bulk NDJSON, file import,
//! the public form — goes through [`submit`].

use crate::api::{CaseRef, ReportAccepted};
use crate::validate::ValidItem;
use chrono::{DateTime, Utc};
use dijkwacht_domain::event::{Location, Reappeared, ReportedAgain, Reporter};
use dijkwacht_domain::{CaseId, Command, ReportId, ReportReceived};
use dijkwacht_runtime::locations;
use dijkwacht_runtime::telemetry::TraceParent;
use dijkwacht_runtime::{Attempt, CaseChange, CommandError, Decision, EventStore, LoadedCase, Metadata, StoreError};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// One report, validated, with the digest of the body it came in.
#[derive(Debug, Clone)]
pub struct Submission {
    pub reporter: Reporter,
    pub body_sha256: [u8; 32],
    pub items: Vec<ValidItem>,
    /// What a member of the public told us about themselves; stored beside the report.
    pub public_contact: Option<PublicContact>,
    /// The trace of the request the report came in: its events continue it, also when the
    /// report is committed together with others ([`crate::together`]).
    pub trace: Option<TraceParent>,
}

/// Personal data of a public reporter: never in an event, a notice or a statistic.
#[derive(Clone)]
pub struct PublicContact {
    pub public_reference: String,
    /// Argon2 hash of the PIN printed on the receipt.
    pub pin_hash: String,
    pub free_text: Option<String>,
    pub email: Option<String>,
}

impl std::fmt::Debug for PublicContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicContact")
            .field("public_reference", &self.public_reference)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// New: the events are committed.
    Accepted(ReportAccepted),
    /// The same report was sent before; this is the original answer and nothing was added.
    Replayed(ReportAccepted),
    /// A different report was sent before under the same reference.
    ReferenceTaken { report_id: ReportId },
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("reports kept conflicting with concurrent writers; nothing was accepted")]
    Contended,
    /// Intake stopped before the report's transaction answered: it may or may not be
    /// committed, and sending it again is safe (a partner's report is idempotent).
    #[error("the report's transaction ended without an answer; send it again")]
    Unanswered,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<CommandError> for SubmitError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Contended => SubmitError::Contended,
            CommandError::Store(store) => SubmitError::Store(store),
            CommandError::Database(db) => SubmitError::Database(db),
        }
    }
}

/// Accepts a batch of reports in one transaction; outcomes are in input order. Either every
/// new report in the batch is committed or none is.
pub async fn submit(
    store: &EventStore,
    submissions: &[Submission],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>, SubmitError> {
    let (outcomes, _) = store.transact(&Intake { submissions }, now).await?;
    Ok(outcomes)
}

/// Reports as one decision: idempotency records and the location index are read and
/// written in the same transaction as the cases' events.
struct Intake<'a> {
    submissions: &'a [Submission],
}

impl Decision for Intake<'_> {
    type Output = Vec<Outcome>;

    async fn decide(
        &self,
        tx: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Outcome>, Vec<CaseChange>), Attempt> {
        attempt(tx, self.submissions, now).await
    }
}

fn partner_key(reporter: &Reporter) -> Option<(String, String)> {
    match reporter {
        Reporter::Partner {
            partner_id,
            partner_reference,
        } => Some((partner_id.0.clone(), partner_reference.clone())),
        Reporter::Public { .. } | Reporter::ReappearanceWatch | Reporter::HashCheck { .. } => None,
    }
}

fn actor(submission: &Submission) -> Metadata {
    let metadata = match &submission.reporter {
        Reporter::Partner { partner_id, .. } => Metadata::actor(format!("partner:{partner_id}")),
        Reporter::Public { .. } => Metadata::actor("public"),
        Reporter::ReappearanceWatch => Metadata::actor("followup"),
        Reporter::HashCheck { provider_id } => Metadata::actor(format!("hosting_provider:{provider_id}")),
    };
    metadata.traced(submission.trace.clone())
}

async fn attempt(
    tx: &mut PgConnection,
    submissions: &[Submission],
    now: DateTime<Utc>,
) -> Result<(Vec<Outcome>, Vec<CaseChange>), Attempt> {
    let mut earlier = earlier_reports(tx, submissions).await?;
    let mut urls: Vec<&str> = submissions
        .iter()
        .flat_map(|s| s.items.iter().map(|i| i.location.url.as_str()))
        .collect();
    urls.sort_unstable();
    urls.dedup();
    let mut latest_case = locations::lock(tx, &urls).await?;
    let indexed: HashMap<String, CaseId> = latest_case.clone();
    let known_ids: Vec<CaseId> = latest_case.values().copied().collect();
    let loaded = EventStore::load_with(&mut *tx, &known_ids).await?;
    if let Some((case_id, reason)) = loaded.unreadable.into_iter().next() {
        return Err(Attempt::Failed(StoreError::Unreadable { case_id, reason }.into()));
    }
    let mut touched: BTreeMap<CaseId, CaseChange> = loaded
        .cases
        .into_iter()
        .map(|(id, loaded)| (id, CaseChange::new(loaded)))
        .collect();

    let mut outcomes = Vec::with_capacity(submissions.len());
    let mut new_reports = Vec::new();
    for submission in submissions {
        let key = partner_key(&submission.reporter);
        if let Some(previous) = key.as_ref().and_then(|k| earlier.get(k)) {
            outcomes.push(if previous.0 == submission.body_sha256 {
                Outcome::Replayed(previous.1.clone())
            } else {
                Outcome::ReferenceTaken {
                    report_id: previous.1.report_id,
                }
            });
            continue;
        }
        let report_id = ReportId::new();
        let metadata = actor(submission).correlated_with(report_id.0);
        let mut cases = Vec::with_capacity(submission.items.len());
        for item in &submission.items {
            let url = &item.location.url;
            let open_case = latest_case
                .get(url)
                .filter(|id| touched.get(id).is_some_and(|t| t.case.takes_reports()));
            if let Some(&case_id) = open_case {
                let again = ReportedAgain {
                    report_id,
                    reporter: submission.reporter.clone(),
                    new_hashes: item.location.hashes.clone(),
                    claimed_class: item.claimed_class,
                };
                let case = touched.get_mut(&case_id).expect("open cases are loaded");
                case.decide(Command::ReportAgain(again), &metadata, now)
                    .map_err(refused)?;
                cases.push(CaseRef {
                    case_id,
                    url: url.clone(),
                    existing: true,
                });
                continue;
            }
            let case_id = CaseId::new();
            let reappearance_of = latest_case.insert(url.clone(), case_id);
            if let Some(closed_id) = reappearance_of {
                let closed = touched.get_mut(&closed_id).expect("indexed cases are loaded");
                let reappeared = Reappeared {
                    report_id,
                    new_case_id: case_id,
                };
                closed
                    .decide(Command::RecordReappearance(reappeared), &metadata, now)
                    .map_err(refused)?;
            }
            let received = ReportReceived {
                report_id,
                reporter: submission.reporter.clone(),
                location: Location {
                    url: url.clone(),
                    hashes: item.location.hashes.clone(),
                },
                claimed_class: item.claimed_class,
                reappearance_of,
            };
            let mut new_case = CaseChange::new(LoadedCase::new(case_id));
            new_case
                .decide(Command::ReceiveReport(received), &metadata, now)
                .map_err(refused)?;
            touched.insert(case_id, new_case);
            cases.push(CaseRef {
                case_id,
                url: url.clone(),
                existing: false,
            });
        }
        let accepted = ReportAccepted { report_id, cases };
        if let Some(key) = key {
            earlier.insert(key, (submission.body_sha256, accepted.clone()));
        }
        new_reports.push((submission, accepted.clone()));
        outcomes.push(Outcome::Accepted(accepted));
    }

    locations::repoint(tx, &indexed, &latest_case).await?;
    record_reports(tx, &new_reports, now).await?;
    let changes = touched.into_values().filter(|change| !change.is_empty()).collect();
    Ok((outcomes, changes))
}

fn refused(refusal: dijkwacht_domain::Refusal) -> Attempt {
    // The batch only issues commands its own reads allow; a refusal means a concurrent
    // writer changed a case in between.
    tracing::debug!(%refusal, "intake decision refused; retrying with fresh reads");
    Attempt::Contended
}

type Earlier = HashMap<(String, String), ([u8; 32], ReportAccepted)>;

async fn earlier_reports(tx: &mut PgConnection, submissions: &[Submission]) -> Result<Earlier, Attempt> {
    let (partners, references): (Vec<String>, Vec<String>) =
        submissions.iter().filter_map(|s| partner_key(&s.reporter)).unzip();
    if partners.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT r.partner_id, r.partner_reference, r.body_sha256, r.report_id, r.cases FROM reports r \
         JOIN UNNEST($1::text[], $2::text[]) AS k (partner_id, partner_reference) \
           ON r.partner_id = k.partner_id AND r.partner_reference = k.partner_reference",
    )
    .bind(&partners)
    .bind(&references)
    .fetch_all(&mut *tx)
    .await?;
    let mut earlier = HashMap::with_capacity(rows.len());
    for row in rows {
        let digest: Vec<u8> = row.try_get("body_sha256")?;
        let cases: serde_json::Value = row.try_get("cases")?;
        let accepted = ReportAccepted {
            report_id: ReportId(row.try_get("report_id")?),
            cases: serde_json::from_value(cases)
                .map_err(|e| Attempt::Failed(sqlx::Error::Decode(Box::new(e)).into()))?,
        };
        let digest: [u8; 32] = digest.try_into().unwrap_or_default();
        earlier.insert(
            (row.try_get("partner_id")?, row.try_get("partner_reference")?),
            (digest, accepted),
        );
    }
    Ok(earlier)
}

async fn record_reports(
    tx: &mut PgConnection,
    reports: &[(&Submission, ReportAccepted)],
    now: DateTime<Utc>,
) -> Result<(), Attempt> {
    if reports.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<Uuid> = Vec::with_capacity(reports.len());
    let (mut partners, mut references, mut digests, mut cases) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (submission, accepted) in reports {
        let key = partner_key(&submission.reporter);
        ids.push(accepted.report_id.0);
        partners.push(key.as_ref().map(|k| k.0.clone()));
        references.push(key.map(|k| k.1));
        digests.push(submission.body_sha256.to_vec());
        cases.push(serde_json::to_value(&accepted.cases).expect("case references serialize"));
    }
    let inserted = sqlx::query(
        "INSERT INTO reports (report_id, partner_id, partner_reference, body_sha256, received_at, cases) \
         SELECT r.id, r.partner, r.reference, r.digest, $5, r.cases FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bytea[], $6::jsonb[]) \
             AS r (id, partner, reference, digest, cases) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&partners)
    .bind(&references)
    .bind(&digests)
    .bind(now)
    .bind(&cases)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != reports.len() as u64 {
        // A concurrent request took one of these references first.
        return Err(Attempt::Contended);
    }
    for (submission, accepted) in reports {
        if let Some(contact) = &submission.public_contact {
            sqlx::query(
                "INSERT INTO public_reporters (public_reference, pin_hash, report_id, free_text, email, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&contact.public_reference)
            .bind(&contact.pin_hash)
            .bind(accepted.report_id.0)
            .bind(&contact.free_text)
            .bind(&contact.email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}
