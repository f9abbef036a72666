//! Lock files: OS file locks held for as long as a value lives, so that the
//! lock of a holder that died is simply taken over. Each names its holder.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// A lock file held for as long as the value lives; the OS releases it when
/// the holder dies, so a dead holder's lock is simply taken over.
pub struct Lock {
    _file: File,
}

/// Tries to take `path`; on failure returns what the holder wrote there.
pub fn try_lock(path: &Path, holder: &str) -> std::io::Result<Result<Lock, String>> {
    let context = |what: &str, e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("cannot {what} lock {}: {e}", path.display()),
        )
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| context("open", e))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|_| file.write_all(holder.as_bytes()))
                .map_err(|e| context("write", e))?;
            Ok(Ok(Lock { _file: file }))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(Err(read_holder(&mut file))),
        Err(std::fs::TryLockError::Error(e)) => Err(context("take", e)),
    }
}

/// What the holder wrote. A holder writes its line just after it takes the
/// lock, so an empty file is read again for a moment before giving up.
fn read_holder(file: &mut File) -> String {
    use std::io::Seek;
    for _ in 0..20 {
        let mut s = String::new();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut s);
        if !s.trim().is_empty() {
            return s.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "a holder that did not say who it is".to_string()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

pub fn holder_line() -> String {
    format!(
        "pid {} on {} since {}",
        std::process::id(),
        hostname(),
        crate::time::rfc3339(crate::now_ms())
    )
}

/// Who holds the lock at `path`, if anyone (without taking it).
pub fn holder(path: &Path) -> Option<String> {
    // Read-only: `orch status` works on a store it may not write.
    let mut file = std::fs::OpenOptions::new().read(true).open(path).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => Some(read_holder(&mut file)),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// The serial-stage locks under `dir`, by stage name, with who holds each.
pub fn stage_locks(dir: &Path) -> Vec<(String, Option<String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| {
            let stage = p
                .file_name()?
                .to_str()?
                .strip_prefix("stage.")?
                .strip_suffix(".lock")?;
            Some((stage.to_string(), holder(p)))
        })
        .collect()
}
