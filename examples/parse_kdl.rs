//! Reads one file and parses it with `kdl::KdlDocument::parse_v2`, nothing
//! else: the KDL parse alone, as a whole process, to set beside
//! `orch validate` on the same file (see `bench/validate.sh`).
//!
//! `cargo run --release --example parse_kdl -- FILE`

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: parse_kdl FILE");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    match kdl::KdlDocument::parse_v2(&text) {
        Ok(doc) => {
            // Use the result, so that the parse cannot be optimised away.
            println!("{} top-level nodes", doc.nodes().len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {} is not valid KDL: {e}", path.to_string_lossy());
            ExitCode::from(1)
        }
    }
}
