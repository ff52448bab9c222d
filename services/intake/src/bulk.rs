//! `POST /v1/reports/bulk`: NDJSON in, NDJSON out, one result line per input line.
//!
//! The request is read as a stream, split into lines, validated and accepted in batches;
//! the answer streams back while the request is still arriving. Memory stays constant
//! whatever the number of lines, and a bad line never holds up the good ones.

use crate::api::{BulkLineResult, FieldError};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{partner_submission, SCOPE_REPORTS_WRITE};
use crate::submission::{self, Outcome, Submission};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use tokio::sync::mpsc;

/// Reports accepted per transaction.
pub const BATCH_REPORTS: usize = 1_000;
/// A longer line is refused without being held in memory.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Batches committing at once per request: enough to hide commit latency, few enough that
/// memory stays bounded and one partner cannot hold many connections.
const BATCHES_IN_FLIGHT: usize = 3;

pub async fn submit_bulk(State(state): State<AppState>, caller: Caller, body: Body) -> Result<Response, ApiError> {
    let partner = caller.require(SCOPE_REPORTS_WRITE)?;
    if partner.kind != "partner" {
        return Err(ApiError::Forbidden(SCOPE_REPORTS_WRITE));
    }
    if axum::body::HttpBody::size_hint(&body).exact() == Some(0) {
        return Err(ApiError::BadJson(
            "the body is empty: send one JSON report per line".into(),
        ));
    }
    let declared = axum::body::HttpBody::size_hint(&body).upper();
    if declared.is_some_and(|bytes| bytes > state.limits.settings.bulk_max_bytes) {
        return Err(ApiError::TooLarge(format!(
            "a bulk request may carry at most {} bytes: split it",
            state.limits.settings.bulk_max_bytes
        )));
    }
    let partner_id = partner.id.clone();
    let limit_key = format!("{}:{}", partner.kind, partner.id);
    let (results, receiver) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let processed = process(&state, &partner_id, &limit_key, body.into_data_stream(), &results).await;
        if let Err(error) = processed {
            tracing::warn!(partner = %partner_id, %error, "bulk request ended early");
        }
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|line| (Ok::<_, Infallible>(line), receiver))
    });
    Ok(Response::builder()
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .expect("a static response builds"))
}

#[derive(Debug, thiserror::Error)]
enum BulkError {
    #[error("the client went away")]
    ClientGone,
    #[error("reading the request: {0}")]
    Read(String),
}

/// Why reading a bulk request stopped before its end: answered as the last line, after
/// every line read so far was answered (and what was accepted stays accepted).
enum Cut {
    TooLarge(String),
    RateLimited { retry_after_secs: u64 },
}

impl Cut {
    fn answer(self, line: u64) -> BulkLineResult {
        let message = match self {
            Cut::TooLarge(why) => format!("413 Payload Too Large: {why}; lines from here on were not read: send them again in another request"),
            Cut::RateLimited { retry_after_secs } => format!(
                "429 Too Many Requests: every line counts against your rate limit; lines from here on were not read: send them again after {retry_after_secs} s"
            ),
        };
        failed(line, vec![FieldError::new("", message)])
    }
}

/// Lines waiting for their batch to be committed, in input order.
type Lines = Vec<(u64, Result<Submission, Vec<FieldError>>)>;

/// Line numbers of a batch, with the errors of the lines that were not submitted.
type Answers = Vec<(u64, Option<Vec<FieldError>>)>;

/// A batch being committed while the next ones are read and validated, so that parsing,
/// validation and the database's commit latency overlap. Answered in input order.
type InFlight = tokio::task::JoinHandle<(Answers, Result<Vec<Outcome>, submission::SubmitError>)>;

fn start(state: &AppState, lines: Lines) -> InFlight {
    let state = state.clone();
    tokio::spawn(async move {
        let mut submissions = Vec::with_capacity(lines.len());
        let answers: Answers = lines
            .into_iter()
            .map(|(line, parsed)| match parsed {
                Ok(submission) => {
                    submissions.push(submission);
                    (line, None)
                }
                Err(errors) => (line, Some(errors)),
            })
            .collect();
        let outcomes = submission::submit(&state.store, &submissions, state.clock.now()).await;
        (answers, outcomes)
    })
}

