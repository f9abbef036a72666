//! Which producer a stage runs: `runner`, `llm`, or `hybrid` (the runner when
//! it is enabled and the repository is in its scope, the LLM otherwise).

use crate::common::*;

/// choice.kdl runs byrunner (mode=runner) → byllm (mode=llm) → byhybrid
/// (mode=hybrid, runner `switched`: kill-switch T_SWITCH, scope "in-scope"
/// "also-in" with the CSV override T_SCOPE).
fn choice(sb: &Sandbox, task: &str, worktree: &str) -> Orch {
    let wt = sb.dir(worktree);
    sb.orch_in("choice.kdl", task, &wt)
}

/// Asserts a run that passed all three stages, with `hybrid` as given.
fn assert_all_passed(run: &Run, hybrid: (&str, &str)) {
    run.expect_code(0);
    assert_eq!(
        run.producers(),
        triples(&[
            ("byrunner", "runner", "plain"),
            ("byllm", "llm", "agent"),
            ("byhybrid", hybrid.0, hybrid.1),
        ])
    );
    assert_eq!(
        run.transitions(),
        triples(&[
            ("byrunner", "pass", "byllm"),
            ("byllm", "pass", "byhybrid"),
            ("byhybrid", "pass", "done"),
        ])
    );
    assert_eq!(run.finished(), ("success".into(), "done".into()));
}

fn hybrid_reason(run: &Run) -> String {
    s(&run.of_stage("attempt-started", "byhybrid")[0]["reason"]).to_string()
}

#[test]
fn runner_llm_and_hybrid_with_the_runner_enabled_and_in_scope() {
    let sb = Sandbox::new("choice-modes");
    let run = choice(&sb, "t1", "in-scope").run();
    assert_all_passed(&run, ("runner", "switched"));
    // What actually ran, as the scripts recorded it.
    assert_eq!(
        sb.out_lines("calls"),
        vec!["t1 byrunner 1", "t1 byllm 1 llm", "t1 byhybrid 1"]
    );
    let started = run.of("attempt-started");
    assert_eq!(s(&started[1]["reason"]), "mode=\"llm\"");
    assert_eq!(
        s(&started[2]["reason"]),
        "runner `switched` is enabled and repo `in-scope` is in scope"
    );
    // The hybrid stage's artifact was written by orch from the runner's verdict.
    let report = read(&sb.task_dir("t1").join("report.md"));
    assert!(report.starts_with("result: PASS\n"), "{report}");
    assert!(
        report.contains("# Report of runner `switched` (written by orch)"),
        "{report}"
    );
}

#[test]
fn kill_switch_values_choose_runner_or_llm() {
    let sb = Sandbox::new("choice-switch");
    let on = ["1", "true", "yes", "on", "TRUE", "On"];
    let off = ["0", "false", "no", "off", "FALSE", "Off"];
    for (i, v) in on.iter().chain(off.iter()).enumerate() {
        let task = format!("sw{i}");
        let run = choice(&sb, &task, "in-scope").env("T_SWITCH", v).run();
        if on.contains(v) {
            assert_all_passed(&run, ("runner", "switched"));
            assert_eq!(
                hybrid_reason(&run),
                "runner `switched` is enabled and repo `in-scope` is in scope",
                "T_SWITCH={v}"
            );
            assert!(
                sb.out_lines("calls")
                    .contains(&format!("{task} byhybrid 1")),
                "T_SWITCH={v}: {:?}",
                sb.out_lines("calls")
            );
        } else {
            assert_all_passed(&run, ("llm", "agent"));
            assert_eq!(
                hybrid_reason(&run),
                format!(
                    "runner `switched` is switched off (environment variable T_SWITCH={v}); falling back to the LLM"
                ),
                "T_SWITCH={v}"
            );
            // The fallback really ran the transport, not the runner.
            assert!(
                sb.out_lines("calls")
                    .contains(&format!("{task} byhybrid 1 llm")),
                "T_SWITCH={v}: {:?}",
                sb.out_lines("calls")
            );
        }
    }
}

#[test]
fn an_invalid_switch_value_fails_the_stage_closed_without_running_it() {
    for v in ["maybe", "2", "", "enabled"] {
        let sb = Sandbox::new("choice-bad-switch");
        let run = choice(&sb, "bad", "in-scope").env("T_SWITCH", v).run();
        run.expect_code(1);
        // Nothing ran in the hybrid stage: neither the runner nor the LLM.
        assert!(
            run.of_stage("attempt-started", "byhybrid").is_empty(),
            "T_SWITCH={v:?}"
        );
        assert_eq!(
            sb.out_lines("calls"),
            vec!["bad byrunner 1", "bad byllm 1 llm"],
            "T_SWITCH={v:?}"
        );
        assert_eq!(
            run.transitions(),
            triples(&[
                ("byrunner", "pass", "byllm"),
                ("byllm", "pass", "byhybrid"),
                ("byhybrid", "exhausted", "failed"),
            ])
        );
        let t = &run.of("transition")[2];
        assert_eq!(
            s(&t["reason"]),
            format!("T_SWITCH={v:?} is not a switch value (use 1/0, true/false, yes/no, on/off)")
        );
        // Failing closed runs the stage's alert, once.
        assert_eq!(sb.out_lines("alerts"), vec!["ops bad byhybrid"]);
        let alert = run.one("alert");
        assert_eq!(alert["ok"], true);
        assert_eq!(run.finished(), ("failure".into(), "failed".into()));
    }
}

