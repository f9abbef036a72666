//! Why the store could not do what was asked. The variants are the same for
//! every implementation; the underlying error is kept as the source.

use std::path::PathBuf;

/// The error of the database library underneath.
pub(crate) type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the run store {path}: {source}")]
    Open { path: PathBuf, source: Source },
    #[error("cannot take {path}: {source}")]
    Guard {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an orch run store ({detail})")]
    Foreign { path: PathBuf, detail: String },
    #[error("the run store {path} has schema version {found}, newer than this orch understands ({supported}); upgrade orch")]
    Newer {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("the run store {path} has schema version {found}, older than this orch's {supported}: a read-only command does not migrate it (the next `orch run` does)")]
    Older {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot write the run store {path}: disk full ({source})")]
    DiskFull { path: PathBuf, source: Source },
    #[error("cannot write the run store {path}: it is read-only ({source})")]
    ReadOnly { path: PathBuf, source: Source },
    #[error(
        "cannot open the run store {path} (a missing or inaccessible file or directory): {source}"
    )]
    CantOpen { path: PathBuf, source: Source },
    #[error("I/O error on the run store {path}: {source}")]
    Io { path: PathBuf, source: Source },
    #[error("the run store {path} was deleted or replaced while orch was using it; nothing more can be recorded there ({detail})")]
    Replaced { path: PathBuf, detail: String },
    #[error("the state directory {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("the run store {path} is unreadable or damaged: {source}")]
    Damaged { path: PathBuf, source: Source },
    #[error("the run store {path} is locked by another process: {source}")]
    Locked { path: PathBuf, source: Source },
    #[error("cannot encode {what} for the store: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot reach the PostgreSQL store {url}: {source}")]
    Unreachable { url: String, source: Source },
    #[error(
        "cannot open a TLS connection (sslmode={mode}) to the PostgreSQL store {url}: {source}"
    )]
    Tls {
        url: String,
        mode: &'static str,
        source: Source,
    },
    #[error("the PostgreSQL store {url} refused a statement: {source}")]
    Postgres { url: String, source: Source },
    #[error(
        "the PostgreSQL store {url} does not let this process write for task {task}: {detail}"
    )]
    Fenced {
        url: String,
        task: String,
        detail: String,
    },
    #[error("cannot use the lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;
