//! An approval stage: its "producer" is a person. Reaching it records a
//! pending request (approvers, expiry) before anything else; the run then
//! stops waiting for a decision (or, with `--wait`, polls the store for
//! one). A decision recorded by `orch approve`/`orch reject` or the service
//! becomes the attempt's exit, and the decision artifact (written by
//! [`write_decision_artifact`]) is judged by the stage's ordinary gate. A
//! request with no decision by its expiry fails the stage closed.

use std::time::Duration;

use orch_lang::model::{Approval as ApprovalNode, Stage};
use orch_store::{
    Approval, Attempt, ExitRecord, NewApprovalRequest, NewAttempt, ProducerKind, RunStore, Step,
};

use crate::artifact;
use crate::decide::{self, ApprovalState, Next};
use crate::dispatcher::{Engine, Flow};
use crate::error::RunError;
use crate::events::Event;
use crate::failpoint::{self, Point};

/// How often `--wait` looks for a decision in the store.
const POLL: Duration = Duration::from_millis(200);

/// Advances an approval stage by one step: the attempt and its request,
/// then the decision (or waiting, or expiry), then the gate.
pub(crate) async fn step<S: RunStore>(
    e: &mut Engine<S>,
    stage: &Stage,
    node: &ApprovalNode,
    visit: i64,
) -> Result<Flow, RunError> {
    let last = e.store.last_attempt(e.run_id).await?;
    let mut row = match decide::next_approval(last, &stage.name.value, visit) {
        Next::Continue(a) => *a,
        Next::Start { .. } => start(e, stage, node, visit).await?,
    };
    if matches!(row.step, Step::Started | Step::Interrupted) {
        let approval = request(e, &row, node).await?;
        match wait_for_decision(e, stage, &row, approval).await? {
            Waited::Decided => {
                row = e.store.attempt(row.id).await?.ok_or_else(|| {
                    RunError::Io(format!("attempt {} vanished from the store", row.id))
                })?;
            }
            Waited::Stop(flow) => return Ok(flow),
        }
    }
    e.finish_attempt(stage, row, 0).await
}

/// Records a new approval attempt and clears the stage's artifact (a
/// decision from an earlier visit must never pass this gate).
async fn start<S: RunStore>(
    e: &mut Engine<S>,
    stage: &Stage,
    node: &ApprovalNode,
    visit: i64,
) -> Result<Attempt, RunError> {
    let name = &stage.name.value;
    let attempt_no = e.store.attempt_count(e.run_id, name).await? + 1;
    let id = e
        .store
        .insert_attempt(&NewAttempt {
            run_id: e.run_id,
            task: &e.task,
            stage: name,
            attempt: attempt_no,
            visit,
            call_site: &stage.call_site.value,
            producer: ProducerKind::Approval,
            producer_name: &node.name.value,
            argv: &[],
            defers: 0,
            log_path: "",
        })
        .await?;
    // As for a runner: a stale artifact that cannot be cleared means the
    // attempt cannot run, a tool-error (nobody is asked to decide).
    let uncleared = match e.artifact_of_stage(name) {
        Some(rel) => artifact::clear(e.dir(), &rel).err(),
        None => None,
    };
    e.emit(Event::AttemptStarted {
        stage: name.clone(),
        attempt: attempt_no,
        producer: ProducerKind::Approval.as_str().into(),
        name: node.name.value.clone(),
        argv: Vec::new(),
        reason: format!(
            "mode=\"human\": {} may decide",
            node.approver_names().join(" or ")
        ),
    });
    if let Some(reason) = uncleared {
        let exit = e.redactor.redact(&reason);
        e.store
            .record_exit(
                id,
                &ExitRecord {
                    exit_code: None,
                    exit: &exit,
                    verdict: orch_lang::model::TOOL_ERROR,
                    leaks: &[],
                    duration: Duration::ZERO,
                    tail: &[],
                },
            )
            .await?;
        e.emit(Event::Note {
            message: format!("{name} cannot ask for a decision: {exit}"),
        });
    }
    e.store
        .attempt(id)
        .await?
        .ok_or_else(|| RunError::Io(format!("attempt {id} vanished from the store")))
}

/// The attempt's request: recorded now, or the one recorded when the stage
/// was first reached (its expiry does not move when the run resumes).
async fn request<S: RunStore>(
    e: &mut Engine<S>,
    row: &Attempt,
    node: &ApprovalNode,
) -> Result<Approval, RunError> {
    let now = orch_store::now_ms();
    // Validation requires `expires`; a pipeline without it fails closed at once.
    let expires = node.expires.as_ref().map(|d| d.value).unwrap_or_default();
    let show: Vec<String> = node.show.iter().map(|s| s.value.clone()).collect();
    e.store
        .request_approval(&NewApprovalRequest {
            run_id: e.run_id,
            attempt_id: row.id,
            task: &e.task,
            stage: &row.stage,
            approval: &node.name.value,
            approvers: &node.approver_names(),
            show: &show,
            requested_ms: now,
            expires_ms: now.saturating_add(expires.as_millis().min(i64::MAX as u128) as i64),
        })
        .await?;
    e.store
        .approval_of_attempt(row.id)
        .await?
        .ok_or_else(|| RunError::Io(format!("the request of attempt {} vanished", row.id)))
}

