//! `orch fmt`: the canonical layout of pipeline files.

use std::path::{Path, PathBuf};

use std::io::IsTerminal;

use orch_lang::analysis;
use orch_lang::diagnostic::{self, FileReport, Format};
use orch_lang::validate::Options;

use super::{describe, exit, use_color};

/// `orch fmt`.
pub fn command(paths: &[PathBuf], check_only: bool) -> u8 {
    let files = match analysis::collect_files(paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("error: no *.kdl files in {}", describe(paths));
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", describe(paths));
            return exit::USAGE;
        }
    };
    let mut changed = Vec::new();
    let mut broken = false;
    for f in &files {
        let text = match read(f) {
            Ok(Ok(t)) => t,
            Ok(Err(refused)) => {
                // Not a regular file, or not UTF-8: said as `orch validate`
                // says it, and the other files are still formatted.
                report(refused);
                broken = true;
                continue;
            }
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return exit::USAGE;
            }
        };
        let formatted = match orch_lang::fmt::format(&text) {
            Ok(t) => t,
            Err(_) => {
                // Not KDL: say where, the way `orch validate` does.
                let shown = f.display().to_string();
                report(analysis::analyze_text(&shown, &text, &OFFLINE).report);
                broken = true;
                continue;
            }
        };
        if formatted != text {
            changed.push(f.clone());
            if !check_only {
                if let Err(e) = replace(f, &formatted) {
                    eprintln!("error: cannot write {}: {e}; it is unchanged", f.display());
                    return exit::USAGE;
                }
            }
        }
    }
    for f in &changed {
        println!(
            "{}{}",
            if check_only {
                "would reformat "
            } else {
                "formatted "
            },
            f.display()
        );
    }
    if broken || (check_only && !changed.is_empty()) {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

const OFFLINE: Options = Options { offline: true };

/// A pipeline file's text, or the report of why it cannot be formatted (a
/// FIFO or device, never opened; a file that is not UTF-8). A path that
/// cannot be read at all is an error.
fn read(path: &Path) -> std::io::Result<Result<String, FileReport>> {
    if !std::fs::metadata(path)?.is_file() {
        return analysis::analyze_file(path, &OFFLINE).map(|a| Err(a.report));
    }
    Ok(match String::from_utf8(std::fs::read(path)?) {
        Ok(text) => Ok(text),
        Err(e) => {
            let shown = path.display().to_string();
            Err(analysis::analyze_bytes(&shown, e.as_bytes(), &OFFLINE).report)
        }
    })
}

fn report(report: FileReport) {
    let color = use_color(std::io::stderr().is_terminal());
    eprint!("{}", diagnostic::render(&[report], Format::Human, color));
}

/// Replaces the file at `path` (the file a symbolic link names, when it is
/// one) with `text`: written beside it, synced, then renamed over it, so
/// that a full disk or a crash leaves the old file whole. Its permissions
/// are kept.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    let permissions = std::fs::metadata(&target)?.permissions();
    crate::replace::replace_file(&target, text, "fmt", Some(permissions))
}
