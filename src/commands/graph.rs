//! `orch graph`: the stage graph as Mermaid or DOT.

use std::path::Path;

use super::{exit, load_valid, print};

/// `orch graph`.
pub fn command(path: &Path, format: orch_lang::diagram::DiagramFormat) -> u8 {
    match load_valid(path) {
        Ok(p) => {
            print(&orch_lang::diagram::render(&p, format));
            exit::OK
        }
        Err(code) => code,
    }
}