enum Waited {
    /// The decision is the attempt's exit now.
    Decided,
    /// The run stops (waiting, interrupted) or moved on (expired).
    Stop(Flow),
}

async fn wait_for_decision<S: RunStore>(
    e: &mut Engine<S>,
    stage: &Stage,
    row: &Attempt,
    mut approval: Approval,
) -> Result<Waited, RunError> {
    let mut announced = false;
    loop {
        match decide::approval_state(&approval, orch_store::now_ms()) {
            ApprovalState::Decided(d) => {
                record_decision(e, stage, row, &approval, &d).await?;
                return Ok(Waited::Decided);
            }
            ApprovalState::Expired => {
                let reason = format!(
                    "approval `{}` expired at {} with no decision",
                    approval.request.approval,
                    orch_store::rfc3339(approval.request.expires_ms)
                );
                e.fail_closed(stage, Some(row.id), &reason).await?;
                return Ok(Waited::Stop(Flow::Continue));
            }
            ApprovalState::Pending { left } => {
                if !announced {
                    announced = true;
                    // A note, not `Waiting` (which names a serial stage's lock).
                    e.emit(Event::Note {
                        message: format!(
                            "{} waits for a decision by {} (expires at {}, in {})",
                            stage.name.value,
                            approval.request.approvers.join(" or "),
                            orch_store::rfc3339(approval.request.expires_ms),
                            orch_lang::duration::human(left)
                        ),
                    });
                }
                if !e.wait {
                    return Ok(Waited::Stop(Flow::Waiting));
                }
                let mut cancel = e.cancel.clone();
                tokio::select! {
                    _ = tokio::time::sleep(POLL.min(left)) => {}
                    _ = cancel.wait_for(|c| *c) => return Ok(Waited::Stop(Flow::Interrupted)),
                }
                approval = e.store.approval_of_attempt(row.id).await?.ok_or_else(|| {
                    RunError::Io(format!("the request of attempt {} vanished", row.id))
                })?;
            }
        }
    }
}

/// The decision is the attempt's exit: its verdict is APPROVED or REJECTED.
async fn record_decision<S: RunStore>(
    e: &mut Engine<S>,
    stage: &Stage,
    row: &Attempt,
    approval: &Approval,
    d: &orch_store::ApprovalDecision,
) -> Result<(), RunError> {
    let verdict = d.decision.artifact_value();
    let exit = format!("decided by {}", d.decider);
    let waited = (d.at_ms - approval.request.requested_ms).max(0) as u64;
    e.store
        .record_exit(
            row.id,
            &ExitRecord {
                exit_code: None,
                exit: &exit,
                verdict,
                leaks: &[],
                duration: Duration::from_millis(waited),
                tail: &[],
            },
        )
        .await?;
    let comment = if d.comment.is_empty() {
        String::new()
    } else {
        format!(": {}", d.comment)
    };
    e.emit(Event::Note {
        message: format!("{} {verdict} by {}{comment}", stage.name.value, d.decider),
    });
    failpoint::hit(Point::AfterExit, &stage.name.value);
    Ok(())
}

/// Writes the decision artifact of an approval attempt from its recorded
/// decision; the message says why it could not be written (the gate then
/// fails closed without reading the path).
pub(crate) async fn write_decision_artifact<S: RunStore>(
    e: &Engine<S>,
    row: &Attempt,
) -> Result<Option<String>, RunError> {
    let Some(approval) = e.store.approval_of_attempt(row.id).await? else {
        return Ok(Some(format!(
            "attempt {} of {} has no request",
            row.attempt, row.stage
        )));
    };
    let Some(d) = &approval.decision else {
        return Ok(Some(format!(
            "attempt {} of {} has no decision",
            row.attempt, row.stage
        )));
    };
    let Some(rel) =
        e.p.approval(&approval.request.approval)
            .and_then(|a| a.writes.as_ref())
            .and_then(|w| e.p.artifact(&w.value))
            .map(|a| a.path.value.clone())
    else {
        return Ok(Some(format!(
            "approval `{}` writes no artifact",
            approval.request.approval
        )));
    };
    let body = decide::decision_artifact(&approval.request.approval, d);
    Ok(artifact::write(e.dir(), &rel, &body).err().map(|err| {
        format!(
            "cannot write artifact {}: {err}",
            e.dir().show(&rel).display()
        )
    }))
}

