//! `orch status`: tasks in flight, pending approvals, serial stages and their
//! holders, and the services sharing a PostgreSQL store.

use orch_store::{LockKey, RunStatus, RunStore, StoreError, StoreLocation};

use super::{json_doc, print_or_fail, read_store, ReadError};
use crate::report::table;

/// `orch status`.
pub fn command(at: &StoreLocation, json: bool) -> u8 {
    print_or_fail(read_store(at, async |store| status(store, json).await))
}

/// The unfinished latest run of every task, as `orch status` shows it.
async fn in_flight<S: RunStore>(store: &S) -> Result<Vec<serde_json::Value>, StoreError> {
    let mut tasks = Vec::new();
    for run in store.runs(None).await? {
        if matches!(
            run.status,
            RunStatus::Finished | RunStatus::Abandoned | RunStatus::Cancelled
        ) {
            continue;
        }
        // A newer run of the same task supersedes this one.
        if store.latest_run(&run.task).await?.map(|r| r.id) != Some(run.id) {
            continue;
        }
        let holder = store.lock_holder(&LockKey::Task(run.task.clone())).await?;
        let attempts = store.attempts(run.id).await?;
        let transitions = store.transitions(run.id).await?;
        let stage = transitions
            .last()
            .map(|t| t.to_stage.clone())
            .or_else(|| attempts.first().map(|a| a.stage.clone()))
            .unwrap_or_else(|| "-".into());
        let last = attempts.iter().rev().find(|a| a.stage == stage);
        // Released at a stage boundary by a service without the labels
        // the stage needs: queued for one that has them.
        let needs = store
            .queued_task(&run.task)
            .await?
            .filter(|q| q.state == orch_store::QueueState::Queued)
            .map(|q| q.needs)
            .unwrap_or_default();
        let mut entry = serde_json::json!({
            "task": run.task,
            "run": run.id,
            "state": if holder.is_some() {
                "running"
            } else if run.status == RunStatus::Waiting {
                "waiting"
            } else {
                "interrupted"
            },
            "holder": holder,
            "stage": stage,
            "attempt": last.map(|a| a.attempt),
            "step": last.map(|a| a.step.as_str()),
            "started_ms": run.started_ms,
            "started": orch_store::rfc3339(run.started_ms),
        });
        if !needs.is_empty() {
            entry["state"] = "queued".into();
            entry["needs"] = needs.into();
        }
        tasks.push(entry);
    }
    Ok(tasks)
}

/// What `orch status` reports, read from the store once.
struct Snapshot {
    now: i64,
    tasks: Vec<serde_json::Value>,
    serial: Vec<serde_json::Value>,
    services: Vec<orch_store::ServiceRecord>,
    pending: Vec<orch_store::Approval>,
}

async fn snapshot<S: RunStore>(store: Option<&S>) -> Result<Snapshot, StoreError> {
    let now = orch_store::now_ms();
    let Some(store) = store else {
        return Ok(Snapshot {
            now,
            tasks: Vec::new(),
            serial: Vec::new(),
            services: Vec::new(),
            pending: Vec::new(),
        });
    };
    Ok(Snapshot {
        now,
        tasks: in_flight(store).await?,
        serial: store
            .stage_locks()
            .await?
            .into_iter()
            .map(|(stage, holder)| serde_json::json!({ "stage": stage, "holder": holder }))
            .collect(),
        services: store.services().await?,
        pending: orch_engine::approval::pending(store, None, now)
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .collect(),
    })
}

/// `orch status`: tasks in flight and serial stages.
pub async fn status<S: RunStore>(store: Option<&S>, json: bool) -> Result<String, ReadError> {
    let snap = snapshot(store).await?;
    if json {
        return as_json(&snap);
    }
    let mut out = tasks_text(&snap.tasks);
    if !snap.pending.is_empty() {
        out.push_str("\npending approvals:\n");
        for a in &snap.pending {
            out.push_str(&format!(
                "  task {}: {}\n",
                a.request.task,
                super::approve::describe(a, snap.now)
            ));
        }
    }
    if !snap.serial.is_empty() {
        out.push_str("\nserial stages:\n");
        let rows: Vec<Vec<String>> = snap
            .serial
            .iter()
            .map(|s| {
                vec![
                    s["stage"].as_str().unwrap_or("").to_string(),
                    s["holder"].as_str().unwrap_or("free").to_string(),
                ]
            })
            .collect();
        out.push_str(&table(&["stage", "held by"], &rows, "  "));
    }
    if !snap.services.is_empty() {
        out.push_str("\nservices sharing the store:\n");
        out.push_str(&services_table(&snap.services));
    }
    Ok(out)
}

fn as_json(snap: &Snapshot) -> Result<String, ReadError> {
    let approvals: Vec<_> = snap
        .pending
        .iter()
        .map(|a| super::approve::approval_json(a, snap.now))
        .collect();
    let mut doc = serde_json::json!({
        "version": 1,
        "tasks": snap.tasks,
        "serial_stages": snap.serial,
        "pending_approvals": approvals,
    });
    // Only a shared (PostgreSQL) store has services to list.
    if !snap.services.is_empty() {
        doc["services"] = serde_json::to_value(&snap.services)?;
    }
    Ok(json_doc(&doc)?)
}

/// The tasks in flight as a table (a task released for labels shows what
/// it needs).
fn tasks_text(tasks: &[serde_json::Value]) -> String {
    if tasks.is_empty() {
        return "no tasks in flight\n".into();
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let s = |k: &str| match &t[k] {
                serde_json::Value::Null => "-".to_string(),
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let state = match t["needs"].as_array() {
                Some(needs) => format!(
                    "queued, needs {}",
                    needs
                        .iter()
                        .filter_map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                None => s("state"),
            };
            vec![
                s("task"),
                state,
                s("stage"),
                s("attempt"),
                s("step"),
                s("holder"),
            ]
        })
        .collect();
    format!(
        "tasks in flight:\n{}",
        table(
            &["task", "state", "stage", "attempt", "step", "holder"],
            &rows,
            "  ",
        )
    )
}

/// The services sharing a PostgreSQL store: name, labels, tasks held, last
/// renewal, whether the lease is live.
fn services_table(services: &[orch_store::ServiceRecord]) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.host.clone(),
                if s.labels.is_empty() {
                    "-".into()
                } else {
                    s.labels.join(",")
                },
                s.tasks_held.to_string(),
                orch_store::rfc3339(s.renewed_ms),
                if s.live { "live" } else { "expired" }.into(),
            ]
        })
        .collect();
    table(
        &["service", "host", "labels", "tasks", "renewed", "lease"],
        &rows,
        "  ",
    )
}
