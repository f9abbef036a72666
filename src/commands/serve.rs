//! `orch serve`: the service, on a multi-threaded runtime, until SIGINT or
//! SIGTERM, then drained.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orch_lang::diagnostic::{self, Format};
use orch_server::{Config, ServeError, Service, TokenSource};
use orch_store::AnyStore;

use super::{exit, use_color};

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Arguments of `orch serve`, as parsed.
pub struct ServeArgs {
    pub pipeline: PathBuf,
    pub state_dir: PathBuf,
    /// `--store` as given.
    pub store: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--labels`, as given.
    pub labels: Vec<String>,
    /// `--worktree`.
    pub worktree: Option<orch_server::config::WorktreeTemplate>,
    pub listen: SocketAddr,
    pub workers: usize,
    pub drain_timeout: Duration,
    pub token_file: Option<PathBuf>,
    pub tokens_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub verbose: bool,
}

fn init_tracing(format: LogFormat, verbose: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if verbose {
            "orch=debug,orch_server=debug,orch_engine=debug,orch_store=debug"
        } else {
            "orch=info,orch_server=info,orch_engine=warn,orch_store=warn"
        })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(use_color(std::io::stderr().is_terminal()))
            .try_init(),
    };
}

/// A future that completes on SIGINT or SIGTERM; registered before anything
/// runs, so an early signal is not lost.
fn on_signal() -> Result<impl std::future::Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| ServeError::Io(format!("cannot handle SIGINT: {e}")))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| ServeError::Io(format!("cannot handle SIGTERM: {e}")))?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "orch serve: {line}");
    let _ = out.flush();
}

/// `orch serve`.
pub fn command(a: ServeArgs) -> u8 {
    init_tracing(a.log_format, a.verbose);
    let color = use_color(std::io::stderr().is_terminal());
    match serve(a) {
        Ok(()) => exit::OK,
        Err(ServeError::Invalid(report)) => {
            let rendered = diagnostic::render(&[*report], Format::Human, color);
            eprintln!("error: {rendered}the pipeline is invalid; the service was not started");
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// The store the service opens, as `GET /status` shows it: the SQLite
/// file (absolute), or the PostgreSQL URL without its password.
fn shown_store(at: &orch_store::StoreLocation) -> String {
    use orch_store::StoreLocation;
    match at {
        StoreLocation::StateDir(dir) => dir.join("orch.db").display().to_string(),
        StoreLocation::SqliteFile(p) => std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string(),
        StoreLocation::Postgres(url) => orch_store::postgres::shown_url(url),
    }
}

fn serve(a: ServeArgs) -> Result<(), ServeError> {
    let served = orch_server::config::load_pipeline(&a.pipeline)?;
    std::fs::create_dir_all(&a.state_dir).map_err(|e| {
        ServeError::Usage(format!(
            "cannot create state dir {}: {e}",
            a.state_dir.display()
        ))
    })?;
    let state_dir = std::fs::canonicalize(&a.state_dir)
        .map_err(|e| ServeError::Usage(format!("state dir {}: {e}", a.state_dir.display())))?;
    let at = super::store_location(a.store, &state_dir);
    let mut labels = a.labels;
    labels.sort();
    labels.dedup();
    let mut pg = super::pg_options(a.name).map_err(ServeError::Usage)?;
    pg.labels = labels.clone();
    let config = Config {
        labels,
        worktree: a.worktree,
        pipeline: a.pipeline,
        state_dir: state_dir.clone(),
        listen: a.listen,
        workers: a.workers,
        drain_timeout: a.drain_timeout,
        token_file: a.token_file,
        token_env: std::env::var("ORCH_TOKEN").ok(),
        tokens_file: a.tokens_file,
        store: shown_store(&at),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        orch_engine::process::become_subreaper();
        let stop = on_signal()?;
        let store = Arc::new(AnyStore::open(&at, pg).await?);
        let lost = store.lost();
        let stop = stop_or_lost(stop, lost.clone());
        let service = Service::bind(config, served, store.clone(), state_dir).await?;
        say(&format!("listening on http://{}", service.addr));
        match &service.token_source {
            TokenSource::Created(p) => say(&format!(
                "a token was made for this service: {} (mode 0600)",
                p.display()
            )),
            TokenSource::Existing(p) => say(&format!("token: {}", p.display())),
            TokenSource::File(p) => say(&format!("token: {} (--token-file)", p.display())),
            TokenSource::Env => say("token: ORCH_TOKEN"),
        }
        service.run(stop).await?;
        if lost.is_some_and(|l| *l.borrow()) {
            return Err(ServeError::Io(
                "this service's lease on the store ended (paused or cut off past it): its tasks \
                 are taken over by the other services; it stopped and recorded nothing more for them"
                    .into(),
            ));
        }
        store.close().await?;
        Ok(())
    })
}

/// Completes on a signal, or when the service lost its lease on a shared
/// store: whatever it held is someone else's now, so it drains and stops
/// (a supervisor starts it again as a new service).
async fn stop_or_lost(
    stop: impl std::future::Future<Output = ()>,
    lost: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let lost = async move {
        match lost {
            Some(mut l) => {
                let _ = l.wait_for(|l| *l).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = lost => tracing::error!("the lease on the store was lost: stopping"),
    }
}
