//! `/tasks/{task}`: a task's runs, each as a timeline of its attempts (one
//! bar per attempt: producer, verdict, gate PASS/FAIL with its reason,
//! defers, LEAK, the transition taken with the rollback budget left), the
//! fields of its artifacts, each attempt's log tail (the whole log one
//! click away), and the Cancel form. Everything shown from a task, a log
//! or an artifact is escaped by the templates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use orch_lang::model::Pipeline;
use orch_store::{rfc3339, Attempt, Decision, QueueState, Run, Transition, TransitionKind};

use crate::scheduler::App;
use crate::Store;

use super::access;
use super::layout::{self, elapsed, segment, Nav};
use super::queue::{self, RowState};

use crate::files::MAX_LOG;

/// The refusal of an invalid task name, if it is one.
fn refused_name(task: &str) -> Option<Response> {
    orch_engine::check_task_name(task)
        .err()
        .map(|e| layout::refusal(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// The pipeline a run ran on, from the text it recorded.
fn pipeline_of(run: &Run) -> Pipeline {
    orch_lang::loader::load(&run.pipeline_path, &run.pipeline_text).pipeline
}

pub(super) async fn page<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(task): Path<String>,
    uri: Uri,
) -> Response {
    if let Some(r) = refused_name(&task) {
        return r;
    }
    match render(&app, &task, uri.query()).await {
        Ok(Some(m)) => layout::respond(StatusCode::OK, m),
        Ok(None) => layout::refusal(StatusCode::NOT_FOUND, &format!("no task {task}")),
        Err(e) => layout::refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn render<S: Store>(
    app: &App<S>,
    task: &str,
    query: Option<&str>,
) -> orch_store::Result<Option<Markup>> {
    let Some(row) = queue::rows(app, Some(task)).await?.into_iter().next() else {
        return Ok(None);
    };
    let entry = app.store.queued_task(task).await?;
    let runs = app.store.runs(Some(task)).await?;
    let mut sections = Vec::new();
    for (i, run) in runs.iter().enumerate().rev() {
        let attempts = app.store.attempts(run.id).await?;
        let transitions = app.store.transitions(run.id).await?;
        let latest = i + 1 == runs.len();
        sections.push(run_section(task, run, &attempts, &transitions, latest));
    }
    let pipeline = match runs.last() {
        Some(r) => pipeline_of(r),
        None => app.served().pipeline.clone(),
    };
    let task_dir = app.state_dir.join("tasks").join(task);
    let pending = crate::approvals::pending_of(app, task).await?;
    let shows = pending
        .as_ref()
        .map(|(a, _)| a.request.show.clone())
        .unwrap_or_default();
    let (reads, shown_files) = read_files(&pipeline, shows, task_dir).await;
    let kept = match runs.last() {
        Some(run) => kept_artifacts(app, &pipeline, run, &reads).await?,
        None => HashMap::new(),
    };
    // A form sends the browser back here saying what it did; the page
    // repeats that only while it is still true of the task (a link with
    // `?cancel=…&approval=…` must not say so of a task that had neither).
    let state = entry.as_ref().map(|e| e.state);
    let notice = layout::param(query, "cancel").and_then(|n| match state {
        Some(QueueState::Cancelled) => Some("Cancelled."),
        Some(QueueState::Running) if n == "stopping" => {
            Some("Cancel requested: the task is still stopping.")
        }
        _ => None,
    });
    let latest_decision = app
        .store
        .approvals(Some(task))
        .await?
        .into_iter()
        .max_by_key(|a| a.request.id)
        .and_then(|a| a.decision)
        .map(|d| d.decision);
    let decided = layout::param(query, "approval").and_then(|d| match latest_decision {
        Some(Decision::Approved) if d == "approved" => Some("Approved. The task goes on."),
        Some(Decision::Rejected) if d == "rejected" => Some("Rejected. The task goes on."),
        _ => None,
    });
    let body = html! {
        h1 { "Task " (task) " " span class={ "badge " (row.state.as_str()) } { (row.state.as_str()) } }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(d) = decided { p.notice role="status" { (d) } }
        @if let Some((a, left)) = &pending { (approval_section(task, a, *left, &shown_files)) }
        dl.facts {
            @if let Some((stage, reason)) = &row.waiting { dt { "waits for" } dd { (stage) ", " (reason) } }
            @if let Some(e) = &entry {
                dt { "submitted" } dd { (rfc3339(e.submitted_ms)) }
                dt { "worktree" } dd { code { (e.worktree) } }
                @if !e.vars.is_empty() {
                    dt { "vars" } dd { @for (k, v) in &e.vars { code { (k) "=" (v) } " " } }
                }
                @if let Some(err) = &e.error { dt { "error" } dd.fail { (err) } }
            }
            dt { "elapsed" } dd { (elapsed(row.elapsed_ms)) }
        }
        @if matches!(row.state, RowState::Queued | RowState::Running | RowState::Waiting) {
            (cancel_form(task))
        }
        @if runs.is_empty() { p { "No run yet: the task waits for a worker." } }
        @for s in sections { (s) }
        (artifacts(&pipeline, &reads, &kept))
    };
    Ok(Some(layout::page(
        &format!("Task {task}"),
        Nav::Task,
        Some(("task", task)),
        body,
    )))
}

fn cancel_form(task: &str) -> Markup {
    html! {
        form.cancel method="post" action={ "/tasks/" (task) "/cancel" } {
            label for="token" { "Token" }
            input #token type="password" name="token" autocomplete="current-password" required;
            button type="submit" { "Cancel task" }
        }
    }
}

/// The most of a shown artifact the page holds, and the most of an
/// artifact it reads for its fields: no file is read whole.
const MAX_SHOWN: usize = 64 * 1024;

/// A file of the task directory as the page read it: at most
/// [`MAX_SHOWN`] bytes of its text and its size, or why not.
type Read = Result<(String, u64), String>;

/// The pipeline's artifacts (by name) and an approval's `show` files (by
/// path), each read beneath the task directory as a gate reads it (no
/// link followed) and at most [`MAX_SHOWN`] bytes of it, off the executor.
async fn read_files(
    p: &Pipeline,
    shows: Vec<String>,
    task_dir: std::path::PathBuf,
) -> (HashMap<String, Read>, HashMap<String, Read>) {
    let arts: Vec<(String, String)> = p
        .artifacts
        .iter()
        .map(|a| (a.name.value.clone(), a.path.value.clone()))
        .collect();
    let names: Vec<String> = arts.iter().map(|(n, _)| n.clone()).collect();
    let show_paths = shows.clone();
    let read = move || {
        let one =
            |path: &str| orch_engine::gate::read_path_beneath_at_most(path, &task_dir, MAX_SHOWN);
        let arts: HashMap<String, Read> = arts
            .into_iter()
            .map(|(name, path)| {
                let r = one(&path);
                (name, r)
            })
            .collect();
        let shows: HashMap<String, Read> = shows
            .into_iter()
            .map(|path| {
                let r = one(&path);
                (path, r)
            })
            .collect();
        (arts, shows)
    };
    match crate::files::blocking(read).await {
        Ok(reads) => reads,
        Err(why) => (
            names.into_iter().map(|n| (n, Err(why.clone()))).collect(),
            show_paths
                .into_iter()
                .map(|p| (p, Err(why.clone())))
                .collect(),
        ),
    }
}

/// A pending approval: who may decide, the time left, the artifacts the
/// approver is shown (read as a gate reads them: no link followed), and
/// the Approve/Reject form. The decider is the name the typed token has in
/// `--tokens-file`, never a name from the form.
fn approval_section(
    task: &str,
    a: &orch_store::Approval,
    left: std::time::Duration,
    shown_files: &HashMap<String, Read>,
) -> Markup {
    let r = &a.request;
    html! {
        section.approval aria-label="approval" {
            h2 { "Approval requested" }
            dl.facts {
                dt { "approval" } dd { code { (r.approval) } " at stage " code { (r.stage) } }
                dt { "approvers" } dd { (r.approvers.join(", ")) }
                dt { "time left" } dd { (orch_lang::duration::human(left)) " (expires " (rfc3339(r.expires_ms)) ")" }
            }
            @for path in &r.show {
                h3 { "Shown: " code { (path) } }
                @match shown_files.get(path) {
                    None => p.muted { "artifact " (path) " was not read" },
                    Some(Err(why)) => p.muted { (why) },
                    Some(Ok((text, size))) => pre.shown data-show=(path) { (shown(text, *size)) },
                }
            }
            form.approval method="post" action={ "/tasks/" (task) "/approval" } {
                label for="approval-token" { "Your token" }
                input #approval-token type="password" name="token" autocomplete="current-password" required;
                label for="approval-comment" { "Comment (a rejection needs one)" }
                textarea #approval-comment name="comment" rows="3" {}
                div.buttons {
                    button.approve type="submit" name="decision" value="approve" { "Approve" }
                    button.reject type="submit" name="decision" value="reject" { "Reject" }
                }
            }
        }
    }
}

/// A shown artifact as read (at most [`MAX_SHOWN`] bytes, cut at a
/// character), and its size when that is not all of it.
fn shown(text: &str, size: u64) -> String {
    if text.len() as u64 >= size {
        return text.to_string();
    }
    format!("{text}\n… ({size} bytes in all)")
}

/// How many rollbacks each `fail` transition left, by the transition's id.
fn budgets_left(p: &Pipeline, transitions: &[Transition]) -> HashMap<i64, Option<i64>> {
    let mut used: HashMap<&str, i64> = HashMap::new();
    let mut out = HashMap::new();
    for t in transitions
        .iter()
        .filter(|t| t.kind == TransitionKind::Fail)
    {
        let n = used.entry(t.from_stage.as_str()).or_default();
        *n += 1;
        let budget = p
            .stage(&t.from_stage)
            .and_then(|s| s.fail.as_ref())
            .and_then(|f| f.budget.as_ref())
            .map(|b| i64::from(b.value));
        out.insert(t.id, budget.map(|b| b - *n));
    }
    out
}

fn run_section(
    task: &str,
    run: &Run,
    attempts: &[Attempt],
    transitions: &[Transition],
    latest: bool,
) -> Markup {
    let p = pipeline_of(run);
    let left = budgets_left(&p, transitions);
    let by_attempt: HashMap<i64, &Transition> = transitions
        .iter()
        .filter_map(|t| t.attempt_id.map(|a| (a, t)))
        .collect();
    let end = attempts
        .iter()
        .map(|a| {
            a.finished_ms
                .unwrap_or(a.started_ms + a.duration_ms.unwrap_or(0))
        })
        .chain(run.finished_ms)
        .max()
        .unwrap_or(run.started_ms)
        .max(orch_store::now_ms().min(run.finished_ms.unwrap_or(i64::MAX)));
    let span = (end - run.started_ms).max(1) as f64;
    let inner = html! {
        p.runinfo {
            "status " strong { (run.status.as_str()) }
            @if let Some(o) = run.outcome { " · outcome " strong { (o.as_str()) } }
            @if let Some(e) = &run.end_name { " · end " (e) }
            " · started " (rfc3339(run.started_ms))
        }
        ol.timeline {
            @for a in attempts {
                (attempt_item(task, a, by_attempt.get(&a.id).copied(), &left, run.started_ms, span))
            }
        }
    };
    html! {
        section.run aria-label={ "run " (run.id) } {
            @if latest {
                h2 { "Run " (run.id) }
                (inner)
            } @else {
                details { summary { h2 { "Run " (run.id) " (earlier)" } } (inner) }
            }
        }
    }
}

fn attempt_item(
    task: &str,
    a: &Attempt,
    t: Option<&Transition>,
    left: &HashMap<i64, Option<i64>>,
    run_start: i64,
    span: f64,
) -> Markup {
    let duration = a
        .duration_ms
        .unwrap_or_else(|| orch_store::now_ms() - a.started_ms);
    let offset = ((a.started_ms - run_start) as f64 / span * 100.0).clamp(0.0, 99.0);
    let width = (duration as f64 / span * 100.0).clamp(0.8, 100.0 - offset);
    let gate = match a.gate_pass {
        Some(true) => "pass",
        Some(false) => "fail",
        None => "none",
    };
    let log = format!("/tasks/{task}/logs/{}/{}", segment(&a.stage), a.attempt);
    html! {
        li.attempt data-stage=(a.stage) data-attempt=(a.attempt) data-gate=(gate) {
            div.track aria-hidden="true" {
                span class={ "bar " (a.producer.as_str()) " gate-" (gate) }
                    style=(format!("margin-left:{offset:.2}%;width:{width:.2}%")) {}
            }
            div.what {
                strong { (a.stage) " #" (a.attempt) }
                " " span class={ "producer " (a.producer.as_str()) } { (a.producer.as_str()) } " " (a.producer_name)
                " · " (elapsed(duration))
                @if let Some(v) = &a.verdict { " · verdict " code { (v) } }
                @if let Some(x) = &a.exit { " · " (x) }
                @if a.defers > 0 { " · " span.defer { "deferred " (a.defers) "×" } }
                @if a.leaked { " " span.badge.leak title="processes outlived the producer's group" { "LEAK" } }
            }
            @match a.gate_pass {
                Some(true) => p.gate.pass { "gate PASS" @if let Some(r) = &a.gate_reason { ": " (r) } },
                Some(false) => p.gate.fail { "gate FAIL" @if let Some(r) = &a.gate_reason { ": " (r) } },
                None => {},
            }
            @if let Some(t) = t {
                p.transition {
                    (t.kind.as_str()) " → " (t.to_stage)
                    @if t.kind == TransitionKind::Fail {
                        " (rollback"
                        @if let Some(Some(n)) = left.get(&t.id) { ", budget left " (n) }
                        ")"
                    }
                    @if !t.reason.is_empty() { ": " (t.reason) }
                }
            }
            details.log {
                summary { "log tail (" (a.tail.len()) " lines)" }
                pre { @for l in &a.tail { (l) "\n" } }
                a href=(log) { "whole log" }
            }
        }
    }
}

/// An artifact this service's task directory lacks, as the store kept it
/// (a stage that ran on another service): its text and whose it is.
struct Kept {
    text: String,
    owner: String,
}

/// The store's copies of the artifacts this service cannot read in its
/// own task directory, on a store that keeps them: for each, the copy of
/// the latest attempt of the run that wrote its path (as a resume restores
/// it), if that attempt recorded one and it is text.
async fn kept_artifacts<S: Store>(
    app: &App<S>,
    p: &Pipeline,
    run: &Run,
    reads: &HashMap<String, Read>,
) -> orch_store::Result<HashMap<String, Kept>> {
    let mut kept = HashMap::new();
    if !app.store.keeps_artifacts() {
        return Ok(kept);
    }
    let attempts = app.store.attempts(run.id).await?;
    let path_of_stage = |stage: &str| {
        let g = p.gate(&p.stage(stage)?.gate.value)?;
        Some(p.artifact(&g.artifact.value)?.path.value.clone())
    };
    for art in &p.artifacts {
        if reads.get(&art.name.value).is_some_and(|r| r.is_ok()) {
            continue;
        }
        let owner = attempts
            .iter()
            .rev()
            .find(|a| path_of_stage(&a.stage).as_deref() == Some(art.path.value.as_str()));
        let Some(a) = owner else { continue };
        let Some(sha) = a.artifact_sha256.as_deref() else {
            continue;
        };
        let Some(copy) = app.store.artifact_content(a.id).await? else {
            continue;
        };
        if copy.sha256 != sha {
            continue;
        }
        if let Ok(text) = String::from_utf8(copy.content) {
            kept.insert(
                art.name.value.clone(),
                Kept {
                    text,
                    owner: format!("attempt {} of {}", a.attempt, a.stage),
                },
            );
        }
    }
    Ok(kept)
}

fn artifacts(p: &Pipeline, reads: &HashMap<String, Read>, kept: &HashMap<String, Kept>) -> Markup {
    html! {
        section.artifacts aria-label="artifacts" {
            h2 { "Artifacts" }
            @if p.artifacts.is_empty() { p { "The pipeline declares none." } }
            @for art in &p.artifacts {
                h3 { (art.name.value) " " small { code { (art.path.value) } } }
                @match (reads.get(&art.name.value), kept.get(&art.name.value)) {
                    (Some(Ok((text, size))), _) => {
                        @if (text.len() as u64) < *size {
                            p.muted.cut { "The artifact is " (size) " bytes: its fields are read from its first " (MAX_SHOWN / 1024) " KiB." }
                        }
                        (fields_table(art, text))
                    },
                    (_, Some(k)) => {
                        p.muted.kept { "Not in this service's task directory: as the store kept it (" (k.owner) ")." }
                        (fields_table(art, &k.text))
                    },
                    (Some(Err(why)), None) => p.muted { (why) },
                    (None, None) => p.muted { "artifact " (art.path.value) " was not read" },
                }
            }
        }
    }
}

fn fields_table(art: &orch_lang::model::Artifact, text: &str) -> Markup {
    let fields = orch_lang::gate::parse_fields(text);
    html! {
        table.fields {
            @for f in &art.fields {
                tr data-field=(f.key.value) {
                    th scope="row" { (f.key.value) }
                    td { @match fields.get(&f.key.value) {
                        Some(v) => code { (v) },
                        None => span.muted { "missing" },
                    } }
                }
            }
        }
    }
}

/// A form posted from a task's page: the task's name checked, the body (at
/// most `limit` bytes) as URL-encoded text.
async fn task_form(task: &str, body: Body, limit: usize) -> Result<String, Response> {
    if let Some(r) = refused_name(task) {
        return Err(r);
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => Err(layout::refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is too large",
        )),
    }
}

/// Back to the task's page after a form, saying what happened.
fn back_to(task: &str, what: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/tasks/{task}?{what}"))],
    )
        .into_response()
}

/// `POST /tasks/{task}/cancel` from the page's form: the token typed into
/// the form, then the API's cancel.
pub(super) async fn cancel<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(task): Path<String>,
    body: Body,
) -> Response {
    let form = match task_form(&task, body, 16 * 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let token = layout::param(Some(&form), "token");
    if !access::form_token_admitted(&app, token.as_deref()) {
        tracing::warn!(task, "cancel refused: no or wrong token in the form");
        return layout::refusal(
            StatusCode::UNAUTHORIZED,
            "Refused: the token is missing or wrong. Nothing was cancelled.",
        );
    }
    let answer = crate::api::cancel::<S>(State(app), Ok(Path(task.clone()))).await;
    match answer {
        Ok(r) => {
            let how = if r.status() == StatusCode::ACCEPTED {
                "stopping"
            } else {
                "done"
            };
            back_to(&task, &format!("cancel={how}"))
        }
        Err(e) => layout::refusal(e.status, &e.message),
    }
}

/// `POST /tasks/{task}/approval` from the page's form: the decider is the
/// name `--tokens-file` gives the typed token; then the checks and commit
/// of the API's approval.
pub(super) async fn approval<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(task): Path<String>,
    body: Body,
) -> Response {
    let form = match task_form(&task, body, 64 * 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let token = layout::param(Some(&form), "token").unwrap_or_default();
    let bearer = format!("Bearer {token}");
    let Some(who) = app
        .deciders
        .who(Some(bearer.as_bytes()))
        .map(str::to_string)
    else {
        tracing::warn!(task, "approval refused: the form's token names no decider");
        return layout::refusal(
            StatusCode::FORBIDDEN,
            "Refused: this token names no decider (deciding needs a token listed in --tokens-file). Nothing was decided.",
        );
    };
    let verb = match layout::param(Some(&form), "decision").as_deref() {
        Some("approve") => crate::approvals::Verb::Approve,
        Some("reject") => crate::approvals::Verb::Reject,
        _ => return layout::refusal(StatusCode::BAD_REQUEST, "the decision is approve or reject"),
    };
    let comment = layout::param(Some(&form), "comment").unwrap_or_default();
    match crate::approvals::decide_as(&app, &task, &who, verb, &comment).await {
        Ok((d, _)) => back_to(&task, &format!("approval={}", d.as_str())),
        Err(e) => layout::refusal(e.status, &e.message),
    }
}

/// `/tasks/{task}/logs/{stage}/{attempt}`: the whole log of an attempt (of
/// the task's newest run that has it), as text in a page.
pub(crate) async fn log<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((task, stage, attempt)): Path<(String, String, String)>,
) -> Response {
    if let Some(r) = refused_name(&task) {
        return r;
    }
    let Some(n) = attempt.parse::<i64>().ok().filter(|n| *n >= 1) else {
        return layout::refusal(StatusCode::BAD_REQUEST, "the attempt is a number, 1, 2, …");
    };
    let text = match read_log(&app, &task, &stage, n).await {
        Ok(t) => t,
        Err((status, why)) => return layout::refusal(status, &why),
    };
    let body = html! {
        h1 { "Log of " a href={ "/tasks/" (task) } { (task) } " " (stage) " #" (n) }
        pre.whole { (text) }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&format!("Log {task} {stage} #{n}"), Nav::Task, None, body),
    )
}

