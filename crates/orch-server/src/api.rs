//! The HTTP API: routes, the token check on every request that changes
//! something, and the handlers. Every answer is JSON (a log is text); every
//! refusal is an [`ApiError`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use orch_store::{Attempt, QueueState, Run};

use crate::approvals::decide as approval;
use crate::config::MAX_BODY;
use crate::error::{self, ApiError};
use crate::files::MAX_LOG;
use crate::scheduler::App;
use crate::Store;

type Shared<S> = State<Arc<App<S>>>;

/// The service's routes.
pub(crate) fn router<S: Store>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route("/health", get(health::<S>))
        .route("/status", get(status::<S>))
        .route("/queue", get(queue::<S>))
        .route("/api/v1/tasks", post(submit::<S>))
        .route("/api/v1/tasks", get(tasks::<S>))
        .route("/api/v1/tasks/{task}", get(task::<S>))
        .route("/api/v1/tasks/{task}/cancel", post(cancel::<S>))
        .route("/api/v1/tasks/{task}/approval", post(approval::<S>))
        .route("/api/v1/tasks/{task}/logs/{stage}/{attempt}", get(log::<S>))
        .route("/api/v1/events", get(events::<S>))
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::<S>,
        ))
        // The dashboard's pages, under their own guard (a browser's form
        // carries its token in the body).
        .merge(crate::dashboard::routes(app.clone()))
        .with_state(app)
}

/// Every request but a read needs the token (reads too when the service
/// listens beyond loopback, except `/health`). Logs each request without
/// its headers.
async fn guard<S: Store>(State(app): Shared<S>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let read = method == Method::GET || method == Method::HEAD;
    let open = read && (app.open_reads || path == "/health");
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    // A decider's own token (`--tokens-file`) may decide an approval; the
    // handler takes the decider's name from it.
    let decider =
        method == Method::POST && path.ends_with("/approval") && app.deciders.who(auth).is_some();
    let admitted = app.token.admits(auth);
    if !open && !decider && !admitted {
        tracing::warn!(%method, path, "refused: no or wrong token");
        return ApiError::unauthorized().into_response();
    }
    // A read let in without a token for listening on loopback must be
    // meant for this machine, not for a name a web page rebound to it.
    if open
        && !admitted
        && path != "/health"
        && !crate::auth::loopback_host(crate::auth::host_of(&req).as_deref(), app.listen)
    {
        tracing::warn!(%method, path, "refused: a read without a token for a foreign Host");
        return ApiError::new(StatusCode::FORBIDDEN, crate::auth::FOREIGN_HOST).into_response();
    }
    let response = next.run(req).await;
    tracing::info!(%method, path, status = response.status().as_u16(), "request");
    response
}

/// The API's OpenAPI 3.1 description, kept in `docs/openapi.json`.
pub(crate) const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// Not ready (503) while the store cannot take writes: a shared store's
/// database unreachable (the service retries with backoff) or its lease
/// lost. A load balancer sends no submissions there meanwhile.
async fn health<S: Store>(State(app): Shared<S>) -> Response {
    if app.store.healthy() {
        error::json(
            StatusCode::OK,
            &json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
        )
    } else {
        error::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "not-ready", "version": env!("CARGO_PKG_VERSION"),
                     "reason": "the store is unreachable or this service's lease ended" }),
        )
    }
}

async fn status<S: Store>(State(app): Shared<S>) -> Result<Response, ApiError> {
    let queued = app.store.queue(Some(QueueState::Queued)).await?.len();
    let services = app.store.services().await?;
    let (busy, waiting, draining) = {
        let b = app.board.lock();
        (b.busy(), b.running.len() - b.busy(), b.draining)
    };
    let workers = app.config.workers;
    Ok(error::json(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "workers": { "total": workers, "busy": busy, "idle": workers.saturating_sub(busy) },
            "waiting": waiting,
            "queue_length": queued,
            "uptime_s": app.started.elapsed().as_secs(),
            "store": app.config.store,
            "state_dir": app.state_dir.display().to_string(),
            "pipeline": app.served().path.display().to_string(),
            "draining": draining,
            "services": services,
        }),
    ))
}

