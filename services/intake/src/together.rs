//! Reports that arrive one by one, committed together when they arrive together.
//!
//! A report sent alone costs its own transaction: a dozen statements and a commit for one
//! row each, where a bulk report shares them among hundreds. Under a burst of single
//! reports that made intake the most expensive stage of the pipeline and starved the
//! stages after it. Here up to [`IN_FLIGHT`] transactions run at once; a report that
//! arrives while all of them are busy waits for the next one, together with every other
//! report that arrived meanwhile. At a quiet time a report still gets a transaction of its
//! own at once; under load the transactions grow instead of queueing — the database's
//! group commit, one level up.

use crate::submission::{self, Outcome, Submission, SubmitError};
use dijkwacht_runtime::{EventStore, SharedClock};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Transactions of single reports at once: enough to keep a report from waiting behind
/// another at a quiet time, few enough that a burst gathers into larger transactions.
pub const IN_FLIGHT: usize = 4;

/// Reports per transaction at most, as for a bulk request.
const LARGEST: usize = 500;

/// Hands single reports to [`submission::submit`], several per transaction when they come
/// together. Cloning it gives another handle to the same queue.
#[derive(Clone)]
pub struct Together {
    queue: mpsc::Sender<Waiting>,
}

struct Waiting {
    submission: Submission,
    answer: oneshot::Sender<Result<Outcome, SubmitError>>,
}

impl Together {
    /// Starts the task that commits; it ends when the last handle is dropped.
    pub fn start(store: EventStore, clock: SharedClock) -> Self {
        let (queue, waiting) = mpsc::channel(LARGEST * IN_FLIGHT);
        tokio::spawn(commit_as_they_come(store, clock, waiting));
        Self { queue }
    }

    /// The outcome of one report, answered once its transaction committed (or failed).
    pub async fn submit(&self, submission: Submission) -> Result<Outcome, SubmitError> {
        let (answer, outcome) = oneshot::channel();
        self.queue
            .send(Waiting { submission, answer })
            .await
            .map_err(|_| SubmitError::Unanswered)?;
        outcome.await.map_err(|_| SubmitError::Unanswered)?
    }
}

async fn commit_as_they_come(store: EventStore, clock: SharedClock, mut waiting: mpsc::Receiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut batch = vec![first];
        while batch.len() < LARGEST {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            commit(&store, &clock, batch).await;
            drop(slot);
        });
    }
}

/// Commits a batch and answers each report. A batch that fails is tried again report by
/// report, so that one report's failure (a case that cannot be read, say) is its own.
async fn commit(store: &EventStore, clock: &SharedClock, batch: Vec<Waiting>) {
    let (submissions, answers): (Vec<Submission>, Vec<_>) = batch.into_iter().map(|w| (w.submission, w.answer)).unzip();
    match submission::submit(store, &submissions, clock.now()).await {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(Ok(outcome));
            }
        }
        Err(error) if submissions.len() == 1 => {
            let _ = answers.into_iter().next().map(|answer| answer.send(Err(error)));
        }
        Err(error) => {
            tracing::debug!(%error, reports = submissions.len(), "a batch of single reports failed; trying them one by one");
            for (submission, answer) in submissions.into_iter().zip(answers) {
                let outcome = submission::submit(store, std::slice::from_ref(&submission), clock.now()).await;
                let outcome = outcome.and_then(|outcomes| outcomes.into_iter().next().ok_or(SubmitError::Unanswered));
                let _ = answer.send(outcome);
            }
        }
    }
}
