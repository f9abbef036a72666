//! Replacing a file whole: `orch fmt`'s rewritten pipelines and `orch run
//! --junit`'s report.

use std::fs::Permissions;
use std::io::Write;
use std::path::Path;

/// Writes `text` to a hidden file beside `target` (`.NAME.orch-TAG.PID`,
/// which no `*.kdl` or `*.xml` glob picks up), with `permissions` if given,
/// syncs it and renames it over `target`: a reader, a full disk or a crash
/// sees the old file or the new one, never part of one.
pub(crate) fn replace_file(
    target: &Path,
    text: &str,
    tag: &str,
    permissions: Option<Permissions>,
) -> std::io::Result<()> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.orch-{tag}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            if let Some(p) = permissions {
                f.set_permissions(p)?;
            }
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, target));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
