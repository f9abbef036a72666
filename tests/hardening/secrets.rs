//! Secrets: the value of an environment variable named `*_TOKEN` (and the
//! other default patterns) and of a variable marked `secret` reach the
//! producer, and nothing orch writes or prints: the store (and its WAL), the
//! `--json` events, the runner artifact, the attempt and alert logs,
//! `orch history --json`, `orch explain`.

use crate::common::*;
use sha2::{Digest, Sha256};

const TOKEN: &str = "tok-3f9a1c7e5b2d";
const API_KEY: &str = "key-8e6d4b2a0c9f";

fn pipeline() -> std::path::PathBuf {
    hardening_fixture("secrets.kdl")
}

fn orch(sb: &Sandbox) -> Orch {
    Orch::new(&sb.root)
        .env("DEPLOY_TOKEN", TOKEN)
        .env("T_OUT", sb.out())
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in [TOKEN, API_KEY] {
        assert!(
            !contains_bytes(bytes, secret.as_bytes()),
            "{what} holds the secret {secret}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn secret_values_reach_the_producer_and_nothing_orch_writes() {
    let sb = Sandbox::new("secrets");
    let run = orch(&sb)
        .arg("run")
        .arg("t1")
        .arg("-p")
        .arg(pipeline())
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--worktree")
        .arg(sb.wt())
        .arg("--var")
        .arg(format!("api-key={API_KEY}"))
        .arg("--json")
        .run();
    // build passes; deploy is a tool-error, exhausted, with the alert.
    run.expect_code(1);
    assert_eq!(run.finished().1, "failed", "{run}");

    // The producer got the real values.
    let digest: String = Sha256::digest(format!("{TOKEN}:{API_KEY}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        sb.out_file("received").map(|s| s.trim().to_string()),
        Some(digest),
        "{run}"
    );

    // The events: argv redacted, and nothing else holds them.
    assert_no_secret("the --json events", run.stdout.as_bytes());
    assert_no_secret("orch's stderr", run.stderr.as_bytes());
    let started = run.of_stage("attempt-started", "build");
    assert_eq!(started.len(), 1, "{run}");
    let argv: Vec<&str> = started[0]["argv"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    assert_eq!(argv[argv.len() - 2..], ["***", "***"], "{run}");

    // The runner artifact and the attempt log: the output is there, the
    // secrets are not (the first one was printed a byte at a time).
    let task = sb.task_dir("t1");
    let artifact = read(&task.join("build.md"));
    assert!(artifact.contains("token=*** key=***"), "{artifact}");
    assert!(artifact.contains("`sh -c"), "{artifact}");
    let log = read(&task.join("logs/build.1.log"));
    assert!(log.contains("token=*** key=***"), "{log}");
    assert!(log.contains("key on stderr: ***"), "{log}");
    assert!(log.starts_with("***\n"), "{log}");
    let alert_logs: Vec<_> = files_below(&task.join("logs"))
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("alert."))
        })
        .collect();
    assert_eq!(alert_logs.len(), 1, "{run}");
    assert_eq!(
        String::from_utf8_lossy(&alert_logs[0].1),
        "alert: token *** key ***\n"
    );

    // Every file orch wrote: the store (with its WAL and journal, if any),
    // the task directory.
    let files = files_below(&sb.state());
    assert!(
        files.iter().any(|(p, _)| p.ends_with("orch.db")),
        "{files:?}"
    );
    for (path, bytes) in &files {
        assert_no_secret(&path.display().to_string(), bytes);
    }

    // orch history --json reads them back redacted.
    let history = Orch::new(&sb.root)
        .arg("history")
        .arg("t1")
        .arg("--state-dir")
        .arg(sb.state())
        .arg("--json")
        .run();
    history.expect_code(0);
    assert!(history.stdout.contains("***"), "{history}");
    assert_no_secret("orch history --json", history.stdout.as_bytes());
    assert_no_secret("the store after history", &{
        let mut all = Vec::new();
        for (_, b) in files_below(&sb.state()) {
            all.extend(b);
        }
        all
    });

    // orch explain shows the argv redacted.
    let explain = orch(&sb)
        .arg("explain")
        .arg("build")
        .arg("-p")
        .arg(pipeline())
        .arg("--worktree")
        .arg(sb.wt())
        .arg("--var")
        .arg(format!("api-key={API_KEY}"))
        .run();
    explain.expect_code(0);
    assert!(
        explain.stdout.contains(r#""build", "***", "***"]"#),
        "{explain}"
    );
    assert_no_secret("orch explain", explain.stdout.as_bytes());
}

#[test]
fn a_resumed_run_takes_the_secret_variable_given_again() {
    // The run records `api-key` as `***`: a resume with the value given
    // again is no change of variables, and the producers get the value.
    let sb = Sandbox::new("secrets-resume");
    let run = |sb: &Sandbox| {
        orch(sb)
            .arg("run")
            .arg("t2")
            .arg("-p")
            .arg(pipeline())
            .arg("--state-dir")
            .arg(sb.state())
            .arg("--worktree")
            .arg(sb.wt())
            .arg("--var")
            .arg(format!("api-key={API_KEY}"))
            .arg("--json")
    };
    let crashed = run(&sb).env("ORCH_FAILPOINT", "before-spawn@deploy").run();
    assert_eq!(crashed.code(), None, "orch killed itself: {crashed}");
    let resumed = run(&sb).arg("--resume").run();
    resumed.expect_code(1);
    assert_eq!(resumed.finished().1, "failed", "{resumed}");
    let digest: String = Sha256::digest(API_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        sb.out_file("alert-received").map(|s| s.trim().to_string()),
        Some(digest),
        "{resumed}"
    );
    assert_no_secret("the resumed run's events", resumed.stdout.as_bytes());
    for (path, bytes) in files_below(&sb.state()) {
        assert_no_secret(&path.display().to_string(), &bytes);
    }
}
