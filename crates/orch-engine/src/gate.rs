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
pub fn evaluate_beneath(gate: &Gate, artifact: &Artifact, task_dir: &Path) -> Verdict {
    let bytes = match TaskDir::new(task_dir).read(&artifact.path.value) {
        Ok(b) => b,
        Err(e) => {
            return Verdict::fail(format!("artifact {} {}", artifact.path.value, e.describe()))
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Verdict::fail(format!(
            "artifact {} is not UTF-8 text",
            artifact.path.value
        ));
    };
    judge(gate, artifact, &text)
}
