//! orch's engine: takes tasks through a pipeline, step by step, recording
//! each step in the store before acting on it.
//!
//! [`session`] sets a run up; the [`dispatcher`] owns its step machine and
//! asks [`decide`] (pure decisions) what follows; the [`executor`] spawns and
//! supervises producers through [`process`]; [`events`] go to the caller's
//! sinks. Many tasks may run in one process: each has its own engine, and
//! the store is shared. Signals are the caller's to handle (`cancel`).
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod approval;
mod artifact;
pub mod decide;
mod dispatcher;
mod error;
pub mod events;
mod executor;
mod failpoint;
pub mod gate;
mod groups;
pub mod process;
mod producer;
pub mod redact;
mod session;
mod taskdir;

pub use dispatcher::{Finished, Released};
pub use error::{exit, RunError};
pub use session::{
    bind, check_task_name, pipeline_digest, prepare, prepare_text, run, run_until, Bindings,
    Prepared, RunOptions, Stop,
};
