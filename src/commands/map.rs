//! `orch map`: the call-site inventory, or a check of a committed copy.

use std::path::Path;

use super::{exit, load_valid, print};

/// Formats of `orch map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MapFormat {
    Markdown,
    Json,
}

/// `orch map`.
pub fn command(path: &Path, format: MapFormat, check_file: Option<&Path>) -> u8 {
    let p = match load_valid(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let m = orch_lang::map::build(&p);
    let generated = match format {
        MapFormat::Markdown => orch_lang::map::to_markdown(&m),
        MapFormat::Json => match orch_lang::map::to_json(&m) {
            Ok(doc) => doc,
            Err(e) => {
                eprintln!("error: cannot write the JSON document: {e}");
                return exit::USAGE;
            }
        },
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
