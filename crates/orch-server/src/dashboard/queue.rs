//! `/`: every task the service knows, newest first: queued, running,
//! waiting for a serial stage (and held by whom), and ended; filterable by
//! outcome (`?outcome=`). Each row: the task, its current (or last) stage
//! and attempt, the producer, how long, and the outcome. `/rows/{task}`
//! renders one row, for the script that keeps the page current.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use maud::{html, Markup};

use orch_store::{now_ms, Attempt, Outcome, ProducerKind, QueueState, QueuedTask, Run, RunStatus};

use crate::scheduler::App;
use crate::Store;

use super::layout::{self, elapsed, Nav};

/// Where a task is, as the queue page tells it (and filters by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowState {
    Queued,
    Running,
    /// Waiting for a serial stage another task holds.
    Waiting,
    Success,
    Failure,
    /// Could not be set up or taken further.
    Failed,
    Cancelled,
    /// Stopped mid-run; the next start (or `--resume`) continues it.
    Interrupted,
}

impl RowState {
    pub(crate) const ALL: [RowState; 8] = [
        RowState::Queued,
        RowState::Running,
        RowState::Waiting,
        RowState::Success,
        RowState::Failure,
        RowState::Failed,
        RowState::Cancelled,
        RowState::Interrupted,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            RowState::Queued => "queued",
            RowState::Running => "running",
            RowState::Waiting => "waiting",
            RowState::Success => "success",
            RowState::Failure => "failure",
            RowState::Failed => "failed",
            RowState::Cancelled => "cancelled",
            RowState::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Option<RowState> {
        RowState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn ended(self) -> bool {
        !matches!(
            self,
            RowState::Queued | RowState::Running | RowState::Waiting
        )
    }
}

/// One task's row.
pub(crate) struct Row {
    pub(crate) task: String,
    pub(crate) state: RowState,
    pub(crate) stage: Option<String>,
    pub(crate) attempt: Option<i64>,
    pub(crate) producer: Option<(ProducerKind, String)>,
    /// The serial stage waited for and why (`held by …`).
    pub(crate) waiting: Option<(String, String)>,
    /// The labels a queued task waits for a service with (placement).
    pub(crate) needs: Vec<String>,
    /// Newest first by this.
    pub(crate) since_ms: i64,
    pub(crate) elapsed_ms: i64,
}

/// What the board says of a task in flight.
struct LiveView {
    stage: Option<String>,
    attempt: Option<i64>,
    waiting: Option<(String, String)>,
}

fn run_state(run: &Run) -> RowState {
    match (run.status, run.outcome) {
        (RunStatus::Finished, Some(Outcome::Success)) => RowState::Success,
        (RunStatus::Finished, _) => RowState::Failure,
        (RunStatus::Running, _) => RowState::Running,
        (RunStatus::Waiting, _) => RowState::Waiting,
        (RunStatus::Cancelled, _) => RowState::Cancelled,
        (RunStatus::Interrupted | RunStatus::Abandoned, _) => RowState::Interrupted,
    }
}

fn build_row(
    task: &str,
    entry: Option<&QueuedTask>,
    run: Option<&Run>,
    last: Option<&Attempt>,
    live: Option<&LiveView>,
    now: i64,
) -> Row {
    let state = match (live, entry.map(|e| e.state)) {
        (Some(l), _) if l.waiting.is_some() => RowState::Waiting,
        (Some(_), _) => RowState::Running,
        (None, Some(QueueState::Queued)) => RowState::Queued,
        (None, Some(QueueState::Failed)) => RowState::Failed,
        (None, Some(QueueState::Cancelled)) => RowState::Cancelled,
        (None, Some(QueueState::Running)) if run.is_none() => RowState::Running,
        _ => run.map(run_state).unwrap_or(RowState::Queued),
    };
    let since_ms = entry
        .map(|e| e.submitted_ms)
        .or(run.map(|r| r.started_ms))
        .unwrap_or(now);
    let started = entry
        .and_then(|e| e.started_ms)
        .or(run.map(|r| r.started_ms));
    let finished = entry
        .and_then(|e| e.finished_ms)
        .or(run.and_then(|r| r.finished_ms));
    let elapsed_ms = match (state, started, finished) {
        (RowState::Queued, _, _) => now - since_ms,
        (_, Some(s), Some(f)) if state.ended() => f - s,
        (_, Some(s), _) => now - s,
        _ => 0,
    };
    let (stage, attempt) = match live {
        Some(l) if l.stage.is_some() => (l.stage.clone(), l.attempt),
        _ => (last.map(|a| a.stage.clone()), last.map(|a| a.attempt)),
    };
    let producer = last
        .filter(|a| Some(&a.stage) == stage.as_ref())
        .map(|a| (a.producer, a.producer_name.clone()));
    Row {
        task: task.to_string(),
        state,
        stage,
        attempt,
        producer,
        waiting: live.and_then(|l| l.waiting.clone()),
        needs: match state {
            RowState::Queued => entry.map(|e| e.needs.clone()).unwrap_or_default(),
            _ => Vec::new(),
        },
        since_ms,
        elapsed_ms,
    }
}

fn live_views<S: Store>(app: &App<S>) -> HashMap<String, LiveView> {
    let b = app.board.lock();
    b.running
        .iter()
        .map(|(task, l)| {
            (
                task.clone(),
                LiveView {
                    stage: l.stage.clone(),
                    attempt: l.attempt,
                    waiting: l.waiting.clone(),
                },
            )
        })
        .collect()
}

/// Every task's row (or one task's), newest first.
pub(crate) async fn rows<S: Store>(
    app: &App<S>,
    only: Option<&str>,
) -> orch_store::Result<Vec<Row>> {
    let entries: Vec<QueuedTask> = match only {
        Some(t) => app.store.queued_task(t).await?.into_iter().collect(),
        None => app.store.queue(None).await?,
    };
    // Runs come oldest first: the latest of a task is kept.
    let mut latest: HashMap<String, Run> = HashMap::new();
    for run in app.store.runs(only).await? {
        latest.insert(run.task.clone(), run);
    }
    // Each run's last attempt: in one query for the whole page.
    let mut last_of: HashMap<i64, Attempt> = HashMap::new();
    if only.is_none() {
        for a in app.store.last_attempts().await? {
            last_of.insert(a.run_id, a);
        }
    }
    let live = live_views(app);
    let now = now_ms();
    let mut out = Vec::with_capacity(entries.len().max(latest.len()));
    let mut seen = std::collections::HashSet::new();
    let tasks = entries
        .iter()
        .map(|e| (e.task.clone(), Some(e)))
        .chain(latest.keys().map(|t| (t.clone(), None)));
    for (task, entry) in tasks {
        if !seen.insert(task.clone()) {
            continue;
        }
        let run = latest.get(&task);
        let last = match run {
            Some(r) if only.is_some() => app.store.last_attempt(r.id).await?,
            Some(r) => last_of.remove(&r.id),
            None => None,
        };
        out.push(build_row(
            &task,
            entry,
            run,
            last.as_ref(),
            live.get(&task),
            now,
        ));
    }
    out.sort_by(|a, b| b.since_ms.cmp(&a.since_ms).then(b.task.cmp(&a.task)));
    Ok(out)
}

/// One row, kept small (a page may hold thousands): the task is in the
/// row's id, states and producers are classes.
fn row_markup(r: &Row) -> Markup {
    html! {
        tr id={ "row-" (r.task) } data-state=(r.state.as_str()) {
            th scope="row" { a href={ "/tasks/" (r.task) } { (r.task) } }
            td {
                @if let Some(s) = &r.stage { (s) } @else { "—" }
                @if let Some(n) = r.attempt { " #" (n) }
                @if let Some((stage, reason)) = &r.waiting {
                    br; small.waiting { "waits for " (stage) ", " (reason) }
                }
                @if !r.needs.is_empty() {
                    br; small.waiting { "needs labels " (r.needs.join(", ")) }
                }
            }
            td {
                @if let Some((kind, name)) = &r.producer {
                    span class={ "producer " (kind.as_str()) } { (kind.as_str()) } " " (name)
                } @else { "—" }
            }
            td { (elapsed(r.elapsed_ms)) }
            td { span class={ "badge " (r.state.as_str()) } { (r.state.as_str()) } }
        }
    }
}

fn filters(current: Option<RowState>) -> Markup {
    html! {
        nav.filters aria-label="filter by outcome" {
            a href="/" aria-current=[current.is_none().then_some("page")] { "all" }
            @for s in RowState::ALL {
                a href={ "/?outcome=" (s.as_str()) }
                    aria-current=[(current == Some(s)).then_some("page")] { (s.as_str()) }
            }
        }
    }
}

/// The queue page's HTML for these rows (the bench renders it directly).
pub(crate) fn render_queue(rows: &[Row], filter: Option<RowState>) -> String {
    let shown = rows.iter().filter(|r| filter.is_none_or(|f| f == r.state));
    let count = |s: RowState| rows.iter().filter(|r| r.state == s).count();
    let body = html! {
        h1 { "Tasks" }
        p.summary {
            span data-count="queued" { (count(RowState::Queued)) } " queued · "
            span data-count="running" { (count(RowState::Running)) } " running · "
            span data-count="waiting" { (count(RowState::Waiting)) } " waiting · "
            span data-count="all" { (rows.len()) } " in all"
        }
        (filters(filter))
        div.scroll {
            table #queue data-filter=[filter.map(RowState::as_str)] {
                caption.visually-hidden { "Tasks, newest first" }
                thead { tr {
                    th scope="col" { "task" } th scope="col" { "stage" }
                    th scope="col" { "producer" } th scope="col" { "elapsed" }
                    th scope="col" { "outcome" }
                } }
                tbody { @for r in shown { (row_markup(r)) } }
            }
        }
    };
    layout::page("Queue", Nav::Queue, Some(("queue", "")), body).into_string()
}

pub(super) async fn page<S: Store>(State(app): State<Arc<App<S>>>, uri: Uri) -> Response {
    let filter = match layout::param(uri.query(), "outcome").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match RowState::parse(&s) {
            Some(f) => Some(f),
            None => {
                return layout::refusal(
                    StatusCode::BAD_REQUEST,
                    &format!("outcome={s}: expected one of queued, running, waiting, success, failure, failed, cancelled, interrupted"),
                )
            }
        },
    };
    match rows(&app, None).await {
        Ok(rows) => html_string(render_queue(&rows, filter)),
        Err(e) => layout::refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn html_string(s: String) -> Response {
    layout::respond(StatusCode::OK, maud::PreEscaped(s))
}

/// `/rows/{task}`: one row (`<tr>`), or 404 when the service does not know
/// the task.
pub(crate) async fn row<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(task): Path<String>,
) -> Response {
    if orch_engine::check_task_name(&task).is_err() {
        return layout::refusal(StatusCode::BAD_REQUEST, "not a task name");
    }
    match rows(&app, Some(&task)).await {
        Ok(rows) => match rows.first() {
            Some(r) => layout::respond(StatusCode::OK, row_markup(r)),
            None => layout::refusal(StatusCode::NOT_FOUND, &format!("no task {task}")),
        },
        Err(e) => layout::refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
