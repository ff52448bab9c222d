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
    let partner_id = partner.id.clone();
    let (results, receiver) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let processed = process(&state, &partner_id, body.into_data_stream(), &results).await;
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

/// Lines waiting for their batch to be committed, in input order.
struct Pending {
    lines: Vec<(u64, Result<Submission, Vec<FieldError>>)>,
    submissions: usize,
}

async fn process(
    state: &AppState,
    partner_id: &str,
    mut chunks: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    results: &mpsc::Sender<Bytes>,
) -> Result<(), BulkError> {
    let mut splitter = LineSplitter::default();
    let mut pending = Pending {
        lines: Vec::with_capacity(BATCH_REPORTS),
        submissions: 0,
    };
    let mut number = 0u64;
    loop {
        let chunk = match chunks.next().await {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(error)) => {
                // What was committed stays committed; the partner resends the rest, and
                // idempotency by reference makes resending the whole file safe.
                flush(state, &mut pending, results).await?;
                return Err(BulkError::Read(error.to_string()));
            }
            None => None,
        };
        let finished = chunk.is_none();
        let lines = match chunk {
            Some(chunk) => splitter.push(&chunk),
            None => splitter.finish(),
        };
        for line in lines {
            number += 1;
            let parsed = parse_line(partner_id, line);
            pending.submissions += usize::from(parsed.is_ok());
            pending.lines.push((number, parsed));
            if pending.submissions >= BATCH_REPORTS || pending.lines.len() >= 4 * BATCH_REPORTS {
                flush(state, &mut pending, results).await?;
            }
        }
        if finished {
            return flush(state, &mut pending, results).await;
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

async fn flush(state: &AppState, pending: &mut Pending, results: &mpsc::Sender<Bytes>) -> Result<(), BulkError> {
    if pending.lines.is_empty() {
        return Ok(());
    }
    let lines = std::mem::take(&mut pending.lines);
    pending.submissions = 0;
    let submissions: Vec<Submission> = lines
        .iter()
        .filter_map(|(_, parsed)| parsed.as_ref().ok().cloned())
        .collect();
    let mut outcomes = match submission::submit(&state.store, &submissions, state.clock.now()).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(error) => {
            tracing::error!(%error, "bulk batch not accepted");
            let message = "not accepted (internal error); send this line again".to_owned();
            submissions.iter().map(|_| Err(message.clone())).collect()
        }
    }
    .into_iter();
    for (line, parsed) in lines {
        let result = match parsed {
            Err(errors) => failed(line, errors),
            Ok(_) => match outcomes.next().expect("one outcome per submission") {
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
        let mut bytes = serde_json::to_vec(&result).expect("results serialize");
        bytes.push(b'\n');
        results
            .send(Bytes::from(bytes))
            .await
            .map_err(|_| BulkError::ClientGone)?;
    }
    Ok(())
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
