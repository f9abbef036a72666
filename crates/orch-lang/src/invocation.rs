//! What a producer's process would be (argv, directory, environment, prompt,
//! timeouts), rendered from the model for one task, stage and attempt: what
//! the engine spawns and what `orch explain` shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::choice::Producer;
use crate::keyword as kw;
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
pub(crate) fn orch_env(ctx: &Context, pipeline_path: &Path) -> Vec<(String, String)> {
    vec![
        ("ORCH_TASK".into(), ctx.task.clone()),
        ("ORCH_STAGE".into(), ctx.stage.clone()),
        ("ORCH_ATTEMPT".into(), ctx.attempt.to_string()),
        ("ORCH_TASK_DIR".into(), ctx.task_dir.clone()),
        ("ORCH_WORKTREE".into(), ctx.worktree.clone()),
        ("ORCH_PIPELINE".into(), pipeline_path.display().to_string()),
    ]
}

pub(crate) fn render_argv(argv: &[Template], ctx: &Context) -> Result<Vec<String>, String> {
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

/// A producer's process, rendered for one attempt: argv, directory,
/// environment (orch's own, then the process's `env`), timeouts and grace;
/// no stdin. `owner` (`runner`, `transport`) names it in the messages.
/// `first` runs once the command is known to be there, before anything is
/// rendered (an LLM's prompt is read then); its value comes back with the
/// invocation.
fn process<T>(
    p: &Process,
    owner: &str,
    ctx: &Context,
    pipeline_path: &Path,
    first: impl FnOnce() -> Result<T, String>,
) -> Result<(Invocation, T), String> {
    let cmd = p
        .command
        .as_ref()
        .ok_or_else(|| format!("{owner} has no command"))?;
    let first = first()?;
    let argv = render_argv(&cmd.argv, ctx)?;
    let mut env = orch_env(ctx, pipeline_path);
    render_env(&p.env, ctx, &mut env)?;
    let invocation = Invocation {
        argv,
        cwd: render_cwd(p.cwd.as_ref(), ctx)?,
        env,
        stdin: None,
        timeout: p
            .timeout
            .as_ref()
            .map(|t| t.value)
            .ok_or_else(|| format!("{owner} has no timeout"))?,
        idle_timeout: p.idle_timeout.as_ref().map(|t| t.value),
        grace: p.grace,
    };
    Ok((invocation, first))
}

/// The process spec of a runner attempt.
pub(crate) fn runner(
    r: &Runner,
    ctx: &Context,
    pipeline_path: &Path,
) -> Result<Invocation, String> {
    let (invocation, ()) = process(&r.process, kw::RUNNER, ctx, pipeline_path, || Ok(()))?;
    Ok(invocation)
}

/// The process spec of an LLM attempt: the prompt file, rendered, goes on
/// stdin or as the last argument.
pub(crate) fn llm(
    t: &Transport,
    l: &Llm,
    ctx: &Context,
    pipeline_path: &Path,
) -> Result<Invocation, String> {
    let (mut invocation, prompt) = process(&t.process, kw::TRANSPORT, ctx, pipeline_path, || {
        prompt(l, ctx, pipeline_path)
    })?;
    match t.prompt {
        PromptMode::Stdin => invocation.stdin = Some(prompt.into_bytes()),
        PromptMode::Arg => invocation.argv.push(prompt),
    }
    Ok(invocation)
}

/// The call-site's prompt file (beside the pipeline file), rendered.
fn prompt(l: &Llm, ctx: &Context, pipeline_path: &Path) -> Result<String, String> {
    let dir = pipeline_path.parent().unwrap_or(Path::new("."));
    let prompt_path = dir.join(&l.prompt.value);
    let text = crate::limits::read_prompt(&prompt_path)
        .map_err(|e| format!("cannot read prompt {}: {e}", prompt_path.display()))?
        .map_err(|len| crate::limits::prompt_too_large(&prompt_path.display().to_string(), len))?;
    let (template, errors) = Template::parse(&text, (0, 0).into(), None);
    if let Some(e) = errors.first() {
        return Err(format!("prompt {}: {}", prompt_path.display(), e.message));
    }
    template.render(ctx)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader;

    const TEXT: &str = r#"runner "r" {
    command "check" "{task}"
    cwd "sub"
    env MODE="{stage}"
    timeout "1m"
    idle-timeout "20s"
    grace "3s"
}
runner "bare" {
}
transport "bare" {
}
runner "untimed" {
    command "check"
}
transport "agent" {
    command "agent"
    timeout "1m"
}
"#;

    fn context() -> Context {
        Context {
            task: "t1".into(),
            stage: "s".into(),
            attempt: 1,
            worktree: "/wt".into(),
            ..Context::default()
        }
    }

    #[test]
    fn a_runner_s_process_is_rendered_from_its_settings() {
        let p = loader::load("p.kdl", TEXT).pipeline;
        let r = p.runner("r").expect("runner r");
        let path = Path::new("/pipelines/p.kdl");
        let inv = runner(r, &context(), path).expect("invocation");
        assert_eq!(inv.argv, ["check", "t1"]);
        assert_eq!(inv.cwd, PathBuf::from("/wt/sub"));
        assert_eq!(inv.env.last(), Some(&("MODE".into(), "s".into())));
        assert_eq!(inv.env[..inv.env.len() - 1], orch_env(&context(), path)[..]);
        assert!(inv.stdin.is_none());
        assert_eq!(inv.timeout, Duration::from_secs(60));
        assert_eq!(inv.idle_timeout, Some(Duration::from_secs(20)));
        assert_eq!(inv.grace, Duration::from_secs(3));
    }

    #[test]
    fn a_process_without_command_or_timeout_names_its_owner() {
        let p = loader::load("p.kdl", TEXT).pipeline;
        let path = Path::new("/nonexistent/p.kdl");
        let ctx = context();
        let bare_runner = p.runners.iter().find(|r| r.name.value == "bare");
        let err = bare_runner.map(|r| runner(r, &ctx, path).err());
        assert_eq!(err, Some(Some("runner has no command".into())));
        let bare_transport = p.transports.iter().find(|t| t.name.value == "bare");
        let l = Llm {
            transport: Spanned::new("bare".into(), (0, 0).into()),
            prompt: Spanned::new("missing.md".into(), (0, 0).into()),
            span: (0, 0).into(),
        };
        // Said before the (missing) prompt file is read.
        let err = bare_transport.map(|t| llm(t, &l, &ctx, path).err());
        assert_eq!(err, Some(Some("transport has no command".into())));
        let untimed = p.runner("untimed").map(|r| runner(r, &ctx, path).err());
        assert_eq!(untimed, Some(Some("runner has no timeout".into())));
    }

    #[test]
    fn a_prompt_over_the_limit_is_refused_with_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("orch-llm-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Sparse: reading 1 GiB would take seconds and a GiB of memory.
        let f = std::fs::File::create(dir.join("big.md")).unwrap();
        f.set_len(1 << 30).unwrap();
        let p = loader::load("p.kdl", TEXT).pipeline;
        let t = p
            .transports
            .iter()
            .find(|t| t.name.value == "agent")
            .unwrap();
        let l = Llm {
            transport: Spanned::new("agent".into(), (0, 0).into()),
            prompt: Spanned::new("big.md".into(), (0, 0).into()),
            span: (0, 0).into(),
        };
        let err = llm(t, &l, &context(), &dir.join("p.kdl")).err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            err,
            Some(format!(
                "prompt file `{}` is 1073741824 bytes; orch reads prompt files of at most 8 MiB (8388608 bytes)",
                dir.join("big.md").display()
            ))
        );
    }
}
