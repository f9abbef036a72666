//! Why a run could not be taken further, and the exit status each means.

use orch_lang::diagnostic::FileReport;
use orch_store::StoreError;

/// Exit statuses of `orch run`.
pub mod exit {
    pub(crate) const SUCCESS: u8 = 0;
    pub(crate) const FAILURE: u8 = 1;
    pub(crate) const INVALID: u8 = 2;
    pub const INTERRUPTED: u8 = 3;
    /// Stopped at an approval stage, waiting for a person's decision.
    pub const WAITING: u8 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request cannot be carried out as given (a bad name, a refused
    /// resume, a missing worktree).
    #[error("{0}")]
    Usage(String),
    /// The validator's findings; nothing was run.
    #[error("the pipeline is invalid; nothing was run")]
    Invalid(Box<FileReport>),
    /// Another process holds the task.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Busy(_) => exit::INTERRUPTED,
            _ => exit::INVALID,
        }
    }
}

pub(crate) fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> RunError {
    move |e| RunError::Io(format!("{what}: {e}"))
}
