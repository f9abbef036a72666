//! The `orch` binary's library: one module per concern of the command line,
//! and the renderings of the engine's events and the store's records.
#![forbid(unsafe_code)]

pub mod cli;
pub mod history;
pub mod junit;
pub mod report;
