//! The store's behaviour through the `RunStore` trait, one set of tests run
//! on every implementation: SQLite (a temporary state directory) and
//! PostgreSQL (a schema of its own per test on the server named by
//! `ORCH_TEST_POSTGRES`, dropped afterwards). Without a reachable server
//! the PostgreSQL half fails under CI (`CI=true`) and is reported skipped
//! (`SKIPPED:` on stderr) elsewhere; it never passes silently.
//!
//! Then what only a shared store does: leases, takeover and fencing between
//! two services.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch_store::*;

// ---------------------------------------------------------------- harness

/// A PostgreSQL schema for one test, dropped when the value goes.
struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// `None` (reported skipped) without a server, outside CI.
    async fn new() -> Option<PgSchema> {
        let reason = match std::env::var("ORCH_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => match connect(&url).await {
                Ok(_) => {
                    static N: AtomicUsize = AtomicUsize::new(0);
                    let name = format!(
                        "orch_t_{}_{}_{}",
                        std::process::id(),
                        N.fetch_add(1, Ordering::SeqCst),
                        now_ms()
                    );
                    return Some(PgSchema { base: url, name });
                }
                Err(e) => format!("the PostgreSQL server of ORCH_TEST_POSTGRES ({url}) is unreachable: {e}"),
            },
            _ => "ORCH_TEST_POSTGRES is not set (a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test)".to_string(),
        };
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("the PostgreSQL tests need a server: {reason}");
        }
        // Past the test harness's capture: a skip is seen, not hidden
        // among passes.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
        None
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={}", self.base, self.name)
    }

    async fn sql(&self, sql: &str) {
        let client = connect(&self.base).await.expect("the server");
        client
            .batch_execute(&format!("SET search_path TO \"{}\"; {sql}", self.name))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                if let Ok(c) = connect(&base).await {
                    let _ = c
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> std::result::Result<tokio_postgres::Client, String> {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, conn) = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn sqlite(name: &str) -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("orch-behaviour-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (SqliteStore::open_dir(&dir).unwrap(), dir)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A service named `name` on the schema, with the short test lease.
async fn service(schema: &PgSchema, name: &str) -> PostgresStore {
    PostgresStore::open(
        &schema.url(),
        PgOptions {
            name: name.into(),
            ..fast()
        },
    )
    .await
    .expect("open the store as a service")
}

fn fast() -> PgOptions {
    PgOptions {
        lease: Duration::from_millis(1500),
        ..PgOptions::default()
    }
}

/// Runs a behaviour on both stores.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                let (s, dir) = super::sqlite(stringify!($name));
                rt().block_on($body(&s));
                let _ = std::fs::remove_dir_all(dir);
            }

            #[test]
            fn postgres() {
                rt().block_on(async {
                    let Some(schema) = PgSchema::new().await else {
                        return;
                    };
                    let s = PostgresStore::open(&schema.url(), fast())
                        .await
                        .expect("open the store");
                    $body(&s).await;
                    s.close().await.expect("close");
                    drop(s);
                    drop(schema);
                });
            }
        }
    };
}

// ------------------------------------------------------------- behaviours

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([("flavour".to_string(), "mild".to_string())])
}

/// Queues `task` (the test variables, any service may take it).
async fn enqueue<S: RunStore>(s: &S, task: &str) {
    s.enqueue(&NewQueuedTask {
        task,
        vars: &vars(),
        worktree: "/wt",
        needs: &[],
    })
    .await
    .unwrap()
    .expect("queued");
}

async fn new_run<S: RunStore>(s: &S, task: &str) -> i64 {
    let vars = vars();
    s.create_run(&NewRun {
        task,
        pipeline_path: "/p/pipeline.kdl",
        pipeline_name: "demo",
        pipeline_hash: "h1",
        pipeline_text: "stage \"a\"",
        vars: &vars,
        worktree: "/wt",
        host: "h",
    })
    .await
    .expect("create the run")
}

