//! `orch fmt`: the canonical layout of pipeline files.

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Replaces the file at `path` (the file a symbolic link names, when it is
/// one) with `text`: written beside it, synced, then renamed over it, so
/// that a full disk or a crash leaves the old file whole. Its permissions
/// are kept.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let permissions = std::fs::metadata(&target)?.permissions();
    let tmp = dir.join(format!(".{name}.orch-fmt.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.set_permissions(permissions)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, &target));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
