//! `orch validate` and `orch schema`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use orch_lang::analysis;
use orch_lang::diagnostic::{self, Format, Severity};
use orch_lang::validate::Options;

use super::{describe, exit, use_color};

/// `orch validate`.
pub fn command(paths: &[PathBuf], format: Format, strict: bool) -> u8 {
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

/// `orch schema`.
pub fn schema() -> u8 {
    let _ = std::io::stdout().write_all(orch_lang::schema::SCHEMA.as_bytes());
    exit::OK
}