async fn new_attempt<S: RunStore>(s: &S, run: i64, task: &str, stage: &str, n: i64) -> i64 {
    let argv = vec!["sh".to_string(), "-c".to_string(), "true".to_string()];
    s.insert_attempt(&NewAttempt {
        run_id: run,
        task,
        stage,
        attempt: n,
        visit: 0,
        call_site: stage,
        producer: ProducerKind::Llm,
        producer_name: "claude",
        argv: &argv,
        defers: 0,
        log_path: "/state/tasks/t/logs/a.log",
    })
    .await
    .expect("insert the attempt")
}

/// Every step of an attempt is read back as written, in order.
async fn steps_round_trip<S: RunStore>(s: &S) {
    let lock = s
        .try_lock(&LockKey::Task("t".into()), "me")
        .await
        .unwrap()
        .expect("the task's lock");
    let run = new_run(s, "t").await;
    let a = new_attempt(s, run, "t", "plan", 1).await;
    s.record_group(
        a,
        &GroupRecord {
            pgid: 4242,
            leader_start: Some(99),
            boot_id: Some("boot".into()),
            host: Some("h".into()),
            token: Some("tok".into()),
        },
    )
    .await
    .unwrap();
    let tail = vec!["one".to_string(), "two".to_string()];
    s.record_exit(
        a,
        &ExitRecord {
            exit_code: Some(0),
            exit: "exit code 0",
            verdict: "ok",
            leaks: &[],
            duration: Duration::from_millis(1234),
            tail: &tail,
        },
    )
    .await
    .unwrap();
    s.record_artifact(a, Some("abc")).await.unwrap();
    s.record_gate(a, true, "the artifact exists").await.unwrap();
    let got = s.attempt(a).await.unwrap().expect("the attempt");
    assert_eq!(got.step, Step::Gated);
    assert_eq!(got.group.as_ref().map(|g| g.pgid), Some(4242));
    assert_eq!(got.group.and_then(|g| g.token), Some("tok".into()));
    assert_eq!(got.exit_code, Some(0));
    assert_eq!(got.duration_ms, Some(1234));
    assert_eq!(got.tail, tail);
    assert_eq!(got.artifact_sha256.as_deref(), Some("abc"));
    assert_eq!(got.gate_pass, Some(true));
    assert_eq!(got.argv, vec!["sh", "-c", "true"]);
    assert!(!got.leaked);
    let alert = s
        .record_transition(&NewTransition {
            run_id: run,
            attempt_id: Some(a),
            from: "plan",
            kind: TransitionKind::Pass,
            to: "build",
            reason: "gate passed",
            alert: Some("notify"),
        })
        .await
        .unwrap();
    assert!(alert.is_some(), "the alert was queued");
    assert_eq!(
        s.attempt(a).await.unwrap().map(|a| a.step),
        Some(Step::Done)
    );
    let b = new_attempt(s, run, "t", "build", 1).await;
    s.set_step(b, Step::Interrupted).await.unwrap();
    s.record_transition(&NewTransition {
        run_id: run,
        attempt_id: Some(b),
        from: "build",
        kind: TransitionKind::Fail,
        to: "plan",
        reason: "tests failed",
        alert: None,
    })
    .await
    .unwrap();
    let p = s.position(run).await.unwrap();
    assert_eq!((p.transitions, p.last_to.as_deref()), (2, Some("plan")));
    assert_eq!(s.fail_count(run, "build").await.unwrap(), 1);
    assert_eq!(s.fail_count(run, "plan").await.unwrap(), 0);
    assert_eq!(s.attempt_count(run, "plan").await.unwrap(), 1);
    let kinds: Vec<_> = s
        .transitions(run)
        .await
        .unwrap()
        .iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(kinds, [TransitionKind::Pass, TransitionKind::Fail]);
    let pending = s.pending_alerts(run).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].alert, "notify");
    assert_eq!(pending[0].exit, None, "a pending alert has not ended");
    s.finish_alert(pending[0].id, false, "exit code 3")
        .await
        .unwrap();
    assert!(s.pending_alerts(run).await.unwrap().is_empty());
    assert_eq!(s.alerts(run).await.unwrap()[0].status, AlertStatus::Failed);
    assert_eq!(
        s.alerts(run).await.unwrap()[0].exit.as_deref(),
        Some("exit code 3"),
        "the alert keeps how it ended (`orch history` shows it)"
    );
    assert_eq!(
        s.attempts(run)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        [a, b]
    );
    assert_eq!(s.last_attempt(run).await.unwrap().map(|a| a.id), Some(b));
    drop(lock);
}

