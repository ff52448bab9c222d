//! The JSON Schemas of everything dijkwacht exchanges, generated from the Rust types.
//! `dijkwacht schemas` writes them to `schemas/`; a test fails when the files are stale.

use dijkwacht_dispatch::routes::{DispatchTask, ManualSubmission};
use dijkwacht_domain::{CaseEvent, Notice};
use dijkwacht_followup::analysts::{CaseMoved, RegulatorDecision, RejectionAssessment};
use dijkwacht_followup::answers::{AnswerRecorded, PlatformEvent};
use dijkwacht_followup::forwards::ForwardConfirmation;
use dijkwacht_hashcheck::api::{HashCheckAnswer, HashCheckRequest};
use dijkwacht_intake::api::{BulkLineResult, CaseView, ErrorBody, ReportAccepted, ReportStatus, SubmitReport};
use dijkwacht_projection::annual::AnnualReport;
use dijkwacht_projection::dossier::requests::DossierStatus;
use dijkwacht_projection::dossier::{Dossier, DossierRequest};
use dijkwacht_projection::regulator::{Access, Compliance, NoticePage};
use dijkwacht_projection::remit::PlatformInRemit;
use dijkwacht_runtime::RecordedEvent;
use schemars::{schema_for, Schema};
use std::collections::BTreeMap;
use std::path::Path;

fn catalog() -> Vec<(&'static str, Schema)> {
    vec![
        ("events/case-event.schema.json", schema_for!(CaseEvent)),
        ("events/recorded-event.schema.json", schema_for!(RecordedEvent)),
        ("notices/notice.schema.json", schema_for!(Notice)),
        ("api/submit-report.schema.json", schema_for!(SubmitReport)),
        ("api/report-accepted.schema.json", schema_for!(ReportAccepted)),
        ("api/case-view.schema.json", schema_for!(CaseView)),
        ("api/report-status.schema.json", schema_for!(ReportStatus)),
        ("api/bulk-line-result.schema.json", schema_for!(BulkLineResult)),
        ("api/error.schema.json", schema_for!(ErrorBody)),
        ("api/platform-compliance.schema.json", schema_for!(Compliance)),
        ("api/regulator-platforms.schema.json", schema_for!(Vec<PlatformInRemit>)),
        ("api/regulator-notices.schema.json", schema_for!(NoticePage)),
        ("api/regulator-access.schema.json", schema_for!(Vec<Access>)),
        ("api/dossier-request.schema.json", schema_for!(DossierRequest)),
        ("api/dossier-status.schema.json", schema_for!(DossierStatus)),
        ("exports/dossier.schema.json", schema_for!(Dossier)),
        ("exports/annual-report.schema.json", schema_for!(AnnualReport)),
        ("api/dispatch-tasks.schema.json", schema_for!(Vec<DispatchTask>)),
        ("api/manual-submission.schema.json", schema_for!(ManualSubmission)),
        ("api/platform-event.schema.json", schema_for!(PlatformEvent)),
        ("api/answer-recorded.schema.json", schema_for!(AnswerRecorded)),
        ("api/rejection-assessment.schema.json", schema_for!(RejectionAssessment)),
        ("api/regulator-decision.schema.json", schema_for!(RegulatorDecision)),
        ("api/case-moved.schema.json", schema_for!(CaseMoved)),
        ("api/forward-confirmation.schema.json", schema_for!(ForwardConfirmation)),
        ("api/hash-check-request.schema.json", schema_for!(HashCheckRequest)),
        ("api/hash-check-answer.schema.json", schema_for!(HashCheckAnswer)),
    ]
}

fn pretty(value: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("schemas serialize");
    text.push('\n');
    text
}

/// Relative path → file content, exactly as committed.
pub fn render() -> BTreeMap<&'static str, String> {
    let mut files: BTreeMap<&'static str, String> = catalog()
        .into_iter()
        .map(|(path, schema)| (path, pretty(&schema)))
        .collect();
    files.insert("openapi.json", pretty(&crate::app::openapi()));
    files
}

pub fn write(dir: &Path) -> std::io::Result<()> {
    for (path, text) in render() {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, text)?;
    }
    Ok(())
}

/// The files under `dir` that differ from the code, or are missing.
pub fn stale(dir: &Path) -> Vec<String> {
    render()
        .into_iter()
        .filter(|(path, text)| std::fs::read_to_string(dir.join(path)).ok().as_deref() != Some(text.as_str()))
        .map(|(path, _)| path.to_owned())
        .collect()
}
