//! The `orch` command line: parses arguments and calls the library.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use orch::commands::{self as cli, exit};
use orch_lang::diagnostic::Format;

#[derive(Parser)]
#[command(
    name = "orch",
    version,
    about = "A declarative pipeline-as-config interpreter for LLM-agent delivery pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files and report every problem with its place in the file.
    Validate {
        /// Files or directories (every `*.kdl` below them); default: the `--pipeline` file.
        paths: Vec<PathBuf>,
        /// The pipeline file, when no paths are given.
        #[arg(short, long, default_value = "pipeline.kdl")]
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Take a task through the pipeline.
    Run(RunArgs),
    /// Show recorded runs and their attempts.
    History {
        /// Only this task's runs.
        task: Option<String>,
        /// Where runs are kept.
        #[arg(long, default_value = ".orch")]
        state_dir: PathBuf,
        /// The run store: postgres://… or an SQLite file (default: ORCH_STORE, else STATE/orch.db).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// One JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Show tasks in flight and who holds the serial stages.
    Status {
        /// Where runs are kept.
        #[arg(long, default_value = ".orch")]
        state_dir: PathBuf,
        /// The run store: postgres://… or an SQLite file (default: ORCH_STORE, else STATE/orch.db).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// One JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Print the call-site inventory (the LLM call-site map), or check a committed copy.
    Map {
        /// The pipeline file.
        #[arg(short, long, default_value = "pipeline.kdl")]
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = cli::map::MapFormat::Markdown)]
        format: cli::map::MapFormat,
        /// Exit 1 with a unified diff when FILE differs from what the pipeline generates.
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
    },
    /// List the avoidable LLM control paths, ranked by what the run history says replacing each would save.
    Roadmap {
        /// The pipeline file.
        #[arg(short, long, default_value = "pipeline.kdl")]
        pipeline: PathBuf,
        /// Where runs are kept.
        #[arg(long, default_value = ".orch")]
        state_dir: PathBuf,
        /// The run store: postgres://… or an SQLite file (default: ORCH_STORE, else STATE/orch.db).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Draw the stages and transitions (Mermaid or Graphviz DOT).
    Graph {
        /// The pipeline file.
        #[arg(short, long, default_value = "pipeline.kdl")]
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = orch_lang::diagram::DiagramFormat::Mermaid)]
        format: orch_lang::diagram::DiagramFormat,
    },
    /// Say what would run for a stage now, and why.
    Explain {
        /// The stage.
        stage: String,
        #[command(flatten)]
        task: TaskContext,
    },
    /// Format pipeline files canonically (comments kept).
    Fmt {
        /// Files or directories (every `*.kdl` below them); default: ./pipeline.kdl.
        paths: Vec<PathBuf>,
        /// Change nothing; exit 1 listing the files that would change.
        #[arg(long)]
        check: bool,
    },
    /// A Language Server for pipeline files on stdin/stdout (for editors).
    Lsp,
    /// Write a commented starter pipeline.kdl and its prompt files (never overwrites).
    Init {
        /// Where to write them.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script (bash, elvish, fish, powershell, zsh).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line's definition; with
    /// `--dir`, write a page per command (orch.1, orch-run.1, …) into DIR instead.
    Man {
        /// Write orch.1 and one page per subcommand into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of the pipeline language.
    Schema,
    /// Run the service: a durable task queue over HTTP, each task on the engine of `orch run`.
    Serve(ServeArgs),
    /// Queue a task on a running `orch serve`.
    Submit {
        /// The task: letters, digits, '.', '_' and '-', not starting with '.'.
        task: String,
        /// Set a pipeline variable (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// The directory producers work in; default: the current directory.
        #[arg(long)]
        worktree: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a task on a running `orch serve`: its producers are terminated and its run is
    /// recorded as cancelled.
    Cancel {
        /// The task.
        task: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Approve a task's pending approval request (as one of its approvers).
    Approve {
        /// The task.
        task: String,
        /// Who decides: one of the request's approvers.
        #[arg(long = "as", value_name = "NAME")]
        who: String,
        /// Why (optional).
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// Where runs are kept.
        #[arg(long, default_value = ".orch")]
        state_dir: PathBuf,
        /// The run store: postgres://… or an SQLite file (default: ORCH_STORE, else STATE/orch.db).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Reject a task's pending approval request (as one of its approvers), saying why.
    Reject {
        /// The task.
        task: String,
        /// Who decides: one of the request's approvers.
        #[arg(long = "as", value_name = "NAME")]
        who: String,
        /// Why: a rejection always says why.
        #[arg(long, value_name = "TEXT")]
        comment: String,
        /// Where runs are kept.
        #[arg(long, default_value = ".orch")]
        state_dir: PathBuf,
        /// The run store: postgres://… or an SQLite file (default: ORCH_STORE, else STATE/orch.db).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
}

/// Where the service is, and where its token may be read (`submit`, `cancel`).
#[derive(clap::Args)]
struct ClientArgs {
    /// The service's URL; default: ORCH_SERVER, else http://127.0.0.1:7700.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The service's state directory, to read its token from STATE/token (ORCH_TOKEN wins).
    #[arg(long, default_value = ".orch")]
    state_dir: PathBuf,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The pipeline file; an invalid one and the service does not start.
    #[arg(short, long, default_value = "pipeline.kdl")]
    pipeline: PathBuf,
    /// Where runs, logs, artifacts, the queue and the token are kept.
    #[arg(long, default_value = ".orch")]
    state_dir: PathBuf,
    /// The run store and queue: postgres://… (shared by many services) or an SQLite file
    /// (default: ORCH_STORE, else STATE/orch.db).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// This service's name among those sharing a PostgreSQL store (default: HOST:PID).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The labels this service has (`gpu,macos`, or the option repeated): it runs only stages
    /// whose runner's and transport's labels it has all of.
    #[arg(long, value_name = "LABEL,…", value_delimiter = ',', value_parser = parse_label)]
    labels: Vec<String>,
    /// Where each task works on this host: an absolute path, `{task}` replaced by the task's
    /// name (e.g. /srv/work/{task}); created when missing. A task taken over works in the taker's.
    #[arg(long, value_name = "TEMPLATE", value_parser = parse_worktree_template)]
    worktree: Option<orch_server::config::WorktreeTemplate>,
    /// The address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    listen: std::net::SocketAddr,
    /// How many tasks run at once (a task waiting for a serial stage holds none).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// On SIGTERM/SIGINT, how long running attempts get to finish before they are cancelled.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    drain_timeout: std::time::Duration,
    /// Read the bearer token from FILE (else ORCH_TOKEN, else STATE/token, made on first start).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Who may decide approvals through the API: lines of `NAME TOKEN-SHA256`; the decider's
    /// name comes from the token.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = cli::serve::LogFormat::Text)]
    log_format: cli::serve::LogFormat,
    /// Debug logs (or set RUST_LOG).
    #[arg(short, long)]
    verbose: bool,
}

/// `orch serve --worktree`: absolute, `{task}` its only placeholder.
fn parse_worktree_template(s: &str) -> Result<orch_server::config::WorktreeTemplate, String> {
    orch_server::config::WorktreeTemplate::parse(s)
}

/// A label of `--labels`: non-empty, no surrounding blanks.
fn parse_label(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("a label must not be empty".into());
    }
    Ok(t.to_string())
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    orch_lang::duration::parse(s)
}

/// The pipeline and what a task runs with (`run` and `explain`).
#[derive(clap::Args)]
struct TaskContext {
    /// The pipeline file.
    #[arg(short, long, default_value = "pipeline.kdl")]
    pipeline: PathBuf,
    /// The directory producers work in (`{worktree}`); default: the current
    /// directory (on `run --resume`, the directory the run began in).
    #[arg(long)]
    worktree: Option<PathBuf>,
    /// Set a pipeline variable (repeatable); `repo` names the repository for runner scopes.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The task: letters, digits, '.', '_' and '-', not starting with '.' or '-'.
    task: String,
    #[command(flatten)]
    context: TaskContext,
    /// Where runs, logs and artifacts are kept.
    #[arg(long, default_value = ".orch")]
    state_dir: PathBuf,
    /// The run store: postgres://… or an SQLite file (default: ORCH_STORE, else STATE/orch.db).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Print JSON-lines events instead of the human view.
    #[arg(long)]
    json: bool,
    /// Continue the task's interrupted run at its first unfinished attempt.
    #[arg(long, conflicts_with = "restart")]
    resume: bool,
    /// Start a new run even if the task has one.
    #[arg(long)]
    restart: bool,
    /// Resume even though the pipeline file changed since the run began.
    #[arg(long, requires = "resume")]
    allow_changed_pipeline: bool,
    /// Resume with other `--var` values or another `--worktree` than the run began with
    /// (recorded in the run); without it a resume uses the run's own and refuses others.
    #[arg(long, requires = "resume")]
    allow_changed_vars: bool,
    /// At an approval stage, wait for the decision or the expiry instead of exiting with 4.
    #[arg(long)]
    wait: bool,
    /// Write a JUnit XML report of the run (a test case per stage attempt) to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Debug logs on stderr (or set RUST_LOG).
    #[arg(short, long)]
    verbose: bool,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, found {s:?}")),
    }
}

/// `orch man`: the main page on stdout, or every page into `dir`.
fn man(dir: Option<&std::path::Path>) -> u8 {
    let written = match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir)),
        None => {
            // Into a buffer first: a closed pipe must not abort the render.
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map(|()| {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), &out);
                })
        }
    };
    match written {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: cannot write the man pages: {e}");
            exit::USAGE
        }
    }
}