/// A run's life: status, bindings, notes, logs moved, its end; the
/// roadmap's LLM durations.
async fn runs_round_trip<S: RunStore>(s: &S) {
    let lock = s
        .try_lock(&LockKey::Task("r".into()), "me")
        .await
        .unwrap()
        .expect("the task's lock");
    assert!(s.latest_run("r").await.unwrap().is_none());
    let first = new_run(s, "r").await;
    s.set_run_status(first, RunStatus::Abandoned).await.unwrap();
    let run = new_run(s, "r").await;
    let a = new_attempt(s, run, "r", "plan", 1).await;
    s.record_exit(
        a,
        &ExitRecord {
            exit_code: None,
            exit: "timed out",
            verdict: "timeout",
            leaks: &["pid 7 (sleep)".to_string()],
            duration: Duration::from_millis(50),
            tail: &[],
        },
    )
    .await
    .unwrap();
    assert!(s
        .attempt(a)
        .await
        .unwrap()
        .is_some_and(|a| a.leaked && a.exit_code.is_none()));
    let mut changed = vars();
    changed.insert("extra".into(), "1".into());
    s.set_run_bindings(run, &changed, "/wt2").await.unwrap();
    s.add_run_note(run, "resumed with consent").await.unwrap();
    s.relocate_logs(run, "/state/tasks/t", "/state/archive/t")
        .await
        .unwrap();
    assert_eq!(
        s.attempt(a).await.unwrap().map(|a| a.log_path),
        Some("/state/archive/t/logs/a.log".into())
    );
    s.finish_run(run, Outcome::Success, "done").await.unwrap();
    let latest = s.latest_run("r").await.unwrap().expect("the run");
    assert_eq!(latest.id, run);
    assert_eq!(latest.status, RunStatus::Finished);
    assert_eq!(latest.outcome, Some(Outcome::Success));
    assert_eq!(latest.end_name.as_deref(), Some("done"));
    assert_eq!(latest.vars, changed);
    assert_eq!(latest.worktree, "/wt2");
    assert_eq!(latest.pipeline_name.as_deref(), Some("demo"));
    let notes = s.run_notes(run).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].text, "resumed with consent");
    let all = s.runs(Some("r")).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [RunStatus::Abandoned, RunStatus::Finished]
    );
    assert_eq!(s.runs(None).await.unwrap().len(), 2);
    let llm = s.llm_attempts("demo").await.unwrap();
    assert_eq!(llm.len(), 1);
    assert_eq!(
        (llm[0].call_site.as_str(), llm[0].duration_ms),
        ("plan", 50)
    );
    assert!(s.llm_attempts("other").await.unwrap().is_empty());
    drop(lock);
}

