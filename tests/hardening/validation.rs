//! Validation hardening: hostile pipeline files and task names that used to
//! crash, hang or mislead `orch`, each checked with the real binary.

use crate::common::*;
use std::path::Path;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_task_name_starting_with_a_dash_exits_2_and_creates_nothing() {
    let sb = Sandbox::new("task-dash");
    for name in ["-rf", "--help", "-"] {
        // After `--`, clap takes the name as the task, not as an option.
        let run = Orch::new(&sb.root)
            .arg("run")
            .arg("-p")
            .arg(fixture("ok.kdl"))
            .arg("--state-dir")
            .arg(sb.state())
            .arg("--worktree")
            .arg(sb.wt())
            .arg("--var")
            .arg(format!("scripts={}", scripts().display()))
            .env("T_OUT", sb.out())
            .arg("--")
            .arg(name)
            .run();
        run.expect_code(2);
        assert!(
            run.stderr
                .starts_with(&format!("error: invalid task name {name:?}")),
            "{name:?}: {}",
            run.stderr
        );
    }
    assert_eq!(entries(&sb.root), vec!["out", "wt"]);
    assert_eq!(entries(&sb.out()), Vec::<String>::new());
}

/// The findings of `text` checked as `name`, offline: (code, message).
fn findings(name: &str, text: &str) -> Vec<(String, String)> {
    let checked = orch_lang::analysis::analyze_text(
        name,
        text,
        &orch_lang::validate::Options { offline: true },
    );
    checked
        .report
        .findings
        .iter()
        .map(|f| (f.code.as_str().to_string(), f.message.clone()))
        .collect()
}

/// A valid one-stage pipeline with its artifact at `path` and its stage named `stage`.
fn one_stage(path: &str, stage: &str) -> String {
    format!(
        r#"pipeline "p" start="{stage}"
artifact "report" path="{path}" {{
    field "result" "PASS" "FAIL"
}}
gate "green" artifact="report" {{
    expect "result" "PASS"
}}
runner "check" {{
    command "true"
    timeout "1m"
    exit-code 0 verdict="PASS"
    otherwise verdict="FAIL"
    writes "report"
}}
call-site "builder" axis="C" verdict="machine" mode="runner" {{
    runner "check"
}}
stage "{stage}" call-site="builder" gate="green" {{
    pass "done"
    exhausted "failed"
}}
end "done" outcome="success"
end "failed" outcome="failure"
"#
    )
}

fn codes_of(found: &[(String, String)]) -> Vec<&str> {
    found.iter().map(|(c, _)| c.as_str()).collect()
}

#[test]
fn the_one_stage_pipeline_is_valid() {
    let found = findings("p.kdl", &one_stage("report.md", "build"));
    assert!(found.is_empty(), "{found:?}");
    for ok in [
        "r.md",
        "out/report.md",
        "./r.md",
        "logs.md",
        "a.b/c-d_e.txt",
    ] {
        let found = findings("p.kdl", &one_stage(ok, "build"));
        assert!(found.is_empty(), "{ok}: {found:?}");
    }
    for ok in ["b", "build-2", "a.b", "A_b", "9"] {
        let found = findings("p.kdl", &one_stage("r.md", ok));
        assert!(found.is_empty(), "{ok}: {found:?}");
    }
}

#[test]
fn stage_names_that_are_not_file_names_are_bad_names() {
    for bad in [
        "deploy/prod",
        "../x",
        "..",
        ".hidden",
        "-x",
        "a b",
        "a\\\\b",
        "ü",
    ] {
        let found = findings("p.kdl", &one_stage("r.md", bad));
        assert_eq!(codes_of(&found), ["orch::bad-name"], "{bad}: {found:?}");
    }
}

#[test]
fn artifact_paths_orch_cannot_use_are_bad_paths() {
    let cases = [
        (".", "names a directory, not a file"),
        ("./", "names a directory, not a file"),
        ("out/", "names a directory, not a file"),
        ("..", "must stay inside the task directory"),
        ("a/../b.md", "must stay inside the task directory"),
        ("/tmp/r.md", "must stay inside the task directory"),
        ("a\\u{0}b", "contains a NUL character"),
        ("logs", "collides with orch's own `logs` directory"),
        (
            "logs/build.1.log",
            "collides with orch's own `logs` directory",
        ),
        ("./logs/x.md", "collides with orch's own `logs` directory"),
    ];
    for (path, why) in cases {
        let found = findings("p.kdl", &one_stage(path, "build"));
        assert_eq!(codes_of(&found), ["orch::bad-path"], "{path}: {found:?}");
        assert!(found[0].1.contains(why), "{path}: {found:?}");
    }
}

/// `orch validate ARGS… --format FORMAT` run in `dir`.
fn validate(dir: &Path, args: &[&str], format: &str) -> Run {
    let mut o = Orch::new(dir).arg("validate");
    for a in args {
        o = o.arg(a);
    }
    o.arg("--format").arg(format).env("NO_COLOR", "1").run()
}

