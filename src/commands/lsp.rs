//! `orch lsp`: the Language Server, on stdin/stdout.

use super::exit;

/// `orch lsp`.
pub fn command() -> u8 {
    match orch_lsp::run_stdio() {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: orch lsp: {e}");
            exit::USAGE
        }
    }
}
