//! The artifact files of a task directory: clearing a stale one before an
//! attempt, writing a runner's, and the digests recorded for resume. All of
//! it beneath the task directory, without following links
//! ([`taskdir`](crate::taskdir)).

use sha2::{Digest, Sha256};

use crate::taskdir::{self, TaskDir};

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest of the regular file `rel` beneath the task directory.
pub(crate) fn file_sha256(dir: TaskDir<'_>, rel: &str) -> Result<String, taskdir::Error> {
    dir.read(rel).map(|bytes| sha256_hex(&bytes))
}

/// Removes an artifact left by an earlier attempt (a file, or whatever
/// occupies its path) and makes sure its directory exists, so a producer can
/// write it.
pub(crate) fn clear(dir: TaskDir<'_>, rel: &str) -> Result<(), String> {
    dir.clear(rel).map_err(|e| {
        format!(
            "cannot clear the stale artifact {}: {e}",
            dir.show(rel).display()
        )
    })
}

/// Writes `body` to `rel` through a temporary file and a rename, so a
/// reader never sees half of it.
pub(crate) fn write(dir: TaskDir<'_>, rel: &str, body: &str) -> Result<(), taskdir::Error> {
    dir.write(rel, body.as_bytes())
}
