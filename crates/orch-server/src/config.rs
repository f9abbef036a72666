//! What `orch serve` runs with, and the pipeline it serves, checked once at
//! start: an invalid pipeline means no service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_lang::analysis;
use orch_lang::model::{Header, Pipeline};
use orch_lang::validate::Options;
use sha2::Digest;

use crate::error::ServeError;

/// Defaults of `orch serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const DEFAULT_WORKERS: usize = 8;
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body taken.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub pipeline: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub workers: usize,
    pub drain_timeout: Duration,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `ORCH_TOKEN`, read by the binary.
    pub token_env: Option<String>,
    /// `--tokens-file`: who may decide approvals (`NAME TOKEN-SHA256`).
    pub tokens_file: Option<PathBuf>,
    /// `--labels`, sorted, each once: the service runs only stages whose
    /// labels are all among them.
    pub labels: Vec<String>,
}

/// The pipeline the service runs tasks on, valid when it was loaded.
pub struct Served {
    pub pipeline: Pipeline,
    /// Absolute.
    pub path: PathBuf,
    /// The text it was read from, and its SHA-256.
    pub text: String,
    pub digest: [u8; 32],
}

impl Served {
    pub fn header(&self) -> Option<&Header> {
        self.pipeline.header.as_ref()
    }
}

/// Reads and checks the pipeline as `orch run` does.
pub fn load_pipeline(path: &Path) -> Result<Served, ServeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServeError::Usage(format!("cannot read pipeline {}: {e}", path.display())))?;
    check_pipeline(path, text)
}

/// Checks a pipeline's text as `orch run` does.
pub fn check_pipeline(path: &Path, text: String) -> Result<Served, ServeError> {
    let digest = sha2::Sha256::digest(text.as_bytes()).into();
    let shown = path.display().to_string();
    let checked = analysis::analyze_text(&shown, &text, &Options { offline: true });
    if checked.has_errors() {
        return Err(ServeError::Invalid(Box::new(checked.report)));
    }
    if checked.pipeline.header.is_none() {
        return Err(ServeError::Usage("the pipeline has no header".into()));
    }
    let path = std::fs::canonicalize(path).map_err(|e| {
        ServeError::Usage(format!("cannot resolve pipeline {}: {e}", path.display()))
    })?;
    Ok(Served {
        pipeline: checked.pipeline,
        path,
        text,
        digest,
    })
}