/// `orch run t -p FILE` in the sandbox: it must refuse the pipeline.
fn run_refuses(sb: &Sandbox, file: &Path) -> Run {
    let run = sb.run("t", file).env("NO_COLOR", "1").run();
    run.expect_code(2);
    run
}

#[test]
fn blocks_nested_1500_deep_are_a_finding_in_every_command() {
    let sb = Sandbox::new("deep");
    let file = sb.root.join("deep.kdl");
    let text = format!(
        "pipeline \"p\" start=\"a\"\n{}{}",
        "a {\n".repeat(1500),
        "}\n".repeat(1500)
    );
    std::fs::write(&file, text).unwrap();
    for format in ["human", "json"] {
        let run = validate(&sb.root, &["deep.kdl"], format);
        run.expect_code(1);
        assert!(run.stdout.contains("orch::too-deep"), "{run}");
    }
    let human = validate(&sb.root, &["deep.kdl"], "human");
    assert!(
        human
            .stdout
            .contains("deep.kdl:66:3: blocks are nested more than 64 levels deep"),
        "{human}"
    );
    let run = Orch::new(&sb.root)
        .arg("fmt")
        .arg("--check")
        .arg("deep.kdl")
        .run();
    run.expect_code(1);
    assert!(run.stderr.contains("orch::too-deep"), "{run}");
    let run = Orch::new(&sb.root)
        .arg("graph")
        .arg("-p")
        .arg("deep.kdl")
        .run();
    run.expect_code(2);
    assert!(run.stderr.contains("orch::too-deep"), "{run}");
    let run = run_refuses(&sb, &file);
    assert!(run.stderr.contains("orch::too-deep"), "{run}");
}

#[test]
fn a_finding_past_column_65535_is_rendered_without_its_snippet() {
    let sb = Sandbox::new("long-line");
    let file = sb.root.join("long.kdl");
    // One line of 70,000 characters, the unknown property at its end.
    let head = "pipeline \"p\" start=\"b\" /* ";
    let tail = " */ bogus=1";
    let line = format!(
        "{head}{}{tail}",
        "x".repeat(70_000 - head.len() - tail.len())
    );
    assert_eq!(line.len(), 70_000);
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let run = validate(&sb.root, &["long.kdl"], "human");
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("long.kdl:1:69994: unknown property `bogus` on `pipeline`"),
        "{run}"
    );
    assert!(run.stdout.contains("2 errors"), "{run}");
    let json = validate(&sb.root, &["long.kdl"], "json");
    json.expect_code(1);
    assert!(json.stdout.contains("\"column\": 69994"), "{json}");
    let run = run_refuses(&sb, &file);
    assert!(run.stderr.contains("orch::unknown-property"), "{run}");
}

