//! The reappearance watch saw a removed location answer again: a new case takes it over.
//! Its report, the old case's closure and the location index change in one transaction,
//! the same way intake opens a case for a location reported after its case finished.

use chrono::{DateTime, Utc};
use dijkwacht_domain::event::{Location, Reappeared, Reporter};
use dijkwacht_domain::{CaseId, CaseStatus, Command, ReportId, ReportReceived};
use dijkwacht_runtime::{locations, Attempt, CaseChange, Decision, EventStore, LoadedCase, Metadata, StoreError};
use sqlx::PgConnection;
use std::collections::HashMap;

/// Opens the case that takes over the location of the removed case `of`; the new case's id,
/// or `None` when the case had moved on meanwhile (closed, or already taken over).
pub struct Reappearance {
    pub of: CaseId,
}

impl Decision for Reappearance {
    type Output = Option<CaseId>;

    async fn decide(
        &self,
        tx: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> Result<(Option<CaseId>, Vec<CaseChange>), Attempt> {
        let mut loaded = EventStore::load_with(&mut *tx, &[self.of]).await?;
        if let Some((case_id, reason)) = loaded.unreadable.into_iter().next() {
            return Err(Attempt::Failed(StoreError::Unreadable { case_id, reason }.into()));
        }
        let old = loaded.cases.remove(&self.of).expect("every id asked for is loaded");
        let (Some(report), CaseStatus::Removed) = (old.case.report.clone(), old.case.status) else {
            return Ok((None, vec![]));
        };
        let url = report.location.url.clone();
        let before = locations::lock(tx, &[url.as_str()]).await?;
        if before.get(&url).is_some_and(|latest| *latest != self.of) {
            tracing::warn!(case_id = %self.of, %url, "a removed case is not its location's latest; not reopened");
            return Ok((None, vec![]));
        }
        let (report_id, new_case_id) = (ReportId::new(), CaseId::new());
        let metadata = Metadata::actor("followup").correlated_with(report_id.0);
        let claimed_class = old.case.classification.as_ref().map(|c| c.class);
        let mut old_case = CaseChange::new(old);
        old_case
            .decide(
                Command::RecordReappearance(Reappeared { report_id, new_case_id }),
                &metadata,
                now,
            )
            .map_err(|_| Attempt::Contended)?;
        let mut new_case = CaseChange::new(LoadedCase::new(new_case_id));
        new_case
            .decide(
                Command::ReceiveReport(ReportReceived {
                    report_id,
                    reporter: Reporter::ReappearanceWatch,
                    location: Location {
                        url: url.clone(),
                        hashes: report.location.hashes,
                    },
                    claimed_class,
                    reappearance_of: Some(self.of),
                }),
                &metadata,
                now,
            )
            .map_err(|_| Attempt::Contended)?;
        locations::repoint(tx, &before, &HashMap::from([(url, new_case_id)])).await?;
        Ok((Some(new_case_id), vec![old_case, new_case]))
    }
}
