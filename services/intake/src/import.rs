//! Importing reports from files (`dijkwacht import`): NDJSON, one report per line as in the
//! bulk API, or CSV, one location per row. Safe to run again after an interruption: reports
//! are identified by their reference, so those already in are answered, not added.

use crate::api::FieldError;
use crate::routes::partner_submission;
use crate::submission::{self, Outcome, Submission, SubmitError};
use chrono::{DateTime, Utc};
use dijkwacht_runtime::EventStore;
use serde_json::{json, Value};
use std::io::BufRead;

const BATCH: usize = 1_000;

/// The CSV columns, in the header row, in any order; only the first two are required.
pub const CSV_COLUMNS: &[&str] = &[
    "partner_reference",
    "url",
    "claimed_category",
    "md5",
    "sha1",
    "sha256",
    "pdq",
    "pdq_quality",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub accepted: u64,
    pub already_imported: u64,
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading line {line}: {source}")]
    Read { line: u64, source: std::io::Error },
    #[error("line 1: the CSV header must name the columns partner_reference and url (known: {known})")]
    Header { known: String },
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// A rejected line: its number and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub errors: Vec<FieldError>,
}

/// Reads `input` and accepts its reports for `partner_id` in batches. `progress` hears the
/// bytes read so far; `rejected` every line that was not accepted, with its line number.
pub async fn import(
    store: &EventStore,
    partner_id: &str,
    input: impl BufRead,
    format: Format,
    now: impl Fn() -> DateTime<Utc>,
    mut progress: impl FnMut(u64),
    mut rejected: impl FnMut(LineError),
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    let mut batch: Vec<(u64, Submission)> = Vec::with_capacity(BATCH);
    let mut rows = Rows::new(input, format)?;
    while let Some((line, bytes_read, value)) = rows.next_row()? {
        summary.lines += 1;
        progress(bytes_read);
        let parsed = value.and_then(|value| partner_submission(partner_id, &value));
        match parsed {
            Ok(submission) => batch.push((line, submission)),
            Err(errors) => {
                summary.rejected += 1;
                rejected(LineError { line, errors });
            }
        }
        if batch.len() >= BATCH {
            flush(store, &mut batch, now(), &mut summary, &mut rejected).await?;
        }
    }
    flush(store, &mut batch, now(), &mut summary, &mut rejected).await?;
    Ok(summary)
}

async fn flush(
    store: &EventStore,
    batch: &mut Vec<(u64, Submission)>,
    now: DateTime<Utc>,
    summary: &mut ImportSummary,
    rejected: &mut impl FnMut(LineError),
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let submissions: Vec<Submission> = batch.iter().map(|(_, s)| s.clone()).collect();
    let outcomes = submission::submit(store, &submissions, now).await?;
    for ((line, _), outcome) in batch.drain(..).zip(outcomes) {
        match outcome {
            Outcome::Accepted(_) => summary.accepted += 1,
            Outcome::Replayed(_) => summary.already_imported += 1,
            Outcome::ReferenceTaken { report_id } => {
                summary.rejected += 1;
                rejected(LineError {
                    line,
                    errors: vec![FieldError::new(
                        "/partner_reference",
                        format!("this reference already names report {report_id}, with different content"),
                    )],
                });
            }
        }
    }
    Ok(())
}

type Row = (u64, u64, Result<Value, Vec<FieldError>>);

