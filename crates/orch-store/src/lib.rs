//! orch's run store: every step the engine takes is recorded here before the
//! next is taken, so a run can be resumed from the records alone.
#![forbid(unsafe_code)]

pub mod lock;
pub mod sqlite;

pub use sqlite::*;