/// The queue: submission order, a name once, each task taken once, moves
/// only from the state named.
async fn queue_behaviour<S: RunStore>(s: &S) {
    let v = vars();
    let new = |task| NewQueuedTask {
        task,
        vars: &v,
        worktree: "/wt",
        needs: &[],
    };
    let a = s.enqueue(&new("qa")).await.unwrap();
    let b = s.enqueue(&new("qb")).await.unwrap();
    assert!(a.is_some() && b.is_some() && a < b);
    assert_eq!(s.enqueue(&new("qa")).await.unwrap(), None);
    let lock = s
        .try_lock(&LockKey::Task("ran".into()), "me")
        .await
        .unwrap();
    new_run(s, "ran").await;
    drop(lock);
    assert_eq!(s.enqueue(&new("ran")).await.unwrap(), None, "it has runs");
    let first = s.take_queued().await.unwrap().expect("a task");
    assert_eq!(
        (first.task.as_str(), first.state),
        ("qa", QueueState::Running)
    );
    assert_eq!(first.vars, v);
    assert!(first.started_ms.is_some());
    let second = s.take_queued().await.unwrap().expect("a task");
    assert_eq!(second.task, "qb");
    assert!(
        s.take_queued().await.unwrap().is_none(),
        "each is taken once"
    );
    assert!(!s
        .move_queued("qa", QueueState::Queued, QueueState::Cancelled, None)
        .await
        .unwrap());
    assert!(s
        .move_queued("qa", QueueState::Running, QueueState::Failed, Some("boom"))
        .await
        .unwrap());
    let qa = s.queued_task("qa").await.unwrap().expect("qa");
    assert_eq!(
        (qa.state, qa.error.as_deref()),
        (QueueState::Failed, Some("boom"))
    );
    assert!(qa.finished_ms.is_some());
    assert_eq!(s.queue(Some(QueueState::Running)).await.unwrap().len(), 1);
    assert_eq!(s.queue(None).await.unwrap().len(), 2);
    assert_eq!(
        s.recoverable().await.unwrap().len(),
        usize::from(s.services().await.unwrap().is_empty())
    );
}

/// Placement: a released task goes back to the queue needing labels; only
/// a taker holding all of them takes it (others take the tasks behind it),
/// and taking it clears what it needs.
async fn labels_behaviour<S: RunStore>(s: &S) {
    let v = vars();
    let new = |task| NewQueuedTask {
        task,
        vars: &v,
        worktree: "/wt",
        needs: &[],
    };
    s.enqueue(&new("la")).await.unwrap().expect("queued");
    s.enqueue(&new("lb")).await.unwrap().expect("queued");
    let none: &[String] = &[];
    let gpu = vec!["gpu".to_string()];
    let both = vec!["gpu".to_string(), "macos".to_string()];
    let first = s.take_queued_for(none).await.unwrap().expect("la");
    assert_eq!((first.task.as_str(), first.needs.len()), ("la", 0));
    assert!(
        !s.release_queued("lb", &gpu).await.unwrap(),
        "lb is not running"
    );
    assert!(s.release_queued("la", &both).await.unwrap());
    let la = s.queued_task("la").await.unwrap().expect("la");
    assert_eq!(
        (la.state, la.needs.clone()),
        (QueueState::Queued, both.clone())
    );
    assert_eq!(
        s.queue(Some(QueueState::Queued)).await.unwrap()[0].needs,
        both
    );
    // Without the labels: the task behind it, then nothing.
    let next = s.take_queued_for(none).await.unwrap().expect("lb");
    assert_eq!(next.task, "lb");
    assert!(s.take_queued_for(none).await.unwrap().is_none());
    assert!(s.take_queued().await.unwrap().is_none());
    assert!(
        s.take_queued_for(&gpu).await.unwrap().is_none(),
        "gpu alone is not enough"
    );
    let taken = s
        .take_queued_for(&both)
        .await
        .unwrap()
        .expect("la, with both");
    assert_eq!(
        (taken.task.as_str(), taken.state, taken.needs.len()),
        ("la", QueueState::Running, 0)
    );
    let la = s.queued_task("la").await.unwrap().expect("la");
    assert!(la.needs.is_empty(), "taking it clears its needs");
    // Needs recorded at submission (its first stage's) hold the same way.
    let macos = vec!["macos".to_string()];
    s.enqueue(&NewQueuedTask {
        task: "lc",
        vars: &v,
        worktree: "/wt",
        needs: &macos,
    })
    .await
    .unwrap()
    .expect("queued");
    assert_eq!(s.queued_task("lc").await.unwrap().expect("lc").needs, macos);
    assert!(s.take_queued_for(&gpu).await.unwrap().is_none());
    let lc = s.take_queued_for(&both).await.unwrap().expect("lc");
    assert_eq!((lc.task.as_str(), lc.needs.len()), ("lc", 0));
}

