//! The commands behind `main.rs`: each takes parsed arguments, prints, and
//! returns the process exit status.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use orch_store::{RunStore, SqliteStore};

use orch_lang::analysis;
use orch_lang::diagnostic::{self, Format, Severity};
use orch_lang::validate::Options;

/// Exit statuses shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// Colour only on a terminal, never under `NO_COLOR`.
pub fn use_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `orch validate`.
pub fn validate(paths: &[PathBuf], format: Format, strict: bool) -> u8 {
    let files = match analysis::collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", describe(paths));
            return exit::USAGE;
        }
    };
    if files.is_empty() {
        eprintln!("error: no *.kdl files in {}", describe(paths));
        return exit::USAGE;
    }
    let mut reports = Vec::new();
    for f in &files {
        match analysis::analyze_file(f, &Options::default()) {
            Ok(c) => reports.push(c.report),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return exit::USAGE;
            }
        }
    }
    let out = diagnostic::render(&reports, format, use_color(std::io::stdout().is_terminal()));
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`orch validate | head`) is not an error of the pipeline.
    let _ = stdout.write_all(out.as_bytes());
    let failed = reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.severity == Severity::Error || (strict && f.severity == Severity::Warning));
    if failed {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `orch schema`.
pub fn schema() -> u8 {
    let _ = std::io::stdout().write_all(orch_lang::schema::SCHEMA.as_bytes());
    exit::OK
}

/// Arguments of `orch run`, as parsed.
pub struct RunArgs {
    pub task: String,
    pub pipeline: PathBuf,
    pub worktree: Option<PathBuf>,
    pub vars: Vec<(String, String)>,
    pub state_dir: PathBuf,
    pub json: bool,
    pub resume: bool,
    pub restart: bool,
    pub allow_changed_pipeline: bool,
    pub allow_changed_vars: bool,
    pub junit: Option<PathBuf>,
    pub verbose: bool,
}

fn init_tracing(verbose: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if verbose { "orch=debug" } else { "warn" })
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `orch run`.
pub fn run(a: RunArgs) -> u8 {
    init_tracing(a.verbose);
    // Refuse a bad task name before anything is created.
    if let Err(e) = orch_engine::check_task_name(&a.task) {
        eprintln!("error: {e}");
        return e.exit_code();
    }
    let tty = std::io::stdout().is_terminal();
    let style = if a.json {
        crate::report::Style::Json
    } else if tty {
        crate::report::Style::Live
    } else {
        crate::report::Style::Plain
    };
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
    };
    let color = use_color(tty) && !a.json;
    let mut sinks: Vec<Box<dyn orch_engine::events::Sink>> =
        vec![Box::new(crate::report::Reporter::new(style, color))];
    if let Some(path) = a.junit {
        sinks.push(Box::new(crate::junit::JUnitSink {
            task: opts.task.clone(),
            path,
        }));
    }
    let sink = Box::new(orch_engine::events::Tee(sinks));
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
        let store = Arc::new(SqliteStore::open_dir(prepared.state_dir())?);
        orch_engine::run(prepared, store, sink, cancel).await
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

/// A runtime for one command on this thread.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Runs a read of the store of `state_dir` (`None` when nothing was ever
/// recorded there: looking creates no database).
fn read_store<T, E: std::fmt::Display>(
    state_dir: &std::path::Path,
    read: impl AsyncFnOnce(Option<&SqliteStore>) -> Result<T, E>,
) -> Result<T, String> {
    let store = SqliteStore::open_existing(state_dir).map_err(|e| e.to_string())?;
    runtime()?
        .block_on(read(store.as_ref()))
        .map_err(|e| e.to_string())
}

/// A cancel signal that turns true on SIGINT or SIGTERM. Registered before
/// the run starts: a signal that lands before the engine first looks must
/// still be caught.
fn cancel_on_signals() -> Result<tokio::sync::watch::Receiver<bool>, orch_engine::RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            return Err(orch_engine::RunError::Io(format!(
                "cannot handle SIGINT/SIGTERM: {e}"
            )))
        }
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Prints a read command's output, or its store error (exit 2).
fn print_or_fail(result: Result<String, String>) -> u8 {
    match result {
        Ok(s) => {
            let _ = std::io::stdout().write_all(s.as_bytes());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

/// `orch history`.
pub fn history(task: Option<&str>, state_dir: &std::path::Path, json: bool) -> u8 {
    print_or_fail(read_store(state_dir, async |store| match store {
        Some(store) => crate::history::history(store, task, json).await,
        None if json => Ok("{\n  \"version\": 1,\n  \"runs\": []\n}\n".into()),
        None => Ok(format!("no runs recorded in {}\n", state_dir.display())),
    }))
}

/// `orch status`.
pub fn status(state_dir: &std::path::Path, json: bool) -> u8 {
    print_or_fail(read_store(state_dir, async |store| {
        crate::history::status(store, json).await
    }))
}

/// Formats of `orch map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MapFormat {
    Markdown,
    Json,
}

/// Loads a pipeline that must be valid; prints the report and returns the
/// exit status otherwise.
fn load_valid(path: &std::path::Path) -> Result<orch_lang::model::Pipeline, u8> {
    let checked = match analysis::analyze_file(path, &Options { offline: true }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot read pipeline {}: {e}", path.display());
            return Err(exit::USAGE);
        }
    };
    if checked.has_errors() {
        let tty = std::io::stderr().is_terminal();
        eprint!(
            "{}",
            diagnostic::render(&[checked.report], Format::Human, use_color(tty))
        );
        eprintln!("error: the pipeline is invalid");
        return Err(exit::USAGE);
    }
    Ok(checked.pipeline)
}

fn print(s: &str) {
    let _ = std::io::stdout().write_all(s.as_bytes());
}

/// `orch map`.
pub fn map(path: &std::path::Path, format: MapFormat, check_file: Option<&std::path::Path>) -> u8 {
    let p = match load_valid(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let m = orch_lang::map::build(&p);
    let generated = match format {
        MapFormat::Markdown => orch_lang::map::to_markdown(&m),
        MapFormat::Json => orch_lang::map::to_json(&m),
    };
    let Some(file) = check_file else {
        print(&generated);
        return exit::OK;
    };
    let committed = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return exit::USAGE;
        }
    };
    match orch_lang::map::drift(&committed, &generated, &file.display().to_string()) {
        None => {
            println!("{} matches the pipeline", file.display());
            exit::OK
        }
        Some(diff) => {
            print(&diff);
            eprintln!(
                "error: {} has drifted from the pipeline; regenerate it with `orch map -p {} > {}`",
                file.display(),
                path.display(),
                file.display()
            );
            exit::FINDINGS
        }
    }
}

