//! The Case aggregate of dijkwacht.
//!
//! One case is one reported location (a URL and the hashes of its media). Everything that
//! happens to it is a [`CaseEvent`]; [`Case`] is the fold of those events and
//! [`Case::decide`] turns a [`Command`] into new events or a [`Refusal`]. Nothing here reads
//! a clock, a database or the network: the caller passes `now` and the results of its
//! lookups, which keeps every decision replayable and testable as given/when/then.

pub mod case;
mod decide;
pub mod event;
mod event_enum;
pub mod followup;
mod forwarding;
pub mod hash;
mod ids;
pub mod notice;
pub mod police;
pub mod taxonomy;
pub mod tdb;
pub mod wait;

pub use case::{
    Attempts, Case, CaseStatus, ChaseState, DispatchState, FollowupState, ForwardState, RemovalState, WithdrawalState,
};
pub use decide::{AfterFailure, Command, Deferral, DispatchOutcome, DispatchPolicy, Observation, Refusal};
pub use event::*;
pub use followup::{DeadlineRule, FollowupPolicy, PlatformAnswer, PlatformKind};
pub use hash::{HashAlgorithm, HashError, MediaHash};
pub use ids::{CaseId, NoticeId, PartnerId, PlatformId, ReportId};
pub use notice::{Notice, NoticePolicy};
pub use police::{HeldCheck, HoldState, PoliceFirstRule, PoliceReferral, PoliceState, ReferralFacts, ReferralReason};
pub use taxonomy::{ContentClass, LegalGround};
pub use wait::{AnalystTask, StageKind, StuckReason, Wait, WaitLimits};
