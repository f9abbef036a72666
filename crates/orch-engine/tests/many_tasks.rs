//! Many tasks in one process: 50 tasks run at once on one engine and one
//! store, each with a producer that leaves an escaped process behind, while
//! another task's producer is still running and the process has a child of
//! its own. Every task's escapee is reaped and reported by that task alone;
//! nothing that belongs to someone else is touched.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orch_engine::events::{Event, Sink};
use orch_engine::{prepare, run, RunOptions};
use orch_store::SqliteStore;

const TASKS: usize = 50;

const PIPELINE: &str = r#"
pipeline "many" start="work" {
    var "scripts" "."
}

artifact "report" path="report.md" {
    field "result" "PASS" "FAIL"
}

gate "passed" artifact="report" {
    expect "result" "PASS"
}

runner "escaper" {
    command "sh" "{var.scripts}/escape.sh"
    timeout "60s"
    grace "1s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "report"
}

call-site "work" axis="C" verdict="machine" mode="runner" {
    runner "escaper"
}

stage "work" call-site="work" gate="passed" {
    pass "done"
    exhausted "failed"
}

end "done" outcome="success"
end "failed" outcome="failure"
"#;

/// Leaves a process that escaped the producer's group (`setsid`): the
/// escapee writes its own pid once it has left the group, and the producer
/// waits for that before it goes on (else the escapee could still be in the
/// group when the producer ends, and die with it as a member). A task with a
/// hold file waits for the file to go before it ends.
const SCRIPT: &str = r#"
pidfile="$ORCH_TASK_DIR/escapee.pid"
setsid sh -c 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 300' escapee "$pidfile" &
while [ ! -e "$pidfile" ]; do sleep 0.01; done
hold="$ORCH_WORKTREE/hold-$ORCH_TASK"
while [ -e "$hold" ]; do sleep 0.05; done
exit 0
"#;

/// Collects a task's events.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Sink for Recorder {
    fn event(&mut self, e: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
    }
}

impl Recorder {
    /// The leaks each finished attempt reported.
    fn leaks(&self) -> Vec<Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|e| match e {
                Event::AttemptFinished { leaked, .. } => Some(leaked.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Alive and not a zombie (a reaped-later zombie is dead for our purpose).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "orch-many-tasks-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn options(dir: &Path, task: &str) -> RunOptions {
    RunOptions {
        task: task.into(),
        pipeline: dir.join("pipeline.kdl"),
        worktree: Some(dir.to_path_buf()),
        vars: vec![("scripts".into(), dir.display().to_string())],
        state_dir: dir.join("state"),
        resume: false,
        restart: false,
        allow_changed_pipeline: false,
        allow_changed_vars: false,
        wait: false,
        labels: None,
    }
}

fn escapee_of(dir: &Path, task: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join("state/tasks").join(task).join("escapee.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one leak a task's only attempt reported must be its own escapee.
fn assert_own_leak(task: &str, rec: &Recorder, escapee: i32) {
    let leaks = rec.leaks();
    assert_eq!(leaks.len(), 1, "{task}: one attempt, got {leaks:?}");
    assert_eq!(
        leaks[0].len(),
        1,
        "{task}: exactly its own escapee, got {:?}",
        leaks[0]
    );
    assert!(
        leaks[0][0].starts_with(&format!("pid {escapee} ")),
        "{task}: reported {:?}, its escapee is {escapee}",
        leaks[0]
    );
}

#[test]
fn fifty_tasks_at_once_each_reap_only_their_own_escapees() {
    let dir = scratch();
    std::fs::write(dir.join("pipeline.kdl"), PIPELINE).expect("write the pipeline");
    std::fs::write(dir.join("escape.sh"), SCRIPT).expect("write the script");
    std::fs::write(dir.join("hold-holder"), "").expect("write the hold file");
    orch_engine::process::become_subreaper();
    // A child of this process that belongs to no task.
    let mut bystander = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("spawn the bystander");
    let bystander_pid = bystander.id() as i32;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("the state dir");
    let store = Arc::new(SqliteStore::open_dir(&state).expect("the store"));

    let start = |task: String| {
        let rec = Recorder::default();
        let prepared = prepare(options(&dir, &task)).expect("a valid task");
        let handle = rt.spawn(run(
            prepared,
            store.clone(),
            Box::new(rec.clone()),
            cancel.clone(),
        ));
        (task, rec, handle)
    };

    // A task whose producer is still running while the others reap.
    let holder = start("holder".into());
    wait_until("the holder's escapee", || {
        escapee_of(&dir, "holder").is_some()
    });
    let holder_escapee = escapee_of(&dir, "holder").expect("its pid");

    let tasks: Vec<_> = (0..TASKS).map(|i| start(format!("task-{i}"))).collect();
    for (task, rec, handle) in tasks {
        let finished = rt
            .block_on(handle)
            .expect("the task's future")
            .unwrap_or_else(|e| panic!("{task}: {e}"));
        assert_eq!(finished.exit_code, 0, "{task} succeeds");
        let escapee = escapee_of(&dir, &task).unwrap_or_else(|| panic!("{task}: no escapee pid"));
        assert!(!alive(escapee), "{task}: its escapee {escapee} was reaped");
        assert_own_leak(&task, &rec, escapee);
    }

    // Nothing of the running task, nor the process's own child, was touched.
    assert!(alive(holder_escapee), "the holder's escapee is left alone");
    assert!(alive(bystander_pid), "the bystander is left alone");
    assert!(!holder.2.is_finished(), "the holder is still running");

    std::fs::remove_file(dir.join("hold-holder")).expect("release the holder");
    let (task, rec, handle) = holder;
    let finished = rt
        .block_on(handle)
        .expect("the holder's future")
        .unwrap_or_else(|e| panic!("{task}: {e}"));
    assert_eq!(finished.exit_code, 0);
    assert!(
        !alive(holder_escapee),
        "the holder's escapee is reaped at its end"
    );
    assert_own_leak(&task, &rec, holder_escapee);
    assert!(alive(bystander_pid), "the bystander is still left alone");

    let _ = bystander.kill();
    let _ = bystander.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
