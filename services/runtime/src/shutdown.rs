//! One signal that every long-running task watches; each finishes its batch and returns.

use std::time::Duration;
use tokio::sync::watch;

/// How long a batch may go on after shutdown came before it is abandoned: enough to finish
/// when the database answers, short of the pool's acquire timeout when it is gone.
pub const GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves when shutdown is triggered (or its trigger is dropped).
    pub async fn wait(&mut self) {
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }

    /// Pauses for `duration` unless shutdown comes first; returns whether it came.
    pub async fn sleep_or_stop(&mut self, duration: Duration) -> bool {
        if duration.is_zero() {
            return self.is_triggered();
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.is_triggered(),
            _ = self.wait() => true,
        }
    }

    /// `work`'s output; once shutdown comes, `work` has `grace` more to finish and is then
    /// abandoned (`None`): for work that is safe to drop halfway (what it did not commit is
    /// redone after a restart), so that waiting for a database that is gone does not hold
    /// the process for the pool's whole acquire timeout. A batch gets [`GRACE`], to finish
    /// when the database answers; a read that can simply be left gets none.
    pub async fn within_grace<F: std::future::Future>(&mut self, grace: Duration, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        tokio::select! {
            output = &mut work => return Some(output),
            _ = self.wait() => {}
        }
        tokio::time::timeout(grace, work).await.ok()
    }

    /// Reads reference data again every `period` until shutdown; a failed read keeps what
    /// was read last, and says so.
    pub async fn refresh_every<F, Fut, E>(mut self, period: Duration, what: &str, mut refresh: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        loop {
            if self.sleep_or_stop(period).await {
                return;
            }
            let Some(result) = self.within_grace(Duration::ZERO, refresh()).await else {
                return;
            };
            if let Err(error) = result {
                tracing::warn!(%error, "reading {what} failed; keeping what was read last");
            }
        }
    }
}
