//! Which producer a stage runs (runner or LLM transport), how its command is
//! built, and what its outcome means.

use std::path::{Path, PathBuf};

use crate::model::*;
use crate::process::{Exit, Spec};
use crate::template::{Context, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Runner,
    Llm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Runner => "runner",
            Kind::Llm => "llm",
        }
    }
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    /// "pipeline file" or "environment variable NAME".
    pub source: String,
}

/// The producer a call-site gets now, and why.
#[derive(Debug, Clone)]
pub struct Choice<'p> {
    pub kind: Kind,
    pub runner: Option<&'p Runner>,
    pub llm: Option<(&'p Transport, &'p Llm)>,
    pub enabled: Option<Sourced<bool>>,
    pub in_scope: Option<Sourced<bool>>,
    pub reason: String,
}

/// `1/0/true/false/yes/no/on/off`, any case.
pub fn parse_switch(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The kill-switch of a runner: its variable when set, else the file's value.
pub fn switch_value(
    r: &Runner,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Sourced<bool>, String> {
    let Some(sw) = &r.enabled else {
        return Ok(Sourced {
            value: true,
            source: "default (no `enabled`)".into(),
        });
    };
    if let Some(var) = &sw.env {
        if let Some(v) = env(&var.value) {
            return match parse_switch(&v) {
                Some(b) => Ok(Sourced {
                    value: b,
                    source: format!("environment variable {}={v}", var.value),
                }),
                None => Err(format!(
                    "{}={v:?} is not a switch value (use 1/0, true/false, yes/no, on/off)",
                    var.value
                )),
            };
        }
    }
    Ok(Sourced {
        value: sw.enabled,
        source: "pipeline file".into(),
    })
}

/// Whether `repo` is in the runner's scope: its variable (CSV) when set,
/// else the file's list; no `scope` means every repository.
pub fn scope_value(r: &Runner, repo: &str, env: &dyn Fn(&str) -> Option<String>) -> Sourced<bool> {
    let Some(scope) = &r.scope else {
        return Sourced {
            value: true,
            source: "default (no `scope`: every repository)".into(),
        };
    };
    if let Some(var) = &scope.env {
        if let Some(v) = env(&var.value) {
            let repos: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            return Sourced {
                value: repos.contains(&repo),
                source: format!("environment variable {}={v}", var.value),
            };
        }
    }
    Sourced {
        value: scope.repos.iter().any(|s| s == repo),
        source: format!("pipeline file ({})", scope.repos.join(", ")),
    }
}

/// Picks the producer for a call-site. An error means the stage cannot run
/// as configured and must fail closed.
pub fn choose<'p>(
    p: &'p Pipeline,
    cs: &'p CallSite,
    repo: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Choice<'p>, String> {
    let runner = cs.runner.as_ref().and_then(|r| p.runner(&r.value));
    let llm = cs
        .llm
        .as_ref()
        .and_then(|l| p.transport(&l.transport.value).map(|t| (t, l)));
    let mut choice = Choice {
        kind: Kind::Llm,
        runner: None,
        llm,
        enabled: None,
        in_scope: None,
        reason: String::new(),
    };
    match cs.mode.value {
        Mode::Llm => {
            choice.reason = "mode=\"llm\"".into();
            if llm.is_none() {
                return Err(format!("call-site `{}` has no usable LLM", cs.name.value));
            }
            Ok(choice)
        }
        Mode::Runner | Mode::Hybrid => {
            let Some(r) = runner else {
                return Err(format!(
                    "call-site `{}` has no usable runner",
                    cs.name.value
                ));
            };
            let enabled = switch_value(r, env)?;
            let in_scope = scope_value(r, repo, env);
            let use_runner = enabled.value && in_scope.value;
            choice.reason = if use_runner {
                format!(
                    "runner `{}` is enabled and repo `{repo}` is in scope",
                    r.name.value
                )
            } else if !enabled.value {
                format!(
                    "runner `{}` is switched off ({})",
                    r.name.value, enabled.source
                )
            } else {
                format!(
                    "repo `{repo}` is not in the scope of runner `{}` ({})",
                    r.name.value, in_scope.source
                )
            };
            choice.enabled = Some(enabled);
            choice.in_scope = Some(in_scope);
            if use_runner {
                choice.kind = Kind::Runner;
                choice.runner = Some(r);
                Ok(choice)
            } else if cs.mode.value == Mode::Hybrid && llm.is_some() {
                choice.reason.push_str("; falling back to the LLM");
                Ok(choice)
            } else {
                Err(format!(
                    "{}, and mode=\"runner\" has no fallback",
                    choice.reason
                ))
            }
        }
    }
}

/// The environment every producer (and alert) gets.
pub fn orch_env(ctx: &Context, pipeline_path: &Path) -> Vec<(String, String)> {
    vec![
        ("ORCH_TASK".into(), ctx.task.clone()),
        ("ORCH_STAGE".into(), ctx.stage.clone()),
        ("ORCH_ATTEMPT".into(), ctx.attempt.to_string()),
        ("ORCH_TASK_DIR".into(), ctx.task_dir.clone()),
        ("ORCH_WORKTREE".into(), ctx.worktree.clone()),
        ("ORCH_PIPELINE".into(), pipeline_path.display().to_string()),
    ]
}

pub fn render_argv(argv: &[Template], ctx: &Context) -> Result<Vec<String>, String> {
    argv.iter().map(|t| t.render(ctx)).collect()
}

fn render_env(
    env: &[EnvVar],
    ctx: &Context,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for e in env {
        out.push((e.key.value.clone(), e.value.render(ctx)?));
    }
    Ok(())
}

fn render_cwd(cwd: Option<&Template>, ctx: &Context) -> Result<PathBuf, String> {
    let worktree = PathBuf::from(&ctx.worktree);
    match cwd {
        None => Ok(worktree),
        Some(t) => Ok(worktree.join(t.render(ctx)?)),
    }
}

/// The process spec of a runner attempt.
pub fn runner_spec(
    r: &Runner,
    ctx: &Context,
    pipeline_path: &Path,
    log: PathBuf,
) -> Result<Spec, String> {
    let cmd = r.command.as_ref().ok_or("runner has no command")?;
    let mut env = orch_env(ctx, pipeline_path);
    render_env(&r.env, ctx, &mut env)?;
    Ok(Spec {
        argv: render_argv(&cmd.argv, ctx)?,
        cwd: render_cwd(r.cwd.as_ref(), ctx)?,
        env,
        stdin: None,
        timeout: r
            .timeout
            .as_ref()
            .map(|t| t.value)
            .ok_or("runner has no timeout")?,
        idle_timeout: r.idle_timeout.as_ref().map(|t| t.value),
        grace: r.grace,
        log,
    })
}

/// The process spec of an LLM attempt: the prompt file, rendered, goes on
/// stdin or as the last argument.
pub fn llm_spec(
    t: &Transport,
    l: &Llm,
    ctx: &Context,
    pipeline_path: &Path,
    log: PathBuf,
) -> Result<Spec, String> {
    let cmd = t.command.as_ref().ok_or("transport has no command")?;
    let dir = pipeline_path.parent().unwrap_or(Path::new("."));
    let prompt_path = dir.join(&l.prompt.value);
    let text = std::fs::read_to_string(&prompt_path)
        .map_err(|e| format!("cannot read prompt {}: {e}", prompt_path.display()))?;
    let (template, errors) = Template::parse(&text, (0, 0).into(), None);
    if let Some(e) = errors.first() {
        return Err(format!("prompt {}: {}", prompt_path.display(), e.message));
    }
    let prompt = template.render(ctx)?;
    let mut argv = render_argv(&cmd.argv, ctx)?;
    let stdin = match t.prompt {
        PromptMode::Stdin => Some(prompt.into_bytes()),
        PromptMode::Arg => {
            argv.push(prompt);
            None
        }
    };
    let mut env = orch_env(ctx, pipeline_path);
    render_env(&t.env, ctx, &mut env)?;
    Ok(Spec {
        argv,
        cwd: render_cwd(t.cwd.as_ref(), ctx)?,
        env,
        stdin,
        timeout: t
            .timeout
            .as_ref()
            .map(|t| t.value)
            .ok_or("transport has no timeout")?,
        idle_timeout: t.idle_timeout.as_ref().map(|t| t.value),
        grace: t.grace,
        log,
    })
}

/// A runner's verdict for how its process ended. Anything but a mapped
/// exit code or a timeout is a tool-error: the suite did not execute.
pub fn runner_verdict(r: &Runner, exit: &Exit) -> String {
    match exit {
        Exit::Code(c) => r.verdict_for_exit(*c).to_string(),
        Exit::TimedOut | Exit::IdleTimedOut => r.verdict_on_timeout().to_string(),
        Exit::Signal(_) | Exit::SpawnFailed(_) | Exit::Interrupted => TOOL_ERROR.to_string(),
    }
}

/// An LLM attempt executed when its transport exited 0; the agent wrote the
/// artifact and the gate will judge it. Anything else is a tool-error.
pub fn llm_verdict(exit: &Exit) -> String {
    match exit {
        Exit::Code(0) => "executed".to_string(),
        _ => TOOL_ERROR.to_string(),
    }
}

/// The artifact a runner writes: the verdict line first (the first line of
/// a key wins), then a readable body.
pub fn runner_artifact(
    key: &str,
    verdict: &str,
    runner: &str,
    argv: &[String],
    exit: &str,
    duration: std::time::Duration,
    tail: &[String],
) -> String {
    let mut s = format!("{key}: {verdict}\n\n");
    s.push_str(&format!(
        "# Report of runner `{runner}` (written by orch)\n\n"
    ));
    s.push_str(&format!("- command: `{}`\n", argv.join(" ")));
    s.push_str(&format!("- result: {exit}\n"));
    s.push_str(&format!(
        "- duration: {}\n\n",
        crate::duration::human(duration)
    ));
    s.push_str(&format!("## Output (last {} lines)\n\n", tail.len()));
    // Indented, so that no output line can pose as a `KEY: VALUE` field.
    for line in tail {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_values() {
        for t in ["1", "true", "YES", "on"] {
            assert_eq!(parse_switch(t), Some(true));
        }
        for f in ["0", "false", "no", "Off"] {
            assert_eq!(parse_switch(f), Some(false));
        }
        assert_eq!(parse_switch("maybe"), None);
    }
}
