//! Reading logs and artifacts for an answer without loading them whole: a
//! runner's log or an artifact may be hundreds of megabytes, and the
//! service holds at most what it shows ([`MAX_LOG`] of a log). The reads
//! block, so the handlers run them with [`blocking`], off the executor.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most of a log an answer holds (the whole-log page, the API's log,
/// a `tail=N` that reaches back that far).
pub(crate) const MAX_LOG: usize = 8 * 1024 * 1024;

/// How much a backward read takes at a time.
const CHUNK: u64 = 64 * 1024;

/// Part of a file, and the file's size.
#[derive(Debug, PartialEq)]
pub(crate) struct Part {
    pub(crate) bytes: Vec<u8>,
    pub(crate) size: u64,
    /// Whether the file holds more than `bytes` (beyond the cap).
    pub(crate) cut: bool,
}

/// Runs a blocking read on tokio's blocking pool; an error if the read
/// panicked or the runtime is closing.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the read did not complete: {e}"))
}

/// At most the first `cap` bytes of the file.
pub(crate) fn head(path: &Path, cap: usize) -> std::io::Result<Part> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(cap.min(size as usize));
    file.take(cap as u64).read_to_end(&mut bytes)?;
    let cut = (bytes.len() as u64) < size;
    Ok(Part { bytes, size, cut })
}

/// The file's last `n` lines (a last line without its newline counts),
/// read backwards from the end: at most `cap` bytes (then `cut`, and the
/// first line, which the cap may have split, is dropped).
pub(crate) fn tail(path: &Path, n: usize, cap: usize) -> std::io::Result<Part> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let cap = cap as u64;
    // Chunks from the end backwards; `pos` is where the earliest starts.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut pos = size;
    let mut newlines = 0usize;
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    let mut start = None;
    while n > 0 && pos > 0 && size - pos < cap {
        let len = CHUNK.min(pos).min(cap - (size - pos));
        pos -= len;
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0; len as usize];
        file.read_exact(&mut chunk)?;
        // The n-th newline from the end (not counting the final one) is
        // where the last n lines begin.
        for i in (0..chunk.len()).rev() {
            if chunk[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if std::mem::take(&mut skip_last) {
                continue;
            }
            newlines += 1;
            if newlines == n {
                start = Some(i + 1);
                break;
            }
        }
        if let Some(s) = start {
            chunk.drain(..s);
            chunks.push(chunk);
            break;
        }
        chunks.push(chunk);
    }
    let mut bytes: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    let cut = start.is_none() && pos > 0 && n > 0;
    if cut {
        // The cap fell inside a line: show only whole lines.
        match bytes.iter().position(|b| *b == b'\n') {
            Some(i) => {
                bytes.drain(..=i);
            }
            None => bytes.clear(),
        }
    }
    Ok(Part { bytes, size, cut })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, body: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("orch-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    fn text(p: &Part) -> &str {
        std::str::from_utf8(&p.bytes).unwrap()
    }

    #[test]
    fn a_tail_is_the_last_lines_with_or_without_a_final_newline() {
        let p = file("t1", b"a\nb\nc\n");
        assert_eq!(text(&tail(&p, 1, MAX_LOG).unwrap()), "c\n");
        assert_eq!(text(&tail(&p, 2, MAX_LOG).unwrap()), "b\nc\n");
        assert_eq!(text(&tail(&p, 3, MAX_LOG).unwrap()), "a\nb\nc\n");
        assert_eq!(text(&tail(&p, 9, MAX_LOG).unwrap()), "a\nb\nc\n");
        assert_eq!(text(&tail(&p, 0, MAX_LOG).unwrap()), "");
        let p = file("t2", b"a\nb\nc");
        assert_eq!(text(&tail(&p, 1, MAX_LOG).unwrap()), "c");
        assert_eq!(text(&tail(&p, 2, MAX_LOG).unwrap()), "b\nc");
        let p = file("t3", b"");
        assert_eq!(tail(&p, 3, MAX_LOG).unwrap().bytes, b"");
        let p = file("t4", b"\n\n\n");
        assert_eq!(text(&tail(&p, 2, MAX_LOG).unwrap()), "\n\n");
    }

    #[test]
    fn a_tail_across_chunks_and_under_a_cap_holds_only_whole_lines() {
        let mut body = Vec::new();
        for i in 0..50_000 {
            body.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let p = file("t5", &body);
        let t = tail(&p, 20_000, MAX_LOG).unwrap();
        assert!(!t.cut);
        assert_eq!(t.size, body.len() as u64);
        assert!(text(&t).starts_with("line 30000\n"));
        assert!(text(&t).ends_with("line 49999\n"));
        let t = tail(&p, 20_000, 1000).unwrap();
        assert!(t.cut);
        assert!(t.bytes.len() <= 1000);
        assert!(text(&t).starts_with("line "), "{}", text(&t));
        assert!(text(&t).ends_with("line 49999\n"));
        let h = head(&p, 100).unwrap();
        assert!(h.cut);
        assert_eq!(h.bytes, &body[..100]);
        assert_eq!(h.size, body.len() as u64);
        assert!(!head(&p, body.len()).unwrap().cut);
    }
}
