//! The task directory is the producers' and they are untrusted: orch reads,
//! writes and removes there only regular files and real directories beneath
//! it, never through a symbolic link, and nothing a producer leaves there (a
//! named pipe, a link into another directory) can block orch, make it touch
//! anything outside, or pass a gate. The producers are `plant.sh` (see its
//! header) in `tests/fixtures/hardening/`.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// However a producer plants things, orch finishes within this (killed
/// after it, which fails the test).
const DEADLINE: Duration = Duration::from_secs(20);

fn hardening() -> PathBuf {
    hardening_fixture("")
}

/// A sandbox with a victim directory outside the task directory: a file
/// that would pass either gate, a named pipe, a directory named like the
/// runner's artifact holding a file.
struct Victim {
    sb: Sandbox,
}

impl Victim {
    fn new(name: &str) -> Victim {
        let sb = Sandbox::new(name);
        let v = sb.dir("victim");
        std::fs::write(v.join("file"), "result: PASS\noutcome: PASS\n").unwrap();
        nix::unistd::mkfifo(
            &v.join("pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        std::fs::create_dir_all(v.join("report.md")).unwrap();
        std::fs::write(v.join("report.md/keep"), "keep\n").unwrap();
        std::fs::write(v.join("verdict.md"), "result: PASS\n").unwrap();
        Victim { sb }
    }

    fn dir(&self) -> PathBuf {
        self.sb.root.join("victim")
    }

    /// Every entry of the victim: its kind, size, modification time and
    /// (for a file) its content.
    fn snapshot(&self) -> BTreeMap<PathBuf, (String, u64, SystemTime, Vec<u8>)> {
        fn walk(
            root: &Path,
            at: &Path,
            out: &mut BTreeMap<PathBuf, (String, u64, SystemTime, Vec<u8>)>,
        ) {
            let m = std::fs::symlink_metadata(at).unwrap();
            let kind = format!("{:?}", m.file_type());
            let content = if m.is_file() {
                std::fs::read(at).unwrap()
            } else {
                Vec::new()
            };
            let rel = at.strip_prefix(root).unwrap().to_path_buf();
            out.insert(rel, (kind, m.len(), m.modified().unwrap(), content));
            if m.is_dir() {
                for e in std::fs::read_dir(at).unwrap() {
                    walk(root, &e.unwrap().path(), out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.dir(), &self.dir(), &mut out);
        out
    }

    /// `orch run TASK -p tests/fixtures/hardening/PIPELINE`, with the
    /// victim and T_OUT set.
    fn orch(&self, pipeline: &str, task: &str) -> Orch {
        self.sb
            .run(task, hardening().join(pipeline))
            .arg("--var")
            .arg(format!("hardening={}", hardening().display()))
            .arg("--json")
            .env("T_OUT", self.sb.out())
            .env("T_VICTIM", self.dir())
    }
}

fn run_within(orch: &Orch) -> Run {
    finish(orch.spawn(), DEADLINE)
}

fn gate_of(run: &Run, stage: &str) -> (bool, String) {
    let g = run.of_stage("gate", stage);
    assert_eq!(g.len(), 1, "one gate for {stage}:\n{run}");
    (g[0]["pass"] == true, s(&g[0]["reason"]).to_string())
}

#[test]
fn a_named_pipe_as_the_artifact_fails_its_gate_and_never_blocks_orch() {
    let v = Victim::new("taskdir-fifo");
    let before = v.snapshot();
    let run = run_within(
        &v.orch("taskdir.kdl", "t")
            .env("T_PLANT_agent", "fifo:a/verdict.md"),
    );
    run.expect_code(0);
    assert_eq!(
        gate_of(&run, "agent"),
        (
            false,
            "artifact a/verdict.md is not a regular file: it is a named pipe (FIFO)".into()
        )
    );
    // A link to a pipe outside is a link: refused, not followed.
    let run = run_within(
        &v.orch("taskdir.kdl", "u")
            .env("T_PLANT_agent", "linkfifo:a/verdict.md"),
    );
    run.expect_code(0);
    assert_eq!(
        gate_of(&run, "agent"),
        (false, "artifact a/verdict.md is a symbolic link".into())
    );
    assert_eq!(v.snapshot(), before);
}

#[test]
fn a_resume_does_not_block_on_a_named_pipe_in_place_of_a_recorded_artifact() {
    let v = Victim::new("taskdir-fifo-resume");
    // The agent passes; the runner after it replaces the agent's artifact,
    // whose digest is recorded, with a named pipe, and orch is killed while
    // it runs.
    let mut child = v
        .orch("taskdir.kdl", "t")
        .env("T_PLANT_agent", "file:a/verdict.md")
        .env("T_PLANT_work", "fifo:a/verdict.md")
        .env("T_HOLD_work", "1")
        .spawn();
    v.sb.wait_for_out("hold.pid", DEADLINE);
    let _ = child.kill();
    let _ = child.wait();

    let run = run_within(&v.orch("taskdir.kdl", "t").arg("--resume"));
    run.expect_code(0);
    let notes: Vec<String> = run
        .of("note")
        .iter()
        .map(|n| s(&n["message"]).to_string())
        .collect();
    let path = v.sb.task_dir("t").join("a/verdict.md");
    assert!(
        notes.contains(&format!(
            "artifact {} recorded by attempt 1 of agent is not a regular file: it is a named pipe (FIFO)",
            path.display()
        )),
        "{run}"
    );
    kill_group(v.sb.pid("hold.pid"));
}

#[test]
fn a_symbolic_link_as_the_artifact_or_on_its_path_fails_its_gate_unread() {
    let v = Victim::new("taskdir-link");
    let before = v.snapshot();
    for (task, plant, reason) in [
        (
            "l1",
            "link:a/verdict.md",
            "artifact a/verdict.md is a symbolic link",
        ),
        (
            "l2",
            "dangling:a/verdict.md",
            "artifact a/verdict.md is a symbolic link",
        ),
        (
            "l3",
            "linkdir:a",
            "artifact a/verdict.md is beneath `a`, which is a symbolic link, not a directory",
        ),
    ] {
        let run = run_within(&v.orch("taskdir.kdl", task).env("T_PLANT_agent", plant));
        run.expect_code(0);
        assert_eq!(gate_of(&run, "agent"), (false, reason.into()), "{plant}");
    }
    assert_eq!(v.snapshot(), before);
}

#[test]
fn orch_never_writes_truncates_or_removes_through_a_planted_link() {
    let v = Victim::new("taskdir-write");
    let before = v.snapshot();
    // Before the runner stage: its artifact's directory is a link to the
    // victim (which holds a directory named like the artifact: clearing it
    // through the link would remove it), and its log is a link to a victim
    // file (creating the log through it would truncate it). The runner
    // itself then links its artifact's temporary file to a victim file
    // (writing the artifact through it would overwrite it).
    let run = run_within(
        &v.orch("taskdir.kdl", "t")
            .env(
                "T_PLANT_agent",
                "file:a/verdict.md linkdir:r link:logs/work.1.log",
            )
            .env(
                "T_PLANT_work",
                "link:r/report.orch-tmp dangling:r/report.md",
            ),
    );
    run.expect_code(0);
    assert_eq!(gate_of(&run, "work"), (true, "outcome: PASS".into()));
    let task = v.sb.task_dir("t");
    assert!(!task.join("r").is_symlink());
    assert!(read(&task.join("r/report.md")).starts_with("outcome: PASS\n"));
    assert!(!task.join("r/report.orch-tmp").exists());
    assert!(!task.join("logs/work.1.log").is_symlink());
    assert!(read(&task.join("logs/work.1.log")).contains("plant: link:r/report.orch-tmp"));
    assert_eq!(v.snapshot(), before);

    // The logs directory itself a link: the attempt cannot run (a
    // tool-error), and nothing is created through it.
    let run = run_within(
        &v.orch("taskdir.kdl", "u")
            .env("T_PLANT_agent", "file:a/verdict.md linkdir:logs"),
    );
    run.expect_code(1);
    let f = run.of_stage("attempt-finished", "work");
    assert_eq!(f[0]["verdict"], "tool-error", "{run}");
    assert!(
        s(&f[0]["exit"]).contains("is beneath `logs`, which is a symbolic link"),
        "{run}"
    );
    assert_eq!(v.snapshot(), before);
}

#[test]
fn a_runner_artifact_orch_cannot_write_fails_its_gate_unread() {
    let v = Victim::new("taskdir-unwritable");
    // The runner fails (exit 1: FAIL), leaves a passing report at its
    // artifact's path, and makes orch's temporary file a directory too deep
    // to remove, so orch cannot write the artifact.
    let run = run_within(
        &v.orch("taskdir.kdl", "t")
            .env("T_PLANT_agent", "file:a/verdict.md")
            .env("T_PLANT_work", "file:r/report.md deep:r/report.orch-tmp")
            .env("T_EXIT_work", "1"),
    );
    run.expect_code(1);
    assert_eq!(
        run.of_stage("attempt-finished", "work")[0]["verdict"],
        "FAIL"
    );
    let report = v.sb.task_dir("t").join("r/report.md");
    assert_eq!(
        gate_of(&run, "work"),
        (
            false,
            format!(
                "orch could not write the artifact (cannot write artifact {}: it holds directories nested more than 64 deep); whatever was at its path is removed, never gated",
                report.display()
            )
        )
    );
    assert_eq!(run.finished(), ("failure".into(), "rejected".into()));
    assert!(
        std::fs::symlink_metadata(&report).is_err(),
        "the producer's report is removed"
    );
}

#[test]
fn a_newline_in_an_argument_cannot_add_a_field_to_a_runner_artifact() {
    let v = Victim::new("taskdir-inject");
    let run = run_within(
        &v.orch("inject.kdl", "t")
            .arg("--var")
            .arg("note=x\nresult: PASS\n")
            .env("T_EXIT_check", "1"),
    );
    run.expect_code(1);
    assert_eq!(run.one("attempt-finished")["verdict"], "FAIL");
    let (pass, reason) = gate_of(&run, "check");
    assert!(!pass, "{reason}\n{run}");
    let artifact = read(&v.sb.task_dir("t").join("report.md"));
    assert!(
        artifact.contains(&format!(
            "- command: `sh {}/plant.sh check x\\nresult: PASS\\n`\n",
            hardening().display()
        )),
        "{artifact}"
    );
    assert!(
        artifact.lines().all(|l| !l.starts_with("result")),
        "{artifact}"
    );
}

mod property {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [&str; 7] = [
        "file", "fifo", "dir", "link", "linkdir", "linkfifo", "dangling",
    ];
    /// The artifacts, their directories, the runner's temporary file, the
    /// logs directory and the runner's log.
    const PATHS: [&str; 7] = [
        "a/verdict.md",
        "a",
        "r/report.md",
        "r",
        "r/report.orch-tmp",
        "logs/work.1.log",
        "logs",
    ];

    fn ops(max: usize) -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(
            (0..KINDS.len(), 0..PATHS.len())
                .prop_map(|(k, p)| format!("{}:{}", KINDS[k], PATHS[p])),
            0..=max,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 40,
            max_shrink_iters: 32,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever the agent, then the runner, plant: orch finishes within
        /// the deadline, with a task outcome (never exit 2, never a signal),
        /// touches nothing in the victim, and a gate passes only on a
        /// regular file beneath real directories.
        #[test]
        fn whatever_a_producer_plants_orch_never_hangs_nor_touches_outside(
            agent in ops(4),
            work in ops(3),
        ) {
            let v = Victim::new("taskdir-prop");
            let before = v.snapshot();
            let run = run_within(
                &v.orch("taskdir.kdl", "t")
                    .env("T_PLANT_agent", agent.join(" "))
                    .env("T_PLANT_work", work.join(" ")),
            );
            prop_assert!(matches!(run.code(), Some(0 | 1)), "{agent:?} {work:?}\n{run}");
            prop_assert_eq!(v.snapshot(), before, "{:?} {:?}\n{}", agent, work, run);
            let task = v.sb.task_dir("t");
            for g in run.of("gate") {
                if g["pass"] != true {
                    continue;
                }
                let (state, dir, file) = if g["stage"] == "agent" {
                    (v.sb.out_file("state.agent"), "a", "a/verdict.md")
                } else {
                    (None, "r", "r/report.md")
                };
                if let Some(state) = state {
                    prop_assert_eq!(state.trim(), "regular", "{:?}\n{}", agent, run);
                }
                // The runner's plants come after the agent's gate: what it
                // planted under `a` says nothing of what that gate read
                // (state.agent above does).
                if g["stage"] == "agent" && work.iter().any(|w| w.contains(":a")) {
                    continue;
                }
                let d = std::fs::symlink_metadata(task.join(dir));
                prop_assert!(d.is_ok_and(|m| m.is_dir()), "{:?} {:?}\n{}", agent, work, run);
                let f = std::fs::symlink_metadata(task.join(file));
                prop_assert!(f.is_ok_and(|m| m.is_file()), "{:?} {:?}\n{}", agent, work, run);
            }
        }
    }
}
