//! Gates fail closed: a missing or unreadable artifact, a missing field, a
//! value outside the field's allowed set or an expectation that does not hold
//! is a FAIL, with the reason in the output.

use crate::common::*;

/// gate.kdl: the agent writes T_ARTIFACT_TEXT to verdict.md (fields `result`
/// PASS|FAIL, `build` any non-empty value, `note` optional); the gate expects
/// `result` PASS and `build` matching ^[0-9]+\.[0-9]+$. Fail → `rejected`.
fn judge(sb: &Sandbox, task: &str, action: &str, text: &str) -> Run {
    sb.orch("gate.kdl", task)
        .env("T_AGENT", action)
        .env("T_ARTIFACT_TEXT", text)
        .run()
}

fn assert_gate_fails(sb: &Sandbox, task: &str, action: &str, text: &str, reason: &str) {
    let run = judge(sb, task, action, text);
    run.expect_code(1);
    assert_eq!(run.one("attempt-finished")["verdict"], "executed");
    let gate = run.one("gate");
    assert_eq!(gate["gate"], "strict");
    assert_eq!(gate["pass"], false, "{text:?}");
    assert_eq!(s(&gate["reason"]), reason, "{text:?}");
    assert_eq!(run.transitions(), triples(&[("judge", "fail", "rejected")]));
    assert_eq!(s(&run.one("transition")["reason"]), reason);
    assert_eq!(run.finished(), ("failure".into(), "rejected".into()));
}

#[test]
fn a_missing_artifact_fails_the_gate() {
    let sb = Sandbox::new("gate-missing");
    assert_gate_fails(&sb, "g", "none", "", "artifact verdict.md is missing");
}

#[test]
fn an_unreadable_artifact_fails_the_gate() {
    let sb = Sandbox::new("gate-unreadable");
    assert_gate_fails(
        &sb,
        "dir",
        "dir",
        "",
        "artifact verdict.md is unreadable: Is a directory (os error 21)",
    );
    assert_gate_fails(
        &sb,
        "bin",
        "write",
        "result: PASS\\nbuild: 1.2\\n\\0377\\0376",
        "artifact verdict.md is not UTF-8 text",
    );
}

#[test]
fn a_missing_required_field_fails_the_gate() {
    let sb = Sandbox::new("gate-field");
    let cases = [
        (
            "t1",
            "result: PASS",
            "artifact verdict.md has no `build:` line",
        ),
        (
            "t2",
            "build: 1.2",
            "artifact verdict.md has no `result:` line",
        ),
        // Only lines that start with the key count.
        (
            "t3",
            "  result: PASS\\nbuild: 1.2",
            "artifact verdict.md has no `result:` line",
        ),
        (
            "t4",
            "the result: PASS\\nbuild: 1.2",
            "artifact verdict.md has no `result:` line",
        ),
    ];
    for (task, text, reason) in cases {
        assert_gate_fails(&sb, task, "write", text, reason);
    }
}

#[test]
fn a_value_outside_the_allowed_set_fails_the_gate() {
    let sb = Sandbox::new("gate-allowed");
    assert_gate_fails(
        &sb,
        "t1",
        "write",
        "result: MAYBE\\nbuild: 1.2",
        "`result: MAYBE` in verdict.md is not allowed (expected PASS, FAIL)",
    );
    // Values are case-sensitive.
    assert_gate_fails(
        &sb,
        "t2",
        "write",
        "result: pass\\nbuild: 1.2",
        "`result: pass` in verdict.md is not allowed (expected PASS, FAIL)",
    );
    // A field without allowed values needs a non-empty one.
    assert_gate_fails(
        &sb,
        "t3",
        "write",
        "result: PASS\\nbuild:",
        "`build: ` in verdict.md is not allowed (expected a non-empty value)",
    );
}

#[test]
fn an_expectation_that_does_not_hold_fails_the_gate() {
    let sb = Sandbox::new("gate-expect");
    assert_gate_fails(
        &sb,
        "t1",
        "write",
        "result: FAIL\\nbuild: 1.2",
        "`result` is FAIL, expected PASS",
    );
    assert_gate_fails(
        &sb,
        "t2",
        "write",
        "result: PASS\\nbuild: abc",
        r"`build` is abc, which does not match /^[0-9]+\.[0-9]+$/",
    );
    assert_gate_fails(
        &sb,
        "t3",
        "write",
        "result: PASS\\nbuild: 1.2.3",
        r"`build` is 1.2.3, which does not match /^[0-9]+\.[0-9]+$/",
    );
}

#[test]
fn a_gate_passes_when_everything_holds_and_the_first_line_of_a_key_wins() {
    let sb = Sandbox::new("gate-pass");
    for (task, text, reason) in [
        (
            "t1",
            "result: PASS\\nbuild: 1.2",
            "result: PASS, build: 1.2",
        ),
        (
            "t2",
            "note: first\\nresult: PASS\\nresult: FAIL\\nbuild: 10.20\\nbuild: x",
            "result: PASS, build: 10.20",
        ),
    ] {
        let run = judge(&sb, task, "write", text);
        run.expect_code(0);
        let gate = run.one("gate");
        assert_eq!(gate["pass"], true);
        assert_eq!(s(&gate["reason"]), reason);
        assert_eq!(run.transitions(), triples(&[("judge", "pass", "done")]));
    }
}

#[test]
fn the_human_output_names_the_gate_failure_and_its_reason() {
    let sb = Sandbox::new("gate-human");
    let run = sb
        .orch("gate.kdl", "h")
        .without("--json")
        .env("T_ARTIFACT_TEXT", "result: PASS\\nbuild: abc")
        .run();
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "  gate strict: FAIL (`build` is abc, which does not match /^[0-9]+\\.[0-9]+$/)\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("task h: failure (end `rejected`) in "),
        "{}",
        run.stdout
    );
}
