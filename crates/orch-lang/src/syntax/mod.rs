//! A KDL 2.0 reader: text → a [`Document`] of nodes, entries (arguments
//! and properties with typed values) and type annotations, each with the
//! byte span it was read from.
//!
//! Why not the `kdl` crate's document: that parser (winnow, trying each
//! alternative and building an error context for every failed one) reads
//! about 1.6 MB/s and keeps ~60 bytes of memory per byte of input for its
//! format-preserving tree; the loader needs neither the formatting nor the
//! speed loss. `orch fmt` keeps the `kdl` crate, and the tests use it as the
//! oracle (`tests/kdl_reader.rs`: the specification's compliance suite and
//! a differential property test).
//!
//! The reader is a hand-written recursive descent over the bytes: one pass,
//! no backtracking beyond a one-token look-ahead (a string followed by `=`
//! is a property key), strings copied out of the input once (escapes and
//! multi-line dedent applied while copying). Nesting recurses once per
//! `{ … }` level, bounded by `MAX_DEPTH`. It stops at the first error.

mod chars;
mod number;
mod parser;
mod strings;
mod tree;

use miette::SourceSpan;

pub(crate) use chars::newline_len;
pub use tree::{Document, Entry, Ident, Node, Value};

/// The deepest `{ … }` nesting the reader follows (the loader refuses
/// deeper files before reading them, see `limits`). Bounded so that a
/// debug build on a 2 MiB test thread cannot overflow its stack.
pub(crate) const MAX_DEPTH: usize = 100;

/// Why a text is not KDL 2.0: where, what, and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub span: SourceSpan,
    pub message: String,
    pub(crate) label: String,
    pub(crate) help: Option<String>,
}

/// Reads `text` as a KDL 2.0 document.
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    fits(text)?;
    parser::Parser::new(text).document()
}

/// Reads `text` as a KDL 2.0 document, handing each top-level node to
/// `each` as soon as it is read (children included) and keeping none. On an
/// error, the nodes handed over so far are of a text that is not KDL. When
/// `each` breaks, the rest of the text is not read (nor known to be KDL).
pub(crate) fn parse_each(
    text: &str,
    each: impl FnMut(Node) -> std::ops::ControlFlow<()>,
) -> Result<(), SyntaxError> {
    fits(text)?;
    parser::Parser::new(text).each_node(each)
}

/// Spans are 32-bit.
fn fits(text: &str) -> Result<(), SyntaxError> {
    if u32::try_from(text.len()).is_err() {
        return Err(SyntaxError {
            span: (0, 0).into(),
            message: "The text is larger than 4 GiB".into(),
            label: "too large".into(),
            help: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
