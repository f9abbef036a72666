//! `orch explain STAGE`: what would run for a stage now, and why.

use std::collections::HashMap;
use std::path::Path;

use crate::choice::{self, Kind};
use crate::invocation;
use crate::keyword;
use crate::model::*;
use crate::template::Context;

/// Explains `stage` given variable values, the repo and an environment,
/// with `redact` applied to every argument shown and to the
/// reason a command cannot be built (the engine's redaction of secrets: the
/// language crate knows nothing of their values).
#[allow(clippy::too_many_arguments)]
pub fn explain_redacted(
    p: &Pipeline,
    stage: &str,
    vars: &HashMap<String, String>,
    repo: &str,
    worktree: &Path,
    pipeline_path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    redact: &dyn Fn(&str) -> String,
) -> Result<String, String> {
    let Some(s) = p.stage(stage) else {
        let help = crate::diagnostic::did_you_mean(stage, p.stages.iter().map(|s| s.name.as_str()))
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return Err(format!("no stage `{stage}` in the pipeline{help}"));
    };
    let cs = p
        .call_site(&s.call_site.value)
        .ok_or_else(|| format!("call-site `{}` is not defined", s.call_site.value))?;
    let mut out = format!("stage `{}`\n", s.name.value);
    out.push_str(&format!(
        "  call-site `{}`: axis={} verdict={} mode={} → {}\n",
        cs.name.value,
        crate::map::axis_name(cs.axis.value),
        crate::map::verdict_name(cs.verdict.value),
        keyword::mode(cs.mode.value),
        crate::map::Class::of(cs).describe()
    ));
    let needs = p.labels_of_stage(&s.name.value);
    if !needs.is_empty() {
        out.push_str(&format!(
            "  needs labels: {} (only a service started with `--labels` holding all of them runs it; `orch run` runs it anywhere)\n",
            needs.join(", ")
        ));
    }
    let ctx = Context {
        task: "TASK".into(),
        stage: s.name.value.clone(),
        attempt: 1,
        worktree: worktree.display().to_string(),
        task_dir: worktree.join(".orch/tasks/TASK").display().to_string(),
        pipeline_dir: pipeline_path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        vars: vars.clone(),
    };
    if cs.mode.value == Mode::Human {
        out.push_str(&approval_lines(p, cs));
    } else {
        out.push_str(&producer_lines(
            p,
            cs,
            repo,
            env,
            &ctx,
            pipeline_path,
            redact,
        ));
    }
    gate_and_transitions(p, s, &mut out);
    Ok(out)
}

/// Who may decide at a human stage, and for how long a request waits.
fn approval_lines(p: &Pipeline, cs: &CallSite) -> String {
    let Some(a) = cs.approval.as_ref().and_then(|a| p.approval(&a.value)) else {
        return "  producer: none, the stage would fail closed: no approval is defined\n".into();
    };
    let mut out = format!(
        "  producer: a person's decision (approval `{}`)\n",
        a.name.value
    );
    out.push_str(&format!(
        "  who may decide: {}\n",
        a.approver_names().join(", ")
    ));
    out.push_str(&format!(
        "  expires: {} after the stage is reached; then it fails closed (exhausted)\n",
        a.expires
            .as_ref()
            .map(|d| crate::duration::human(d.value))
            .unwrap_or_else(|| "never (invalid)".into())
    ));
    if !a.show.is_empty() {
        let shown: Vec<&str> = a.show.iter().map(|s| s.value.as_str()).collect();
        out.push_str(&format!("  shows: {}\n", shown.join(", ")));
    }
    if let Some(w) = &a.writes {
        out.push_str(&format!(
            "  writes `{}`: `decision: APPROVED|REJECTED`, who, when and the comment\n",
            w.value
        ));
    }
    out
}

