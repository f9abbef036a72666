//! The service's queue through the `RunStore` trait: submission order, a
//! name queued once (nor when it has runs), taking each task once, state
//! moves only from the state named, all of it kept across a reopen.

use std::collections::BTreeMap;

use orch_store::{NewQueuedTask, NewRun, QueueState, RunStore, SqliteStore};

fn store(name: &str) -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("orch-queue-{name}-{}", std::process::id()));
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

#[test]
fn tasks_are_queued_once_and_taken_in_submission_order() {
    let (s, dir) = store("order");
    let mut vars = BTreeMap::new();
    vars.insert("flavour".to_string(), "mild".to_string());
    let none = BTreeMap::new();
    let new = |task: &'static str, vars: &'static BTreeMap<String, String>| NewQueuedTask {
        task,
        vars,
        worktree: "/wt",
        needs: &[],
    };
    let vars: &'static BTreeMap<String, String> = Box::leak(Box::new(vars));
    let empty: &'static BTreeMap<String, String> = Box::leak(Box::default());
    let a = block(s.enqueue(&new("a", vars))).unwrap();
    let b = block(s.enqueue(&new("b", empty))).unwrap();
    assert!(a.is_some() && b.is_some() && a < b);
    assert_eq!(
        block(s.enqueue(&new("a", empty))).unwrap(),
        None,
        "a exists"
    );
    // A task with runs (from `orch run`) is refused too.
    block(s.create_run(&NewRun {
        task: "ran",
        pipeline_path: "p.kdl",
        pipeline_name: "p",
        pipeline_hash: "h",
        pipeline_text: "",
        vars: &none,
        worktree: "/wt",
        host: "h",
    }))
    .unwrap();
    assert_eq!(block(s.enqueue(&new("ran", empty))).unwrap(), None);

    let queued = block(s.queue(Some(QueueState::Queued))).unwrap();
    assert_eq!(
        queued.iter().map(|t| t.task.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(queued[0].vars, *vars);
    let first = block(s.take_queued()).unwrap().unwrap();
    assert_eq!(
        (first.task.as_str(), first.state),
        ("a", QueueState::Running)
    );
    assert!(first.started_ms.is_some());
    // Only b is left to take; a is not taken twice.
    assert_eq!(block(s.take_queued()).unwrap().unwrap().task, "b");
    assert_eq!(block(s.take_queued()).unwrap(), None);

    // Moves happen only from the state named.
    assert!(!block(s.move_queued("a", QueueState::Queued, QueueState::Cancelled, None)).unwrap());
    assert!(
        block(s.move_queued("a", QueueState::Running, QueueState::Failed, Some("why"))).unwrap()
    );
    let a = block(s.queued_task("a")).unwrap().unwrap();
    assert_eq!(
        (a.state, a.error.as_deref()),
        (QueueState::Failed, Some("why"))
    );
    assert!(a.finished_ms.is_some());
    assert_eq!(block(s.queue(None)).unwrap().len(), 2);
    assert_eq!(block(s.queued_task("zz")).unwrap(), None);

    // It all survives a reopen.
    drop(s);
    let s = SqliteStore::open_dir(&dir).unwrap();
    let running = block(s.queue(Some(QueueState::Running))).unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].task, "b");
    let _ = std::fs::remove_dir_all(&dir);
}
