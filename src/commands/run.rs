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
    // The JUnit report is replaced before anything else: a path that cannot
    // be written is found now, not after the task ran, and a report an
    // earlier invocation left never stands for this one.
    let junit = match &a.junit {
        Some(path) => match crate::junit::JUnitFile::start(&a.task, path.clone()) {
            Ok(file) => Some((file, crate::junit::Slot::default())),
            Err(e) => {
                eprintln!("error: {e}; nothing was run");
                return exit::USAGE;
            }
        },
        None => None,
    };
    let task = a.task.clone();
    let (code, error) = match execute(a, junit.as_ref().map(|(_, slot)| slot.clone())) {
        Ok(code) => (code, None),
        Err(f) => {
            eprintln!("error: {}", f.shown);
            (f.code, Some(f.plain))
        }
    };
    let Some((file, slot)) = junit else {
        return code;
    };
    // This invocation's report: the run's, or the error it stopped with.
    let report = match (crate::junit::take(&slot), error) {
        (Some(report), None) => report,
        (Some(mut report), Some(error)) => {
            report.failed_after(&error);
            report
        }
        (None, Some(error)) => crate::junit::Report::error(&task, &error),
        (None, None) => crate::junit::Report::error(
            &task,
            &format!("orch run exited with status {code} without a report of the run"),
        ),
    };
    match file.write(&report) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

/// Why an invocation stopped without a run's exit status: its exit status,
/// the error as printed, and as plain text (for the JUnit report).
struct Failed {
    code: u8,
    shown: String,
    plain: String,
}

impl Failed {
    fn plain(code: u8, message: String) -> Failed {
        Failed {
            code,
            shown: message.clone(),
            plain: message,
        }
    }
}

/// Runs the task; the run's exit status, or why there is none.
fn execute(a: RunArgs, junit: Option<crate::junit::Slot>) -> Result<u8, Failed> {
    // Refuse a bad task name before anything is created.
    if let Err(e) = orch_engine::check_task_name(&a.task) {
        return Err(Failed::plain(e.exit_code(), e.to_string()));
    }
    let tty = std::io::stdout().is_terminal();
    let color = use_color(tty) && !a.json;
    let junit = junit.map(|slot| crate::junit::JUnitSink::new(&a.task, slot));
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
    let runtime = runtime().map_err(|e| Failed::plain(exit::USAGE, e))?;
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
        Ok(f) => Ok(f.exit_code),
        Err(orch_engine::RunError::Invalid(report)) => {
            let report = [*report];
            let rendered = |color| diagnostic::render(&report, Format::Human, color);
            Err(Failed {
                code: exit::USAGE,
                shown: format!(
                    "{}the pipeline is invalid; nothing was run",
                    rendered(color)
                ),
                plain: format!(
                    "the pipeline is invalid; nothing was run\n{}",
                    rendered(false)
                ),
            })
        }
        Err(e) => Err(Failed::plain(e.exit_code(), e.to_string())),
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

/// Arguments clap refused (`args` without the program name; `error` as
/// printed): when they are `orch run`'s and name a `--junit FILE`, FILE
/// gets a report of the refusal instead of keeping an earlier one.
pub fn refused(args: &[std::ffi::OsString], error: &str) {
    if args.first().and_then(|a| a.to_str()) != Some("run") {
        return;
    }
    let mut junit = None;
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        match a.to_str() {
            Some("--") => break,
            Some("--junit") => junit = rest.next().map(PathBuf::from),
            Some(s) => {
                if let Some(v) = s.strip_prefix("--junit=") {
                    junit = Some(PathBuf::from(v));
                }
            }
            None => {}
        }
    }
    let Some(path) = junit else {
        return;
    };
    let report = crate::junit::Report::error("orch run", error.trim_end());
    if let Err(e) = crate::junit::JUnitFile::start("orch run", path).and_then(|f| f.write(&report))
    {
        eprintln!("error: {e}");
    }
}
