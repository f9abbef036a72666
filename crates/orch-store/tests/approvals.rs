//! Approval requests and decisions through the `RunStore` trait: a request
//! per attempt (asking again returns it), one decision per request (a
//! second is refused with the first), none at or after the expiry, and all
//! of it kept across a reopen.

use std::collections::BTreeMap;

use orch_store::{
    Decision, DecisionOutcome, NewApprovalRequest, NewAttempt, NewDecision, NewRun, ProducerKind,
    RunStore, SqliteStore,
};

fn store(name: &str) -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("orch-approvals-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (SqliteStore::open_dir(&dir).unwrap(), dir)
}

/// The embedded store's futures complete at once: polled once.
fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the embedded store does not wait"),
    }
}

/// A run with one approval attempt; returns (run id, attempt id).
fn attempt(s: &SqliteStore, task: &str) -> (i64, i64) {
    let none = BTreeMap::new();
    let run = block(s.create_run(&NewRun {
        task,
        pipeline_path: "p.kdl",
        pipeline_name: "p",
        pipeline_hash: "h",
        pipeline_text: "",
        vars: &none,
        worktree: "/wt",
        host: "h",
    }))
    .unwrap();
    let id = block(s.insert_attempt(&NewAttempt {
        run_id: run,
        task,
        stage: "approve",
        attempt: 1,
        visit: 0,
        call_site: "release-manager",
        producer: ProducerKind::Approval,
        producer_name: "release",
        argv: &[],
        defers: 0,
        log_path: "",
    }))
    .unwrap();
    (run, id)
}

#[test]
fn one_decision_per_request_none_after_expiry_and_kept_across_a_reopen() {
    let (s, dir) = store("once");
    let (run, attempt_id) = attempt(&s, "t");
    let approvers = vec!["alice".to_string(), "bob".to_string()];
    let new = NewApprovalRequest {
        run_id: run,
        attempt_id,
        task: "t",
        stage: "approve",
        approval: "release",
        approvers: &approvers,
        show: &[],
        requested_ms: 1_000,
        expires_ms: 5_000,
    };
    let id = block(s.request_approval(&new)).unwrap();
    // A resumed run asks again: the same request, its expiry unchanged.
    let again = NewApprovalRequest {
        requested_ms: 2_000,
        expires_ms: 9_000,
        ..new
    };
    assert_eq!(block(s.request_approval(&again)).unwrap(), id);
    let late = NewDecision {
        decision: Decision::Approved,
        decider: "alice",
        comment: "",
        at_ms: 5_000,
    };
    assert_eq!(
        block(s.decide_approval(id, &late)).unwrap(),
        DecisionOutcome::Expired
    );
    let first = NewDecision {
        decision: Decision::Rejected,
        decider: "bob",
        comment: "not today",
        at_ms: 4_999,
    };
    let DecisionOutcome::Recorded(first_id) = block(s.decide_approval(id, &first)).unwrap() else {
        panic!("the first decision is recorded");
    };
    let second = NewDecision {
        decision: Decision::Approved,
        decider: "alice",
        comment: "",
        at_ms: 3_000,
    };
    match block(s.decide_approval(id, &second)).unwrap() {
        DecisionOutcome::AlreadyDecided(d) => {
            assert_eq!(d.id, first_id);
            assert_eq!(d.decider, "bob");
            assert_eq!(d.decision, Decision::Rejected);
        }
        other => panic!("a second decision must be refused, got {other:?}"),
    }
    assert_eq!(
        block(s.decide_approval(id + 100, &second)).unwrap(),
        DecisionOutcome::NoRequest
    );
    drop(s);
    let s = SqliteStore::open_dir(&dir).unwrap();
    let all = block(s.approvals(Some("t"))).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].request.approvers, approvers);
    assert_eq!(all[0].request.expires_ms, 5_000);
    let d = all[0].decision.as_ref().expect("the decision is kept");
    assert_eq!(
        (d.decider.as_str(), d.comment.as_str()),
        ("bob", "not today")
    );
    let by_attempt = block(s.approval_of_attempt(attempt_id)).unwrap();
    assert_eq!(by_attempt.as_ref(), Some(&all[0]));
    assert!(block(s.approvals(Some("other"))).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
