//! The one command path: every change to a case — from a stage, an analyst, delisting or
//! intake — is loaded, decided and appended here, with its outbox rows and wake-ups in the
//! same transaction, and decided again from fresh reads when another writer got there first.

use crate::store::{CaseChange, EventStore, Loaded, LoadedCase, Metadata, RecordedEvent, StoreError};
use crate::telemetry::events::{self, InternalEvent};
use chrono::{DateTime, Utc};
use dijkwacht_domain::{Case, CaseId, Command, Refusal};
use sqlx::PgConnection;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// How often a decision is made again from fresh reads before the caller is told to retry.
pub const MAX_ATTEMPTS: usize = 10;

/// A decision that reads what it needs inside the transaction, may write rows of its own
/// there (an idempotency record, a location index), and returns the changes to append.
pub trait Decision: Sync {
    type Output: Send;

    fn decide(
        &self,
        tx: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(Self::Output, Vec<CaseChange>), Attempt>> + Send;

    /// Who decides, as counted when a conflict makes the decision again.
    fn decided_by(&self) -> &str {
        "request"
    }
}

/// Why one attempt at a decision did not commit.
#[derive(Debug)]
pub enum Attempt {
    /// Another writer got there first: read again and decide again.
    Contended,
    Failed(CommandError),
}

impl From<sqlx::Error> for Attempt {
    fn from(error: sqlx::Error) -> Self {
        if is_contention(&error) {
            Attempt::Contended
        } else {
            Attempt::Failed(error.into())
        }
    }
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Attempt::Contended,
            StoreError::Database(db) => db.into(),
            other => Attempt::Failed(other.into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the cases kept changing under {MAX_ATTEMPTS} attempts; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Serialization failures and deadlocks are resolved by trying again.
fn is_contention(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// A command for one case, and who gives it.
#[derive(Debug, Clone)]
pub struct CaseCommand {
    pub case_id: CaseId,
    pub command: Command,
    pub metadata: Metadata,
    /// The version the caller saw; if the case moved on since, the command is not decided.
    pub expected_version: Option<u32>,
}

impl CaseCommand {
    pub fn new(case_id: CaseId, command: Command, metadata: Metadata) -> Self {
        Self {
            case_id,
            command,
            metadata,
            expected_version: None,
        }
    }
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("the case changed since version {expected}; it is at version {current} now")]
    VersionChanged { expected: u32, current: u32 },
    #[error("{0}")]
    Unreadable(String),
}

/// What executing commands did.
#[derive(Debug)]
pub struct Executed {
    /// Every case named or preloaded, as it is after the append.
    pub cases: HashMap<CaseId, Arc<Case>>,
    /// Per command, in input order.
    pub outcomes: Vec<Result<(), Rejection>>,
    pub recorded: Vec<RecordedEvent>,
}

impl EventStore {
    /// Runs `decision` in a transaction, appends its changes (events, outbox rows, wake-ups)
    /// in the same transaction and commits; on a conflict or serialization failure the
    /// decision is made again from fresh reads, up to [`MAX_ATTEMPTS`] times.
    pub async fn transact<D: Decision>(
        &self,
        decision: &D,
        now: DateTime<Utc>,
    ) -> Result<(D::Output, Vec<RecordedEvent>), CommandError> {
        let (output, _, recorded) = self.commit(decision, now).await?;
        Ok((output, recorded))
    }

    /// [`EventStore::transact`], handing back the committed changes too.
    async fn commit<D: Decision>(
        &self,
        decision: &D,
        now: DateTime<Utc>,
    ) -> Result<(D::Output, Vec<CaseChange>, Vec<RecordedEvent>), CommandError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                events::ConflictRetried {
                    by: decision.decided_by(),
                }
                .emit();
            }
            let mut tx = self.pool().begin().await?;
            let (output, changes) = match decision.decide(&mut tx, now).await {
                Ok(decided) => decided,
                Err(Attempt::Contended) => continue,
                Err(Attempt::Failed(error)) => return Err(error),
            };
            let appended = match self.append_in(&mut tx, &changes, now).await {
                Ok(appended) => appended,
                Err(error) => match Attempt::from(error) {
                    Attempt::Contended => continue,
                    Attempt::Failed(error) => return Err(error),
                },
            };
            match tx.commit().await {
                Ok(()) => {
                    self.committed(&changes, &appended);
                    return Ok((output, changes, appended.recorded));
                }
                Err(error) => match Attempt::from(error) {
                    Attempt::Contended => continue,
                    Attempt::Failed(error) => return Err(error),
                },
            }
        }
        Err(CommandError::Contended)
    }