async fn queue<S: Store>(State(app): Shared<S>) -> Result<Response, ApiError> {
    let queued: Vec<Value> = app
        .store
        .queue(Some(QueueState::Queued))
        .await?
        .into_iter()
        .map(|t| json!({ "task": t.task, "submitted_ms": t.submitted_ms, "needs": t.needs }))
        .collect();
    let (running, waiting) = {
        let b = app.board.lock();
        let mut running = Vec::new();
        let mut waiting = Vec::new();
        for (task, live) in &b.running {
            match &live.waiting {
                Some((stage, reason)) => {
                    waiting.push(json!({ "task": task, "stage": stage, "reason": reason }))
                }
                None => running
                    .push(json!({ "task": task, "stage": live.stage, "attempt": live.attempt })),
            }
        }
        (running, waiting)
    };
    let approvals = crate::approvals::pending(&app).await?;
    Ok(error::json(
        StatusCode::OK,
        &json!({ "queued": queued, "running": running, "waiting": waiting, "approvals": approvals }),
    ))
}

/// A submission.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    task: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// Absolute; default: the service's working directory.
    worktree: Option<PathBuf>,
}

/// The body, at most [`MAX_BODY`] bytes (413 past that).
pub(crate) async fn body_bytes(
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} KiB", MAX_BODY / 1024),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large()
        } else {
            ApiError::bad_request(format!("cannot read the body: {inner}"))
        }
    })
}

async fn submit<S: Store>(
    State(app): Shared<S>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(&headers, body).await?;
    let sub: Submission = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed body: {e}")))?;
    orch_engine::check_task_name(&sub.task).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if app.board.lock().draining {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is draining; submit again once it is back",
        ));
    }
    let worktree = submitted_worktree(&app, sub.worktree.as_deref())?;
    let served = app.refresh();
    let header = served
        .header()
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no pipeline header"))?;
    // The queue is durable, and a secret must never be written down: a
    // secret variable reaches a task through the service's environment.
    let secret = orch_engine::redact::secret_vars(header);
    if let Some(name) = sub.vars.keys().find(|k| secret.contains(*k)) {
        return Err(ApiError::bad_request(format!(
            "variable {name} is secret and the service does not store secrets: \
             give the service the value in its environment and use {{env.NAME}} in the pipeline"
        )));
    }
    let overrides: Vec<(String, String)> = sub.vars.clone().into_iter().collect();
    // Unknown variables and a missing worktree are refused now, not when a
    // worker takes the task.
    let bound = orch_engine::bind(header, &overrides, &worktree)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let worktree = bound.worktree.display().to_string();
    // Only a service with the labels its first stage needs takes it (the
    // engine checks again at every stage).
    let needs = served.pipeline.labels_of_stage(&header.start.value);
    let id = app
        .store
        .enqueue(&orch_store::NewQueuedTask {
            task: &sub.task,
            vars: &sub.vars,
            worktree: &worktree,
            needs: &needs,
        })
        .await?;
    if id.is_none() {
        return Err(ApiError::conflict(format!(
            "task {} exists (queued, run or with runs in the store)",
            sub.task
        )));
    }
    app.board.wake();
    crate::dashboard::queue_event(&app, &sub.task, QueueState::Queued);
    tracing::info!(task = sub.task, "task queued");
    let url = format!("/api/v1/tasks/{}", sub.task);
    let mut response = error::json(
        StatusCode::CREATED,
        &json!({ "task": sub.task, "state": "queued", "url": url }),
    );
    if let Ok(v) = header::HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The worktree a submission asks for: absolute, and only where the service
/// does not place worktrees itself (`--worktree`); none means `.`.
fn submitted_worktree<S: Store>(
    app: &App<S>,
    asked: Option<&std::path::Path>,
) -> Result<PathBuf, ApiError> {
    match asked {
        Some(w) if app.config.worktree.is_some() => Err(ApiError::bad_request(format!(
            "worktree {}: this service places each task's worktree itself (orch serve --worktree)",
            w.display()
        ))),
        Some(w) if !w.is_absolute() => Err(ApiError::bad_request(format!(
            "worktree {} is not an absolute path",
            w.display()
        ))),
        Some(w) => Ok(w.to_path_buf()),
        None => Ok(PathBuf::from(".")),
    }
}

/// A task name from a path, checked.
pub(crate) fn task_name(
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    let Path(task) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    orch_engine::check_task_name(&task).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(task)
}

fn attempt_json(task: &str, a: &Attempt) -> Value {
    json!({
        "stage": a.stage,
        "attempt": a.attempt,
        "producer": a.producer.as_str(),
        "name": a.producer_name,
        "step": a.step.as_str(),
        "exit": a.exit,
        "exit_code": a.exit_code,
        "verdict": a.verdict,
        "gate_pass": a.gate_pass,
        "gate_reason": a.gate_reason,
        "started_ms": a.started_ms,
        "finished_ms": a.finished_ms,
        "duration_ms": a.duration_ms,
        "leaked": a.leaked,
        "log": format!("/api/v1/tasks/{task}/logs/{}/{}", a.stage, a.attempt),
    })
}

