//! The recipes of docs/ci.md, run for real: the pre-commit hook in a
//! throw-away git repository, and the workflow's `orch` steps.

use std::path::{Path, PathBuf};
use std::process::Command;

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ci.md")).unwrap()
}

/// The fenced block of `lang` whose first line contains `marker`.
fn block(lang: &str, marker: &str) -> String {
    let doc = doc();
    let fence = format!("```{lang}\n");
    for part in doc.split(&fence).skip(1) {
        let body = part.split("```").next().unwrap_or("");
        if body.lines().take(2).any(|l| l.contains(marker)) {
            return body.to_string();
        }
    }
    panic!("no ```{lang} block with {marker} in docs/ci.md");
}

/// PATH with the freshly built orch first.
fn path_with_orch() -> String {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_orch())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs")
}

/// What a git command printed; git passes a hook's output on stderr.
fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_pre_commit_hook_refuses_unformatted_and_invalid_pipelines() {
    let dir = std::env::temp_dir().join(format!("orch-ci-hook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(git(&dir, &["init", "-q"]).status.success());
    let hook = dir.join(".git/hooks/pre-commit");
    std::fs::write(&hook, block("sh", ".git/hooks/pre-commit")).unwrap();
    assert!(Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap()
        .success());

    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tooling/gate-fails.kdl"),
    )
    .unwrap();
    // Unformatted: refused.
    std::fs::write(
        dir.join("pipeline.kdl"),
        good.replace("pipeline \"gate-fails\"", "pipeline   \"gate-fails\""),
    )
    .unwrap();
    git(&dir, &["add", "pipeline.kdl"]);
    let out = git(&dir, &["commit", "-q", "-m", "unformatted"]);
    assert!(
        !out.status.success(),
        "an unformatted pipeline must not commit"
    );
    assert!(
        said(&out).contains("would reformat pipeline.kdl"),
        "{}",
        said(&out)
    );

    // Formatted but invalid (a misspelt stage): refused, with the finding.
    std::fs::write(
        dir.join("pipeline.kdl"),
        good.replace("pass \"done\"", "pass \"dnoe\""),
    )
    .unwrap();
    git(&dir, &["add", "pipeline.kdl"]);
    let out = git(&dir, &["commit", "-q", "-m", "invalid"]);
    assert!(!out.status.success(), "an invalid pipeline must not commit");
    assert!(said(&out).contains("orch::unknown-stage"), "{}", said(&out));

    // Formatted and valid: commits.
    std::fs::write(dir.join("pipeline.kdl"), &good).unwrap();
    git(&dir, &["add", "pipeline.kdl"]);
    let out = git(&dir, &["commit", "-q", "-m", "good"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_workflow_steps_pass_on_this_repository() {
    let workflow = block("yaml", ".github/workflows");
    let steps: Vec<&str> = workflow
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- run: orch "))
        .collect();
    assert_eq!(steps.len(), 3, "{workflow}");
    for step in steps {
        let out = Command::new(env!("CARGO_BIN_EXE_orch"))
            .args(step.split_whitespace())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "orch {step}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn github_format_annotates_the_offending_line() {
    let dir = std::env::temp_dir().join(format!("orch-ci-gh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.kdl");
    std::fs::write(&bad, "pipeline \"p\" start=\"nowhere\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["validate", "--format", "github", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(
            |l| l.starts_with(&format!("::error file={},line=1,col=", bad.display()))
            // `:` is escaped in workflow-command properties.
            && l.contains("title=orch%3A%3Aunknown-stage::stage `nowhere` is not defined")
        ),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
