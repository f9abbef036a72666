//! `orch validate`, tested from its fixtures.
//!
//! - `tests/fixtures/invalid/<code>.kdl` breaks the rule whose finding code is
//!   `orch::<code>`: the test derives the code from the file name, checks that
//!   the finding is there, and snapshots the human output (`tests/snapshots/`).
//!   Every code the loader and the validator declare must have its fixture.
//! - `tests/fixtures/valid/*.kdl` and `pipelines/*.kdl` validate clean.
//! - The JSON Schema and the decoder agree on every pipeline file here.
//! - The binary's exit statuses and `--format github`.
//!
//! Paths are relative to the package root, which is where `cargo test` runs
//! integration tests, so the rendered output is the same on every machine.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use orch_lang::analysis::{
    analyze_bytes, analyze_text, analyze_text_checking_schema, collect_files, Analysis,
};
use orch_lang::code::Code;
use orch_lang::diagnostic::{render, FileReport, Format, Severity};
use orch_lang::validate::Options;

const INVALID: &str = "tests/fixtures/invalid";
const VALID: &str = "tests/fixtures/valid";

/// The `*.kdl` files below `dir` (relative to the package root), sorted.
fn kdl_files(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files =
        collect_files(&[root.join(dir)]).unwrap_or_else(|e| panic!("cannot list {dir}: {e}"));
    assert!(!files.is_empty(), "no *.kdl files in {dir}");
    files.iter().map(|p| relative(root, p)).collect()
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Bytes, not text: the `orch::bad-file` fixture is not UTF-8.
/// The text of the fixture `name` in `dir` (VALID or INVALID).
fn fixture_text(dir: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(path: &str, opts: &Options) -> Analysis {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    analyze_bytes(path, &bytes, opts)
}

fn codes(c: &Analysis) -> Vec<&'static str> {
    c.report.findings.iter().map(|f| f.code.as_str()).collect()
}

fn stem(path: &str) -> &str {
    Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_else(|| panic!("no file name in {path}"))
}

#[test]
fn every_finding_code_has_exactly_one_fixture() {
    let declared: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
    assert!(
        declared.len() > 40,
        "found only {} codes in `Code::ALL`",
        declared.len()
    );
    let fixtures: BTreeSet<String> = kdl_files(INVALID)
        .iter()
        .map(|p| format!("orch::{}", stem(p)))
        .collect();
    let missing: Vec<_> = declared.difference(&fixtures).collect();
    let stray: Vec<_> = fixtures.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "codes without a fixture in {INVALID}: {missing:?}"
    );
    assert!(
        stray.is_empty(),
        "fixtures in {INVALID} named after no code: {stray:?}"
    );
}

/// Warnings: their fixtures must not hold an error, so that they also show
/// that warnings alone do not fail validation.
const WARNINGS: &[&str] = &[
    "orch::unused",
    "orch::executable-not-found",
    "orch::prompt-not-found",
    "orch::ignored-producer",
    "orch::ineffective-setting",
    "orch::too-many-findings",
];

#[test]
fn each_invalid_fixture_raises_its_own_code() {
    for path in kdl_files(INVALID) {
        let code = format!("orch::{}", stem(&path));
        let checked = check(&path, &Options::default());
        let own: Vec<_> = checked
            .report
            .findings
            .iter()
            .filter(|f| f.code.as_str() == code)
            .collect();
        assert!(
            !own.is_empty(),
            "{path} should raise {code}, found {:?}",
            codes(&checked)
        );
        let expected = if WARNINGS.contains(&code.as_str()) {
            Severity::Warning
        } else {
            Severity::Error
        };
        for f in &own {
            assert_eq!(f.severity, expected, "{path}: severity of {code}");
        }
        if expected == Severity::Warning {
            assert!(
                !checked.has_errors(),
                "{path} should only warn, found {:?}",
                codes(&checked)
            );
        }
        // The findings are reported once each, in file order.
        let spans: Vec<_> = checked
            .report
            .findings
            .iter()
            .map(|f| f.span.offset())
            .collect();
        assert!(spans.is_sorted(), "{path}: findings out of order");
    }
}

#[test]
fn invalid_fixture_human_output_snapshots() {
    for path in kdl_files(INVALID) {
        let checked = check(&path, &Options::default());
        let out = render(&[checked.report], Format::Human, false);
        let mut settings = insta::Settings::clone_current();
        settings.set_description(path.clone());
        settings.set_omit_expression(true);
        settings.bind(|| {
            insta::assert_snapshot!(format!("invalid-{}", stem(&path)), out);
        });
    }
}

