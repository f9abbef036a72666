//! `orch serve`: a long-running service that takes tasks over HTTP into a
//! durable queue in the run store and runs each on orch's engine, as
//! `orch run` would, many at once on one tokio runtime.
//!
//! [`dashboard`] is its web pages, at `/`.
//! [`config`] checks what it serves; [`auth`] the token; [`api`] the
//! routes; [`scheduler`] takes queued tasks while workers are free, runs
//! them and drains; [`board`] is what it knows of tasks in flight and
//! [`events`] keeps it from the engine's events; [`client`] is the other
//! end, for `orch submit` and `orch cancel`.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod api;
mod approvals;
mod auth;
mod board;
pub mod client;
pub mod config;
mod dashboard;
mod deciders;
mod error;
mod events;
mod files;
mod scheduler;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch_store::RunStore;

pub use auth::TokenSource;
pub use config::{Config, Served};
pub use error::{exit, ServeError};

use scheduler::App;

/// A store the service can run tasks on: its engines move between threads,
/// with the serial-stage guards they hold.
pub trait Store: RunStore<Guard: Sync> {}

impl<S: RunStore<Guard: Sync>> Store for S {}

/// How long open connections get to finish once the service has drained.
const CLOSE_CONNECTIONS: Duration = Duration::from_secs(5);

/// A service bound to its address, not yet serving.
pub struct Service<S: Store> {
    app: Arc<App<S>>,
    listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    pub token_source: TokenSource,
}

impl<S: Store> Service<S> {
    /// Takes the token and binds the address; `state_dir` exists.
    pub async fn bind(
        config: Config,
        served: Served,
        store: Arc<S>,
        state_dir: PathBuf,
    ) -> Result<Service<S>, ServeError> {
        let (token, token_source) = auth::load(
            config.token_file.as_deref(),
            config.token_env.as_deref(),
            &state_dir,
        )?;
        let deciders = match &config.tokens_file {
            Some(path) => deciders::Deciders::load(path)?,
            None => deciders::Deciders::default(),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServeError::Usage(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Io(format!("cannot read the bound address: {e}")))?;
        let app = Arc::new(App {
            store,
            open_reads: addr.ip().is_loopback(),
            listen: addr,
            feed: tokio::sync::broadcast::channel(events::EVENT_BUFFER).0,
            closing: tokio::sync::watch::channel(false).0,
            config,
            served: std::sync::RwLock::new(Arc::new(served)),
            rejected: std::sync::Mutex::new(None),
            board: Arc::default(),
            token,
            deciders,
            started: Instant::now(),
            state_dir,
        });
        Ok(Service {
            app,
            listener,
            addr,
            token_source,
        })
    }

    /// Resumes the runs in flight when the service last stopped, serves the
    /// queue and the API until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let app = self.app;
        let recovered = app.store.recoverable().await?;
        if !recovered.is_empty() {
            tracing::info!(
                tasks = recovered.len(),
                "resuming the tasks in flight at the last stop"
            );
        }
        let scheduler = tokio::spawn(scheduler::schedule(app.clone(), recovered.into()));
        let clock = tokio::spawn(scheduler::clock(app.clone()));
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(self.listener, api::router(app.clone())).with_graceful_shutdown(
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        );
        let server = tokio::spawn(async move { server.await });
        tracing::info!(addr = %self.addr, workers = app.config.workers, "serving");
        shutdown.await;
        tracing::info!("stop requested: no new tasks are taken");
        scheduler::drain(&app, app.config.drain_timeout).await;
        let _ = scheduler.await;
        clock.abort();
        let _ = stop_tx.send(true);
        app.closing.send_replace(true);
        match tokio::time::timeout(CLOSE_CONNECTIONS, server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the HTTP server ended with an error"),
            Ok(_) => {}
            Err(_) => tracing::warn!("connections still open after the drain; closing"),
        }
        tracing::info!("drained; stopped");
        Ok(())
    }
}