async fn run_json<S: Store>(store: &S, run: &Run) -> Result<Value, ApiError> {
    let attempts: Vec<Value> = store
        .attempts(run.id)
        .await?
        .iter()
        .map(|a| attempt_json(&run.task, a))
        .collect();
    let transitions: Vec<Value> = store
        .transitions(run.id)
        .await?
        .iter()
        .map(|t| {
            json!({
                "from": t.from_stage,
                "kind": t.kind.as_str(),
                "to": t.to_stage,
                "reason": t.reason,
                "attempt_id": t.attempt_id,
            })
        })
        .collect();
    Ok(json!({
        "id": run.id,
        "status": run.status.as_str(),
        "outcome": run.outcome.map(|o| o.as_str()),
        "end": run.end_name,
        "started_ms": run.started_ms,
        "finished_ms": run.finished_ms,
        "vars": run.vars,
        "worktree": run.worktree,
        "attempts": attempts,
        "transitions": transitions,
    }))
}

/// Every task the service knows (queued or with runs), oldest first: its
/// queue state and its latest run (outcome null until the run ends).
async fn tasks<S: Store>(State(app): Shared<S>) -> Result<Response, ApiError> {
    let mut by_task: BTreeMap<String, Value> = BTreeMap::new();
    for e in app.store.queue(None).await? {
        by_task.insert(
            e.task.clone(),
            json!({
                "task": e.task,
                "url": format!("/api/v1/tasks/{}", e.task),
                "queue": e.state.as_str(),
                "submitted_ms": e.submitted_ms,
                "run": null, "status": null, "outcome": null, "end": null,
            }),
        );
    }
    // Runs come oldest first: the latest of a task is written last.
    for run in app.store.runs(None).await? {
        let entry = by_task.entry(run.task.clone()).or_insert_with(|| {
            json!({
                "task": run.task,
                "url": format!("/api/v1/tasks/{}", run.task),
                "queue": null,
                "submitted_ms": null,
            })
        });
        entry["run"] = json!(run.id);
        entry["status"] = json!(run.status);
        entry["outcome"] = json!(run.outcome);
        entry["end"] = json!(run.end_name);
    }
    let mut tasks: Vec<Value> = by_task.into_values().collect();
    tasks.sort_by_key(|t| t["submitted_ms"].as_i64().unwrap_or(i64::MAX));
    Ok(error::json(StatusCode::OK, &json!({ "tasks": tasks })))
}

async fn task<S: Store>(
    State(app): Shared<S>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let task = task_name(p)?;
    let entry = app.store.queued_task(&task).await?;
    let runs = app.store.runs(Some(&task)).await?;
    if entry.is_none() && runs.is_empty() {
        return Err(ApiError::not_found(format!("no task {task}")));
    }
    let mut run_docs = Vec::new();
    for run in &runs {
        run_docs.push(run_json(&*app.store, run).await?);
    }
    let live = {
        let b = app.board.lock();
        b.running.get(&task).map(|l| {
            json!({
                "stage": l.stage,
                "attempt": l.attempt,
                "waiting": l.waiting.as_ref().map(|(s, r)| json!({ "stage": s, "reason": r })),
            })
        })
    };
    let queue = entry.map(|e| {
        json!({
            "state": e.state.as_str(),
            "error": e.error,
            "vars": e.vars,
            "worktree": e.worktree,
            "submitted_ms": e.submitted_ms,
            "started_ms": e.started_ms,
            "finished_ms": e.finished_ms,
            "needs": e.needs,
        })
    });
    Ok(error::json(
        StatusCode::OK,
        &json!({ "task": task, "queue": queue, "live": live, "runs": run_docs }),
    ))
}