/// Two files in one run, one with an error and one with a warning.
fn two_reports() -> Vec<FileReport> {
    ["unknown-stage", "unused"]
        .iter()
        .map(|s| check(&format!("{INVALID}/{s}.kdl"), &Options::default()).report)
        .collect()
}

#[test]
fn json_output_snapshot() {
    let out = render(&two_reports(), Format::Json, false);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("the JSON output parses");
    assert_eq!(doc["errors"], 1);
    assert_eq!(doc["warnings"], 1);
    insta::with_settings!({omit_expression => true}, {
        insta::assert_snapshot!("json-output", out);
    });
}

#[test]
fn github_output_snapshot() {
    let out = render(&two_reports(), Format::Github, false);
    insta::with_settings!({omit_expression => true}, {
        insta::assert_snapshot!("github-output", out);
    });
}

#[test]
fn valid_fixtures_validate_clean() {
    for path in kdl_files(VALID) {
        let checked = check(&path, &Options::default());
        assert!(
            checked.report.findings.is_empty(),
            "{path}:\n{}",
            render(&[checked.report], Format::Human, false)
        );
    }
}

#[test]
fn shipped_pipelines_validate_clean() {
    for path in kdl_files("pipelines") {
        // Offline: the programs they run need not be installed where the tests run.
        let checked = check(&path, &Options { offline: true });
        assert!(
            checked.report.findings.is_empty(),
            "{path}:\n{}",
            render(&[checked.report], Format::Human, false)
        );
        // Online, only programs missing from PATH may be reported.
        let checked = check(&path, &Options::default());
        let other: Vec<_> = checked
            .report
            .findings
            .iter()
            .filter(|f| f.code != Code::ExecutableNotFound)
            .map(|f| f.code.as_str())
            .collect();
        assert!(other.is_empty(), "{path}: {other:?}");
    }
}

fn assert_agree(path: &str, checked: &Analysis) {
    let show = |fs: &[orch_lang::diagnostic::Finding]| {
        fs.iter()
            .map(|f| format!("{} {:?} at {:?}", f.code, f.message, f.span))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        checked.schema_findings.is_empty(),
        checked.decoder_findings.is_empty(),
        "{path}: the schema and the decoder disagree\n  schema:  {:?}\n  decoder: {:?}",
        show(&checked.schema_findings),
        show(&checked.decoder_findings)
    );
}

#[test]
fn schema_and_decoder_agree_on_every_pipeline_file() {
    let mut files = kdl_files("pipelines");
    files.extend(kdl_files("tests"));
    for path in &files {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let opts = Options { offline: true };
        let Ok(text) = String::from_utf8(bytes) else {
            // Not UTF-8 (the bad-file fixture): nothing is parsed either way.
            assert_agree(path, &check(path, &opts));
            continue;
        };
        let eager = analyze_text_checking_schema(path, &text, &opts);
        assert_agree(path, &eager);
        // `analyze_text` skips the schema when the decoder finds the shape
        // right; what it reports is the same.
        let lazy = analyze_text(path, &text, &opts);
        assert_eq!(
            lazy.report.findings, eager.report.findings,
            "{path}: skipping the schema changed the findings"
        );
    }
    // The shape fixtures are caught by both.
    for code in [
        "unknown-node",
        "unknown-property",
        "invalid-value",
        "missing-value",
        "too-many-arguments",
        "bad-duration",
        "bad-exit-code",
        "missing-pipeline",
        "duplicate-pipeline",
    ] {
        let path = format!("{INVALID}/{code}.kdl");
        let checked = check(&path, &Options { offline: true });
        let schema: Vec<_> = checked
            .schema_findings
            .iter()
            .map(|f| f.code.as_str())
            .collect();
        let decoder: Vec<_> = checked
            .decoder_findings
            .iter()
            .map(|f| f.code.as_str())
            .collect();
        let code = format!("orch::{code}");
        assert_eq!(schema, [code.as_str()], "{path}: schema");
        assert_eq!(decoder, [code.as_str()], "{path}: decoder");
    }
}

