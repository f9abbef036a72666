//! Reading an artifact for its gate: the file work the language crate's
//! [`judge`] does not do.

use std::path::Path;

use orch_lang::gate::{judge, Verdict};
use orch_lang::model::{Artifact, Gate};

/// Reads `path` and checks it against the artifact contract and the gate.
pub fn evaluate(gate: &Gate, artifact: &Artifact, path: &Path) -> Verdict {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Verdict::fail(format!("artifact {} is missing", artifact.path.value))
        }
        Err(e) => {
            return Verdict::fail(format!(
                "artifact {} is unreadable: {e}",
                artifact.path.value
            ))
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