/// Long on purpose: one arm per command, each only moving parsed
/// arguments into the library's call.
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // An error, not `--help` or `--version`: `orch run --junit
            // FILE` must not leave an earlier report in FILE.
            if e.use_stderr() {
                let args: Vec<_> = std::env::args_os().skip(1).collect();
                cli::run::refused(&args, &e.render().to_string());
            }
            e.exit()
        }
    };
    let code = match cli.command {
        Command::Validate {
            paths,
            pipeline,
            format,
            strict,
        } => {
            let paths = if paths.is_empty() {
                vec![pipeline]
            } else {
                paths
            };
            cli::validate::command(&paths, format, strict)
        }
        Command::Run(a) => cli::run::command(cli::run::RunArgs {
            task: a.task,
            pipeline: a.context.pipeline,
            worktree: a.context.worktree,
            vars: a.context.vars,
            state_dir: a.state_dir,
            store: a.store,
            json: a.json,
            resume: a.resume,
            restart: a.restart,
            allow_changed_pipeline: a.allow_changed_pipeline,
            allow_changed_vars: a.allow_changed_vars,
            wait: a.wait,
            junit: a.junit,
            verbose: a.verbose,
        }),
        Command::History {
            task,
            state_dir,
            store,
            json,
        } => cli::history::command(
            task.as_deref(),
            &cli::store_location(store, &state_dir),
            json,
        ),
        Command::Status {
            state_dir,
            store,
            json,
        } => cli::status::command(&cli::store_location(store, &state_dir), json),
        Command::Map {
            pipeline,
            format,
            check,
        } => cli::map::command(&pipeline, format, check.as_deref()),
        Command::Roadmap {
            pipeline,
            state_dir,
            store,
            json,
        } => cli::roadmap::command(&pipeline, &cli::store_location(store, &state_dir), json),
        Command::Graph { pipeline, format } => cli::graph::command(&pipeline, format),
        Command::Explain { stage, task } => {
            let worktree = task.worktree.unwrap_or_else(|| PathBuf::from("."));
            cli::explain::command(&stage, &task.pipeline, &worktree, &task.vars)
        }
        Command::Fmt { paths, check } => {
            let paths = if paths.is_empty() {
                vec![PathBuf::from("pipeline.kdl")]
            } else {
                paths
            };
            cli::fmt::command(&paths, check)
        }
        Command::Init { dir } => cli::init::command(&dir),
        Command::Lsp => cli::lsp::command(),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            // Into a buffer first: the generator panics on a closed pipe.
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "orch", &mut out);
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &out);
            0
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Schema => cli::validate::schema(),
        Command::Serve(a) => cli::serve::command(cli::serve::ServeArgs {
            pipeline: a.pipeline,
            state_dir: a.state_dir,
            store: a.store,
            name: a.name,
            labels: a.labels,
            worktree: a.worktree,
            listen: a.listen,
            workers: usize::from(a.workers),
            drain_timeout: a.drain_timeout,
            token_file: a.token_file,
            tokens_file: a.tokens_file,
            log_format: a.log_format,
            verbose: a.verbose,
        }),
        Command::Submit {
            task,
            vars,
            worktree,
            client,
        } => cli::submit::command(cli::submit::SubmitArgs {
            task,
            vars,
            worktree,
            server: client.server,
            state_dir: client.state_dir,
        }),
        Command::Cancel { task, client } => cli::cancel::command(cli::cancel::CancelArgs {
            task,
            server: client.server,
            state_dir: client.state_dir,
        }),
        Command::Approve {
            task,
            who,
            comment,
            state_dir,
            store,
        } => cli::approve::command(cli::approve::DecideArgs {
            task,
            decision: orch_store::Decision::Approved,
            who,
            comment,
            store: cli::store_location(store, &state_dir),
        }),
        Command::Reject {
            task,
            who,
            comment,
            state_dir,
            store,
        } => cli::approve::command(cli::approve::DecideArgs {
            task,
            decision: orch_store::Decision::Rejected,
            who,
            comment: Some(comment),
            store: cli::store_location(store, &state_dir),
        }),
    };
    ExitCode::from(code)
}
