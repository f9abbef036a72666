//! The commands behind `main.rs`, one module each: each takes parsed
//! arguments, prints, and returns the process exit status. What they share
//! (exit statuses, colour, a runtime, reading the store, loading a valid
//! pipeline) is here.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::path::PathBuf;

use serde::Serialize;

use orch_lang::analysis;
use orch_lang::diagnostic::{self, Format};
use orch_lang::validate::Options;
use orch_store::{AnyStore, StoreError, StoreLocation};

pub mod approve;
pub mod cancel;
pub mod explain;
pub mod fmt;
pub mod graph;
pub mod history;
pub mod init;
pub mod lsp;
pub mod map;
pub mod roadmap;
pub mod run;
pub mod serve;
pub mod status;
pub mod submit;
pub mod validate;

/// Exit statuses shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    pub(crate) const FINDINGS: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// Colour only on a terminal, never under `NO_COLOR`.
pub(crate) fn use_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A runtime for one command on this thread.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The store a command uses: `--store` as given, else `ORCH_STORE`, else
/// the state directory's SQLite database.
pub fn store_location(given: Option<String>, state_dir: &Path) -> StoreLocation {
    let given = given.or_else(|| std::env::var("ORCH_STORE").ok());
    StoreLocation::choose(given.as_deref(), state_dir)
}

/// How this process appears to the others sharing a PostgreSQL store; the
/// lease is `ORCH_LEASE` (a duration, default 10s).
pub(crate) fn pg_options(name: Option<String>) -> Result<orch_store::PgOptions, String> {
    let mut opts = orch_store::PgOptions::default();
    if let Some(name) = name {
        opts.name = name;
    }
    if let Some(lease) = std::env::var("ORCH_LEASE").ok().filter(|s| !s.is_empty()) {
        opts.lease =
            orch_lang::duration::parse(&lease).map_err(|e| format!("ORCH_LEASE `{lease}`: {e}"))?;
    }
    Ok(opts)
}

/// The store, for a message.
fn describe_store(at: &StoreLocation) -> String {
    match at {
        StoreLocation::StateDir(p) | StoreLocation::SqliteFile(p) => p.display().to_string(),
        StoreLocation::Postgres(url) => orch_store::postgres::shown_url(url),
    }
}

/// Runs a read of the store at `at` (`None` when nothing was ever recorded
/// there: looking creates no database).
fn read_store<T, E: std::fmt::Display>(
    at: &StoreLocation,
    read: impl AsyncFnOnce(Option<&AnyStore>) -> Result<T, E>,
) -> Result<T, String> {
    runtime()?.block_on(async {
        let store = AnyStore::open_existing(at)
            .await
            .map_err(|e| e.to_string())?;
        read(store.as_ref()).await.map_err(|e| e.to_string())
    })
}

/// Prints a read command's output, or its store error (exit 2).
fn print_or_fail(result: Result<String, String>) -> u8 {
    match result {
        Ok(s) => {
            let _ = std::io::stdout().write_all(s.as_bytes());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

/// Why a read command could not print its account.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the JSON document: {0}")]
    Json(#[from] serde_json::Error),
}

/// A JSON document, pretty-printed, with a final newline.
pub(crate) fn json_doc(doc: &impl Serialize) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(doc)? + "\n")
}

/// Loads a pipeline that must be valid; prints the report and returns the
/// exit status otherwise.
fn load_valid(path: &Path) -> Result<orch_lang::model::Pipeline, u8> {
    let checked = match analysis::analyze_file(path, &Options { offline: true }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot read pipeline {}: {e}", path.display());
            return Err(exit::USAGE);
        }
    };
    if checked.has_errors() {
        let tty = std::io::stderr().is_terminal();
        eprint!(
            "{}",
            diagnostic::render(&[checked.report], Format::Human, use_color(tty))
        );
        eprintln!("error: the pipeline is invalid");
        return Err(exit::USAGE);
    }
    Ok(checked.pipeline)
}

fn print(s: &str) {
    let _ = std::io::stdout().write_all(s.as_bytes());
}

/// The paths given, for a message.
fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