/// Edits of `valid/minimal.kdl` on which the schema and the decoder once
/// disagreed, each with the code both must now report (None: both accept).
#[test]
fn schema_and_decoder_agree_on_edge_cases() {
    let base = fixture_text(VALID, "minimal.kdl");
    let cases: &[(&str, &str, Option<&str>)] = &[
        // Empty names and references (the schema's `minLength: 1`).
        ("start=\"build\"", "start=\"\"", Some("orch::invalid-value")),
        (
            "path=\"report.md\"",
            "path=\"\"",
            Some("orch::invalid-value"),
        ),
        ("pass \"done\"", "pass \"\"", Some("orch::invalid-value")),
        (
            "exhausted \"failed\"",
            "exhausted \"failed\" alert=\"\"",
            Some("orch::invalid-value"),
        ),
        (
            "runner \"check\"\n}",
            "runner \"\"\n}",
            Some("orch::invalid-value"),
        ),
        (
            "writes \"report\"",
            "writes \"report\" field=\"\"",
            Some("orch::invalid-value"),
        ),
        (
            "writes \"report\"",
            "writes \"\"",
            Some("orch::invalid-value"),
        ),
        (
            "gate=\"passed\" {",
            "gate=\"\" {",
            Some("orch::invalid-value"),
        ),
        (
            "artifact=\"report\"",
            "artifact=\"\"",
            Some("orch::invalid-value"),
        ),
        (
            "command \"true\"",
            "command \"true\"\n    enabled #true env=\"\"",
            Some("orch::invalid-value"),
        ),
        (
            "command \"true\"",
            "command \"true\"\n    scope \"x\" env=\"\"",
            Some("orch::invalid-value"),
        ),
        (
            "field \"result\" \"PASS\" \"FAIL\"",
            "field \"\"",
            Some("orch::invalid-value"),
        ),
        (
            "start=\"build\"",
            "start=\"build\" {\n    var \"\" \"x\"\n}",
            Some("orch::invalid-value"),
        ),
        (
            "runner \"check\"\n}",
            "runner \"check\"\n    llm transport=\"\" prompt=\"p.md\"\n}",
            Some("orch::invalid-value"),
        ),
        (
            "runner \"check\"\n}",
            "runner \"check\"\n    llm transport=\"t\" prompt=\"\"\n}",
            Some("orch::invalid-value"),
        ),
        (
            "runner \"check\"\n}",
            "runner \"check\"\n    why \"\"\n}",
            Some("orch::invalid-value"),
        ),
        (
            "verdict=\"FAIL\"",
            "verdict=\"\"",
            Some("orch::invalid-value"),
        ),
        // A blank verdict is a value, just not an allowed one.
        ("verdict=\"FAIL\"", "verdict=\" \"", None),
        // JSON Schema's "integer" takes a number without a fraction.
        (
            "pass \"done\"",
            "pass \"done\"\n    fail \"done\" budget=3.0",
            None,
        ),
        ("exit-code 0", "exit-code 0.0", None),
        (
            "pass \"done\"",
            "pass \"done\"\n    fail \"done\" budget=3.5",
            Some("orch::invalid-value"),
        ),
        // Durations: at most nine digits a number, so that no sum overflows.
        ("timeout \"1m\"", "timeout \"999999999ms\"", None),
        (
            "timeout \"1m\"",
            "timeout \"99999999999999999999s\"",
            Some("orch::bad-duration"),
        ),
        // A child of a node that takes none.
        (
            "timeout \"1m\"",
            "timeout \"1m\" {\n        foo\n    }",
            Some("orch::unknown-node"),
        ),
        // Two pipelines are not a missing one.
        (
            "pipeline \"minimal\" start=\"build\"",
            "pipeline \"minimal\" start=\"build\"\npipeline \"again\" start=\"build\"",
            Some("orch::duplicate-pipeline"),
        ),
    ];
    for (old, new, expected) in cases {
        assert!(base.contains(old), "minimal.kdl has no {old:?}");
        let text = base.replacen(old, new, 1);
        let checked = analyze_text_checking_schema(
            "tests/fixtures/valid/edge.kdl",
            &text,
            &Options { offline: true },
        );
        let label = format!("{old:?} → {new:?}");
        assert_agree(&label, &checked);
        let schema: Vec<_> = checked
            .schema_findings
            .iter()
            .map(|f| f.code.as_str())
            .collect();
        let decoder: Vec<_> = checked
            .decoder_findings
            .iter()
            .map(|f| f.code.as_str())
            .collect();
        match expected {
            Some(code) => {
                assert_eq!(schema, [*code], "{label}: schema");
                assert_eq!(decoder, [*code], "{label}: decoder");
            }
            None => assert!(schema.is_empty(), "{label}: {schema:?}"),
        }
    }
}