/// How long a cancel waits for the task to stop before answering 202.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn cancel<S: Store>(
    State(app): Shared<S>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let task = task_name(p)?;
    let cancelled = || {
        error::json(
            StatusCode::OK,
            &json!({ "task": task, "state": QueueState::Cancelled.as_str() }),
        )
    };
    let Some(entry) = app.store.queued_task(&task).await? else {
        return Err(if app.store.runs(Some(&task)).await?.is_empty() {
            ApiError::not_found(format!("no task {task}"))
        } else {
            ApiError::conflict(format!(
                "task {task} was not submitted to the service (it was run by `orch run`)"
            ))
        });
    };
    if matches!(entry.state, QueueState::Queued | QueueState::Waiting)
        && drop_unstarted(&app, &task, entry.state).await?
    {
        return Ok(cancelled());
    }
    // Queued a moment ago and taken since, or running.
    let state = app.store.queued_task(&task).await?.map(|e| e.state);
    if state != Some(QueueState::Running) {
        return Err(ApiError::conflict(format!(
            "task {task} is already {}",
            state.map(|s| s.as_str()).unwrap_or("gone")
        )));
    }
    let held_here = {
        let mut b = app.board.lock();
        match b.running.get_mut(&task) {
            Some(live) => {
                live.cancel_for_good();
                true
            }
            None => {
                b.cancel_before_start.insert(task.clone());
                false
            }
        }
    };
    // Not on this service's board: taken by its scheduler a moment ago (the
    // mark above stops it as it starts), or held by another service sharing
    // the store. A store that takes the request routes it to the holder's
    // next tick (`scheduler::clock`, which marks it here again if the holder
    // is this service), so the mark is not kept for a task held elsewhere.
    if !held_here && app.store.request_cancel(&task).await? {
        app.board.lock().cancel_before_start.remove(&task);
    }
    tracing::info!(task, "cancelling");
    await_cancelled(&app, &task).await
}

/// Cancels a task that holds no worker (queued, or waiting for an
/// approval decision); false when a worker took it meanwhile.
async fn drop_unstarted<S: Store>(
    app: &App<S>,
    task: &str,
    from: QueueState,
) -> Result<bool, ApiError> {
    if !app
        .store
        .move_queued(task, from, QueueState::Cancelled, None)
        .await?
    {
        return Ok(false);
    }
    // A queued task may have a run already (released at a stage needing
    // labels, or queued again after an approval), a waiting one has one:
    // it is over too.
    crate::scheduler::cancel_run(&*app.store, task).await?;
    crate::dashboard::queue_event(app, task, QueueState::Cancelled);
    tracing::info!(task, from = from.as_str(), "cancelled before it ran again");
    Ok(true)
}

/// Waits (up to [`CANCEL_WAIT`]) for a running task's cancel to be
/// recorded: `200` once it is, `202` while it is still stopping.
async fn await_cancelled<S: Store>(app: &App<S>, task: &str) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    loop {
        let state = app.store.queued_task(task).await?.map(|e| e.state);
        match state {
            Some(QueueState::Cancelled) => {
                return Ok(error::json(
                    StatusCode::OK,
                    &json!({ "task": task, "state": QueueState::Cancelled.as_str() }),
                ))
            }
            Some(QueueState::Running) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(QueueState::Running) => {
                return Ok(error::json(
                    StatusCode::ACCEPTED,
                    &json!({ "task": task, "state": "cancelling" }),
                ))
            }
            other => {
                return Err(ApiError::conflict(format!(
                    "task {task} ended before it could be cancelled: {}",
                    ended_as(app, task, other).await?
                )))
            }
        }
    }
}

/// How a task ended, in a word: a finished task by its run's outcome
/// (`succeeded`, `failed`), anything else by its queue state.
async fn ended_as<S: Store>(
    app: &App<S>,
    task: &str,
    state: Option<QueueState>,
) -> Result<&'static str, ApiError> {
    Ok(match state {
        Some(QueueState::Finished) => {
            match app.store.latest_run(task).await?.and_then(|r| r.outcome) {
                Some(orch_store::Outcome::Success) => "succeeded",
                Some(orch_store::Outcome::Failure) => "failed",
                None => QueueState::Finished.as_str(),
            }
        }
        Some(s) => s.as_str(),
        None => "gone",
    })
}

/// `?tail=N`.
fn tail_of(uri: &Uri) -> Result<Option<usize>, ApiError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut tail = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tail", n)) => {
                tail = Some(n.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!("tail={n}: expected a number of lines"))
                })?)
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {pair:?} (only tail=N)"
                )))
            }
        }
    }
    Ok(tail)
}

