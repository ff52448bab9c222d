//! The dijkwacht process: wiring of the libraries, and the generated schemas.

pub mod app;
pub mod check;
pub mod import;
pub mod parts;
pub mod schemas;

pub use app::{start, Broker, RunningApp};
