//! The artifact files of a task directory: clearing a stale one before an
//! attempt, writing a runner's, and the digests recorded for resume.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::Path;

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn file_sha256(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(sha256_hex(&buf))
}

/// Removes an artifact left by an earlier attempt (a file, or whatever
/// occupies its path) and makes sure its directory exists, so a producer can
/// write it.
pub(crate) fn clear(path: &Path) -> Result<(), String> {
    let cleared = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    cleared
        .and_then(|_| path.parent().map_or(Ok(()), std::fs::create_dir_all))
        .map_err(|e| format!("cannot clear the stale artifact {}: {e}", path.display()))
}

/// Writes `body` to `path` through a temporary file and a rename, so a
/// reader never sees half of it.
pub(crate) fn write(path: &Path, body: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("orch-tmp");
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(&tmp, body.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, path))
}
