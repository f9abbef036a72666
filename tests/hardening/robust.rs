//! Robustness: signals, alerts cut off, a store deleted or read-only, files
//! written safely, messages that name what is wrong.

use crate::common::*;
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

fn hardening() -> PathBuf {
    hardening_fixture("")
}

/// `orch run TASK -p robust.kdl --state-dir state --worktree wt --json`,
/// from the sandbox root.
fn robust(sb: &Sandbox, task: &str) -> Orch {
    sb.run(task, hardening().join("robust.kdl"))
        .arg("--var")
        .arg(format!("dir={}", hardening().display()))
        .arg("--json")
        .env("T_OUT", sb.out())
}

/// Waits until a process is gone (not running, or a zombie).
fn wait_gone(pid: i32, within: Duration) -> bool {
    let until = std::time::Instant::now() + within;
    while running(pid) {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

// 16. SIGHUP (a closed terminal) is an interruption like SIGTERM.
#[test]
fn sighup_terminates_the_producer_and_leaves_the_run_resumable() {
    let sb = Sandbox::new("sighup");
    let child = robust(&sb, "t").env("T_ONCE_WAIT", "1").spawn();
    sb.wait_for_out("once.pid", Duration::from_secs(20));
    let producer = sb.pid("once.pid");
    signal(child.id(), Signal::SIGHUP);
    let run = finish(child, HANG);
    run.expect_code(3);
    assert!(
        wait_gone(producer, Duration::from_secs(5)),
        "the producer {producer} outlived orch's SIGHUP\n{run}"
    );
    assert_eq!(
        history_json(&sb, "t")["runs"][0]["status"],
        "interrupted",
        "{run}"
    );

    let resumed = robust(&sb, "t").arg("--resume").run();
    resumed.expect_code(0);
    assert_eq!(sb.out_lines("once.log"), ["call 1", "call 2"]);
}

// 17. An alert cut off by SIGINT stays pending and the resume sends it.
#[test]
fn an_alert_cut_off_by_sigint_is_sent_again_on_resume() {
    let sb = Sandbox::new("alert-sigint");
    let child = robust(&sb, "t").env("T_ONCE_CODE", "1").spawn();
    sb.wait_for_out("alert.pid", Duration::from_secs(20));
    let alert = sb.pid("alert.pid");
    signal(child.id(), Signal::SIGINT);
    let run = finish(child, HANG);
    run.expect_code(3);
    assert!(
        wait_gone(alert, Duration::from_secs(5)),
        "the alert {alert} outlived orch's SIGINT\n{run}"
    );
    assert!(run.of("alert").is_empty(), "no alert was delivered: {run}");
    assert_eq!(sb.out_lines("alert.log"), ["start 1"]);

    let resumed = robust(&sb, "t").arg("--resume").run();
    resumed.expect_code(1);
    assert_eq!(
        sb.out_lines("alert.log"),
        ["start 1", "start 2", "done 2"],
        "the resume re-ran the alert once, to its end\n{resumed}"
    );
    let sent = resumed.one("alert");
    assert_eq!(sent["ok"], true, "{resumed}");
    assert_eq!(
        sb.out_lines("once.log"),
        ["call 1"],
        "the stage did not run again"
    );
}

// 18. A store deleted under a run stops it, naming the store.
#[test]
fn a_store_deleted_mid_run_stops_the_run_with_exit_2_naming_it() {
    let sb = Sandbox::new("store-deleted");
    let child = robust(&sb, "t").env("T_ONCE_WAIT", "1").spawn();
    sb.wait_for_out("once.pid", Duration::from_secs(20));
    let db = sb.state().join("orch.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(sb.out().join("release"), "").unwrap();
    let run = finish(child, HANG);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "the run store {} was deleted or replaced while orch was using it",
            db.display()
        )),
        "{run}"
    );
    assert!(run.of("run-finished").is_empty(), "{run}");
}