/// A blank verdict is caught by the validator, against the written field.
#[test]
fn blank_verdict_is_not_an_allowed_value() {
    let text = fixture_text(VALID, "minimal.kdl").replacen("verdict=\"FAIL\"", "verdict=\" \"", 1);
    let checked = analyze_text("x.kdl", &text, &Options { offline: true });
    assert_eq!(codes(&checked), ["orch::verdict-not-allowed"]);
}

/// A pattern is compiled once however many gates use it; each use of a bad
/// one is still reported where it is.
#[test]
fn a_bad_regex_used_by_two_gates_is_reported_at_each() {
    let text = fixture_text(INVALID, "bad-regex.kdl")
    .replacen(
        "gate \"passed\"",
        "gate \"again\" artifact=\"report\" {\n    expect \"result\" matches=\"(PASS\"\n}\n\ngate \"passed\"",
        1,
    );
    let checked = analyze_text("x.kdl", &text, &Options { offline: true });
    let bad: Vec<_> = checked
        .report
        .findings
        .iter()
        .filter(|f| f.code.as_str() == "orch::bad-regex")
        .collect();
    assert_eq!(bad.len(), 2, "{:?}", codes(&checked));
    assert_ne!(bad[0].span, bad[1].span);
    assert_eq!(bad[0].message, bad[1].message);
}

/// A malformed setting is reported as malformed, not also as missing.
#[test]
fn malformed_settings_are_not_also_missing() {
    let base = fixture_text(VALID, "minimal.kdl");
    for (old, new) in [
        ("timeout \"1m\"", "timeout 60"),
        ("command \"true\"", "command 1"),
        ("writes \"report\"", "writes 1"),
        ("runner \"check\"\n}", "runner 1\n}"),
        ("pass \"done\"", "pass 1"),
        ("exhausted \"failed\"", "exhausted #null"),
    ] {
        let text = base.replacen(old, new, 1);
        let checked = analyze_text("x.kdl", &text, &Options { offline: true });
        assert_eq!(
            codes(&checked),
            ["orch::invalid-value"],
            "{old:?} → {new:?}"
        );
    }
}

/// Placeholders in properties (`env KEY="…"`) are pointed at exactly, and a
/// bare value whose length happens to fit does not slice inside a character.
#[test]
fn placeholder_spans_in_properties() {
    let base = fixture_text(VALID, "minimal.kdl");
    let text = base.replacen(
        "command \"true\"",
        "command \"true\"\n    env A=é B=\"x{tsk}\" C=\"{var.nope}\"",
        1,
    );
    let checked = analyze_text("x.kdl", &text, &Options { offline: true });
    let found: Vec<_> = checked
        .report
        .findings
        .iter()
        .map(|f| {
            (
                f.code.as_str(),
                &text[f.span.offset()..f.span.offset() + f.span.len()],
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("orch::unknown-placeholder", "{tsk}"),
            ("orch::unknown-variable", "{var.nope}")
        ]
    );
}

/// Runs the `orch` binary from the package root.
fn orch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run orch");
    (
        out.status.code().expect("orch exited with a status"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_exit_statuses_and_formats() {
    let valid = format!("{VALID}/minimal.kdl");
    let invalid = format!("{INVALID}/unknown-stage.kdl");
    let warning = format!("{INVALID}/unused.kdl");

    let (code, out, _) = orch(&["validate", &valid]);
    assert_eq!(code, 0, "valid file:\n{out}");
    assert!(
        out.contains("1 file checked: 0 errors, 0 warnings"),
        "{out}"
    );

    let (code, out, _) = orch(&["validate", VALID]);
    assert_eq!(code, 0, "directory of valid files:\n{out}");

    let (code, out, _) = orch(&["validate", &invalid]);
    assert_eq!(code, 1, "invalid file:\n{out}");
    assert!(out.contains("orch::unknown-stage"), "{out}");

    let (code, out, _) = orch(&["validate", &warning]);
    assert_eq!(code, 0, "warnings alone pass:\n{out}");
    let (code, out, _) = orch(&["validate", "--strict", &warning]);
    assert_eq!(code, 1, "--strict makes warnings fail:\n{out}");

    let (code, _, err) = orch(&["validate", "tests/fixtures/no-such-file.kdl"]);
    assert_eq!(code, 2, "missing file: {err}");
    assert!(err.contains("no-such-file.kdl"), "{err}");

    let (code, out, _) = orch(&["validate", "--format", "github", &invalid, &warning]);
    assert_eq!(code, 1);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "::error file={invalid},line=25,col=10,endLine=25,endColumn=16,title=orch%3A%3Aunknown-stage::"
        )),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("::warning file={warning},")),
        "{out}"
    );

    let (code, out, _) = orch(&["validate", "--format", "json", &invalid]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(doc["findings"][0]["code"], "orch::unknown-stage");
    assert_eq!(doc["findings"][0]["path"], invalid.as_str());
}

