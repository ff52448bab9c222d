//! What every dijkwacht process shares: the event store and its outbox relay, the Kafka
//! transport, the stage loop with its timers, the clock, configuration and telemetry.

pub mod auth;
pub mod canonical;
pub mod checkpoint;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crash;
pub mod db;
pub mod health;
pub mod kafka;
pub mod locations;
pub mod operator;
pub mod outbound;
pub mod part;
pub mod reference;
pub mod relay;
pub mod secret;
pub mod shutdown;
pub mod signature;
pub mod signing;
pub mod span;
pub mod stage;
pub mod store;
pub mod telemetry;
pub mod timers;
pub mod topics;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use commands::{Attempt, CaseCommand, CommandError, Decision, Executed, Rejection};
pub use health::Health;
pub use part::{Part, Process, Resource};
pub use shutdown::Shutdown;
pub use stage::{CaseTraces, LoopSettings, Stage, StageError, StageLoop, StageRuntime};
pub use store::{CaseChange, EventStore, Loaded, LoadedCase, Metadata, RecordedEvent, StoreError};
pub use topics::{Topic, TopicNames, WaitsFor};