async fn process(
    state: &AppState,
    partner_id: &str,
    limit_key: &str,
    mut chunks: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    results: &mpsc::Sender<Bytes>,
) -> Result<(), BulkError> {
    let limits = &state.limits.settings;
    let mut bytes_read = 0u64;
    let mut cut: Option<Cut> = None;
    let mut splitter = LineSplitter::default();
    let mut pending: Lines = Vec::with_capacity(BATCH_REPORTS);
    let mut submissions = 0usize;
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    let mut number = 0u64;
    loop {
        // Answer a batch as soon as it is committed, even while the client is still sending
        // (it may be waiting for answers before it sends more).
        let next = tokio::select! {
            biased;
            committed = async { in_flight.front_mut().expect("checked non-empty").await }, if !in_flight.is_empty() => {
                in_flight.pop_front();
                write_answers(committed, results).await?;
                continue;
            }
            next = chunks.next() => next,
        };
        let chunk = match next {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(error)) => {
                // What was committed stays committed; the partner resends the rest, and
                // idempotency by reference makes resending the whole file safe.
                in_flight.push_back(start(state, pending));
                while let Some(batch) = in_flight.pop_front() {
                    answer(batch, results).await?;
                }
                return Err(BulkError::Read(error.to_string()));
            }
            None => None,
        };
        bytes_read += chunk.as_ref().map_or(0, |c| c.len() as u64);
        if bytes_read > limits.bulk_max_bytes {
            cut = Some(Cut::TooLarge(format!(
                "a bulk request may carry at most {} bytes",
                limits.bulk_max_bytes
            )));
        }
        let finished = chunk.is_none() || cut.is_some();
        let lines = match chunk {
            Some(chunk) if cut.is_none() => splitter.push(&chunk),
            _ => splitter.finish(),
        };
        for line in lines {
            if number >= limits.bulk_max_lines {
                cut = Some(Cut::TooLarge(format!(
                    "a bulk request may carry at most {} lines",
                    limits.bulk_max_lines
                )));
                break;
            }
            if let Err(ApiError::RateLimited { retry_after_secs }) = state.limits.check_partner(limit_key) {
                cut = Some(Cut::RateLimited { retry_after_secs });
                break;
            }
            number += 1;
            let parsed = parse_line(partner_id, line);
            submissions += usize::from(parsed.is_ok());
            pending.push((number, parsed));
            if submissions >= BATCH_REPORTS || pending.len() >= 4 * BATCH_REPORTS {
                if in_flight.len() >= BATCHES_IN_FLIGHT {
                    let oldest = in_flight.pop_front().expect("in flight");
                    answer(oldest, results).await?;
                }
                in_flight.push_back(start(
                    state,
                    std::mem::replace(&mut pending, Vec::with_capacity(BATCH_REPORTS)),
                ));
                submissions = 0;
            }
        }
        if finished || cut.is_some() {
            in_flight.push_back(start(state, pending));
            while let Some(batch) = in_flight.pop_front() {
                answer(batch, results).await?;
            }
            if let Some(cut) = cut {
                write_line(&cut.answer(number + 1), results).await?;
            }
            return Ok(());
        }
    }
}

fn parse_line(partner_id: &str, line: Line) -> Result<Submission, Vec<FieldError>> {
    let bytes = match line {
        Line::TooLong => {
            return Err(vec![FieldError::new(
                "",
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
            )])
        }
        Line::Complete(bytes) => bytes,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![FieldError::new("", "the line is empty")]);
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| vec![FieldError::new("", format!("the line is not valid JSON: {e}"))])?;
    partner_submission(partner_id, &json)
}

type Committed = Result<(Answers, Result<Vec<Outcome>, submission::SubmitError>), tokio::task::JoinError>;

/// Waits for a batch and writes one result line per input line.
async fn answer(in_flight: InFlight, results: &mpsc::Sender<Bytes>) -> Result<(), BulkError> {
    write_answers(in_flight.await, results).await
}

