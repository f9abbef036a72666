//! The step machine's decisions, as pure functions of what is recorded and
//! what the pipeline says: whether a tool-error is retried, which transition
//! a gate's result takes, and what failing closed leads to. No processes,
//! no store: the dispatcher records a decision before acting on it.

use std::time::Duration;

use orch_lang::model::{Retry, Stage, TOOL_ERROR};
use orch_store::{Approval, ApprovalDecision, Attempt, Step, TransitionKind};

/// What to do with the attempt of a stage's current visit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Next {
    /// Its producer ended: carry on from the recorded step.
    Continue(Box<Attempt>),
    /// Start a new attempt with this many defers behind it.
    Start { defers: i64 },
}

/// The next attempt of a stage, given the run's latest attempt and the
/// number of the current visit (transitions taken so far).
pub(crate) fn next(last: Option<Attempt>, stage: &str, visit: i64) -> Next {
    match last.filter(|a| a.stage == stage && a.visit == visit) {
        Some(a) if matches!(a.step, Step::Exited | Step::Artifact | Step::Gated) => {
            Next::Continue(Box::new(a))
        }
        // Deferred: the next attempt counts one more defer.
        Some(a) if a.step == Step::Done => Next::Start {
            defers: a.defers + 1,
        },
        // Interrupted (or started and never spawned): run it again.
        Some(a) => Next::Start { defers: a.defers },
        None => Next::Start { defers: 0 },
    }
}

/// After a producer's exit is recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterExit {
    /// Go on to the artifact and the gate.
    Proceed,
    /// A tool-error with budget left: try again after `delay`.
    Defer { delay: Duration, attempts_left: i64 },
    /// A tool-error with the retry budget spent.
    FailClosed(String),
}

/// A tool-error is retried within the producer's budget; any other verdict
/// goes to the gate.
pub(crate) fn after_exit(
    verdict: &str,
    exit: Option<&str>,
    retry: &Retry,
    defers: i64,
) -> AfterExit {
    if verdict != TOOL_ERROR {
        return AfterExit::Proceed;
    }
    let used = defers + 1;
    if used < retry.attempts as i64 {
        return AfterExit::Defer {
            delay: retry.delay_before(used as u32 + 1),
            attempts_left: retry.attempts as i64 - used,
        };
    }
    AfterExit::FailClosed(format!(
        "tool-error on {used} attempt(s): the retry budget is spent ({})",
        exit.unwrap_or_default()
    ))
}

/// A transition to take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Take {
    pub(crate) kind: TransitionKind,
    pub(crate) to: String,
    pub(crate) reason: String,
    pub(crate) alert: Option<String>,
}

/// Why a stage cannot move at all: it failed closed without an `exhausted`
/// transition (validation requires one; a changed pipeline may lack it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stuck(pub String);

/// The transition a gate's result takes. `fails` is the number of
/// rollbacks the stage already took in this run.
pub(crate) fn after_gate(
    stage: &Stage,
    pass: bool,
    reason: &str,
    fails: u32,
) -> Result<Take, Stuck> {
    if pass {
        return match &stage.pass {
            Some(t) => Ok(Take {
                kind: TransitionKind::Pass,
                to: t.target.value.clone(),
                reason: reason.to_string(),
                alert: None,
            }),
            None => fail_closed(stage, "the gate passed but the stage has no `pass`"),
        };
    }
    match &stage.fail {
        Some(f) if f.budget.as_ref().is_none_or(|b| fails < b.value) => {
            let budget = f
                .budget
                .as_ref()
                .map(|b| format!(" (rollback {} of {})", fails + 1, b.value))
                .unwrap_or_default();
            Ok(Take {
                kind: TransitionKind::Fail,
                to: f.target.value.clone(),
                reason: format!("{reason}{budget}"),
                alert: None,
            })
        }
        Some(f) => {
            let budget = f.budget.as_ref().map(|b| b.value).unwrap_or(0);
            fail_closed(
                stage,
                &format!("{reason}; the fail budget ({budget}) is spent"),
            )
        }
        None => fail_closed(
            stage,
            &format!("{reason}; the stage has no `fail` transition"),
        ),
    }
}