/// The input as report values, with line numbers and bytes read.
struct Rows<R> {
    input: R,
    format: Format,
    line: u64,
    bytes_read: u64,
    /// CSV: the index of each known column.
    columns: Vec<(usize, &'static str)>,
    buffer: String,
}

impl<R: BufRead> Rows<R> {
    fn new(input: R, format: Format) -> Result<Self, ImportError> {
        let mut rows = Self {
            input,
            format,
            line: 0,
            bytes_read: 0,
            columns: Vec::new(),
            buffer: String::new(),
        };
        if format == Format::Csv {
            let header = rows.read_line()?.unwrap_or_default();
            let names = parse_csv_record(&header).map_err(|message| ImportError::Csv { line: 1, message })?;
            for (index, name) in names.iter().enumerate() {
                if let Some(known) = CSV_COLUMNS.iter().find(|c| **c == name.trim()) {
                    rows.columns.push((index, known));
                }
            }
            let has = |c: &str| rows.columns.iter().any(|(_, name)| *name == c);
            if !has("partner_reference") || !has("url") {
                return Err(ImportError::Header {
                    known: CSV_COLUMNS.join(", "),
                });
            }
        }
        Ok(rows)
    }

    fn read_line(&mut self) -> Result<Option<String>, ImportError> {
        self.buffer.clear();
        self.line += 1;
        let read = self
            .input
            .read_line(&mut self.buffer)
            .map_err(|source| ImportError::Read {
                line: self.line,
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.bytes_read += read as u64;
        Ok(Some(self.buffer.trim_end_matches(['\n', '\r']).to_owned()))
    }

    fn next_row(&mut self) -> Result<Option<Row>, ImportError> {
        loop {
            let Some(text) = self.read_line()? else { return Ok(None) };
            if text.trim().is_empty() {
                continue;
            }
            let value = match self.format {
                Format::Ndjson => {
                    serde_json::from_str(&text).map_err(|e| vec![FieldError::new("", format!("not valid JSON: {e}"))])
                }
                Format::Csv => parse_csv_record(&text)
                    .map_err(|message| vec![FieldError::new("", message)])
                    .map(|fields| self.csv_report(&fields)),
            };
            return Ok(Some((self.line, self.bytes_read, value)));
        }
    }

    /// One CSV row as a report of one location, in the shape of the API's body.
    fn csv_report(&self, fields: &[String]) -> Value {
        let get = |column: &str| {
            self.columns
                .iter()
                .find(|(_, name)| *name == column)
                .and_then(|(index, _)| fields.get(*index))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let mut hashes = Vec::new();
        for algorithm in ["md5", "sha1", "sha256", "pdq"] {
            if let Some(value) = get(algorithm) {
                let mut hash = json!({"algorithm": algorithm, "value": value});
                if algorithm == "pdq" {
                    if let Some(quality) = get("pdq_quality") {
                        hash["quality"] = quality.parse::<u64>().map_or_else(|_| json!(quality), |q| json!(q));
                    }
                }
                hashes.push(hash);
            }
        }
        let mut item = json!({"url": get("url").unwrap_or_default(), "hashes": hashes});
        if let Some(category) = get("claimed_category") {
            item["claimed_category"] = json!(category);
        }
        json!({"partner_reference": get("partner_reference").unwrap_or_default(), "items": [item]})
    }
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
fn parse_csv_record(line: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(str::to_owned).collect()),
        Some(Err(error)) => Err(format!("not a CSV record: {error}")),
        None => Ok(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_row_becomes_a_report_of_one_location() {
        let input = "url,partner_reference,sha256,claimed_category\nhttps://a.example/x,R-1,\"abababababababababababababababababababababababababababababababab\",csam\n";
        let mut rows = Rows::new(input.as_bytes(), Format::Csv).unwrap();
        let (line, _, value) = rows.next_row().unwrap().unwrap();
        assert_eq!(line, 2);
        let value = value.unwrap();
        assert_eq!(value["partner_reference"], "R-1");
        assert_eq!(value["items"][0]["url"], "https://a.example/x");
        assert_eq!(value["items"][0]["hashes"][0]["algorithm"], "sha256");
        assert_eq!(value["items"][0]["claimed_category"], "csam");
        assert!(rows.next_row().unwrap().is_none());
    }

    #[test]
    fn a_csv_without_the_required_columns_is_refused_at_line_1() {
        let error = Rows::new("reference,link\n".as_bytes(), Format::Csv).err().unwrap();
        assert!(error.to_string().starts_with("line 1:"), "{error}");
    }
}
