//! Snapshots of what `orch map`, `roadmap`, `graph` and `explain` print, on
//! the reference pipeline and on a fixture with one call-site of each
//! classification.

use std::process::Command;

fn orch(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in [
        "LINT_ENABLED",
        "LINT_REPOS",
        "ORCH_TEST_RUNNER_ENABLED",
        "ORCH_TEST_RUNNER_REPOS",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("orch runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CLASSES: &str = "tests/fixtures/map/classes.kdl";
const REFERENCE: &str = "pipelines/orchestrator.kdl";

#[test]
fn map_markdown_of_each_classification() {
    let (code, out, err) = orch(&["map", "-p", CLASSES], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("| `checker` | `check` | C | machine | llm | **avoidable LLM control path**")
    );
    assert!(out.contains("| `lint` | `lint` | C | machine | hybrid | **deterministic**"));
    assert!(out.contains("| `judge` | `judge` | C | judgement | llm | **keep LLM**"));
    assert!(
        out.contains("| `writer` | `write` | P | judgement | llm | **not on the control path**")
    );
    insta::assert_snapshot!("map_classes_markdown", out);
}

#[test]
fn map_json_is_versioned_and_lists_avoidable_paths() {
    let (code, out, err) = orch(&["map", "-p", CLASSES, "--format", "json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["avoidable_llm_control_paths"],
        serde_json::json!(["checker"])
    );
    assert_eq!(v["single_transport"]["holds"], true);
    insta::assert_snapshot!("map_classes_json", out);
}

#[test]
fn reference_map_matches_the_committed_page() {
    let (code, out, err) = orch(
        &["map", "-p", REFERENCE, "--check", "docs/llm-call-sites.md"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    insta::assert_snapshot!(
        "map_reference_markdown",
        orch(&["map", "-p", REFERENCE], &[]).1
    );
}

#[test]
fn map_check_reports_drift_with_a_diff() {
    let dir = std::env::temp_dir().join(format!("orch-map-drift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("stale.md");
    let (_, fresh, _) = orch(&["map", "-p", CLASSES], &[]);
    std::fs::write(
        &stale,
        fresh.replace("**keep LLM**", "**avoidable LLM control path**"),
    )
    .unwrap();
    let (code, out, err) = orch(
        &["map", "-p", CLASSES, "--check", stale.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("-| `judge` | `judge` | C | judgement | llm | **avoidable LLM control path**"),
        "{out}"
    );
    assert!(
        out.contains("+| `judge` | `judge` | C | judgement | llm | **keep LLM**"),
        "{out}"
    );
    assert!(err.contains("has drifted"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn graphs_in_mermaid_and_dot() {
    let (code, mermaid, _) = orch(&["graph", "-p", CLASSES], &[]);
    assert_eq!(code, 0);
    assert!(mermaid.contains("-.->|\"fail (budget 2)\"|"));
    insta::assert_snapshot!("graph_classes_mermaid", mermaid);
    let (code, dot, _) = orch(&["graph", "-p", REFERENCE, "--format", "dot"], &[]);
    assert_eq!(code, 0);
    assert!(dot.starts_with("digraph \"orchestrator\""));
    insta::assert_snapshot!("graph_reference_dot", dot);
    insta::assert_snapshot!(
        "graph_reference_mermaid",
        orch(&["graph", "-p", REFERENCE], &[]).1
    );
}

#[test]
fn explain_names_the_producer_and_where_the_switch_came_from() {
    let (code, out, err) = orch(
        &["explain", "lint", "-p", CLASSES, "--var", "repo=classes"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kill-switch: on (from pipeline file)"),
        "{out}"
    );
    assert!(out.contains("producer: runner"), "{out}");
    let wt = env!("CARGO_MANIFEST_DIR");
    insta::assert_snapshot!("explain_lint_runner", out.replace(wt, "[worktree]"));

    let (_, out, _) = orch(
        &["explain", "lint", "-p", CLASSES, "--var", "repo=classes"],
        &[("LINT_ENABLED", "off")],
    );
    assert!(
        out.contains("kill-switch: off (from environment variable LINT_ENABLED=off)"),
        "{out}"
    );
    assert!(out.contains("producer: llm"), "{out}");
    insta::assert_snapshot!("explain_lint_switched_off", out.replace(wt, "[worktree]"));

    let (_, out, _) = orch(
        &["explain", "lint", "-p", CLASSES, "--var", "repo=elsewhere"],
        &[],
    );
    assert!(
        out.contains("scope: repo `elsewhere` is out of scope"),
        "{out}"
    );

    let (code, _, err) = orch(&["explain", "lnt", "-p", CLASSES], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `lint`?"), "{err}");
}

#[test]
fn roadmap_without_history_keeps_pipeline_order() {
    let dir = std::env::temp_dir().join(format!("orch-roadmap-empty-{}", std::process::id()));
    let (code, out, err) = orch(
        &[
            "roadmap",
            "-p",
            CLASSES,
            "--state-dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("No run history"), "{out}");
    assert!(
        !out.contains("`judge`") && !out.contains("`writer`") && !out.contains("`lint`"),
        "{out}"
    );
    insta::assert_snapshot!("roadmap_classes_no_history", out);
}

#[test]
fn roadmap_ranks_by_recorded_llm_attempts() {
    let dir = std::env::temp_dir().join(format!("orch-roadmap-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let state = dir.to_str().unwrap();
    // Switch the lint runner off so the hybrid's fallback fires; the checker's
    // agent writes nothing, so its gate fails and rolls back to lint (budget 2).
    let (code, _, err) = orch(
        &[
            "run",
            "t1",
            "-p",
            CLASSES,
            "--state-dir",
            state,
            "--var",
            "repo=classes",
        ],
        &[("LINT_ENABLED", "0")],
    );
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = orch(
        &["roadmap", "-p", CLASSES, "--state-dir", state, "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["has_history"], true);
    let entries = v["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["call_site"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{out}");
    assert!(
        names.contains(&"checker") && names.contains(&"lint"),
        "{out}"
    );
    for e in entries {
        // lint ran 3 times (first visit + 2 rollbacks), and so did checker.
        assert_eq!(e["llm_attempts"], 3, "{out}");
        assert_eq!(e["cost"], 0.75, "{out}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_readme_shows_the_reference_graph_as_orch_draws_it() {
    let (code, graph, _) = orch(&["graph", "-p", REFERENCE], &[]);
    assert_eq!(code, 0);
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    assert!(
        readme.contains(&format!("```mermaid\n{graph}```")),
        "README.md's Mermaid block drifted from `orch graph -p {REFERENCE}`"
    );
}

#[test]
fn explain_shows_the_labels_a_stage_needs() {
    const LABELS: &str = "tests/fixtures/valid/labels.kdl";
    // A hybrid stage needs its runner's and its transport's labels.
    let (code, out, err) = orch(&["explain", "train", "-p", LABELS], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  needs labels: gpu, linux (only a service started with `--labels` holding all of them runs it; `orch run` runs it anywhere)\n"), "{out}");
    // A stage with none says nothing of labels.
    let (code, out, err) = orch(&["explain", "build", "-p", LABELS], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("needs labels"), "{out}");
}
