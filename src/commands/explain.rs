//! `orch explain STAGE`: what would run for a stage now, and why.

use std::path::Path;

use super::{exit, load_valid, print};

/// `orch explain`.
pub fn command(stage: &str, path: &Path, worktree: &Path, vars: &[(String, String)]) -> u8 {
    let p = match load_valid(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(header) = p.header.as_ref() else {
        return exit::USAGE;
    };
    let b = match orch_engine::bind(header, vars, worktree) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let pipeline_path = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    let env = |k: &str| std::env::var(k).ok();
    // Secret values (`secret`, `*_TOKEN`…) are shown as `***`, as in a run.
    let redactor = orch_engine::redact::Redactor::for_run(
        Some(header),
        &b.vars,
        orch_engine::redact::env_vars(),
    );
    let redact = |s: &str| redactor.redact(s);
    match orch_lang::explain::explain_redacted(
        &p,
        stage,
        &b.vars,
        &b.repo,
        &b.worktree,
        &pipeline_path,
        &env,
        &redact,
    ) {
        Ok(s) => {
            print(&s);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
