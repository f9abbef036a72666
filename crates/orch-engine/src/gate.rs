//! Reading an artifact for its gate: the file work the language crate's
//! [`judge`] does not do.

use std::path::Path;

use orch_lang::gate::{judge, Verdict};
use orch_lang::model::{Artifact, Gate};

use crate::taskdir::TaskDir;

/// Reads the artifact beneath `task_dir` and checks it against the artifact
/// contract and the gate. Only a regular file is an artifact: a missing one,
/// a symbolic link (in any component of its path), a named pipe, a socket, a
/// device or a directory is a FAIL with the reason; nothing here can block.
pub(crate) fn evaluate_beneath(gate: &Gate, artifact: &Artifact, task_dir: &Path) -> Verdict {
    match read_beneath(artifact, task_dir) {
        Ok(text) => judge(gate, artifact, &text),
        Err(reason) => Verdict::fail(reason),
    }
}

/// The artifact's text, read beneath `task_dir` as its gate reads it (a
/// regular file, no link followed, nothing that can block), or why not:
/// the dashboard shows an artifact's fields through this.
pub fn read_beneath(artifact: &Artifact, task_dir: &Path) -> Result<String, String> {
    read_path_beneath(&artifact.path.value, task_dir)
}

/// A file's text beneath `task_dir` by its relative path, read as
/// [`read_beneath`] reads an artifact (an approval's `show` files).
pub fn read_path_beneath(path: &str, task_dir: &Path) -> Result<String, String> {
    let bytes = TaskDir::new(task_dir)
        .read(path)
        .map_err(|e| format!("artifact {path} {}", e.describe()))?;
    String::from_utf8(bytes).map_err(|_| format!("artifact {path} is not UTF-8 text"))
}

/// At most the first `cap` bytes of a file's text beneath `task_dir`, read
/// as [`read_path_beneath`] reads it, and the file's size in bytes: what a
/// page shows of a file it must not load whole. A cut in the middle of a
/// character drops that character.
pub fn read_path_beneath_at_most(
    path: &str,
    task_dir: &Path,
    cap: usize,
) -> Result<(String, u64), String> {
    let (mut bytes, size) = TaskDir::new(task_dir)
        .read_at_most(path, cap)
        .map_err(|e| format!("artifact {path} {}", e.describe()))?;
    if let Err(e) = std::str::from_utf8(&bytes) {
        // Only a character the cap split is forgiven.
        if e.error_len().is_some() || (bytes.len() as u64) == size {
            return Err(format!("artifact {path} is not UTF-8 text"));
        }
        bytes.truncate(e.valid_up_to());
    }
    String::from_utf8(bytes)
        .map(|text| (text, size))
        .map_err(|_| format!("artifact {path} is not UTF-8 text"))
}
