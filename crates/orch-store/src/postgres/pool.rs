//! Connections to the database: a handful of clients kept in a Vec behind
//! a mutex, each with its prepared statements, handed out one per store
//! call. A pool crate (deadpool, bb8) would add a dependency and a
//! configuration surface for what is a dozen lines here: every store call
//! is one statement, so a client is held for one round trip.
//!
//! A call that meets a broken connection (the server restarted, the
//! backend was terminated) drops that client and tries again on a new one,
//! with backoff; only when the database stays unreachable does the error
//! reach the caller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{self, TlsMode};
use crate::{Result, StoreError};

/// Parameters of one statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// How many connections one process opens at most.
const MAX_CONNECTIONS: usize = 8;
/// How long a call keeps retrying a broken connection before it fails.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// Where the store is: the client configuration, and the schema its
/// tables live in (`?schema=` in the URL, an orch addition).
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: Option<String>,
    /// The URL without its password, for messages.
    pub(crate) shown: String,
    /// `sslmode=`, or its default for the host.
    pub(crate) tls_mode: TlsMode,
    /// The TLS client, unless `tls_mode` is `disable`.
    pub(crate) tls: Option<MakeRustlsConnect>,
}

/// Parses `postgres://user@host:port/db?schema=name&...`. The `schema`,
/// `sslmode`, `sslrootcert`, `sslcert` and `sslkey` parameters are taken
/// out (orch reads them; the client knows only some `sslmode` values); the
/// rest is the client's own syntax.
pub(crate) fn parse_url(url: &str) -> std::result::Result<Target, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut schema = None;
    let mut sslmode = None;
    let mut root_cert = None;
    let (mut client_cert, mut client_key) = (None, None);
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("schema", v)) if !v.is_empty() => schema = Some(v.to_string()),
            Some(("sslmode", v)) => sslmode = Some(TlsMode::parse(v)?),
            Some(("sslrootcert", v)) if !v.is_empty() => {
                root_cert = Some(std::path::PathBuf::from(v))
            }
            Some(("sslcert", v)) if !v.is_empty() => {
                client_cert = Some(std::path::PathBuf::from(v))
            }
            Some(("sslkey", v)) if !v.is_empty() => client_key = Some(std::path::PathBuf::from(v)),
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    if let Some(s) = &schema {
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "the schema `{s}` must be letters, digits, `_` or `-`"
            ));
        }
    }
    let client_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = client_url
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL ({e})"))?;
    let tls_mode = sslmode.unwrap_or_else(|| TlsMode::default_for(&config));
    config.ssl_mode(tls_mode.client_mode());
    let client = match (client_cert, client_key) {
        (Some(cert), Some(key)) => Some(tls::ClientCert { cert, key }),
        (None, None) => None,
        _ => return Err("sslcert and sslkey go together: the certificate and its key".into()),
    };
    let tls = tls::connector(tls_mode, root_cert.as_deref(), client.as_ref())?;
    Ok(Target {
        config,
        schema,
        shown: redact(url),
        tls_mode,
        tls,
    })
}

/// The URL with any password replaced by `***`: the one in the user
/// information and a `password=` parameter (the client takes both).
pub(crate) fn redact(url: &str) -> String {
    // The user information first: a `?` in a password is not a query.
    let url = redact_userinfo(url);
    let Some((base, query)) = url.split_once('?') else {
        return url;
    };
    let query: Vec<&str> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***",
            _ => pair,
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// A client and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    async fn statement(
        &mut self,
        sql: &str,
    ) -> std::result::Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

pub(crate) struct Pool {
    pub(crate) target: Target,
    idle: Mutex<Vec<Conn>>,
    permits: std::sync::Arc<Semaphore>,
    /// Nanoseconds spent in store calls, for `ORCH_PROFILE`.
    pub(crate) spent: AtomicU64,
    /// False while the database cannot be reached (`/health`).
    pub(crate) reachable: AtomicBool,
}

/// A client lent for one call; it goes back to the pool unless broken.
struct Lent<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if !c.client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(c);
            }
        }
    }
}

/// Whether an error means the connection (not the statement) failed: the
/// call is tried again on a new connection.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(c) => {
            c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQL state: an I/O error or a failed connect.
        None => e.as_db_error().is_none(),
    }
}

