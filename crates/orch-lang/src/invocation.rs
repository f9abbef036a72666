//! What a producer's process would be (argv, directory, environment, prompt,
//! timeouts), rendered from the model for one task, stage and attempt: what
//! the engine spawns and what `orch explain` shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::choice::Producer;
use crate::model::*;
use crate::template::{Context, Template};

/// One process to start.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub grace: Duration,
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
pub fn runner(r: &Runner, ctx: &Context, pipeline_path: &Path) -> Result<Invocation, String> {
    let cmd = r.command.as_ref().ok_or("runner has no command")?;
    let mut env = orch_env(ctx, pipeline_path);
    render_env(&r.env, ctx, &mut env)?;
    Ok(Invocation {
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
    })
}

/// The process spec of an LLM attempt: the prompt file, rendered, goes on
/// stdin or as the last argument.
pub fn llm(
    t: &Transport,
    l: &Llm,
    ctx: &Context,
    pipeline_path: &Path,
) -> Result<Invocation, String> {
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
    Ok(Invocation {
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
    })
}

/// The process of a producer.
pub fn of(
    producer: Producer<'_>,
    ctx: &Context,
    pipeline_path: &Path,
) -> Result<Invocation, String> {
    match producer {
        Producer::Runner(r) => runner(r, ctx, pipeline_path),
        Producer::Llm(t, l) => llm(t, l, ctx, pipeline_path),
    }
}

/// The process of an alert, run in the worktree with `ORCH_ALERT` set.
pub fn alert(a: &Alert, ctx: &Context, pipeline_path: &Path) -> Result<Invocation, String> {
    let cmd = a.command.as_ref().ok_or("alert has no command")?;
    let mut env = orch_env(ctx, pipeline_path);
    env.push(("ORCH_ALERT".into(), a.name.value.clone()));
    Ok(Invocation {
        argv: render_argv(&cmd.argv, ctx)?,
        cwd: PathBuf::from(&ctx.worktree),
        env,
        stdin: None,
        timeout: a.timeout.value,
        idle_timeout: None,
        grace: Duration::from_secs(5),
    })
}