/// `orch roadmap`.
pub fn roadmap(path: &std::path::Path, state_dir: &std::path::Path, json: bool) -> u8 {
    let p = match load_valid(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let name = p
        .header
        .as_ref()
        .map(|h| h.name.value.clone())
        .unwrap_or_default();
    let attempts = match read_store(state_dir, async |store| match store {
        Some(store) => store.llm_attempts(&name).await,
        None => Ok(Vec::new()),
    }) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    // History counts only runs of this pipeline (by its name); say how much
    // of it ran an earlier version of the file.
    let digest = std::fs::read_to_string(path)
        .map(|t| orch_engine::pipeline_digest(&t))
        .unwrap_or_default();
    let earlier = attempts
        .iter()
        .filter(|a| a.pipeline_hash != digest)
        .count();
    let history = format!(
        "ranked by {} recorded LLM attempt(s) of pipeline `{name}`{}",
        attempts.len(),
        if earlier > 0 {
            format!(
                "; {earlier} of them ran an earlier version of {}",
                path.display()
            )
        } else {
            String::new()
        }
    );
    let pairs: Vec<(String, i64)> = attempts
        .into_iter()
        .map(|a| (a.call_site, a.duration_ms))
        .collect();
    let r = orch_lang::roadmap::build(&p, &pairs);
    if json {
        let mut doc = match serde_json::to_value(&r) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: cannot write the JSON document: {e}");
                return exit::USAGE;
            }
        };
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("history".into(), serde_json::Value::String(history));
        }
        match crate::history::json_doc(&doc) {
            Ok(doc) => print(&doc),
            Err(e) => {
                eprintln!("error: cannot write the JSON document: {e}");
                return exit::USAGE;
            }
        }
    } else {
        print(&orch_lang::roadmap::to_text(&r));
        print(&format!("({history})\n"));
    }
    exit::OK
}

/// `orch graph`.
pub fn graph(path: &std::path::Path, format: orch_lang::diagram::DiagramFormat) -> u8 {
    match load_valid(path) {
        Ok(p) => {
            print(&orch_lang::diagram::render(&p, format));
            exit::OK
        }
        Err(code) => code,
    }
}

/// `orch explain`.
pub fn explain(
    stage: &str,
    path: &std::path::Path,
    worktree: &std::path::Path,
    vars: &[(String, String)],
) -> u8 {
    let p = match load_valid(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(header) = p.header.as_ref() else {
        return exit::USAGE;
    };
    let b = match orch_engine::bind(header, vars, worktree) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let pipeline_path = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    let env = |k: &str| std::env::var(k).ok();
    match orch_lang::explain::explain(
        &p,
        stage,
        &b.vars,
        &b.repo,
        &b.worktree,
        &pipeline_path,
        &env,
    ) {
        Ok(s) => {
            print(&s);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

/// `orch fmt`.
pub fn fmt(paths: &[PathBuf], check_only: bool) -> u8 {
    let files = match analysis::collect_files(paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("error: no *.kdl files in {}", describe(paths));
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", describe(paths));
            return exit::USAGE;
        }
    };
    let mut changed = Vec::new();
    let mut broken = false;
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return exit::USAGE;
            }
        };
        let formatted = match orch_lang::fmt::format(&text) {
            Ok(t) => t,
            Err(_) => {
                // Not KDL: say where, the way `orch validate` does.
                let checked = analysis::analyze_text(
                    &f.display().to_string(),
                    &text,
                    &Options { offline: true },
                );
                eprint!(
                    "{}",
                    diagnostic::render(
                        &[checked.report],
                        Format::Human,
                        use_color(std::io::stderr().is_terminal())
                    )
                );
                broken = true;
                continue;
            }
        };
        if formatted != text {
            changed.push(f.clone());
            if !check_only {
                if let Err(e) = std::fs::write(f, formatted) {
                    eprintln!("error: cannot write {}: {e}", f.display());
                    return exit::USAGE;
                }
            }
        }
    }
    for f in &changed {
        println!(
            "{}{}",
            if check_only {
                "would reformat "
            } else {
                "formatted "
            },
            f.display()
        );
    }
    if broken || (check_only && !changed.is_empty()) {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// `orch init`.
pub fn init(dir: &std::path::Path) -> u8 {
    match orch_lang::init::init(dir) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            println!(
                "next: orch validate -p {}",
                dir.join("pipeline.kdl").display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