/// A lock is held once; its holder is named; once released it is taken
/// again. Serial stages' locks are listed with their holders.
async fn locks_behaviour<S: RunStore>(s: &S) {
    let key = LockKey::Stage("deploy".into());
    let g = s.try_lock(&key, "task one").await.unwrap().expect("free");
    let busy = s.try_lock(&key, "task two").await.unwrap();
    let holder = busy.err().expect("held");
    assert!(holder.contains("task one"), "{holder}");
    assert!(s
        .lock_holder(&key)
        .await
        .unwrap()
        .is_some_and(|h| h.contains("task one")));
    let locks = s.stage_locks().await.unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].0, "deploy");
    assert!(locks[0]
        .1
        .as_deref()
        .is_some_and(|h| h.contains("task one")));
    drop(g);
    // A release may be asynchronous (a networked store): tried until it
    // lands, boundedly.
    let mut again = None;
    for _ in 0..200 {
        if let Ok(g) = s.try_lock(&key, "task two").await.unwrap() {
            again = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "the released lock is taken again");
    drop(again);
    for _ in 0..200 {
        if s.lock_holder(&key).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.stage_locks().await.unwrap(),
        [("deploy".to_string(), None)]
    );
    assert!(s
        .lock_holder(&LockKey::Task("nobody".into()))
        .await
        .unwrap()
        .is_none());
}

/// An artifact's bytes: kept by a store shared by many hosts (read back as
/// written, binary and all, the same after a retried write), and by the
/// embedded store not at all (its digest alone, as before).
async fn artifacts_behaviour<S: RunStore>(s: &S) {
    let _lock = s
        .try_lock(&LockKey::Task("t".into()), "me")
        .await
        .unwrap()
        .expect("the task's lock");
    let run = new_run(s, "t").await;
    let a = new_attempt(s, run, "t", "plan", 1).await;
    let content = b"result: PASS\n\x00\xff binary too\n".to_vec();
    s.record_artifact_content(a, "d1", &content).await.unwrap();
    // A retry of the same write (its connection broke after the commit).
    s.record_artifact_content(a, "d1", &content).await.unwrap();
    let got = s.attempt(a).await.unwrap().expect("the attempt");
    assert_eq!(got.step, Step::Artifact);
    assert_eq!(got.artifact_sha256.as_deref(), Some("d1"));
    let kept = s.artifact_content(a).await.unwrap();
    if s.keeps_artifacts() {
        assert_eq!(
            kept,
            Some(StoredArtifact {
                sha256: "d1".into(),
                content
            })
        );
    } else {
        assert_eq!(kept, None);
    }
    // An attempt that recorded its digest alone has no copy.
    let b = new_attempt(s, run, "t", "plan", 2).await;
    s.record_artifact(b, Some("d2")).await.unwrap();
    assert_eq!(s.artifact_content(b).await.unwrap(), None);
}

