//! `orch fmt`: the canonical layout of pipeline files.

use std::path::PathBuf;

use std::io::IsTerminal;

use orch_lang::analysis;
use orch_lang::diagnostic::{self, Format};
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
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return exit::USAGE;
            }
        };
        let formatted = match orch_lang::fmt::format(&text) {
            Ok(t) => t,
            Err(_) => {
                // Not KDL: say where, the way `orch validate` does.
                let checked = analysis::analyze_text(
                    &f.display().to_string(),
                    &text,
                    &Options { offline: true },
                );
                eprint!(
                    "{}",
                    diagnostic::render(
                        &[checked.report],
                        Format::Human,
                        use_color(std::io::stderr().is_terminal())
                    )
                );
                broken = true;
                continue;
            }
        };
        if formatted != text {
            changed.push(f.clone());
            if !check_only {
                if let Err(e) = std::fs::write(f, formatted) {
                    eprintln!("error: cannot write {}: {e}", f.display());
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
