//! `orch history`: every run (of one task, or all) with its attempts, notes,
//! logs, transitions and alerts.

use serde::Serialize;
use std::time::Duration;

use orch_lang::duration::human;
use orch_store::{Alert, AlertStatus, Attempt, Run, RunStore, StoreLocation, Transition};

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

#[derive(Serialize)]
struct TransitionJson<'a> {
    from: &'a str,
    kind: &'a str,
    to: &'a str,
    reason: &'a str,
}

fn transition_json(t: &Transition) -> TransitionJson<'_> {
    TransitionJson {
        from: &t.from_stage,
        kind: t.kind.as_str(),
        to: &t.to_stage,
        reason: &t.reason,
    }
}

#[derive(Serialize)]
struct AlertJson<'a> {
    stage: &'a str,
    alert: &'a str,
    state: &'a str,
    /// Why it was not delivered (a failed alert only).
    error: Option<&'a str>,
}

/// An alert's state as the run's live output spells it.
fn alert_state(a: &Alert) -> &'static str {
    match a.status {
        AlertStatus::Pending => "pending",
        AlertStatus::Ok => "sent",
        AlertStatus::Failed => "failed",
    }
}

fn alert_error(a: &Alert) -> Option<&str> {
    match a.status {
        AlertStatus::Failed => Some(a.exit.as_deref().unwrap_or("no reason recorded")),
        AlertStatus::Pending | AlertStatus::Ok => None,
    }
}

fn alert_json(a: &Alert) -> AlertJson<'_> {
    AlertJson {
        stage: &a.stage,
        alert: &a.alert,
        state: alert_state(a),
        error: alert_error(a),
    }
}

/// A transition as the run's live output shows it: `from → to (kind: reason)`.
fn transition_line(t: &Transition) -> String {
    let (from, to, kind) = (&t.from_stage, &t.to_stage, t.kind);
    if t.reason.is_empty() {
        format!("  {from} → {to} ({kind})\n")
    } else {
        format!("  {from} → {to} ({kind}: {})\n", t.reason)
    }
}

fn alert_line(a: &Alert) -> String {
    let (alert, stage, state) = (&a.alert, &a.stage, alert_state(a));
    match alert_error(a) {
        Some(error) => format!("  alert {alert} for {stage}: {state} ({error})\n"),
        None => format!("  alert {alert} for {stage}: {state}\n"),
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
        let transitions = store.transitions(run.id).await?;
        let alerts = store.alerts(run.id).await?;
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
                "transitions": transitions.iter().map(transition_json).collect::<Vec<_>>(),
                "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
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
        // How the run moved (the last transition is the one into its end,
        // with its reason) and what became of its alerts.
        for t in &transitions {
            out.push_str(&transition_line(t));
        }
        for a in &alerts {
            out.push_str(&alert_line(a));
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