/// Whether this process is root (permission bits do not stop it).
fn is_root() -> bool {
    // The effective uid: the second field of `Uid:` in /proc/self/status.
    read(std::path::Path::new("/proc/self/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

/// An `orch` that cannot write the store: as root, the same command run as
/// `nobody` through `setpriv`; otherwise the state directory is made
/// read-only (`restore` undoes it). `None` (with a message) when neither is
/// possible here.
fn unprivileged(sb: &Sandbox, args: &[&str]) -> Option<std::process::Command> {
    let orch = env!("CARGO_BIN_EXE_orch");
    if is_root() {
        let probe = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                orch,
                "--version",
            ])
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            eprintln!(
                "SKIPPED: running as root and cannot run orch as nobody with setpriv: the read-only store is not tested through permissions here"
            );
            return None;
        }
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", orch]);
        c.args(args).current_dir(&sb.root);
        Some(c)
    } else {
        let mut c = std::process::Command::new(orch);
        c.args(args).current_dir(&sb.root);
        Some(c)
    }
}

/// Every path under `dir` with its length.
fn listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path().display().to_string(), m.len()));
        }
    }
    out.sort();
    out
}

fn set_writable(path: &std::path::Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::metadata(&p).unwrap();
        let mode = m.permissions().mode();
        let mode = if writable {
            mode | 0o200
        } else {
            mode & !0o222
        };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        }
    }
}

// 19. history and status read a store they may not write, and leave nothing
// behind that breaks the next run.
#[test]
fn history_and_status_work_on_a_read_only_store_and_leave_it_usable() {
    let sb = Sandbox::new("read-only-store");
    robust(&sb, "t").run().expect_code(0);
    // The open-lock file is what the old read path created; without it, any
    // file a reader creates shows in the listing.
    let _ = std::fs::remove_file(sb.state().join("orch.db.open-lock"));
    let before = listing(&sb.state());
    let state = sb.state().display().to_string();
    if !is_root() {
        set_writable(&sb.state(), false);
    }
    let mut tested = false;
    for args in [
        vec!["history", "t", "--state-dir", &state],
        vec!["status", "--state-dir", &state],
    ] {
        let Some(mut c) = unprivileged(&sb, &args) else {
            break;
        };
        let out = c.output().expect("orch");
        let text = format!(
            "{args:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{text}");
        if args[0] == "history" {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("run #1 of task t: success"),
                "{text}"
            );
        }
        tested = true;
    }
    if !is_root() {
        set_writable(&sb.state(), true);
    }
    assert_eq!(
        listing(&sb.state()),
        before,
        "a read-only command wrote nothing"
    );
    if tested {
        // The store works as before for a run.
        robust(&sb, "u").run().expect_code(0);
    }
}

// 19. An `orch run` on a store it may not write says so, before anything ran.
#[test]
fn a_run_on_a_read_only_store_says_read_only() {
    let sb = Sandbox::new("read-only-run");
    robust(&sb, "t").run().expect_code(0);
    let state = sb.state().display().to_string();
    let pipeline = hardening().join("robust.kdl").display().to_string();
    let dir = format!("dir={}", hardening().display());
    let wt = sb.wt().display().to_string();
    if !is_root() {
        set_writable(&sb.state(), false);
    }
    let args = [
        "run",
        "u",
        "-p",
        &pipeline,
        "--state-dir",
        &state,
        "--worktree",
        &wt,
        "--var",
        &dir,
    ];
    let Some(mut c) = unprivileged(&sb, &args) else {
        return;
    };
    let out = c.env("T_OUT", sb.out()).output().expect("orch");
    if !is_root() {
        set_writable(&sb.state(), true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("it is read-only"), "{stderr}");
    assert!(!stderr.contains("damaged"), "{stderr}");
    assert!(sb.out_lines("once.log").len() == 1, "nothing ran: {stderr}");
}

// 20. `orch fmt` replaces a file whole: a write cut short (here by a file
// size limit of 0, the way a full disk cuts it) leaves the old text.
#[test]
fn fmt_cut_short_leaves_the_file_whole() {
    let sb = Sandbox::new("fmt-full");
    let file = sb.root.join("p.kdl");
    let text = "pipeline   \"x\"   start=\"a\"\n";
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 0; exec \"$0\" fmt \"$1\"")
        .arg(env!("CARGO_BIN_EXE_orch"))
        .arg(&file)
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot write {}", file.display())),
        "{stderr}"
    );
    assert_eq!(read(&file), text, "the pipeline is intact: {stderr}");
    let left: Vec<_> = std::fs::read_dir(&sb.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("orch-fmt"))
        .collect();
    assert!(left.is_empty(), "no temporary file is left: {left:?}");

    // Without the limit it is formatted in place, through a symbolic link
    // to the file it names (the link stays a link).
    let link = sb.root.join("link.kdl");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    Orch::new(&sb.root)
        .arg("fmt")
        .arg(&link)
        .run()
        .expect_code(0);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read(&file), "pipeline \"x\" start=\"a\"\n");
}