async fn write_answers(committed: Committed, results: &mpsc::Sender<Bytes>) -> Result<(), BulkError> {
    let (answers, outcomes) = committed.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
    let mut outcomes = match outcomes {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(error) => {
            tracing::error!(%error, "bulk batch not accepted");
            let message = "not accepted (internal error); send this line again".to_owned();
            let submitted = answers.iter().filter(|(_, errors)| errors.is_none()).count();
            vec![Err(message); submitted]
        }
    }
    .into_iter();
    // One write per batch: the answer streams batch by batch, not line by line.
    let mut buffer = Vec::with_capacity(answers.len() * 160);
    for (line, errors) in answers {
        let result = match errors {
            Some(errors) => failed(line, errors),
            None => match outcomes.next().expect("one outcome per submission") {
                Ok(Outcome::Accepted(accepted)) => succeeded(line, accepted, false),
                Ok(Outcome::Replayed(accepted)) => succeeded(line, accepted, true),
                Ok(Outcome::ReferenceTaken { report_id }) => failed(
                    line,
                    vec![FieldError::new(
                        "/partner_reference",
                        format!("this reference already names report {report_id}, with a different body"),
                    )],
                ),
                Err(message) => failed(line, vec![FieldError::new("", message)]),
            },
        };
        serde_json::to_writer(&mut buffer, &result).expect("results serialize");
        buffer.push(b'\n');
    }
    results
        .send(Bytes::from(buffer))
        .await
        .map_err(|_| BulkError::ClientGone)?;
    Ok(())
}

async fn write_line(result: &BulkLineResult, results: &mpsc::Sender<Bytes>) -> Result<(), BulkError> {
    let mut buffer = serde_json::to_vec(result).expect("results serialize");
    buffer.push(b'\n');
    results
        .send(Bytes::from(buffer))
        .await
        .map_err(|_| BulkError::ClientGone)
}

fn succeeded(line: u64, accepted: crate::api::ReportAccepted, replayed: bool) -> BulkLineResult {
    BulkLineResult {
        line,
        report_id: Some(accepted.report_id),
        cases: Some(accepted.cases),
        replayed,
        errors: None,
    }
}

fn failed(line: u64, errors: Vec<FieldError>) -> BulkLineResult {
    BulkLineResult {
        line,
        report_id: None,
        cases: None,
        replayed: false,
        errors: Some(errors),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Complete(Vec<u8>),
    /// Longer than [`MAX_LINE_BYTES`]; its content was dropped.
    TooLong,
}

/// Splits a byte stream into lines (`\n`, with an optional `\r` before it) while holding at
/// most one line in memory.
#[derive(Default)]
pub struct LineSplitter {
    current: Vec<u8>,
    too_long: bool,
}

impl LineSplitter {
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            self.extend(&chunk[..end]);
            lines.push(self.take());
            chunk = &chunk[end + 1..];
        }
        self.extend(chunk);
        lines
    }

    /// The last line, if the stream did not end with a newline.
    pub fn finish(&mut self) -> Vec<Line> {
        if self.current.is_empty() && !self.too_long {
            return vec![];
        }
        vec![self.take()]
    }

    fn extend(&mut self, bytes: &[u8]) {
        if self.too_long || self.current.len() + bytes.len() > MAX_LINE_BYTES {
            self.too_long = true;
            self.current.clear();
        } else {
            self.current.extend_from_slice(bytes);
        }
    }

    fn take(&mut self) -> Line {
        if std::mem::take(&mut self.too_long) {
            return Line::TooLong;
        }
        let mut line = std::mem::take(&mut self.current);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Line::Complete(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"{\"a\""), vec![]);
        assert_eq!(
            splitter.push(b":1}\r\n{}\n\n{\"b"),
            vec![
                Line::Complete(b"{\"a\":1}".to_vec()),
                Line::Complete(b"{}".to_vec()),
                Line::Complete(vec![])
            ]
        );
        assert_eq!(splitter.finish(), vec![Line::Complete(b"{\"b".to_vec())]);
        assert_eq!(LineSplitter::default().finish(), vec![]);
    }

    #[test]
    fn an_overlong_line_is_dropped_but_counted() {
        let mut splitter = LineSplitter::default();
        let long = vec![b'x'; MAX_LINE_BYTES];
        assert_eq!(splitter.push(&long), vec![]);
        assert_eq!(
            splitter.push(b"yy\nok\n"),
            vec![Line::TooLong, Line::Complete(b"ok".to_vec())]
        );
    }
}