/// Approval requests and decisions: asking again returns the first request,
/// the first decision wins (a second is refused naming it), none is taken
/// at or after the expiry, an unknown request is said to be unknown.
async fn approvals_behaviour<S: RunStore>(s: &S) {
    let lock = s
        .try_lock(&LockKey::Task("t".into()), "me")
        .await
        .unwrap()
        .expect("the task's lock");
    let run = new_run(s, "t").await;
    let first = new_attempt(s, run, "t", "approve", 1).await;
    let second = new_attempt(s, run, "t", "approve", 2).await;
    let approvers = vec!["alice".to_string(), "bob".to_string()];
    let show = vec!["report.md".to_string()];
    let request = |attempt_id, expires_ms| NewApprovalRequest {
        run_id: run,
        attempt_id,
        task: "t",
        stage: "approve",
        approval: "release",
        approvers: &approvers,
        show: &show,
        requested_ms: 1_000,
        expires_ms,
    };
    let r1 = s.request_approval(&request(first, 10_000)).await.unwrap();
    // A resumed run asks again: the same request, its expiry unchanged.
    assert_eq!(
        s.request_approval(&request(first, 99_000)).await.unwrap(),
        r1
    );
    let r2 = s.request_approval(&request(second, 5_000)).await.unwrap();
    assert_ne!(r1, r2);
    let decide = |decision, decider, at_ms| NewDecision {
        decision,
        decider,
        comment: "why",
        at_ms,
    };
    let DecisionOutcome::Recorded(d1) = s
        .decide_approval(r1, &decide(Decision::Approved, "alice", 2_000))
        .await
        .unwrap()
    else {
        panic!("the first decision is recorded");
    };
    match s
        .decide_approval(r1, &decide(Decision::Rejected, "bob", 3_000))
        .await
        .unwrap()
    {
        DecisionOutcome::AlreadyDecided(d) => {
            assert_eq!((d.id, d.decider.as_str()), (d1, "alice"));
            assert_eq!(d.decision, Decision::Approved);
        }
        other => panic!("a second decision is refused, got {other:?}"),
    }
    assert_eq!(
        s.decide_approval(r2, &decide(Decision::Approved, "bob", 5_000))
            .await
            .unwrap(),
        DecisionOutcome::Expired
    );
    assert_eq!(
        s.decide_approval(r2 + 1000, &decide(Decision::Approved, "bob", 1_500))
            .await
            .unwrap(),
        DecisionOutcome::NoRequest
    );
    let all = s.approvals(Some("t")).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].request.approvers, approvers);
    assert_eq!(all[0].request.show, show);
    assert_eq!(all[0].request.expires_ms, 10_000);
    assert_eq!(
        all[0].decision.as_ref().map(|d| d.comment.as_str()),
        Some("why")
    );
    assert!(all[1].decision.is_none(), "the late decision left nothing");
    let of_second = s.approval_of_attempt(second).await.unwrap();
    assert_eq!(of_second.map(|a| a.request.id), Some(r2));
    assert!(s.approvals(Some("other")).await.unwrap().is_empty());
    drop(lock);
}

on_both!(steps, steps_round_trip);
on_both!(approvals, approvals_behaviour);
on_both!(artifacts, artifacts_behaviour);
on_both!(runs, runs_round_trip);
on_both!(queue, queue_behaviour);
on_both!(labels, labels_behaviour);
on_both!(locks, locks_behaviour);

// ------------------------------------------------- what a shared store adds

/// Ends a service's lease now, as if it had stopped renewing long ago.
async fn expire(schema: &PgSchema, s: &PostgresStore) {
    let id = s.service_id().expect("a writing store");
    schema
        .sql(&format!(
            "UPDATE services SET expires_at = clock_timestamp() - interval '1 second' WHERE id = '{id}'"
        ))
        .await;
}

