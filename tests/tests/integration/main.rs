//! Integration and end-to-end tests against real PostgreSQL and the embedded Kafka broker.
//! One test binary, so the workspace links once.

mod channels;
mod classification;
mod compose;
mod crashes;
mod dispatch;
mod end_to_end;
mod event_store;
mod faults;
mod files;
mod followup;
mod hash_check;
mod intake;
mod logs;
mod metrics;
mod police;
mod processes;
mod regulator;
mod relay;
mod schemas;
mod schemathesis;
mod stage_loop;
mod support;
mod traces;
