//! Why a stage could not handle its work, and what the loop does about it.

use crate::commands::CommandError;
use crate::store::StoreError;

/// What went wrong while handling work, and what the loop should do about it. Each keeps
/// its cause, so a log line or a dead letter says why down to the root.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The world is temporarily unavailable (database, broker, a lookup): try the batch again.
    #[error("retryable: {}", chain(.0.as_ref()))]
    Retryable(Cause),
    /// This message can never be handled: dead-letter it and move on.
    #[error("permanent: {}", chain(.0.as_ref()))]
    Permanent(Cause),
}

pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl StageError {
    pub fn retryable(cause: impl Into<Cause>) -> Self {
        Self::Retryable(cause.into())
    }

    pub fn permanent(cause: impl Into<Cause>) -> Self {
        Self::Permanent(cause.into())
    }

    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self {
            Self::Retryable(cause) | Self::Permanent(cause) => cause.as_ref(),
        }
    }
}

/// An error and its sources, outermost first: `a: b: c`.
pub(super) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        // Many errors repeat their source in their own message.
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

impl From<StoreError> for StageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt { .. } | StoreError::Unreadable { .. } => StageError::permanent(error),
            other => StageError::retryable(other),
        }
    }
}

impl From<CommandError> for StageError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Store(store) => store.into(),
            other => StageError::retryable(other),
        }
    }
}

impl From<sqlx::Error> for StageError {
    fn from(error: sqlx::Error) -> Self {
        StageError::retryable(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading the cases failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_stage_error_keeps_its_cause_and_says_it_to_the_root() {
        let error = StageError::retryable(Outer(std::io::Error::other("connection reset")));
        assert_eq!(
            error.to_string(),
            "retryable: loading the cases failed: connection reset"
        );
        let root = error.cause().source().expect("the cause's own source is kept");
        assert_eq!(root.to_string(), "connection reset");
    }
}