// 20. `orch init` never writes through a symbolic link, dangling or not.
#[test]
fn init_does_not_write_through_a_dangling_symlink() {
    let sb = Sandbox::new("init-symlink");
    let dir = sb.dir("here");
    let target = sb.root.join("elsewhere.kdl");
    std::os::unix::fs::symlink(&target, dir.join("pipeline.kdl")).unwrap();
    let run = Orch::new(&dir).arg("init").arg(&dir).run();
    run.expect_code(2);
    assert!(run.stderr.contains("already exists"), "{run}");
    assert!(
        !target.exists(),
        "nothing was written through the link: {run}"
    );
}

// 20. Nor through a link where its stand-in agent script goes.
#[test]
fn init_does_not_write_the_agent_script_through_a_symlink() {
    let sb = Sandbox::new("init-agent-symlink");
    let dir = sb.dir("here");
    let target = sb.root.join("elsewhere.sh");
    std::os::unix::fs::symlink(&target, dir.join("agent.sh")).unwrap();
    let run = Orch::new(&dir).arg("init").arg(&dir).run();
    run.expect_code(2);
    assert!(run.stderr.contains("already exists"), "{run}");
    assert!(
        !target.exists(),
        "nothing was written through the link: {run}"
    );
    assert!(
        !dir.join("pipeline.kdl").exists(),
        "nothing was written: {run}"
    );
}

// 20. An unwritable `--junit` path is refused before anything runs.
#[test]
fn an_unwritable_junit_path_is_refused_before_the_run() {
    let sb = Sandbox::new("junit-unwritable");
    let junit = sb.root.join("missing-dir").join("report.xml");
    let run = robust(&sb, "t").arg("--junit").arg(&junit).run();
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "cannot write the JUnit report {}",
            junit.display()
        )) && run.stderr.contains("nothing was run"),
        "{run}"
    );
    assert!(sb.out_lines("once.log").is_empty(), "nothing ran: {run}");
    assert!(!sb.state().join("orch.db").exists(), "nothing was recorded");

    // A writable one gets the report.
    let junit = sb.root.join("report.xml");
    robust(&sb, "t")
        .arg("--junit")
        .arg(&junit)
        .run()
        .expect_code(0);
    assert!(read(&junit).contains("<testsuite"));
}

// 21. `history --state-dir` on a regular file is an error, not "no runs".
#[test]
fn history_on_a_regular_file_is_not_a_directory() {
    let sb = Sandbox::new("history-file");
    let file = sb.root.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for cmd in ["history", "status"] {
        let run = Orch::new(&sb.root)
            .arg(cmd)
            .arg("--state-dir")
            .arg(&file)
            .run();
        run.expect_code(2);
        assert!(
            run.stderr.contains(&format!(
                "the state directory {} is not a directory",
                file.display()
            )),
            "{run}"
        );
    }
}

// 21. Two stages share an artifact: the second stage's attempt cleared it,
// so a resume does not report it gone.
#[test]
fn a_resume_does_not_report_an_artifact_a_later_attempt_cleared() {
    let sb = Sandbox::new("shared-artifact");
    let pipeline = hardening().join("resume-vars.kdl");
    let base = || {
        sb.run("t", &pipeline)
            .arg("--var")
            .arg(format!("scripts={}", scripts().display()))
            .arg("--json")
            .env("T_OUT", sb.out())
    };
    let crashed = base().env("ORCH_FAILPOINT", "before-spawn@second").run();
    assert_eq!(crashed.code(), None, "{crashed}");
    let resumed = base().arg("--resume").run();
    resumed.expect_code(0);
    let notes: Vec<String> = resumed
        .of("note")
        .iter()
        .map(|n| s(&n["message"]).to_string())
        .collect();
    assert!(
        notes.iter().all(|n| !n.contains("artifact")),
        "no artifact note: {notes:?}"
    );

    // A digest that the latest attempt recorded is still checked.
    std::fs::write(sb.task_dir("t").join("report.md"), "tampered").unwrap();
    let again = base()
        .arg("--restart")
        .env("ORCH_FAILPOINT", "after-gate@second")
        .run();
    assert_eq!(again.code(), None, "{again}");
    std::fs::write(sb.task_dir("t").join("report.md"), "tampered").unwrap();
    let resumed = base().arg("--resume").run();
    resumed.expect_code(0);
    let notes: Vec<String> = resumed
        .of("note")
        .iter()
        .map(|n| s(&n["message"]).to_string())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("changed since attempt 1 of second recorded it")),
        "{notes:?}"
    );
}