/// A pipeline path without a directory looks for prompts in `.`, and says so.
#[test]
fn prompt_look_up_next_to_a_bare_file_name() {
    let text = fixture_text(INVALID, "prompt-not-found.kdl");
    let checked = analyze_text("pipeline.kdl", &text, &Options::default());
    let messages: Vec<_> = checked
        .report
        .findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        messages,
        ["prompt file `prompts/missing.md` does not exist (looked in .)"]
    );
}

#[test]
fn every_unknown_property_and_every_extra_pipeline_is_a_finding() {
    let text =
        "pipeline \"p\" start=\"s\"\npipeline \"q\" start=\"s\"\npipeline \"r\" start=\"s\"\n\
                end \"s\" outcome=\"success\" a=1 b=2\n";
    let c = analyze_text("many.kdl", text, &Options { offline: true });
    let found: Vec<(&str, String)> = c
        .report
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.message.clone()))
        .collect();
    let count = |code: &str| found.iter().filter(|(c, _)| *c == code).count();
    assert_eq!(count("orch::duplicate-pipeline"), 2, "{found:?}");
    assert_eq!(count("orch::unknown-property"), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|(_, m)| m == "unknown property `b` on `end`"),
        "{found:?}"
    );
}

/// The rule table of docs/language.md §11, between `<!-- rules:begin -->` and
/// `<!-- rules:end -->`: every code of `Code::ALL`, its severity, and the
/// message its fixture produces.
fn rule_table() -> String {
    let mut out =
        String::from("| code | severity | message (from its fixture) |\n| --- | --- | --- |\n");
    for code in Code::ALL {
        let name = code.as_str().trim_start_matches("orch::");
        let fixture = format!("{INVALID}/{name}.kdl");
        let checked = check(&fixture, &Options::default());
        let finding = checked
            .report
            .findings
            .iter()
            .find(|f| f.code == *code)
            .unwrap_or_else(|| panic!("{fixture} does not produce {code}"));
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let anchor = code.as_str().replace("::", "");
        let message = finding.message.replace('|', "\\|").replace('\n', " ");
        out.push_str(&format!(
            "| [`{code}`](#{anchor}) | {severity} | {message} |\n"
        ));
    }
    out
}

