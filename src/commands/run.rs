//! `orch run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use orch_lang::diagnostic::{self, Format};
use orch_store::AnyStore;

use super::{exit, runtime, use_color};

/// Arguments of `orch run`, as parsed.
pub struct RunArgs {
    pub task: String,
    pub pipeline: PathBuf,
    pub worktree: Option<PathBuf>,
    pub vars: Vec<(String, String)>,
    pub state_dir: PathBuf,
    /// `--store` as given.
    pub store: Option<String>,
    pub json: bool,
    pub resume: bool,
    pub restart: bool,
    pub allow_changed_pipeline: bool,
    pub allow_changed_vars: bool,
    pub wait: bool,
    pub junit: Option<PathBuf>,
    pub verbose: bool,
}

/// Debug logs of every orch crate with `-v`; colour only on a terminal.
fn init_tracing(verbose: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if verbose {
            "orch=debug,orch_engine=debug,orch_store=debug,orch_lang=debug"
        } else {
            "warn"
        })
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_color(std::io::stderr().is_terminal()))
        .try_init();
}

/// `orch run`.
pub fn command(a: RunArgs) -> u8 {
    init_tracing(a.verbose);
    // Refuse a bad task name before anything is created.
    if let Err(e) = orch_engine::check_task_name(&a.task) {
        eprintln!("error: {e}");
        return e.exit_code();
    }
    // The JUnit report's file is opened before anything runs: a path that
    // cannot be written is found now, not after the task ran.
    let junit = match a.junit {
        Some(path) => match crate::junit::JUnitSink::open(&a.task, path) {
            Ok(sink) => Some(sink),
            Err(e) => {
                eprintln!("error: {e}; nothing was run");
                return exit::USAGE;
            }
        },
        None => None,
    };
    let tty = std::io::stdout().is_terminal();
    let color = use_color(tty) && !a.json;
    let sink = sinks(a.json, tty, color, junit);
    let opts = orch_engine::RunOptions {
        task: a.task,
        pipeline: a.pipeline,
        worktree: a.worktree,
        vars: a.vars,
        state_dir: a.state_dir,
        resume: a.resume,
        restart: a.restart,
        allow_changed_pipeline: a.allow_changed_pipeline,
        allow_changed_vars: a.allow_changed_vars,
        wait: a.wait,
        // `orch run` runs every stage, whatever its labels.
        labels: None,
    };
    let store_given = a.store;
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let result = runtime.block_on(async {
        orch_engine::process::become_subreaper();
        let cancel = cancel_on_signals()?;
        let prepared = orch_engine::prepare(opts)?;
        let at = super::store_location(store_given, prepared.state_dir());
        let pg = super::pg_options(None).map_err(orch_engine::RunError::Usage)?;
        let store = Arc::new(AnyStore::open(&at, pg).await?);
        let result = orch_engine::run(prepared, store.clone(), sink, cancel).await;
        // A shared store: the task's lock is free for others now, not when
        // the lease would have expired.
        store.close().await?;
        result
    });
    match result {
        Ok(f) => f.exit_code,
        Err(orch_engine::RunError::Invalid(report)) => {
            let rendered = diagnostic::render(&[*report], Format::Human, color);
            eprintln!("error: {rendered}the pipeline is invalid; nothing was run");
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Where the run's events go: the report on stdout (JSON lines, live on a
/// terminal, plain otherwise) and the JUnit file if one was asked for.
fn sinks(
    json: bool,
    tty: bool,
    color: bool,
    junit: Option<crate::junit::JUnitSink>,
) -> Box<orch_engine::events::Tee> {
    let style = if json {
        crate::report::Style::Json
    } else if tty {
        crate::report::Style::Live
    } else {
        crate::report::Style::Plain
    };
    let mut sinks: Vec<Box<dyn orch_engine::events::Sink>> =
        vec![Box::new(crate::report::Reporter::new(style, color))];
    if let Some(junit) = junit {
        sinks.push(Box::new(junit));
    }
    Box::new(orch_engine::events::Tee(sinks))
}

/// A cancel signal that turns true on SIGINT, SIGTERM or SIGHUP (a closed
/// terminal or SSH session: its default action would kill orch and leave
/// the producers running and the run `running`). Registered before the run
/// starts: a signal that lands before the engine first looks must still be
/// caught.
fn cancel_on_signals() -> Result<tokio::sync::watch::Receiver<bool>, orch_engine::RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = |kind: SignalKind| {
        signal(kind).map_err(|e| {
            orch_engine::RunError::Io(format!("cannot handle SIGINT/SIGTERM/SIGHUP: {e}"))
        })
    };
    let mut int = handle(SignalKind::interrupt())?;
    let mut term = handle(SignalKind::terminate())?;
    let mut hup = handle(SignalKind::hangup())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}
