//! orch's engine: takes a task through a pipeline, step by step, recording
//! each step in the store before acting on it.
#![forbid(unsafe_code)]

pub mod engine;
pub mod events;
pub mod gate;
pub mod process;
pub mod producer;

pub use engine::*;
