//! `orch approve` and `orch reject`: record a person's decision on a task's
//! pending approval request, in the run store (a state directory's, an
//! SQLite file, or a shared PostgreSQL database). The checks
//! (a pending request, an approver, in time, not decided) come first; a
//! refusal exits 2 and writes nothing. The decision is committed before it
//! is acknowledged; `orch run TASK --resume` (or the service) applies it.

use orch_engine::approval::DecideError;
use orch_engine::decide::{self, Refusal};
use orch_store::{Decision, PostgresStore, SqliteStore, StoreLocation};

use super::{exit, runtime};

/// Arguments of `orch approve` and `orch reject`, as parsed.
pub struct DecideArgs {
    pub task: String,
    pub decision: Decision,
    /// Who decides: checked against the request's approvers.
    pub who: String,
    pub comment: Option<String>,
    /// `--store`, else `ORCH_STORE`, else the state directory's.
    pub store: StoreLocation,
}

/// `orch approve` / `orch reject`.
pub fn command(a: DecideArgs) -> u8 {
    if let Err(e) = orch_engine::check_task_name(&a.task) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    let verb = match a.decision {
        Decision::Approved => "approve",
        Decision::Rejected => "reject",
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    match rt.block_on(decide_task(&a)) {
        Ok(id) => {
            println!(
                "task {}: {} by {} (decision #{id}); `orch run {} --resume` continues it",
                a.task,
                a.decision.artifact_value(),
                a.who,
                a.task
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot {verb} task {} as {}: {e}", a.task, a.who);
            exit::USAGE
        }
    }
}

async fn decide_task(a: &DecideArgs) -> Result<i64, DecideError> {
    // Deciding never creates a store: no store, no request.
    let no_store = || DecideError::Refused(Refusal::NoPending);
    match &a.store {
        StoreLocation::StateDir(dir) => {
            if !dir.join("orch.db").is_file() {
                return Err(no_store());
            }
            let store = SqliteStore::open_dir(dir).map_err(DecideError::Store)?;
            apply(&store, a).await
        }
        StoreLocation::SqliteFile(file) => {
            if !file.is_file() {
                return Err(no_store());
            }
            let store = SqliteStore::open(file).map_err(DecideError::Store)?;
            apply(&store, a).await
        }
        // Opened as a reader (no lease): a decision is not a step of the
        // task, and the store lets only the first one in.
        StoreLocation::Postgres(url) => {
            let Some(store) = PostgresStore::open_existing(url)
                .await
                .map_err(DecideError::Store)?
            else {
                return Err(no_store());
            };
            let r = apply(&store, a).await;
            let _ = store.close().await;
            r
        }
    }
}

async fn apply<S: orch_store::RunStore>(store: &S, a: &DecideArgs) -> Result<i64, DecideError> {
    let comment = a.comment.as_deref().unwrap_or("");
    orch_engine::approval::decide_task(store, &a.task, &a.who, a.decision, comment).await
}

/// One request and what became of it, on one line (`orch status`,
/// `orch history`).
pub(crate) fn describe(a: &orch_store::Approval, now_ms: i64) -> String {
    let r = &a.request;
    let head = format!("approval `{}` at {}", r.approval, r.stage);
    match decide::approval_state(a, now_ms) {
        decide::ApprovalState::Decided(d) => format!(
            "{head}: {} by {} at {}{}",
            d.decision.artifact_value(),
            d.decider,
            orch_store::rfc3339(d.at_ms),
            if d.comment.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.comment)
            }
        ),
        decide::ApprovalState::Expired => format!(
            "{head}: expired at {} with no decision",
            orch_store::rfc3339(r.expires_ms)
        ),
        decide::ApprovalState::Pending { left } => format!(
            "{head}: pending, {} may decide, expires at {} (in {})",
            r.approvers.join(" or "),
            orch_store::rfc3339(r.expires_ms),
            orch_lang::duration::human(left)
        ),
    }
}

/// A request as JSON, with its state and the time left.
pub(crate) fn approval_json(a: &orch_store::Approval, now_ms: i64) -> serde_json::Value {
    let (state, left_ms) = match decide::approval_state(a, now_ms) {
        decide::ApprovalState::Decided(_) => ("decided", None),
        decide::ApprovalState::Expired => ("expired", None),
        decide::ApprovalState::Pending { left } => ("pending", Some(left.as_millis() as u64)),
    };
    serde_json::json!({
        "task": a.request.task,
        "run": a.request.run_id,
        "stage": a.request.stage,
        "approval": a.request.approval,
        "approvers": a.request.approvers,
        "show": a.request.show,
        "requested": orch_store::rfc3339(a.request.requested_ms),
        "expires": orch_store::rfc3339(a.request.expires_ms),
        "expires_ms": a.request.expires_ms,
        "state": state,
        "left_ms": left_ms,
        "decision": a.decision.as_ref().map(|d| serde_json::json!({
            "decision": d.decision.artifact_value(),
            "by": d.decider,
            "at": orch_store::rfc3339(d.at_ms),
            "comment": d.comment,
        })),
    })
}