/// Whether a request's run can still take a decision: the request is of its
/// task's latest run, and that run is not over.
fn run_open(run: &orch_store::Run, a: &orch_store::Approval) -> bool {
    run.id == a.request.run_id
        && !matches!(
            run.status,
            orch_store::RunStatus::Finished
                | orch_store::RunStatus::Abandoned
                | orch_store::RunStatus::Cancelled
        )
}

/// Every request waiting for a decision, of one task or of all, oldest
/// first, with the time left: undecided, not expired, and its run open
/// (what `orch approve` would accept). `orch status`, `GET /queue` and the
/// dashboard list these.
pub async fn pending<S: RunStore>(
    store: &S,
    task: Option<&str>,
    now_ms: i64,
) -> Result<Vec<(orch_store::Approval, Duration)>, orch_store::StoreError> {
    let mut latest: std::collections::HashMap<String, Option<orch_store::Run>> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for a in store.approvals(task).await? {
        let decide::ApprovalState::Pending { left } = decide::approval_state(&a, now_ms) else {
            continue;
        };
        if !latest.contains_key(&a.request.task) {
            let run = store.latest_run(&a.request.task).await?;
            latest.insert(a.request.task.clone(), run);
        }
        if latest[&a.request.task]
            .as_ref()
            .is_some_and(|r| run_open(r, &a))
        {
            out.push((a, left));
        }
    }
    Ok(out)
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// Refused: nothing was written.
    #[error("{0}")]
    Refused(decide::Refusal),
    #[error(transparent)]
    Store(#[from] orch_store::StoreError),
}

/// Records `who`'s decision on `task`'s latest approval request: the checks
/// of [`decide::may_decide`] first (a refusal writes nothing), then one
/// transaction that the store refuses if another decision or the expiry
/// came first. Committed when it returns Ok (the decision's id). Used by
/// `orch approve`/`orch reject` and by the service, so both refuse alike.
pub async fn decide_task<S: RunStore>(
    store: &S,
    task: &str,
    who: &str,
    decision: orch_store::Decision,
    comment: &str,
) -> Result<i64, DecideError> {
    let latest = store.approvals(Some(task)).await?.pop();
    let run = store.latest_run(task).await?;
    let open = match (&latest, &run) {
        (Some(l), Some(r)) => run_open(r, l),
        _ => false,
    };
    let now = orch_store::now_ms();
    let request_id =
        decide::may_decide(latest.as_ref(), open, who, now).map_err(DecideError::Refused)?;
    // The store refuses a decision at or after the request's expiry.
    let expires_ms = latest.as_ref().map(|l| l.request.expires_ms).unwrap_or(now);
    let stage = latest.map(|l| l.request.stage).unwrap_or_default();
    failpoint::hit(Point::BeforeDecision, &stage);
    let outcome = store
        .decide_approval(
            request_id,
            &orch_store::NewDecision {
                decision,
                decider: who,
                comment,
                at_ms: now,
            },
        )
        .await?;
    if let orch_store::DecisionOutcome::Recorded(_) = outcome {
        failpoint::hit(Point::AfterDecision, &stage);
    }
    refused_by_store(outcome, expires_ms)
}

/// The store's answer to a decision: its id, or why the store refused it.
/// `expires_ms` is the request's expiry, which an expired refusal names.
fn refused_by_store(
    outcome: orch_store::DecisionOutcome,
    expires_ms: i64,
) -> Result<i64, DecideError> {
    use decide::Refusal;
    match outcome {
        orch_store::DecisionOutcome::Recorded(id) => Ok(id),
        // Another decider won the race, or the clock passed the expiry.
        orch_store::DecisionOutcome::AlreadyDecided(d) => {
            Err(DecideError::Refused(Refusal::AlreadyDecided(d)))
        }
        orch_store::DecisionOutcome::Expired => {
            Err(DecideError::Refused(Refusal::Expired { at_ms: expires_ms }))
        }
        orch_store::DecisionOutcome::NoRequest => Err(DecideError::Refused(Refusal::NoPending)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_the_store_finds_late_names_the_requests_expiry_not_the_clock() {
        // Requested to expire at 2026-01-01T00:00:00Z; the store found the
        // decision too late.
        let expires_ms = 1_767_225_600_000;
        let refused = refused_by_store(orch_store::DecisionOutcome::Expired, expires_ms)
            .expect_err("an expired request refuses the decision");
        assert_eq!(
            refused.to_string(),
            "the request expired at 2026-01-01T00:00:00Z; the stage failed closed"
        );
    }
}