#[test]
fn the_rule_table_in_language_md_is_generated_from_the_code() {
    const BEGIN: &str = "<!-- rules:begin -->\n";
    const END: &str = "<!-- rules:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc
        .find(BEGIN)
        .expect("docs/language.md has <!-- rules:begin -->")
        + BEGIN.len();
    let end = start
        + doc[start..]
            .find(END)
            .expect("docs/language.md has <!-- rules:end -->");
    let want = rule_table();
    let have = &doc[start..end];
    if have == want {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{want}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    let mut diff = String::new();
    let (h, w): (Vec<_>, Vec<_>) = (have.lines().collect(), want.lines().collect());
    for line in &h {
        if !w.contains(line) {
            diff.push_str(&format!("- {line}\n"));
        }
    }
    for line in &w {
        if !h.contains(line) {
            diff.push_str(&format!("+ {line}\n"));
        }
    }
    panic!(
        "docs/language.md's rule table differs from the code (rerun with UPDATE_DOCS=1 to rewrite it):\n{diff}"
    );
}

/// A prompt file over the limit is refused at its `prompt=`, without being
/// read whole (a sparse 1 GiB file: reading it would take seconds and a GiB).
#[test]
fn a_prompt_over_8_mib_is_a_bad_file_finding_at_its_reference() {
    let text = fixture_text(INVALID, "prompt-not-found.kdl");
    let dir = std::env::temp_dir().join(format!("orch-big-prompt-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("prompts")).expect("temp dir");
    let prompt = std::fs::File::create(dir.join("prompts/missing.md")).expect("prompt");
    prompt.set_len(1 << 30).expect("sparse prompt");
    let path = dir.join("pipeline.kdl");
    std::fs::write(&path, &text).expect("pipeline");
    let checked = orch_lang::analysis::analyze_file(&path, &Options::default()).expect("analysed");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
    let found: Vec<_> = checked
        .report
        .findings
        .iter()
        .map(|f| {
            (
                f.code.as_str(),
                f.message.as_str(),
                &text[f.span.offset()..][..f.span.len()],
            )
        })
        .collect();
    assert_eq!(
        found,
        [(
            "orch::bad-file",
            "prompt file `prompts/missing.md` is 1073741824 bytes; orch reads prompt files of at most 8 MiB (8388608 bytes)",
            "prompt=\"prompts/missing.md\""
        )]
    );
    assert!(checked.has_errors());
}

/// The valid pipeline of docs/language.md §11.
const BASE: &str = r#"pipeline "p" start="build"

artifact "report" path="report.md" {
    field "result" "PASS" "FAIL"
}

gate "green" artifact="report" {
    expect "result" "PASS"
}

runner "make" {
    command "make" "test"
    timeout "10m"
    exit-code 0 verdict="PASS"
    exit-code 1 verdict="FAIL"
    writes "report"
}

call-site "builder" axis="C" verdict="machine" mode="runner" {
    runner "make"
}

stage "build" call-site="builder" gate="green" {
    pass "done"
    exhausted "failed"
}

end "done" outcome="success"
end "failed" outcome="failure"
"#;

/// Each undefined name was compared with every defined one, so validation
/// was quadratic in them: the comparisons for a close name are bounded per
/// file (250,000), and every finding is still reported.
#[test]
fn close_names_are_looked_up_within_a_budget_of_comparisons() {
    let mut text = BASE.to_string();
    for i in 0..5_000 {
        text.push_str(&format!("end \"stage-number-{i}\" outcome=\"success\"\n"));
    }
    for i in 0..60 {
        text.push_str(&format!(
            "stage \"s{i}\" call-site=\"builder\" gate=\"green\" {{\n    pass \"stagx-numbxr-{i}\"\n    exhausted \"failed\"\n}}\n"
        ));
    }
    let loaded = orch_lang::loader::load("p.kdl", &text);
    let found = orch_lang::validate::check(
        &loaded.pipeline,
        Path::new("."),
        false,
        &Options { offline: true },
    );
    let unknown: Vec<_> = found
        .iter()
        .filter(|f| f.code == Code::UnknownStage)
        .collect();
    assert_eq!(unknown.len(), 60, "{found:?}");
    let suggested: Vec<bool> = unknown
        .iter()
        .map(|f| {
            f.help
                .as_deref()
                .is_some_and(|h| h.starts_with("did you mean"))
        })
        .collect();
    // 5,063 stages and ends (5,000 + `build`, `done`, `failed` and the 60):
    // 49 look-ups fit in 250,000 comparisons.
    assert_eq!(
        suggested,
        [vec![true; 49], vec![false; 11]].concat(),
        "{unknown:?}"
    );
    assert_eq!(
        unknown[0].help.as_deref(),
        Some("did you mean `stage-number-0`?")
    );
}

/// The checks keep at most 100 findings (errors first) and count the rest.
#[test]
fn the_checks_report_at_most_100_findings_and_count_the_rest() {
    let mut text = BASE.to_string();
    for i in 0..250 {
        text.push_str(&format!(
            "stage \"s{i}\" call-site=\"builder\" gate=\"nope\" {{\n    pass \"done\"\n    exhausted \"failed\"\n}}\n"
        ));
    }
    let c = analyze_text("p.kdl", &text, &Options { offline: true });
    let found = &c.report.findings;
    // 250 unknown gates and 250 stages that cannot be reached.
    assert_eq!(found.len(), 101);
    let gates = found.iter().filter(|f| f.code == Code::UnknownGate).count();
    assert_eq!(gates, 100);
    let notes: Vec<_> = found
        .iter()
        .filter(|f| f.code == Code::TooManyFindings)
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].message,
        "400 more findings are not shown: orch reports at most 100 per file"
    );
    // Where the first left out is: the first stage cannot be reached.
    assert_eq!(
        notes[0].span.offset(),
        text.find("stage \"s0\"")
            .map(|i| i + "stage ".len())
            .unwrap_or(0)
    );
    assert!(found.is_sorted_by_key(|f| f.span.offset()));
    assert!(c.has_errors());
}
