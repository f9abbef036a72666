//! One open file: its text and what orch's analysis says of it, computed
//! on every change (full-document sync).

use std::path::{Path, PathBuf};

use orch_lang::analysis::{self, Analysis};
use orch_lang::symbols::Index;
use orch_lang::validate::Options;

use crate::position::LineIndex;

pub(crate) struct Document {
    pub(crate) text: String,
    pub(crate) lines: LineIndex,
    /// The file's path when its URI is a `file:` URI (the validator reads
    /// prompt files relative to it).
    pub(crate) path: Option<PathBuf>,
    pub(crate) analysis: Analysis,
    index: Option<Index>,
    /// The last version that parsed, while this one does not: a half-typed
    /// node makes the whole file unparseable, yet completion still needs
    /// the names the file declares.
    pub(crate) previous: Option<Box<Document>>,
}

impl Document {
    pub(crate) fn new(uri: &str, text: String) -> Self {
        let path = file_path(uri);
        let shown = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| uri.to_string());
        // The same entry as `orch validate` (machine checks included).
        let analysis = analysis::analyze_bytes(&shown, text.as_bytes(), &Options::default());
        Document {
            lines: LineIndex::new(&text),
            text,
            path,
            analysis,
            index: None,
            previous: None,
        }
    }

    /// Whether the text parsed far enough to declare anything.
    pub(crate) fn parsed(&self) -> bool {
        !self.analysis.pipeline.declarations.is_empty()
    }

    /// Replaces `old` by this version, keeping the last version that parsed
    /// when this one does not.
    pub(crate) fn succeed(&mut self, old: Option<Document>) {
        if self.parsed() {
            return;
        }
        self.previous = match old {
            Some(mut o) if o.parsed() => {
                o.previous = None;
                Some(Box::new(o))
            }
            Some(o) => o.previous,
            None => None,
        };
    }

    /// The index that knows the file's names: this version's, or the last
    /// version's that parsed.
    pub(crate) fn names_index(&mut self) -> &Index {
        let stale = !self.parsed();
        let Document {
            previous,
            index,
            analysis,
            text,
            ..
        } = self;
        if stale {
            if let Some(p) = previous {
                return p.index();
            }
        }
        index.get_or_insert_with(|| Index::build(&analysis.pipeline, text))
    }

    /// The name index, built on first use after a change.
    pub(crate) fn index(&mut self) -> &Index {
        let (pipeline, text) = (&self.analysis.pipeline, &self.text);
        self.index
            .get_or_insert_with(|| Index::build(pipeline, text))
    }

    /// The directory of the file (the worktree `orch explain` assumes).
    pub(crate) fn dir(&self) -> PathBuf {
        self.path
            .as_deref()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// The path of a `file:` URI (percent-decoded), or `None`.
pub(crate) fn file_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    // `file://host/path`: only the local host (empty or `localhost`).
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_are_decoded() {
        assert_eq!(
            file_path("file:///tmp/a%20b/p.kdl"),
            Some(PathBuf::from("/tmp/a b/p.kdl"))
        );
        assert_eq!(file_path("untitled:Untitled-1"), None);
        assert_eq!(file_path("file:///x%zz"), Some(PathBuf::from("/x%zz")));
    }
}