impl Pool {
    pub(super) fn new(target: Target) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            permits: std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            spent: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        }
    }

    pub(super) fn err(&self, e: tokio_postgres::Error) -> StoreError {
        let url = self.target.shown.clone();
        if tls::is_tls_error(&e) {
            StoreError::Tls {
                url,
                mode: self.target.tls_mode.as_str(),
                source: tls::describe(&e).into(),
            }
        } else if is_connection_error(&e) {
            StoreError::Unreachable {
                url,
                source: tls::describe(&e).into(),
            }
        } else {
            // The client's own words stop at "db error": the server's
            // message (its severity, text and detail) is in the cause.
            StoreError::Postgres {
                url,
                source: tls::describe(&e).into(),
            }
        }
    }

    /// A connection of its own, outside the pool (the schema's set-up
    /// holds one for its transaction).
    pub(crate) async fn dedicated(&self) -> Result<Client> {
        self.connect()
            .await
            .map(|c| c.client)
            .map_err(|e| self.err(e))
    }

    async fn connect(&self) -> std::result::Result<Conn, tokio_postgres::Error> {
        // The connection task ends when the client is dropped or the server
        // goes away; the next call on the client then fails and is retried.
        let client = match &self.target.tls {
            None => {
                let (client, connection) = self.target.config.connect(NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            Some(tls) => {
                let (client, connection) = self.target.config.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        if let Some(schema) = &self.target.schema {
            client
                .batch_execute(&format!("SET search_path TO \"{schema}\""))
                .await?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    async fn lend(&self) -> std::result::Result<Lent<'_>, tokio_postgres::Error> {
        // The semaphore is never closed (were it, calls would go unbounded).
        let permit = self.permits.clone().acquire_owned().await.ok();
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect().await?,
        };
        Ok(Lent {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// Runs one statement and returns its rows, retrying on a broken
    /// connection for a while.
    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let result = loop {
            match self.try_query(sql, params).await {
                Ok(rows) => {
                    self.reachable.store(true, Ordering::Relaxed);
                    break Ok(rows);
                }
                Err(e) if is_connection_error(&e) && started.elapsed() < RETRY_FOR => {
                    self.reachable.store(false, Ordering::Relaxed);
                    warn_retry(&self.target.shown, &e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    if is_connection_error(&e) {
                        self.reachable.store(false, Ordering::Relaxed);
                    }
                    break Err(self.err(e));
                }
            }
        };
        let ns = started.elapsed().as_nanos() as u64;
        self.spent.fetch_add(ns, Ordering::Relaxed);
        result
    }

    async fn try_query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        let mut lent = self.lend().await?;
        let Some(conn) = lent.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let stmt = conn.statement(sql).await?;
        conn.client.query(&stmt, params).await
    }
}

/// Says that the database is being retried (the service's log).
fn warn_retry(url: &str, e: &tokio_postgres::Error) {
    tracing::warn!(store = url, error = %e, "the PostgreSQL store is unreachable; retrying");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parameter_is_ours_and_the_password_is_never_shown() {
        let t = parse_url("postgres://me:secret@127.0.0.1:5432/test?schema=t_1&connect_timeout=5")
            .expect("a URL");
        assert_eq!(t.schema.as_deref(), Some("t_1"));
        assert_eq!(t.config.get_dbname(), Some("test"));
        assert!(!t.shown.contains("secret"), "{}", t.shown);
        assert_eq!(
            redact("postgres://me@127.0.0.1/test?password=secret&schema=t_1"),
            "postgres://me@127.0.0.1/test?password=***&schema=t_1"
        );
        assert_eq!(
            redact("postgres://me:secret@127.0.0.1/test?schema=t_1"),
            "postgres://me:***@127.0.0.1/test?schema=t_1"
        );
        assert_eq!(
            redact("postgres://me:se?cret@127.0.0.1/test"),
            "postgres://me:***@127.0.0.1/test"
        );
        let bad = parse_url("postgres://me@h/db?schema=a;drop").err();
        assert!(bad.is_some_and(|e| e.contains("schema")));
    }

    #[test]
    fn tls_is_off_for_loopback_and_preferred_elsewhere_unless_the_url_says() {
        let mode = |url: &str| parse_url(url).map(|t| (t.tls_mode, t.tls.is_some()));
        assert_eq!(
            mode("postgres://me@127.0.0.1/db"),
            Ok((TlsMode::Disable, false))
        );
        assert_eq!(
            mode("postgres://me@localhost:5433/db"),
            Ok((TlsMode::Disable, false))
        );
        assert_eq!(
            mode("postgres://me@[::1]/db"),
            Ok((TlsMode::Disable, false))
        );
        assert_eq!(
            mode("postgres://me@db.internal/db"),
            Ok((TlsMode::Prefer, true))
        );
        assert_eq!(
            mode("postgres://me@127.0.0.1/db?sslmode=require"),
            Ok((TlsMode::Require, true))
        );
        assert_eq!(
            mode("postgres://me@db.internal/db?sslmode=disable"),
            Ok((TlsMode::Disable, false))
        );
        assert_eq!(
            mode("postgres://me@db.internal/db?sslmode=verify-full&connect_timeout=5"),
            Ok((TlsMode::VerifyFull, true))
        );
        assert_eq!(
            mode("postgres://me@10.0.0.7/db?sslmode=verify-ca"),
            Ok((TlsMode::VerifyCa, true))
        );
        let bad = mode("postgres://me@h/db?sslmode=sometimes").err();
        assert!(
            bad.as_deref().is_some_and(|e| e.contains("sslmode")
                && e.contains("disable, prefer, require, verify-ca, verify-full")),
            "{bad:?}"
        );
        let bad = mode("postgres://me@h/db?sslmode=require&sslrootcert=/x.pem").err();
        assert!(
            bad.as_deref().is_some_and(|e| e.contains("verify-full")),
            "{bad:?}"
        );
        let bad =
            mode("postgres://me@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").err();
        assert!(
            bad.as_deref()
                .is_some_and(|e| e.contains("/nonexistent/ca.pem")),
            "{bad:?}"
        );
        let not_pem = std::env::temp_dir().join(format!("orch-not-pem-{}.txt", std::process::id()));
        std::fs::write(&not_pem, "not a certificate\n").expect("a temporary file");
        let bad = mode(&format!(
            "postgres://me@h/db?sslmode=verify-full&sslrootcert={}",
            not_pem.display()
        ))
        .err();
        let _ = std::fs::remove_file(&not_pem);
        assert!(
            bad.as_deref()
                .is_some_and(|e| e.contains("holds no PEM certificate")
                    && e.contains(&not_pem.display().to_string())),
            "{bad:?}"
        );
    }
}