    /// Decides each command on its case as it is now and appends the results together.
    pub async fn execute(&self, commands: &[CaseCommand], now: DateTime<Utc>) -> Result<Executed, CommandError> {
        self.execute_loaded(commands, None, now).await
    }

    /// [`EventStore::execute`], first on cases the caller already loaded (read outside the
    /// transaction: an append that raced it conflicts and the commands are decided again
    /// on fresh reads). Every loaded case comes back too, whether it got a command or not.
    pub async fn execute_loaded(
        &self,
        commands: &[CaseCommand],
        loaded: Option<Loaded>,
        now: DateTime<Utc>,
    ) -> Result<Executed, CommandError> {
        if commands.is_empty() {
            let cases = loaded.map(|loaded| loaded.cases).unwrap_or_default();
            return Ok(Executed {
                cases: cases.into_iter().map(|(id, loaded)| (id, loaded.case)).collect(),
                outcomes: vec![],
                recorded: vec![],
            });
        }
        let mut ids: Vec<CaseId> = commands.iter().map(|c| c.case_id).collect();
        ids.extend(loaded.iter().flat_map(|loaded| loaded.cases.keys().copied()));
        ids.sort_unstable();
        ids.dedup();
        let decision = Commands {
            store: self,
            commands,
            ids,
            preloaded: Mutex::new(loaded),
        };
        let (outcomes, changes, recorded) = self.commit(&decision, now).await?;
        Ok(Executed {
            cases: changes
                .into_iter()
                .map(|change| (change.case.id, change.case))
                .collect(),
            outcomes,
            recorded,
        })
    }
}

struct Commands<'a> {
    store: &'a EventStore,
    commands: &'a [CaseCommand],
    /// Every case to load and return: those commanded and those preloaded.
    ids: Vec<CaseId>,
    /// Used by the first attempt only.
    preloaded: Mutex<Option<Loaded>>,
}

impl Decision for Commands<'_> {
    /// Per command, in order. The changes returned include every case loaded, changed or
    /// not, so that the caller gets them all back.
    type Output = Vec<Result<(), Rejection>>;

    /// `stage:<name>` for a stage; the kind of actor (`partner`, `analyst`) otherwise.
    fn decided_by(&self) -> &str {
        let actor = self
            .commands
            .first()
            .map_or("", |command| command.metadata.actor.as_str());
        match actor.split_once(':') {
            Some(("stage", _)) | None => actor,
            Some((kind, _)) => kind,
        }
    }

    async fn decide(
        &self,
        tx: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> Result<(Self::Output, Vec<CaseChange>), Attempt> {
        let preloaded = self.preloaded.lock().unwrap_or_else(|p| p.into_inner()).take();
        let loaded = match preloaded {
            Some(loaded) => loaded,
            None => self.store.load_in(tx, &self.ids).await?,
        };
        let Loaded { cases, unreadable } = loaded;
        let mut changes: HashMap<CaseId, CaseChange> = cases
            .into_iter()
            .map(|(id, loaded)| (id, CaseChange::new(loaded)))
            .collect();
        let mut outcomes = Vec::with_capacity(self.commands.len());
        for command in self.commands {
            if let Some(reason) = unreadable.get(&command.case_id) {
                outcomes.push(Err(Rejection::Unreadable(reason.clone())));
                continue;
            }
            let change = changes
                .entry(command.case_id)
                .or_insert_with(|| CaseChange::new(LoadedCase::new(command.case_id)));
            if let Some(expected) = command.expected_version.filter(|v| *v != change.case.version) {
                outcomes.push(Err(Rejection::VersionChanged {
                    expected,
                    current: change.case.version,
                }));
                continue;
            }
            let decided = change.decide(command.command.clone(), &command.metadata, now);
            outcomes.push(decided.map_err(Rejection::Refused));
        }
        Ok((outcomes, changes.into_values().collect()))
    }
}
