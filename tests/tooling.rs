//! `orch fmt`, `orch init`, `orch run --junit`, completions and the man page,
//! run as the real binary.

use std::path::PathBuf;
use std::process::Command;

fn orch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("orch runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("orch-tooling-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn fmt_check_lists_files_and_fmt_is_idempotent() {
    let d = temp("fmt");
    let messy = d.join("messy.kdl");
    std::fs::write(
        &messy,
        "// keep me\npipeline   \"p\"  start=\"s\"{\n  var \"x\"    \"1\"   // and me\n}\n",
    )
    .unwrap();
    let m = messy.to_str().unwrap();
    let (code, out, _) = orch(&["fmt", "--check", m]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("would reformat {m}")), "{out}");
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "// keep me\npipeline   \"p\"  start=\"s\"{\n  var \"x\"    \"1\"   // and me\n}\n",
        "--check changes nothing"
    );
    let (code, _, err) = orch(&["fmt", m]);
    assert_eq!(code, 0, "{err}");
    let once = std::fs::read_to_string(&messy).unwrap();
    assert_eq!(
        once,
        "// keep me\npipeline \"p\" start=\"s\" {\n    var \"x\" \"1\"  // and me\n}\n"
    );
    let (code, out, _) = orch(&["fmt", "--check", m]);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "formatted files pass --check"
    );
    let (code, _, err) = orch(&["fmt", "--check", "pipelines/"]);
    assert_eq!(code, 0, "the project's pipelines are formatted: {err}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn fmt_reports_a_syntax_error_with_its_place() {
    let d = temp("fmt-bad");
    let bad = d.join("bad.kdl");
    std::fs::write(&bad, "pipeline \"p\" start=\"s\" {\n").unwrap();
    let (code, _, err) = orch(&["fmt", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.kdl:"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn init_writes_a_starter_that_validates_and_never_overwrites() {
    let d = temp("init");
    let dir = d.join("project");
    let dir_s = dir.to_str().unwrap();
    let (code, out, err) = orch(&["init", dir_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pipeline.kdl") && out.contains("designer.md"),
        "{out}"
    );
    let pipeline = dir.join("pipeline.kdl");
    let (code, out, _) = orch(&["validate", "--strict", pipeline.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "the starter validates clean, warnings included: {out}"
    );
    let before = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(dir.join("prompts/tester.md"), "mine").unwrap();
    std::fs::write(dir.join("agent.sh"), "my agent").unwrap();
    let (code, _, err) = orch(&["init", dir_s]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&pipeline).unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(dir.join("prompts/tester.md")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("agent.sh")).unwrap(),
        "my agent"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_starter_runs_green_out_of_the_box_from_any_directory() {
    let d = temp("init-run");
    let dir = d.join("project");
    let dir_s = dir.to_str().unwrap();
    let (code, _, err) = orch(&["init", dir_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        dir.join("agent.sh").is_file(),
        "orch init writes the stand-in agent"
    );
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["run", "first", "-p"])
        .arg(dir.join("pipeline.kdl"))
        .arg("--worktree")
        .arg(&dir)
        .arg("--state-dir")
        .arg(d.join("state"))
        .current_dir(&d)
        .output()
        .expect("orch runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("task first: success (end `done`)"),
        "{stdout}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the starter runs in seconds, not after a retry delay"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn junit_report_has_a_case_per_attempt_and_the_gate_reason() {
    let d = temp("junit");
    let xml = d.join("report.xml");
    let state = d.join("state");
    let (code, _, err) = orch(&[
        "run",
        "j1",
        "-p",
        "tests/fixtures/tooling/gate-fails.kdl",
        "--state-dir",
        state.to_str().unwrap(),
        "--junit",
        xml.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let report = std::fs::read_to_string(&xml).unwrap();
    assert!(
        report.contains("tests=\"2\" failures=\"2\" errors=\"0\" skipped=\"0\""),
        "{report}"
    );
    assert!(
        report.contains("<testcase classname=\"orch\" name=\"j1\" time=\"0.000\">\n      <failure type=\"outcome\" message=\"the run reached end `failed`, outcome failure: test exhausted → failed: `result` is FAIL, expected PASS; the stage has no `fail` transition\"/>"),
        "the run's own case fails with the reason it ended: {report}"
    );
    assert!(
        report.contains("<testcase classname=\"test\" name=\"test attempt 1 (runner:failing)\""),
        "{report}"
    );
    assert!(
        report.contains("<failure type=\"gate\" message=\"`result` is FAIL, expected PASS\"/>"),
        "{report}"
    );
    assert!(
        report.contains("<system-out>1 passed, 1 failed &lt;oops&gt;</system-out>"),
        "{report}"
    );
    assert!(
        report.contains("<property name=\"outcome\" value=\"failure\"/>"),
        "{report}"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = orch(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(
            out.contains("validate") && out.contains("roadmap"),
            "{shell}: {out}"
        );
    }
    let (code, out, _) = orch(&["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH orch 1"), "{out}");
    assert!(out.contains("validate"), "{out}");
}

/// Every subcommand of `orch`.
const COMMANDS: [&str; 19] = [
    "validate",
    "run",
    "history",
    "status",
    "map",
    "roadmap",
    "graph",
    "explain",
    "fmt",
    "init",
    "completions",
    "man",
    "schema",
    "serve",
    "submit",
    "cancel",
    "lsp",
    "approve",
    "reject",
];

#[test]
fn man_dir_writes_a_page_for_every_command_the_main_page_refers_to() {
    let d = temp("man-dir").join("pages");
    let (code, _, err) = orch(&["man", "--dir", d.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (_, main_page, _) = orch(&["man"]);
    for sub in COMMANDS {
        let page = d.join(format!("orch-{sub}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        assert!(text.contains(".TH"), "{page:?} is a man page");
        assert!(
            main_page.contains(&format!("orch\\-{sub}(1)")),
            "the main page refers to orch-{sub}(1)"
        );
    }
    assert!(d.join("orch.1").exists());
}

/// The options (each as its spellings: `-p`, `--pipeline`) and possible
/// values `orch CMD --help` lists.
fn documented_surface(cmd: &str) -> Vec<Vec<String>> {
    let (code, help, err) = orch(&[cmd, "--help"]);
    assert_eq!(code, 0, "{err}");
    let mut out = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') && !t.starts_with("-h, --help") {
            let spellings: Vec<String> = t
                .split_whitespace()
                .take_while(|w| w.starts_with('-'))
                .map(|w| w.trim_end_matches(',').to_string())
                .collect();
            out.push(spellings);
        }
        if let Some((_, values)) = line.split_once("[possible values: ") {
            out.extend(
                values
                    .trim_end_matches(']')
                    .split(", ")
                    .map(|v| vec![v.to_string()]),
            );
        }
    }
    out
}

#[test]
fn every_flag_and_value_of_every_command_is_in_the_readme_or_its_docs_page() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut missing = Vec::new();
    for cmd in COMMANDS {
        // The command's row of the README's table, and its own page if it has one.
        let row: String = readme
            .lines()
            .filter(|l| {
                l.starts_with(&format!("| `orch {cmd}")) || l.contains(&format!(", `orch {cmd}"))
            })
            .collect();
        assert!(
            !row.is_empty(),
            "the README's table has a row for orch {cmd}"
        );
        let page = std::fs::read_to_string(root.join(format!("docs/{cmd}.md"))).unwrap_or_default();
        for spellings in documented_surface(cmd) {
            if !spellings
                .iter()
                .any(|w| row.contains(w.as_str()) || page.contains(w.as_str()))
            {
                missing.push(format!("orch {cmd} {}", spellings.join(", ")));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

/// The transport blocks docs/agents.md offers must be valid orch: each is
/// put in a small pipeline with an LLM stage that uses it, and validated.
#[test]
fn every_transport_block_in_the_agents_guide_validates() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/agents.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```kdl\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .collect();
    assert!(blocks.len() >= 4, "the guide has its transport blocks");
    let d = temp("agents-doc");
    std::fs::write(
        d.join("prompt.md"),
        "Write {task-dir}/r.md with `result: PASS`.\n",
    )
    .unwrap();
    for block in blocks {
        let name = block
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("a named transport: {block}"));
        let pipeline = format!(
            r#"pipeline "agents" start="work"
{block}
artifact "r" path="r.md" {{
    field "result" "PASS" "FAIL"
}}
gate "ok" artifact="r" {{
    expect "result" "PASS"
}}
call-site "worker" axis="C" verdict="judgement" mode="llm" {{
    llm transport="{name}" prompt="prompt.md"
    why "a judgement the guide's agents make"
}}
stage "work" call-site="worker" gate="ok" {{
    pass "done"
    exhausted "failed"
}}
end "done" outcome="success"
end "failed" outcome="failure"
"#
        );
        let file = d.join(format!("{name}.kdl"));
        std::fs::write(&file, pipeline).unwrap();
        let (code, out, err) = orch(&["validate", "--format", "json", file.to_str().unwrap()]);
        // Warnings (an agent CLI not installed here) are fine; errors are not.
        let doc: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        let errors: Vec<&serde_json::Value> = doc["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["severity"] == "error")
            .collect();
        assert!(
            errors.is_empty() && code != 2,
            "transport {name}: {errors:?}\n{err}"
        );
    }
}

/// docs/language.md §2's complete example, saved as the page says with its
/// prompt beside it, validates with no error and no warning but the one a
/// machine without `claude` gives.
#[test]
fn the_language_guides_complete_example_validates_as_shown() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/language.md")).unwrap();
    let section = doc
        .split("## 2. A complete example")
        .nth(1)
        .and_then(|s| s.split("\n## 3.").next())
        .expect("section 2");
    let example = section
        .split("```kdl\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the example");
    assert!(
        section.contains("$ orch validate example.kdl"),
        "the page names the file"
    );
    let d = temp("language-example");
    std::fs::create_dir_all(d.join("prompts")).unwrap();
    std::fs::write(
        d.join("prompts/fixer.md"),
        "Fix {task}; write {task-dir}/01-fix.md.\n",
    )
    .unwrap();
    std::fs::write(d.join("example.kdl"), example).unwrap();
    let (code, out, err) = orch(&[
        "validate",
        "--format",
        "json",
        d.join("example.kdl").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    for f in doc["findings"].as_array().into_iter().flatten() {
        assert_eq!(f["code"], "orch::executable-not-found", "{f}");
    }
}

/// `orch` in the repository with `env` added, and its exit status
/// (`None` when a signal ended it).
fn orch_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("orch runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A JUnit report with every `time="S.mmm"` read as `time="T"` (durations
/// vary); a negative time is kept, to fail the comparison.
fn junit_report(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(" time=\"") {
        let (head, tail) = rest.split_at(i + 7);
        out.push_str(head);
        let end = tail.find('"').unwrap();
        let value = &tail[..end];
        let plain = !value.starts_with('-')
            && value.split_once('.').is_some_and(|(s, ms)| {
                !s.is_empty()
                    && ms.len() == 3
                    && s.bytes().chain(ms.bytes()).all(|b| b.is_ascii_digit())
            });
        out.push_str(if plain { "T" } else { value });
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Files left beside a report (a temporary file renamed over it must not
/// stay behind).
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn junit_a_run_waiting_for_an_approval_is_not_green() {
    let d = temp("junit-waiting");
    let xml = d.join("report.xml");
    let state = d.join("state");
    let (code, out) = orch_env(
        &[
            "run",
            "w1",
            "-p",
            "tests/fixtures/tooling/approval-waits.kdl",
            "--state-dir",
            state.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(4), "{out}");
    assert_eq!(
        junit_report(&xml),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="orch" tests="3" failures="0" errors="1" skipped="1" time="T">
  <testsuite name="w1" tests="3" failures="0" errors="1" skipped="1" time="T">
    <testcase classname="build" name="build attempt 1 (runner:builder)" time="T"/>
    <testcase classname="release" name="release attempt 1 (approval:release)" time="T">
      <skipped message="approval `release` is waiting for a decision"/>
    </testcase>
    <testcase classname="orch" name="w1" time="T">
      <error type="waiting" message="the run stopped at approval stage `release`, waiting for a decision: `orch approve w1 --as NAME` or `orch reject w1 --as NAME --comment TEXT`, then `orch run w1 --resume`"/>
    </testcase>
  </testsuite>
</testsuites>
"#
    );
    assert_eq!(files_in(&d), ["report.xml", "state"]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn junit_a_run_that_failed_closed_before_any_attempt_has_a_failing_case() {
    let d = temp("junit-closed");
    let xml = d.join("report.xml");
    let state = d.join("state");
    let (code, out) = orch_env(
        &[
            "run",
            "c1",
            "-p",
            "tests/fixtures/tooling/switchable.kdl",
            "--state-dir",
            state.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ],
        &[("JUNIT_RUNNER_ON", "0")],
    );
    assert_eq!(code, Some(1), "{out}");
    let report = std::fs::read_to_string(&xml).unwrap();
    assert!(!report.contains("time=\"-"), "no negative time: {report}");
    assert_eq!(
        junit_report(&xml),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="orch" tests="1" failures="1" errors="0" skipped="0" time="T">
  <testsuite name="c1" tests="1" failures="1" errors="0" skipped="0" time="T">
    <properties><property name="outcome" value="failure"/></properties>
    <testcase classname="orch" name="c1" time="T">
      <failure type="outcome" message="the run reached end `failed`, outcome failure: build exhausted → failed: runner `builder` is switched off (environment variable JUNIT_RUNNER_ON=0), and mode=&quot;runner&quot; has no fallback"/>
    </testcase>
  </testsuite>
</testsuites>
"#
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn junit_an_invocation_that_runs_nothing_replaces_an_earlier_report() {
    let d = temp("junit-stale");
    let xml = d.join("report.xml");
    let state = d.join("state");
    let run = |task: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            task,
            "-p",
            "tests/fixtures/tooling/switchable.kdl",
            "--state-dir",
            state.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        orch_env(&args, &[])
    };
    // j1 passes: its report is green.
    let (code, out) = run("j1", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        junit_report(&xml).contains(r#"failures="0" errors="0""#),
        "{}",
        junit_report(&xml)
    );
    // j2 has nothing to resume (exit 2): the report is j2's error, not j1's pass.
    let (code, out) = run("j2", &["--resume"]);
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(
        junit_report(&xml),
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="orch" tests="1" failures="0" errors="1" skipped="0" time="T">
  <testsuite name="j2" tests="1" failures="0" errors="1" skipped="0" time="T">
    <testcase classname="orch" name="j2" time="T">
      <error type="orch" message="task j2 has no run to resume in {}"/>
    </testcase>
  </testsuite>
</testsuites>
"#,
            std::fs::canonicalize(&state).unwrap().display()
        )
    );
    // A bad task name, refused before anything else, is reported too.
    let (code, out) = run("bad/name", &[]);
    assert_eq!(code, Some(2), "{out}");
    let report = junit_report(&xml);
    assert!(
        report.contains(r#"<testcase classname="orch" name="bad/name" time="T">"#)
            && report.contains(r#"<error type="orch" message="invalid task name"#),
        "{report}"
    );
    assert_eq!(files_in(&d), ["report.xml", "state"]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn junit_an_orch_killed_mid_run_leaves_an_error_not_an_earlier_report() {
    let d = temp("junit-killed");
    let xml = d.join("report.xml");
    let state = d.join("state");
    std::fs::write(
        &xml,
        r#"<testsuites name="orch" tests="1" failures="0" errors="0"><testsuite name="old"><testcase name="ok"/></testsuite></testsuites>"#,
    )
    .unwrap();
    let (code, out) = orch_env(
        &[
            "run",
            "k1",
            "-p",
            "tests/fixtures/tooling/kills-orch.kdl",
            "--state-dir",
            state.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, None, "SIGKILL ended orch: {out}");
    assert_eq!(
        junit_report(&xml),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="orch" tests="1" failures="0" errors="1" skipped="0" time="T">
  <testsuite name="k1" tests="1" failures="0" errors="1" skipped="0" time="T">
    <testcase classname="orch" name="k1" time="T">
      <error type="unfinished" message="orch run did not finish: it was killed, or is still running"/>
    </testcase>
  </testsuite>
</testsuites>
"#
    );
    assert_eq!(files_in(&d), ["report.xml", "state"]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn junit_arguments_orch_run_refuses_replace_an_earlier_report() {
    let d = temp("junit-refused");
    let xml = d.join("report.xml");
    std::fs::write(
        &xml,
        r#"<testsuites name="orch" tests="1" failures="0" errors="0"><testsuite name="old"><testcase name="ok"/></testsuite></testsuites>"#,
    )
    .unwrap();
    let junit = format!("--junit={}", xml.display());
    let (code, out) = orch_env(&["run", "t1", &junit, "--no-such-flag"], &[]);
    assert_eq!(code, Some(2), "{out}");
    let report = junit_report(&xml);
    assert!(
        report.starts_with(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="orch" tests="1" failures="0" errors="1" skipped="0" time="T">
  <testsuite name="orch run" tests="1" failures="0" errors="1" skipped="0" time="T">
    <testcase classname="orch" name="orch run" time="T">
      <error type="orch" message="error: unexpected argument &apos;--no-such-flag&apos; found">"#
        ),
        "{report}"
    );
    assert_eq!(files_in(&d), ["report.xml"]);
    std::fs::remove_dir_all(&d).ok();
}
