//! The `orch` binary's library: one module per command, and the renderings
//! of the engine's events and the store's records.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod commands;
mod junit;
mod replace;
mod report;
