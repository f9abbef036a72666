//! Byte offsets (orch's spans) ↔ LSP positions (line and UTF-16 code unit,
//! the protocol's default and only mandatory encoding). Lines end at `\n`,
//! `\r\n` or `\r`: the protocol's end-of-line sequences, which clients count
//! lines by.

use lsp_types::{Position, Range};
use miette::SourceSpan;

/// A text's line starts, for conversions both ways.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        let b = text.as_bytes();
        starts.extend(b.iter().enumerate().filter_map(|(i, &c)| match c {
            b'\n' => Some(i + 1),
            b'\r' if b.get(i + 1) != Some(&b'\n') => Some(i + 1),
            _ => None,
        }));
        LineIndex { starts }
    }

    /// Where line `line` ends: the start of its line break (or the text's end).
    fn line_end(&self, text: &str, line: usize) -> usize {
        match self.starts.get(line + 1) {
            Some(&next) if text[..next].ends_with("\r\n") => next - 2,
            Some(&next) => next - 1,
            None => text.len(),
        }
    }

    /// The position of a byte offset (clamped to the text; an offset inside
    /// a character counts from that character's start).
    pub(crate) fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let character: usize = text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(to_u32(line), to_u32(character))
    }

    /// The byte offset of a position. A line past the end is the end of
    /// the text; a character past the end of its line is the line's end.
    pub(crate) fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        let end = self.line_end(text, pos.line as usize);
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    pub(crate) fn range(&self, text: &str, span: SourceSpan) -> Range {
        let start = span.offset();
        Range::new(
            self.position(text, start),
            self.position(text, start.saturating_add(span.len())),
        )
    }

    /// The byte range of an LSP range (start ≤ end).
    pub(crate) fn span(&self, text: &str, range: Range) -> (usize, usize) {
        let a = self.offset(text, range.start);
        let b = self.offset(text, range.end);
        (a.min(b), a.max(b))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_utf16_code_units() {
        // `é` is 2 bytes and 1 unit; `𝄞` is 4 bytes and 2 units.
        let text = "aé𝄞b\nx";
        let ix = LineIndex::new(text);
        assert_eq!(ix.position(text, 0), Position::new(0, 0));
        assert_eq!(ix.position(text, 3), Position::new(0, 2));
        assert_eq!(ix.position(text, 7), Position::new(0, 4));
        assert_eq!(ix.position(text, 9), Position::new(1, 0));
        assert_eq!(ix.offset(text, Position::new(0, 4)), 7);
        assert_eq!(ix.offset(text, Position::new(0, 99)), 8);
        assert_eq!(ix.offset(text, Position::new(7, 0)), text.len());
        // Inside a character: its start.
        assert_eq!(ix.position(text, 5), Position::new(0, 2));
    }

    #[test]
    fn lines_end_at_lf_crlf_and_cr() {
        let text = "ab\r\ncd\ref\ngh";
        let ix = LineIndex::new(text);
        assert_eq!(ix.position(text, 4), Position::new(1, 0));
        assert_eq!(ix.position(text, 7), Position::new(2, 0));
        assert_eq!(ix.position(text, 10), Position::new(3, 0));
        assert_eq!(ix.position(text, 11), Position::new(3, 1));
        // A character past a line's end is its end, before the line break.
        assert_eq!(ix.offset(text, Position::new(0, 99)), 2);
        assert_eq!(ix.offset(text, Position::new(1, 99)), 6);
        assert_eq!(ix.offset(text, Position::new(2, 99)), 9);
        assert_eq!(ix.offset(text, Position::new(3, 99)), text.len());
        // A lone `\r` at the end starts an empty last line.
        let text = "a\r";
        let ix = LineIndex::new(text);
        assert_eq!(ix.position(text, 2), Position::new(1, 0));
    }
}
