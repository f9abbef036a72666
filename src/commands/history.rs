//! `orch history`: every run (of one task, or all) with its attempts, notes
//! and logs.

use serde::Serialize;
use std::time::Duration;

use orch_lang::duration::human;
use orch_store::{Attempt, Run, RunStore, StoreLocation};

use super::{describe_store, json_doc, print_or_fail, read_store, ReadError};
use crate::report::attempts_table;

/// `orch history`.
pub fn command(task: Option<&str>, at: &StoreLocation, json: bool) -> u8 {
    print_or_fail(read_store(at, async |store| match store {
        Some(store) => history(store, task, json).await,
        None if json => Ok("{\n  \"version\": 1,\n  \"runs\": []\n}\n".into()),
        None => Ok(format!("no runs recorded in {}\n", describe_store(at))),
    }))
}

#[derive(Serialize)]
struct AttemptJson<'a> {
    stage: &'a str,
    attempt: i64,
    call_site: &'a str,
    producer: &'a str,
    name: &'a str,
    argv: &'a [String],
    step: &'a str,
    exit_code: Option<i64>,
    exit: Option<&'a str>,
    verdict: Option<&'a str>,
    gate_pass: Option<bool>,
    gate_reason: Option<&'a str>,
    defers: i64,
    leaked: bool,
    pgid: Option<i64>,
    started_ms: i64,
    finished_ms: Option<i64>,
    duration_ms: Option<i64>,
    log: &'a str,
    artifact_sha256: Option<&'a str>,
}

fn attempt_json(a: &Attempt) -> AttemptJson<'_> {
    AttemptJson {
        stage: &a.stage,
        attempt: a.attempt,
        call_site: &a.call_site,
        producer: a.producer.as_str(),
        name: &a.producer_name,
        argv: &a.argv,
        step: a.step.as_str(),
        exit_code: a.exit_code,
        exit: a.exit.as_deref(),
        verdict: a.verdict.as_deref(),
        gate_pass: a.gate_pass,
        gate_reason: a.gate_reason.as_deref(),
        defers: a.defers,
        leaked: a.leaked,
        pgid: a.group.as_ref().map(|g| g.pgid),
        started_ms: a.started_ms,
        finished_ms: a.finished_ms,
        duration_ms: a.duration_ms,
        log: &a.log_path,
        artifact_sha256: a.artifact_sha256.as_deref(),
    }
}

fn ms(d: Option<i64>) -> String {
    d.map(|d| human(Duration::from_millis(d.max(0) as u64)))
        .unwrap_or_else(|| "-".into())
}

/// `orch history`: every run (of one task, or all) with its attempts.
pub async fn history<S: RunStore>(
    store: &S,
    task: Option<&str>,
    json: bool,
) -> Result<String, ReadError> {
    let runs = store.runs(task).await?;
    let approvals = store.approvals(task).await?;
    let now = orch_store::now_ms();
    let mut out = String::new();
    let mut docs = Vec::new();
    for run in &runs {
        let attempts = store.attempts(run.id).await?;
        let notes = store.run_notes(run.id).await?;
        let of_run: Vec<_> = approvals
            .iter()
            .filter(|a| a.request.run_id == run.id)
            .collect();
        if json {
            docs.push(serde_json::json!({
                "id": run.id,
                "task": run.task,
                "status": run.status,
                "outcome": run.outcome,
                "end": run.end_name,
                "pipeline": run.pipeline_path,
                "pipeline_sha256": run.pipeline_hash,
                "started_ms": run.started_ms,
                "started": orch_store::rfc3339(run.started_ms),
                "finished_ms": run.finished_ms,
                "finished": run.finished_ms.map(orch_store::rfc3339),
                "vars": run.vars,
                "worktree": run.worktree,
                "notes": notes.iter().map(|n| &n.text).collect::<Vec<_>>(),
                "attempts": attempts.iter().map(attempt_json).collect::<Vec<_>>(),
                "approvals": of_run.iter().map(|a| super::approve::approval_json(a, now)).collect::<Vec<_>>(),
            }));
            continue;
        }
        out.push_str(&run_header(run));
        for n in &notes {
            out.push_str(&format!("  note: {}\n", n.text));
        }
        for a in &of_run {
            out.push_str(&format!("  {}\n", super::approve::describe(a, now)));
        }
        if attempts.is_empty() {
            out.push_str("  (no attempts)\n");
        } else {
            out.push_str(&attempts_table(&attempts, "  ", true));
        }
        out.push('\n');
    }
    if json {
        let doc = serde_json::json!({ "version": 1, "runs": docs });
        return Ok(json_doc(&doc)?);
    }
    if runs.is_empty() {
        out.push_str(&match task {
            Some(t) => format!("no runs of task {t}\n"),
            None => "no runs recorded\n".into(),
        });
    }
    Ok(out)
}

fn run_header(run: &Run) -> String {
    let took = run
        .finished_ms
        .map(|f| format!(" in {}", ms(Some(f - run.started_ms))))
        .unwrap_or_default();
    let outcome = match (&run.outcome, &run.end_name) {
        (Some(o), Some(e)) => format!("{o} (end `{e}`)"),
        _ => run.status.to_string(),
    };
    format!(
        "run #{} of task {}: {outcome}{took}, pipeline {}\n",
        run.id, run.task, run.pipeline_path
    )
}