#[test]
fn a_task_of_an_expired_service_is_taken_over_and_its_old_owner_is_fenced() {
    rt().block_on(async {
        let Some(schema) = PgSchema::new().await else {
            return;
        };
        let a = service(&schema, "a").await;
        let b = service(&schema, "b").await;
        enqueue(&a, "t").await;
        let claimed = a.take_queued().await.unwrap().expect("a claims t");
        assert_eq!(claimed.task, "t");
        assert!(b.take_queued().await.unwrap().is_none(), "t is held by a");
        let held = a
            .try_lock(&LockKey::Task("t".into()), "a's run")
            .await
            .unwrap()
            .expect("free");
        let run = new_run(&a, "t").await;
        let first = new_attempt(&a, run, "t", "plan", 1).await;
        let busy = b
            .try_lock(&LockKey::Task("t".into()), "b's run")
            .await
            .unwrap();
        assert!(busy
            .err()
            .is_some_and(|h| h.contains("a's run") && h.contains("service a")));
        let services = b.services().await.unwrap();
        let names: Vec<_> = services
            .iter()
            .map(|s| (s.name.as_str(), s.tasks_held, s.live))
            .collect();
        assert_eq!(names, [("a", 1, true), ("b", 0, true)]);

        expire(&schema, &a).await;
        let taken = b.take_queued().await.unwrap().expect("b takes t over");
        assert_eq!(
            (taken.task.as_str(), taken.state),
            ("t", QueueState::Running)
        );
        let _b_lock = b
            .try_lock(&LockKey::Task("t".into()), "b's run")
            .await
            .unwrap()
            .expect("the expired lock is free");
        // The stale owner writes nothing more for t.
        let refused = a.set_step(first, Step::Interrupted).await;
        assert!(
            matches!(refused, Err(StoreError::Fenced { .. })),
            "{refused:?}"
        );
        let refused = a
            .insert_attempt(&NewAttempt {
                run_id: run,
                task: "t",
                stage: "plan",
                attempt: 2,
                visit: 0,
                call_site: "plan",
                producer: ProducerKind::Runner,
                producer_name: "sh",
                argv: &[],
                defers: 0,
                log_path: "/l",
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::Fenced { .. })),
            "{refused:?}"
        );
        let moved = a
            .move_queued("t", QueueState::Running, QueueState::Finished, None)
            .await;
        assert!(
            !matches!(moved, Ok(true)),
            "the stale owner cannot settle t: {moved:?}"
        );
        let refused = a.record_artifact_content(first, "d", b"late").await;
        assert!(
            matches!(refused, Err(StoreError::Fenced { .. })),
            "{refused:?}"
        );
        assert_eq!(b.artifact_content(first).await.unwrap(), None);
        assert_eq!(
            a.attempts(run).await.unwrap().len(),
            1,
            "nothing recorded by the stale owner"
        );
        assert_eq!(
            a.attempt(first).await.unwrap().map(|x| x.step),
            Some(Step::Started)
        );
        // The taker resumes: its writes land.
        b.set_step(first, Step::Interrupted).await.unwrap();
        assert!(b
            .move_queued("t", QueueState::Running, QueueState::Finished, None)
            .await
            .unwrap());
        drop(held);
        b.close().await.unwrap();
        drop((a, b));
    });
}

#[test]
fn a_service_that_finds_its_lease_ended_stops_writing() {
    rt().block_on(async {
        let Some(schema) = PgSchema::new().await else {
            return;
        };
        let a = PostgresStore::open(&schema.url(), fast()).await.unwrap();
        let mut lost = a.lost();
        expire(&schema, &a).await;
        // The renewer notices at its next renewal (a third of the lease).
        tokio::time::timeout(Duration::from_secs(30), lost.wait_for(|l| *l))
            .await
            .expect("the loss is noticed")
            .expect("the store lives");
        let refused = a.try_lock(&LockKey::Task("x".into()), "a").await;
        assert!(
            matches!(refused, Err(StoreError::Fenced { .. })),
            "{refused:?}"
        );
        assert!(matches!(
            a.take_queued().await,
            Err(StoreError::Fenced { .. })
        ));
    });
}

#[test]
fn a_serial_stage_is_held_once_across_services_and_freed_with_the_lease() {
    rt().block_on(async {
        let Some(schema) = PgSchema::new().await else {
            return;
        };
        let a = service(&schema, "a").await;
        let b = service(&schema, "b").await;
        let key = LockKey::Stage("deploy".into());
        let _g = a.try_lock(&key, "task 1").await.unwrap().expect("free");
        assert!(b.try_lock(&key, "task 2").await.unwrap().is_err());
        expire(&schema, &a).await;
        assert!(
            b.try_lock(&key, "task 2").await.unwrap().is_ok(),
            "freed with a's lease"
        );
    });
}

#[test]
fn a_newer_schema_or_a_foreign_one_is_refused() {
    rt().block_on(async {
        let Some(schema) = PgSchema::new().await else {
            return;
        };
        let s = PostgresStore::open(&schema.url(), fast()).await.unwrap();
        s.close().await.unwrap();
        drop(s);
        schema
            .sql("UPDATE orch_meta SET value = '999' WHERE key = 'schema_version'")
            .await;
        let newer = PostgresStore::open(&schema.url(), fast()).await.err();
        assert!(matches!(newer, Some(StoreError::Newer { found: 999, .. })), "{newer:?}");
        let read = PostgresStore::open_existing(&schema.url()).await.err();
        assert!(matches!(read, Some(StoreError::Newer { .. })), "{read:?}");

        let Some(other) = PgSchema::new().await else {
            return;
        };
        other
            .sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{0}\"; SET search_path TO \"{0}\"; CREATE TABLE invoices (id int)", other.name))
            .await;
        let foreign = PostgresStore::open(&other.url(), fast()).await.err();
        let said = foreign.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(matches!(foreign, Some(StoreError::Foreign { .. })), "{foreign:?}");
        assert!(said.contains("1 table") && said.contains("no orch schema version"), "{said}");
        // Nothing recorded there yet: a read finds no store.
        let Some(empty) = PgSchema::new().await else {
            return;
        };
        assert!(PostgresStore::open_existing(&empty.url()).await.unwrap().is_none());
    });
}