async fn log<S: Store>(
    State(app): Shared<S>,
    uri: Uri,
    p: Result<Path<(String, String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((task, stage, attempt)) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    orch_engine::check_task_name(&task).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The stage is untrusted: it is only compared with the stages the
    // store recorded for the task's attempts (a stage renamed or removed
    // since still has its logs), never joined to a path: the path is the
    // one the store recorded, and must lie in the state directory. A name
    // no stage can have is not looked up.
    if stage.is_empty() || stage.len() > 1024 || stage.chars().any(|c| c == '/' || c.is_control()) {
        return Err(ApiError::not_found(format!(
            "no log of {task} at stage {stage:?}"
        )));
    }
    let attempt: i64 =
        attempt.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad_request(format!("attempt {attempt:?}: expected 1, 2, …"))
        })?;
    let tail = tail_of(&uri)?;
    // The path is the one the engine recorded for that attempt (newest run
    // first), and must lie in the state directory.
    let mut recorded = None;
    for run in app.store.runs(Some(&task)).await?.iter().rev() {
        let attempts = app.store.attempts(run.id).await?;
        if let Some(a) = attempts
            .into_iter()
            .find(|a| a.stage == stage && a.attempt == attempt)
        {
            recorded = Some(a.log_path);
            break;
        }
    }
    let missing = || ApiError::not_found(format!("no log of {task} {stage} attempt {attempt}"));
    let path = recorded.ok_or_else(missing)?;
    let path = std::fs::canonicalize(&path).map_err(|_| missing())?;
    if !path.starts_with(&app.state_dir) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the recorded log lies outside the state directory",
        ));
    }
    // Only what is answered is read, off the executor: the last lines
    // backwards from the end, or the first MAX_LOG bytes.
    let part = crate::files::blocking(move || match tail {
        Some(n) => crate::files::tail(&path, n, MAX_LOG),
        None => crate::files::head(&path, MAX_LOG),
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map_err(|_| missing())?;
    let text = String::from_utf8_lossy(&part.bytes);
    let mut body = match tail {
        Some(_) => {
            let mut s = text.lines().collect::<Vec<_>>().join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            s
        }
        None => text.into_owned(),
    };
    if part.cut {
        // Where the cut is: before a tail, after a head.
        let marker = cut_marker(&part, tail.is_some());
        match tail {
            Some(_) => body.insert_str(0, &marker),
            None => body.push_str(&marker),
        }
    }
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(LOG_SIZE, header::HeaderValue::from(part.size));
    if part.cut {
        headers.insert(LOG_CUT, header::HeaderValue::from(MAX_LOG));
    }
    Ok(response)
}

/// The log file's size in bytes, on every log answer.
const LOG_SIZE: &str = "x-orch-log-size";
/// On an answer that holds only part of what was asked: the cap, in bytes.
const LOG_CUT: &str = "x-orch-log-truncated";

/// The line that says a log answer was cut at [`MAX_LOG`].
fn cut_marker(part: &crate::files::Part, tail: bool) -> String {
    let shown = part.bytes.len();
    if tail {
        format!(
            "… cut: only the last {shown} bytes of the {} byte log are shown (at most {MAX_LOG})\n",
            part.size
        )
    } else {
        format!(
            "\n… cut: only the first {shown} bytes of the {} byte log are shown (at most {MAX_LOG})\n",
            part.size
        )
    }
}

/// `GET /api/v1/events`: every task's engine events as Server-Sent Events,
/// each `data:` one JSON object as `orch run --json` prints it, with its
/// `task`. A client that falls behind loses the oldest events and reads a
/// `: lagged N` comment instead; the engine never waits for a client.
async fn events<S: Store>(State(app): Shared<S>) -> Response {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    use futures_util::StreamExt;
    let stream =
        crate::events::client_stream(app.feed.subscribe(), app.closing.subscribe()).map(|item| {
            Ok::<_, std::convert::Infallible>(match item {
                crate::events::Item::Event(line) => SseEvent::default().data(&*line),
                crate::events::Item::Lagged(n) => {
                    SseEvent::default().comment(format!("lagged {n}"))
                }
            })
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(PATH, METHOD(…))` of [`router`] is an operation of the
    /// OpenAPI document, and every path of the document is routed.
    #[test]
    fn every_route_is_in_the_openapi_document_and_back() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let source = include_str!("api.rs");
        let mut routed = std::collections::BTreeSet::new();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix(".route(\"") else {
                continue;
            };
            let (path, rest) = rest.split_once('"').unwrap();
            let method = rest.trim_start_matches(", ").split('(').next().unwrap();
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} is not in docs/openapi.json"
            );
            routed.insert(path.to_string());
        }
        let documented: std::collections::BTreeSet<String> = paths.keys().cloned().collect();
        assert_eq!(routed, documented);
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