/// The stage fails closed: its `exhausted` transition, with its alert.
pub(crate) fn fail_closed(stage: &Stage, reason: &str) -> Result<Take, Stuck> {
    match &stage.exhausted {
        Some(t) => Ok(Take {
            kind: TransitionKind::Exhausted,
            to: t.target.value.clone(),
            reason: reason.to_string(),
            alert: t.alert.as_ref().map(|a| a.value.clone()),
        }),
        None => Err(Stuck(format!(
            "stage `{}` failed closed ({reason}) and has no `exhausted` transition",
            stage.name.value
        ))),
    }
}

/// The attempt of an approval stage's current visit. Unlike a process, a
/// request survives the run stopping: a started or interrupted approval
/// attempt goes on waiting for the same request, never starts another.
pub(crate) fn next_approval(last: Option<Attempt>, stage: &str, visit: i64) -> Next {
    match last.filter(|a| a.stage == stage && a.visit == visit) {
        Some(a) if a.step != Step::Done => Next::Continue(Box::new(a)),
        _ => Next::Start { defers: 0 },
    }
}

/// Where an approval request stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalState {
    /// Decided (before its expiry: the store refuses a later decision).
    Decided(ApprovalDecision),
    /// No decision, and its time is up: the stage fails closed.
    Expired,
    /// No decision yet; this much time is left.
    Pending { left: Duration },
}

pub fn approval_state(a: &Approval, now_ms: i64) -> ApprovalState {
    match &a.decision {
        Some(d) => ApprovalState::Decided(d.clone()),
        None if now_ms >= a.request.expires_ms => ApprovalState::Expired,
        None => ApprovalState::Pending {
            left: Duration::from_millis((a.request.expires_ms - now_ms).max(0) as u64),
        },
    }
}

/// Why a decision is refused (nothing is recorded).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The task has no request waiting for a decision.
    NoPending,
    /// The decider is not among the request's approvers.
    NotApprover { approvers: Vec<String> },
    /// The request was decided already.
    AlreadyDecided(ApprovalDecision),
    /// The request expired at this time (ms since the epoch).
    Expired { at_ms: i64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoPending => f.write_str("no approval request is pending"),
            Refusal::NotApprover { approvers } => {
                write!(f, "not among the approvers ({})", approvers.join(", "))
            }
            Refusal::AlreadyDecided(d) => write!(
                f,
                "already decided: {} by {} at {}",
                d.decision.artifact_value(),
                d.decider,
                orch_store::rfc3339(d.at_ms)
            ),
            Refusal::Expired { at_ms } => write!(
                f,
                "the request expired at {}; the stage failed closed",
                orch_store::rfc3339(*at_ms)
            ),
        }
    }
}

/// Whether `who` may decide a task's latest request now. `open` says its
/// run can still take it (neither finished nor abandoned). Returns the
/// request's id.
pub(crate) fn may_decide(
    latest: Option<&Approval>,
    open: bool,
    who: &str,
    now_ms: i64,
) -> Result<i64, Refusal> {
    let a = latest.ok_or(Refusal::NoPending)?;
    if let Some(d) = &a.decision {
        return Err(Refusal::AlreadyDecided(d.clone()));
    }
    if now_ms >= a.request.expires_ms {
        return Err(Refusal::Expired {
            at_ms: a.request.expires_ms,
        });
    }
    if !open {
        return Err(Refusal::NoPending);
    }
    if !a.request.approvers.iter().any(|n| n == who) {
        return Err(Refusal::NotApprover {
            approvers: a.request.approvers.clone(),
        });
    }
    Ok(a.request.id)
}