#[test]
fn mode_runner_switched_off_fails_closed_without_a_fallback() {
    let sb = Sandbox::new("choice-runner-off");
    let run = choice(&sb, "off", "in-scope")
        .env("T_PLAIN_SWITCH", "off")
        .run();
    run.expect_code(1);
    assert!(run.of("attempt-started").is_empty());
    assert_eq!(sb.out_lines("calls"), Vec::<String>::new());
    assert_eq!(
        run.transitions(),
        triples(&[("byrunner", "exhausted", "failed")])
    );
    assert_eq!(
        s(&run.one("transition")["reason"]),
        "runner `plain` is switched off (environment variable T_PLAIN_SWITCH=off), and mode=\"runner\" has no fallback"
    );
    assert_eq!(sb.out_lines("alerts"), vec!["ops off byrunner"]);
}

#[test]
fn repo_out_of_scope_by_worktree_name_falls_back_to_the_llm() {
    let sb = Sandbox::new("choice-scope-wt");
    // The repository is the worktree directory's name.
    let run = choice(&sb, "in", "also-in").run();
    assert_all_passed(&run, ("runner", "switched"));
    let run = choice(&sb, "out", "elsewhere").run();
    assert_all_passed(&run, ("llm", "agent"));
    assert_eq!(
        hybrid_reason(&run),
        "repo `elsewhere` is not in the scope of runner `switched` (pipeline file (in-scope, also-in)); falling back to the LLM"
    );
    assert!(sb
        .out_lines("calls")
        .contains(&"out byhybrid 1 llm".to_string()));
}

#[test]
fn repo_var_overrides_the_worktree_name_for_the_scope() {
    let sb = Sandbox::new("choice-scope-var");
    // In scope by --var repo, although the worktree's name is not.
    let run = choice(&sb, "byvar", "elsewhere")
        .arg("--var")
        .arg("repo=in-scope")
        .run();
    assert_all_passed(&run, ("runner", "switched"));
    assert_eq!(
        hybrid_reason(&run),
        "runner `switched` is enabled and repo `in-scope` is in scope"
    );
    // Out of scope by --var repo, although the worktree's name is in scope.
    let run = choice(&sb, "byvar2", "in-scope")
        .arg("--var")
        .arg("repo=other")
        .run();
    assert_all_passed(&run, ("llm", "agent"));
    assert_eq!(
        hybrid_reason(&run),
        "repo `other` is not in the scope of runner `switched` (pipeline file (in-scope, also-in)); falling back to the LLM"
    );
}

#[test]
fn scope_csv_environment_override_replaces_the_files_list() {
    let sb = Sandbox::new("choice-scope-env");
    // Listed by the variable (spaces around names are ignored): runner.
    let run = choice(&sb, "e1", "elsewhere")
        .env("T_SCOPE", "a, elsewhere ,b")
        .run();
    assert_all_passed(&run, ("runner", "switched"));
    assert_eq!(
        hybrid_reason(&run),
        "runner `switched` is enabled and repo `elsewhere` is in scope"
    );
    // In the file's list but not in the variable's: the variable wins, LLM.
    let run = choice(&sb, "e2", "in-scope").env("T_SCOPE", "a,b").run();
    assert_all_passed(&run, ("llm", "agent"));
    assert_eq!(
        hybrid_reason(&run),
        "repo `in-scope` is not in the scope of runner `switched` (environment variable T_SCOPE=a,b); falling back to the LLM"
    );
    // The variable also applies to --var repo.
    let run = choice(&sb, "e3", "in-scope")
        .env("T_SCOPE", "x,y")
        .arg("--var")
        .arg("repo=y")
        .run();
    assert_all_passed(&run, ("runner", "switched"));
}

#[test]
fn switched_off_and_out_of_scope_runner_is_not_run_at_all() {
    // The fallback must not run the runner first: only the LLM runs.
    let sb = Sandbox::new("choice-no-runner");
    let run = choice(&sb, "f", "elsewhere").env("T_SWITCH", "0").run();
    assert_all_passed(&run, ("llm", "agent"));
    assert_eq!(
        sb.out_lines("calls"),
        vec!["f byrunner 1", "f byllm 1 llm", "f byhybrid 1 llm"]
    );
}
