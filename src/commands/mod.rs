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
use orch_store::{SqliteStore, StoreError};

pub mod approve;
pub mod cancel;
pub mod explain;
pub mod fmt;
pub mod graph;
pub mod history;
pub mod init;
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
    pub const FINDINGS: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// Colour only on a terminal, never under `NO_COLOR`.
pub fn use_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A runtime for one command on this thread.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Runs a read of the store of `state_dir` (`None` when nothing was ever
/// recorded there: looking creates no database).
fn read_store<T, E: std::fmt::Display>(
    state_dir: &Path,
    read: impl AsyncFnOnce(Option<&SqliteStore>) -> Result<T, E>,
) -> Result<T, String> {
    let store = SqliteStore::open_existing(state_dir).map_err(|e| e.to_string())?;
    runtime()?
        .block_on(read(store.as_ref()))
        .map_err(|e| e.to_string())
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
pub fn json_doc(doc: &impl Serialize) -> Result<String, serde_json::Error> {
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
