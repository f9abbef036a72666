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

/// The largest request body taken.
pub(crate) const MAX_BODY: usize = 64 * 1024;

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
    /// `--worktree`: where this service's tasks work on its host.
    pub worktree: Option<WorktreeTemplate>,
    /// The store the service opened, for `GET /status`: an SQLite file's
    /// path, or a PostgreSQL URL without its password.
    pub store: String,
}

/// `orch serve --worktree TEMPLATE`: the directory a task works in on this
/// service's host, `{task}` replaced by the task's name (task names are
/// single path components). Each host of a shared store may place worktrees
/// where it likes; a task taken over works in the taker's.
#[derive(Debug, Clone, PartialEq)]
pub struct WorktreeTemplate(String);

impl WorktreeTemplate {
    /// An absolute path whose only placeholder is `{task}`.
    pub fn parse(s: &str) -> Result<WorktreeTemplate, String> {
        if !Path::new(s).is_absolute() {
            return Err(format!("--worktree {s}: an absolute path is needed"));
        }
        let rest = s.replace("{task}", "");
        if rest.contains(['{', '}']) {
            return Err(format!("--worktree {s}: the only placeholder is {{task}}"));
        }
        Ok(WorktreeTemplate(s.to_string()))
    }

    /// The worktree of `task` (a valid task name).
    pub(crate) fn for_task(&self, task: &str) -> PathBuf {
        PathBuf::from(self.0.replace("{task}", task))
    }
}

/// The pipeline the service runs tasks on, valid when it was loaded.
pub struct Served {
    pub(crate) pipeline: Pipeline,
    /// Absolute.
    pub(crate) path: PathBuf,
    /// The text it was read from, and its SHA-256.
    pub(crate) text: String,
    pub(crate) digest: [u8; 32],
}

impl Served {
    pub(crate) fn header(&self) -> Option<&Header> {
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
pub(crate) fn check_pipeline(path: &Path, text: String) -> Result<Served, ServeError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worktree_template_is_absolute_with_task_as_its_only_placeholder() {
        let t = WorktreeTemplate::parse("/srv/work/{task}").unwrap();
        assert_eq!(t.for_task("t-1"), PathBuf::from("/srv/work/t-1"));
        assert!(WorktreeTemplate::parse("work/{task}").is_err());
        assert!(WorktreeTemplate::parse("/srv/{var.x}").is_err());
        assert!(WorktreeTemplate::parse("/srv/{task").is_err());
        assert_eq!(
            WorktreeTemplate::parse("/srv/shared")
                .unwrap()
                .for_task("a"),
            PathBuf::from("/srv/shared")
        );
    }
}