/// The file the store recorded for the attempt, read only when it lies in
/// the state directory (as the API's log endpoint does).
async fn read_log<S: Store>(
    app: &App<S>,
    task: &str,
    stage: &str,
    attempt: i64,
) -> Result<String, (StatusCode, String)> {
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            format!("no log of {task} {stage} attempt {attempt}"),
        )
    };
    let store_err = |e: orch_store::StoreError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut recorded = None;
    for run in app
        .store
        .runs(Some(task))
        .await
        .map_err(store_err)?
        .iter()
        .rev()
    {
        let attempts = app.store.attempts(run.id).await.map_err(store_err)?;
        if let Some(a) = attempts
            .into_iter()
            .find(|a| a.stage == stage && a.attempt == attempt)
        {
            recorded = Some(a.log_path);
            break;
        }
    }
    let path = std::fs::canonicalize(recorded.ok_or_else(missing)?).map_err(|_| missing())?;
    if !path.starts_with(&app.state_dir) {
        return Err((
            StatusCode::FORBIDDEN,
            "the recorded log lies outside the state directory".into(),
        ));
    }
    // At most MAX_LOG bytes are read, off the executor.
    let part = crate::files::blocking(move || crate::files::head(&path, MAX_LOG))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|_| missing())?;
    let mut text = String::from_utf8_lossy(&part.bytes).into_owned();
    if part.cut {
        text.push_str(&format!(
            "\n… {} more bytes not shown ({} bytes in all)\n",
            part.size - part.bytes.len() as u64,
            part.size
        ));
    }
    Ok(text)
}