#[test]
fn a_file_over_8_mib_is_refused_before_parsing() {
    let sb = Sandbox::new("large");
    let file = sb.root.join("large.kdl");
    let mut text = String::from("pipeline \"p\" start=\"a\"\n");
    while text.len() <= 9 * 1024 * 1024 {
        text.push_str("// padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&file, &text).unwrap();
    let started = std::time::Instant::now();
    let run = validate(&sb.root, &["large.kdl"], "json");
    run.expect_code(1);
    assert!(
        run.stdout.contains(&format!(
            "\"message\": \"the file is {} bytes; orch reads pipeline files of at most 8 MiB (8388608 bytes)\"",
            text.len()
        )),
        "{run}"
    );
    let human = validate(&sb.root, &["large.kdl"], "human");
    human.expect_code(1);
    assert!(human.stdout.contains("orch::bad-file"), "{human}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let run = run_refuses(&sb, &file);
    assert!(run.stderr.contains("orch::bad-file"), "{run}");
}

#[test]
fn a_directory_walk_skips_link_cycles_and_reports_bad_files() {
    let sb = Sandbox::new("walk");
    let dir = sb.dir("pipes");
    let good =
        std::fs::read_to_string(repo_root().join("tests/fixtures/invalid/bad-name.kdl")).unwrap();
    std::fs::write(dir.join("a.kdl"), &good).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/b.kdl"), &good).unwrap();
    // A link to itself, two links to each other, one to the parent.
    std::os::unix::fs::symlink(".", dir.join("self")).unwrap();
    std::os::unix::fs::symlink("sub", dir.join("x")).unwrap();
    std::os::unix::fs::symlink("../x", dir.join("sub/y")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    // A link to a file is checked.
    std::os::unix::fs::symlink("a.kdl", dir.join("link.kdl")).unwrap();
    // A FIFO and a file that is not UTF-8.
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo.kdl"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(dir.join("latin1.kdl"), b"pipeline \"caf\xe9\"\n").unwrap();

    let run = validate(&sb.root, &["pipes"], "json");
    run.expect_code(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let files: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "pipes/a.kdl",
            "pipes/fifo.kdl",
            "pipes/latin1.kdl",
            "pipes/link.kdl",
            "pipes/sub/b.kdl"
        ]
    );
    let found: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_string(),
                f["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expect = |path: &str, code: &str| (path.to_string(), code.to_string());
    assert_eq!(
        found,
        [
            expect("pipes/a.kdl", "orch::bad-name"),
            expect("pipes/fifo.kdl", "orch::bad-file"),
            expect("pipes/latin1.kdl", "orch::bad-file"),
            expect("pipes/link.kdl", "orch::bad-name"),
            expect("pipes/sub/b.kdl", "orch::bad-name"),
        ]
    );
    let human = validate(&sb.root, &["pipes"], "human");
    assert!(
        human
            .stdout
            .contains("pipes/fifo.kdl:1:1: not a regular file (a FIFO)"),
        "{human}"
    );
    assert!(
        human.stdout.contains(
            "pipes/latin1.kdl:1:14: the file is not UTF-8 text: the byte at offset 13 is not valid UTF-8"
        ),
        "{human}"
    );
    // `orch fmt` walks the same way: the FIFO is never opened, the file that
    // is not UTF-8 is reported, and the others are still checked.
    let child = Orch::new(&sb.root)
        .arg("fmt")
        .arg("--check")
        .arg("pipes")
        .env("NO_COLOR", "1")
        .spawn();
    let fmt = finish(child, std::time::Duration::from_secs(30));
    fmt.expect_code(1);
    assert!(
        fmt.stderr
            .contains("pipes/fifo.kdl:1:1: not a regular file (a FIFO)"),
        "{fmt}"
    );
    assert!(
        fmt.stderr
            .contains("pipes/latin1.kdl:1:14: the file is not UTF-8 text"),
        "{fmt}"
    );
    assert!(!fmt.stderr.contains("cannot read"), "{fmt}");
}

#[test]
fn a_timeout_orch_cannot_add_to_its_clock_is_refused_before_the_run() {
    let sb = Sandbox::new("long-timeout");
    let fixture = repo_root().join("tests/fixtures/invalid/duration-too-long.kdl");
    let run = run_refuses(&sb, &fixture);
    assert!(run.stderr.contains("orch::duration-too-long"), "{run}");
    // Refused before the store was touched: no run left `running`.
    assert!(!sb.task_dir("t").exists());
    // 100 years is the limit, inclusive; a sum is judged as a whole.
    for (value, ok) in [
        ("876000h", true),
        ("876000h1ms", false),
        ("52560000m", true),
        ("999999999h999999999h", false),
    ] {
        let text =
            one_stage("r.md", "build").replace("timeout \"1m\"", &format!("timeout \"{value}\""));
        let found = findings("p.kdl", &text);
        if ok {
            assert!(found.is_empty(), "{value}: {found:?}");
        } else {
            assert_eq!(
                codes_of(&found),
                ["orch::duration-too-long"],
                "{value}: {found:?}"
            );
        }
    }
}

#[test]
fn a_prompt_file_with_stray_braces_is_a_finding_and_doubled_braces_are_literal() {
    let root = repo_root();
    let run = validate(
        &root,
        &["tests/fixtures/hardening/prompt-json.kdl"],
        "human",
    );
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "prompt-json.kdl:27:27: prompt file `prompts/json.md`, line 4, column\n  │ 3: unknown placeholder `{\"result\": \"PASS\"}`"
        ),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("write `{{` and `}}` for literal braces"),
        "{run}"
    );
    let clean = validate(
        &root,
        &["tests/fixtures/hardening/prompt-escaped.kdl", "--strict"],
        "human",
    );
    clean.expect_code(0);
}

#[test]
fn an_undeclared_variable_in_a_prompt_file_is_a_finding() {
    let sb = Sandbox::new("prompt-var");
    let pipes = sb.dir("p");
    std::fs::create_dir_all(pipes.join("prompts")).unwrap();
    let text =
        std::fs::read_to_string(repo_root().join("tests/fixtures/hardening/prompt-json.kdl"))
            .unwrap();
    std::fs::write(pipes.join("p.kdl"), text).unwrap();
    std::fs::write(
        pipes.join("prompts/json.md"),
        "Target:\n{var.target} and {{x}} and {oops} and }\n",
    )
    .unwrap();
    let run = validate(&sb.root, &["p/p.kdl"], "json");
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "\"message\": \"prompt file `prompts/json.md`, line 2, column 1: variable `target` is not declared (and 2 more)\""
        ),
        "{run}"
    );
}

#[test]
fn a_runner_artifact_with_a_required_field_orch_cannot_write_fails_validation() {
    let root = repo_root();
    let run = validate(
        &root,
        &["tests/fixtures/invalid/unwritable-field.kdl", "--strict"],
        "json",
    );
    run.expect_code(1);
    assert!(
        run.stdout.contains("\"code\": \"orch::unwritable-field\""),
        "{run}"
    );
    // An optional second field is fine: the gate can pass without it.
    let text = one_stage("r.md", "build").replace(
        "field \"result\" \"PASS\" \"FAIL\"",
        "field \"result\" \"PASS\" \"FAIL\"\n    field \"summary\" required=#false",
    );
    let found = findings("p.kdl", &text);
    assert!(found.is_empty(), "{found:?}");
}
