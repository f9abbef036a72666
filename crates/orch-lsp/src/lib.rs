//! `orch lsp`: a Language Server for orch pipeline files over stdio.
//!
//! It stands on the language crate alone (no engine, no store): the same
//! analysis as `orch validate` on every change, and the name index of
//! [`orch_lang::symbols`] for navigation, rename, hover and completion.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod complete;
mod diagnostics;
mod document;
mod grammar;
mod hover;
mod lexical;
mod navigate;
mod outline;
mod position;
mod server;

use lsp_server::Connection;

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum LspError {
    #[error("protocol error: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    #[error("cannot describe the server's capabilities: {0}")]
    Json(#[from] serde_json::Error),
    #[error("protocol error: no exit notification within {0} s of shutdown")]
    NoExit(u64),
    #[error("stdio: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves on stdin/stdout until the client says `exit` (or goes away).
pub fn run_stdio() -> Result<(), LspError> {
    let (conn, io) = Connection::stdio();
    serve(&conn)?;
    drop(conn);
    io.join()?;
    Ok(())
}

/// Serves one client over a connection: the handshake, then the loop.
pub(crate) fn serve(conn: &Connection) -> Result<(), LspError> {
    let caps = serde_json::to_value(server::capabilities())?;
    conn.initialize(caps)?;
    server::Server::default().run(conn)?;
    Ok(())
}