// 21. A missing working directory is named as such, not as a missing
// executable.
#[test]
fn a_missing_cwd_is_reported_as_the_missing_directory() {
    let sb = Sandbox::new("missing-cwd");
    let file = sb.root.join("cwd.kdl");
    let text = std::fs::read_to_string(hardening().join("robust.kdl"))
        .unwrap()
        .replace(
            "    writes \"report\"\n}\n\ncall-site",
            "    writes \"report\"\n    cwd \"{worktree}/missing\"\n}\n\ncall-site",
        );
    assert!(text.contains("missing"), "the fixture changed");
    std::fs::write(&file, text).unwrap();
    // The stage fails closed and pages: the alert need not wait.
    std::fs::write(sb.out().join("release"), "").unwrap();
    let run = sb
        .run("t", &file)
        .arg("--var")
        .arg(format!("dir={}", hardening().display()))
        .arg("--json")
        .env("T_OUT", sb.out())
        .run();
    run.expect_code(1);
    let finished = run.one("attempt-finished");
    let exit = s(&finished["exit"]);
    assert!(
        exit.contains(&format!(
            "the working directory {} cannot be used",
            sb.wt().join("missing").display()
        )),
        "{run}"
    );
    assert!(!exit.contains("`sh`"), "{run}");
}

// 21. A full disk: the run stops with exit 2 naming the store and "disk
// full", never as a damaged store; once there is room again the store reads
// back whole and `--resume` finishes the task. The state directory is a
// 1 MiB tmpfs mounted in a user and mount namespace of the test's own
// (`unshare`), filled by the producer's log.
#[test]
fn a_full_disk_stops_the_run_with_exit_2_and_the_store_stays_intact() {
    let sb = Sandbox::new("disk-full");
    let pipeline = repo_root().join("tests/fixtures/hardening/disk-full.kdl");
    std::fs::write(sb.wt().join("big"), "").unwrap();
    std::fs::create_dir_all(sb.state()).unwrap();
    let script = r#"
        mount -t tmpfs -o size=1m tmpfs "$STATE" || { echo "cannot mount a tmpfs"; exit 99; }
        "$ORCH" run t -p "$PIPELINE" --state-dir "$STATE" --worktree "$WT" 2>&1
        echo "first run exit $?"
        rm -f "$WT/big" "$STATE"/tasks/t/logs/*
        "$ORCH" history t --state-dir "$STATE" --json > "$OUT/history.json"
        echo "history exit $?"
        "$ORCH" run t -p "$PIPELINE" --state-dir "$STATE" --worktree "$WT" --resume 2>&1
        echo "resume exit $?"
    "#;
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("ORCH", env!("CARGO_BIN_EXE_orch"))
        .env("PIPELINE", &pipeline)
        .env("STATE", sb.state())
        .env("WT", sb.wt())
        .env("OUT", sb.out())
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare (util-linux) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the test needs a user and mount namespace (unshare) to mount a small tmpfs: {said}"
    );
    assert!(said.contains("first run exit 2"), "{said}");
    assert!(
        said.contains(&format!(
            "cannot write the run store {}: disk full",
            sb.state().join("orch.db").display()
        )),
        "{said}"
    );
    assert!(!said.contains("damaged"), "{said}");
    assert!(said.contains("history exit 0"), "{said}");
    let history: serde_json::Value =
        serde_json::from_str(&sb.out_file("history.json").unwrap_or_default())
            .unwrap_or_else(|e| panic!("history --json: {e}: {said}"));
    assert_eq!(history["runs"][0]["task"], "t", "{history}");
    assert!(said.contains("resume exit 0"), "{said}");
    assert!(said.contains("task t: success"), "{said}");
}