/// The producer a machine or LLM stage would run, with its command.
fn producer_lines(
    p: &Pipeline,
    cs: &CallSite,
    repo: &str,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Context,
    pipeline_path: &Path,
    redact: &dyn Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    match choice::choose(p, cs, repo, env) {
        Err(reason) => {
            out.push_str(&format!(
                "  producer: none, the stage would fail closed: {reason}\n"
            ));
        }
        Ok(choice) => {
            if let Some(e) = &choice.enabled {
                out.push_str(&format!(
                    "  kill-switch: {} (from {})\n",
                    if e.value { "on" } else { "off" },
                    e.source
                ));
            }
            if let Some(sc) = &choice.in_scope {
                out.push_str(&format!(
                    "  scope: repo `{repo}` is {} (from {})\n",
                    if sc.value { "in scope" } else { "out of scope" },
                    sc.source
                ));
            }
            out.push_str(&format!(
                "  producer: {} ({})\n",
                choice.producer.kind().as_str(),
                choice.reason
            ));
            let spec = invocation::of(choice.producer, ctx, pipeline_path);
            match spec {
                Ok(spec) => {
                    let mut argv: Vec<String> = spec.argv.iter().map(|a| redact(a)).collect();
                    if choice.producer.kind() == Kind::Llm && spec.stdin.is_none() {
                        // The prompt is the last argument: too long to show.
                        if let Some(last) = argv.last_mut() {
                            *last = format!("<prompt, {} bytes>", last.len());
                        }
                    }
                    out.push_str(&format!("  argv: {argv:?}\n"));
                    out.push_str(&format!("  cwd: {}\n", spec.cwd.display()));
                    out.push_str(&format!(
                        "  timeout: {}{}, grace {}\n",
                        crate::duration::human(spec.timeout),
                        spec.idle_timeout
                            .map(|d| format!(", idle timeout {}", crate::duration::human(d)))
                            .unwrap_or_default(),
                        crate::duration::human(spec.grace)
                    ));
                    if let Some(stdin) = &spec.stdin {
                        out.push_str(&format!("  prompt: {} bytes on stdin\n", stdin.len()));
                    }
                }
                Err(e) => out.push_str(&format!("  argv: cannot be built now: {}\n", redact(&e))),
            }
        }
    }
    out
}

/// The stage's gate, its artifact's fields, and its transitions.
fn gate_and_transitions(p: &Pipeline, s: &Stage, out: &mut String) {
    if let Some(g) = p.gate(&s.gate.value) {
        let path = p
            .artifact(&g.artifact.value)
            .map(|a| a.path.value.clone())
            .unwrap_or_default();
        out.push_str(&format!("  gate `{}` reads `{path}`:\n", g.name.value));
        if let Some(a) = p.artifact(&g.artifact.value) {
            for f in &a.fields {
                out.push_str(&format!(
                    "    field `{}`{}: {}\n",
                    f.key.value,
                    if f.required { "" } else { " (optional)" },
                    if f.allowed.is_empty() {
                        "any non-empty value".to_string()
                    } else {
                        f.allowed
                            .iter()
                            .map(|v| v.value.as_str())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    }
                ));
            }
        }
        for e in &g.expects {
            match &e.expectation {
                Expectation::Equals(v) => {
                    out.push_str(&format!("    expect `{}` = {}\n", e.key.value, v.value))
                }
                Expectation::Matches(r) => out.push_str(&format!(
                    "    expect `{}` matches /{}/\n",
                    e.key.value, r.value
                )),
            }
        }
    }
    out.push_str("  transitions:\n");
    if let Some(t) = &s.pass {
        out.push_str(&format!("    pass → {}\n", t.target.value));
    }
    match &s.fail {
        Some(t) => out.push_str(&format!(
            "    fail → {}{}\n",
            t.target.value,
            t.budget
                .as_ref()
                .map(|b| format!(" (at most {} times per task)", b.value))
                .unwrap_or_default()
        )),
        None => out.push_str("    fail → (none: a gate FAIL goes to exhausted)\n"),
    }
    if let Some(t) = &s.exhausted {
        out.push_str(&format!(
            "    exhausted → {}{}\n",
            t.target.value,
            t.alert
                .as_ref()
                .map(|a| format!(", alert `{}`", a.value))
                .unwrap_or_default()
        ));
    }
    if s.serial {
        out.push_str("  serial: one task at a time\n");
    }
}
