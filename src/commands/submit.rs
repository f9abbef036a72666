//! `orch submit`: queues a task on a running `orch serve`.

use std::path::{Path, PathBuf};

use serde_json::json;

use orch_server::client::{self, ClientError};

use super::{exit, runtime};

/// Arguments of `orch submit`, as parsed.
pub struct SubmitArgs {
    pub task: String,
    pub vars: Vec<(String, String)>,
    pub worktree: Option<PathBuf>,
    pub server: Option<String>,
    pub state_dir: PathBuf,
}

/// `--server`, else `ORCH_SERVER`, else the default address.
pub(crate) fn server_of(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("ORCH_SERVER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| client::DEFAULT_SERVER.to_string())
}

/// `ORCH_TOKEN`, else `STATE/token` (what `orch serve` made on first start).
pub(crate) fn token_of(state_dir: &Path) -> Option<String> {
    std::env::var("ORCH_TOKEN")
        .ok()
        .or_else(|| std::fs::read_to_string(state_dir.join("token")).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The exit status of a failed request, with its message printed.
pub fn failed(e: &ClientError) -> u8 {
    eprintln!("error: {e}");
    if e.status() == Some(401) {
        eprintln!("hint: set ORCH_TOKEN, or pass --state-dir where the service keeps its token");
    }
    match e {
        ClientError::Refused { .. } => exit::FINDINGS,
        _ => exit::USAGE,
    }
}

/// `orch submit`.
pub fn command(a: SubmitArgs) -> u8 {
    if let Err(e) = orch_engine::check_task_name(&a.task) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    let worktree = a.worktree.unwrap_or_else(|| PathBuf::from("."));
    let worktree = match std::fs::canonicalize(&worktree) {
        Ok(w) if w.is_dir() => w,
        _ => {
            eprintln!("error: worktree {} is not a directory", worktree.display());
            return exit::USAGE;
        }
    };
    let vars: serde_json::Map<String, serde_json::Value> = a
        .vars
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let body = json!({ "task": a.task, "vars": vars, "worktree": worktree });
    let server = server_of(a.server);
    let token = token_of(&a.state_dir);
    let rt = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    match rt.block_on(client::request(
        &server,
        "POST",
        "/api/v1/tasks",
        token.as_deref(),
        Some(&body),
    )) {
        Ok((_, answer)) => {
            let url = answer.get("url").and_then(|u| u.as_str()).unwrap_or("");
            println!("queued task {}: {server}{url}", a.task);
            exit::OK
        }
        Err(e) => failed(&e),
    }
}
