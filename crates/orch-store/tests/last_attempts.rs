//! `last_attempts`: the last attempt of every run in one go, the same as
//! asking `last_attempt` run by run (what the trait's default does).

use std::collections::BTreeMap;

use orch_store::{NewAttempt, NewRun, ProducerKind, RunStore, SqliteStore};

/// The embedded store's futures complete at once: polled once.
fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the embedded store does not wait"),
    }
}

#[test]
fn the_last_attempt_of_each_run_in_one_query() {
    let dir = std::env::temp_dir().join(format!("orch-last-attempts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = SqliteStore::open_dir(&dir).unwrap();
    let none = BTreeMap::new();
    let mut runs = Vec::new();
    for task in ["a", "b", "c"] {
        runs.push(
            block(s.create_run(&NewRun {
                task,
                pipeline_path: "p.kdl",
                pipeline_name: "p",
                pipeline_hash: "h",
                pipeline_text: "",
                vars: &none,
                worktree: "/wt",
                host: "h",
            }))
            .unwrap(),
        );
    }
    // a: two attempts, b: three (interleaved with a's), c: none.
    for (run, stage, attempt) in [
        (runs[0], "s1", 1),
        (runs[1], "s1", 1),
        (runs[0], "s2", 1),
        (runs[1], "s1", 2),
        (runs[1], "s2", 1),
    ] {
        block(s.insert_attempt(&NewAttempt {
            run_id: run,
            task: "t",
            stage,
            attempt,
            visit: 0,
            call_site: "c",
            producer: ProducerKind::Runner,
            producer_name: "r",
            argv: &[],
            defers: 0,
            log_path: "/log",
        }))
        .unwrap();
    }
    let all = block(s.last_attempts()).unwrap();
    let one_by_one: Vec<_> = runs
        .iter()
        .filter_map(|r| block(s.last_attempt(*r)).unwrap())
        .collect();
    assert_eq!(all, one_by_one);
    let got: Vec<(i64, &str, i64)> = all
        .iter()
        .map(|a| (a.run_id, a.stage.as_str(), a.attempt))
        .collect();
    assert_eq!(got, vec![(runs[0], "s2", 1), (runs[1], "s2", 1)]);
    let _ = std::fs::remove_dir_all(&dir);
}