/// The artifact orch writes from a decision: the `decision` line first (the
/// gate reads it), then who, when and the comment, each on one line.
pub(crate) fn decision_artifact(approval: &str, d: &ApprovalDecision) -> String {
    use crate::producer::one_line;
    format!(
        "{}: {}\ndecided-by: {}\ndecided-at: {}\ncomment: {}\n\n# Decision on approval `{}` (written by orch)\n",
        orch_lang::model::DECISION_FIELD,
        d.decision.artifact_value(),
        one_line(&d.decider),
        orch_store::rfc3339(d.at_ms),
        one_line(&d.comment),
        one_line(approval),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_lang::analysis::analyze_text;
    use orch_lang::model::Pipeline;
    use orch_lang::validate::Options;
    use orch_store::Decision;

    fn pipeline(stage_body: &str) -> Pipeline {
        let text = format!(
            r#"pipeline "p" start="s"
stage "s" call-site="c" gate="g" {{
{stage_body}
}}
stage "back" call-site="c" gate="g" {{
    pass "done"
    exhausted "failed"
}}
end "done" outcome="success"
end "failed" outcome="failure"
alert "ops" {{
    command "true"
}}
"#
        );
        analyze_text("t.kdl", &text, &Options { offline: true }).pipeline
    }

    fn stage(p: &Pipeline) -> &Stage {
        p.stage("s").expect("the fixture declares stage s")
    }

    fn retry(attempts: u32) -> Retry {
        Retry {
            attempts,
            delay: Duration::from_millis(100),
            backoff: 2.0,
            ..Retry::none()
        }
    }

    #[test]
    fn a_tool_error_is_retried_within_its_budget_then_fails_closed() {
        let r = retry(3);
        assert_eq!(
            after_exit(TOOL_ERROR, Some("exit code 127"), &r, 0),
            AfterExit::Defer {
                delay: Duration::from_millis(100),
                attempts_left: 2
            }
        );
        assert_eq!(
            after_exit(TOOL_ERROR, Some("exit code 127"), &r, 1),
            AfterExit::Defer {
                delay: Duration::from_millis(200),
                attempts_left: 1
            }
        );
        assert_eq!(
            after_exit(TOOL_ERROR, Some("exit code 127"), &r, 2),
            AfterExit::FailClosed(
                "tool-error on 3 attempt(s): the retry budget is spent (exit code 127)".into()
            )
        );
        assert_eq!(
            after_exit(TOOL_ERROR, None, &Retry::none(), 0),
            AfterExit::FailClosed(
                "tool-error on 1 attempt(s): the retry budget is spent ()".into()
            )
        );
    }

    #[test]
    fn any_other_verdict_goes_to_the_gate() {
        assert_eq!(
            after_exit("FAIL", Some("exit code 1"), &retry(3), 0),
            AfterExit::Proceed
        );
    }

    #[test]
    fn a_failed_gate_rolls_back_within_the_budget_then_fails_closed_with_its_alert() {
        let p = pipeline(
            "    pass \"done\"\n    fail \"back\" budget=2\n    exhausted \"failed\" alert=\"ops\"",
        );
        let s = stage(&p);
        let first = after_gate(s, false, "result: FAIL", 0).expect("a transition");
        assert_eq!(first.kind, TransitionKind::Fail);
        assert_eq!(first.to, "back");
        assert_eq!(first.reason, "result: FAIL (rollback 1 of 2)");
        let second = after_gate(s, false, "result: FAIL", 1).expect("a transition");
        assert_eq!(second.reason, "result: FAIL (rollback 2 of 2)");
        let spent = after_gate(s, false, "result: FAIL", 2).expect("a transition");
        assert_eq!(spent.kind, TransitionKind::Exhausted);
        assert_eq!(spent.to, "failed");
        assert_eq!(spent.alert.as_deref(), Some("ops"));
        assert_eq!(spent.reason, "result: FAIL; the fail budget (2) is spent");
    }

    #[test]
    fn a_passed_gate_takes_pass() {
        let p = pipeline("    pass \"done\"\n    exhausted \"failed\"");
        let t = after_gate(stage(&p), true, "result: PASS", 0).expect("a transition");
        assert_eq!(t.kind, TransitionKind::Pass);
        assert_eq!(t.to, "done");
    }

    #[test]
    fn a_failed_gate_without_fail_fails_closed() {
        let p = pipeline("    pass \"done\"\n    exhausted \"failed\"");
        let t = after_gate(stage(&p), false, "result: FAIL", 0).expect("a transition");
        assert_eq!(t.kind, TransitionKind::Exhausted);
        assert_eq!(t.reason, "result: FAIL; the stage has no `fail` transition");
    }

    fn attempt(stage: &str, visit: i64, step: Step, defers: i64) -> Attempt {
        Attempt {
            id: 1,
            run_id: 1,
            task: "t".into(),
            stage: stage.into(),
            attempt: 1,
            visit,
            call_site: "c".into(),
            producer: orch_store::ProducerKind::Runner,
            producer_name: "r".into(),
            argv: vec![],
            defers,
            step,
            group: None,
            exit_code: None,
            exit: None,
            verdict: None,
            leaked: false,
            started_ms: 0,
            finished_ms: None,
            duration_ms: None,
            log_path: String::new(),
            artifact_sha256: None,
            gate_pass: None,
            gate_reason: None,
            tail: vec![],
        }
    }

    #[test]
    fn the_next_attempt_resumes_a_recorded_exit_and_restarts_an_interrupted_one() {
        assert_eq!(next(None, "s", 0), Next::Start { defers: 0 });
        let exited = attempt("s", 0, Step::Exited, 1);
        assert_eq!(
            next(Some(exited.clone()), "s", 0),
            Next::Continue(Box::new(exited))
        );
        assert_eq!(
            next(Some(attempt("s", 0, Step::Done, 1)), "s", 0),
            Next::Start { defers: 2 }
        );
        assert_eq!(
            next(Some(attempt("s", 0, Step::Interrupted, 1)), "s", 0),
            Next::Start { defers: 1 }
        );
        // An attempt of an earlier visit, or of another stage, is not this one's.
        assert_eq!(
            next(Some(attempt("s", 1, Step::Exited, 0)), "s", 2),
            Next::Start { defers: 0 }
        );
        assert_eq!(
            next(Some(attempt("x", 0, Step::Exited, 0)), "s", 0),
            Next::Start { defers: 0 }
        );
    }

    fn approval(decided: Option<Decision>) -> Approval {
        Approval {
            request: orch_store::ApprovalRequest {
                id: 7,
                run_id: 1,
                attempt_id: 3,
                task: "t".into(),
                stage: "approve".into(),
                approval: "release".into(),
                approvers: vec!["alice".into(), "bob".into()],
                show: vec![],
                requested_ms: 1_000,
                expires_ms: 10_000,
            },
            decision: decided.map(|decision| ApprovalDecision {
                id: 1,
                request_id: 7,
                decision,
                decider: "bob".into(),
                comment: "line one\ndecision: APPROVED".into(),
                at_ms: 2_000,
            }),
        }
    }

    #[test]
    fn a_request_is_pending_until_decided_or_expired() {
        let a = approval(None);
        assert_eq!(
            approval_state(&a, 4_000),
            ApprovalState::Pending {
                left: Duration::from_secs(6)
            }
        );
        assert_eq!(approval_state(&a, 10_000), ApprovalState::Expired);
        let d = approval(Some(Decision::Rejected));
        // A decision recorded in time stands, whenever the run looks.
        assert!(matches!(
            approval_state(&d, 50_000),
            ApprovalState::Decided(_)
        ));
    }

    #[test]
    fn only_an_approver_decides_once_in_time_while_the_run_is_open() {
        let a = approval(None);
        assert_eq!(may_decide(Some(&a), true, "alice", 2_000), Ok(7));
        assert_eq!(
            may_decide(None, true, "alice", 2_000),
            Err(Refusal::NoPending)
        );
        assert_eq!(
            may_decide(Some(&a), false, "alice", 2_000),
            Err(Refusal::NoPending)
        );
        assert!(matches!(
            may_decide(Some(&a), true, "mallory", 2_000),
            Err(Refusal::NotApprover { .. })
        ));
        assert_eq!(
            may_decide(Some(&a), true, "alice", 10_000),
            Err(Refusal::Expired { at_ms: 10_000 })
        );
        let d = approval(Some(Decision::Approved));
        let refused = may_decide(Some(&d), true, "alice", 3_000).unwrap_err();
        assert!(matches!(refused, Refusal::AlreadyDecided(_)));
        assert!(refused.to_string().contains("APPROVED by bob"), "{refused}");
    }

    #[test]
    fn a_comment_cannot_pose_as_the_decision() {
        let d = approval(Some(Decision::Rejected));
        let body = decision_artifact("release", d.decision.as_ref().unwrap());
        let fields = orch_lang::gate::parse_fields(&body);
        assert_eq!(fields.get("decision").map(String::as_str), Some("REJECTED"));
        assert_eq!(fields.get("decided-by").map(String::as_str), Some("bob"));
        assert_eq!(
            body.lines().filter(|l| l.starts_with("decision:")).count(),
            1
        );
    }

    #[test]
    fn an_approval_attempt_goes_on_waiting_across_a_stop() {
        let mut a = attempt("approve", 0, Step::Interrupted, 0);
        assert!(matches!(
            next_approval(Some(a.clone()), "approve", 0),
            Next::Continue(_)
        ));
        a.step = Step::Done;
        assert_eq!(
            next_approval(Some(a), "approve", 0),
            Next::Start { defers: 0 }
        );
        assert_eq!(next_approval(None, "approve", 0), Next::Start { defers: 0 });
    }
}