#[test]
fn a_cancel_asked_through_one_service_is_found_by_the_holder_only() {
    rt().block_on(async {
        let Some(schema) = PgSchema::new().await else {
            return;
        };
        let a = service(&schema, "a").await;
        let b = service(&schema, "b").await;
        enqueue(&a, "t").await;
        assert!(
            !b.request_cancel("t").await.unwrap(),
            "a queued task is cancelled by a queue move, not a request"
        );
        a.take_queued().await.unwrap().expect("a claims t");
        assert!(a.cancel_requests().await.unwrap().is_empty());
        assert!(b.request_cancel("t").await.unwrap());
        assert!(b.request_cancel("t").await.unwrap(), "asking twice is fine");
        assert_eq!(a.cancel_requests().await.unwrap(), ["t"]);
        assert!(
            b.cancel_requests().await.unwrap().is_empty(),
            "b holds nothing"
        );
        assert!(!b.request_cancel("nosuch").await.unwrap());
        // Settled: no longer asked of anyone.
        assert!(a
            .move_queued("t", QueueState::Running, QueueState::Cancelled, None)
            .await
            .unwrap());
        assert!(a.cancel_requests().await.unwrap().is_empty());
        assert!(!b.request_cancel("t").await.unwrap());
    });
}

#[test]
fn a_store_of_one_host_has_no_cancel_requests() {
    let (s, dir) = sqlite("cancel-requests");
    rt().block_on(async {
        enqueue(&s, "t").await;
        s.take_queued().await.unwrap().expect("taken");
        // Its one service cancels its own tasks: nothing to hand over.
        assert!(!s.request_cancel("t").await.unwrap());
        assert!(s.cancel_requests().await.unwrap().is_empty());
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_service_long_dead_that_holds_nothing_is_forgotten_when_another_starts() {
    rt().block_on(async {
        let Some(schema) = PgSchema::new().await else {
            return;
        };
        let a = service(&schema, "a").await;
        let dead = |id: &str, ago: &str| {
            format!(
                "INSERT INTO services (id, name, host, pid, labels, started_at, renewed_at, expires_at)
                 VALUES ('{id}', '{id}', 'gone-host', 1, '[]', clock_timestamp() - interval '3 days',
                         clock_timestamp() - interval '{ago}', clock_timestamp() - interval '{ago}');"
            )
        };
        schema
            .sql(&format!(
                "{}{}{}{}
                 INSERT INTO queue (task, vars, worktree, state, owner, submitted_ms)
                     VALUES ('held', '{{}}', '/wt', 'running', 'old-holder', 0);
                 INSERT INTO locks (key, owner, guard, holder, taken_at)
                     VALUES ('stage:deploy', 'old-locker', 'g', 'someone', clock_timestamp() - interval '2 days');",
                dead("old-idle", "2 days"),
                dead("old-holder", "2 days"),
                dead("old-locker", "2 days"),
                dead("recent", "1 minute"),
            ))
            .await;
        let names = |s: Vec<ServiceRecord>| s.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(
            names(a.services().await.unwrap()),
            ["a", "old-holder", "old-idle", "old-locker", "recent"]
        );
        let _b = service(&schema, "b").await;
        assert_eq!(
            names(a.services().await.unwrap()),
            ["a", "b", "old-holder", "old-locker", "recent"],
            "only the long-dead service that holds nothing is gone"
        );
    });
}
