//! What is at the cursor, read from the text alone: a half-typed node has
//! no model, yet completion and hover must still know where they are.
//! A forgiving scan of KDL (strings, comments, braces, `;`), never an error.

/// An enclosing node: its name and the text of its line up to `{`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub(crate) node: String,
    pub(crate) header: String,
}

/// The cursor's surroundings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Context {
    /// The enclosing nodes, outermost first.
    pub(crate) frames: Vec<Frame>,
    /// The current statement from its start to the cursor.
    pub(crate) statement: String,
    /// The byte offset where the statement starts.
    pub(crate) statement_start: usize,
    /// When the cursor is inside a quoted string: the offset of its first
    /// character (after the quote).
    pub(crate) string_start: Option<usize>,
}

/// Scans `text` up to `cursor` (clamped to a character boundary).
pub(crate) fn context(text: &str, cursor: usize) -> Context {
    let mut cursor = cursor.min(text.len());
    while !text.is_char_boundary(cursor) {
        cursor -= 1;
    }
    let bytes = text.as_bytes();
    let mut frames: Vec<Frame> = Vec::new();
    let mut start = 0;
    let mut string_start = None;
    let mut i = 0;
    while i < cursor {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i + 1);
                if end >= cursor {
                    string_start = Some(i + 1);
                    break;
                }
                i = end + 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map(|n| i + n).unwrap_or(text.len());
                if i >= cursor {
                    // Inside a comment: nothing to offer, an empty statement.
                    start = cursor;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..]
                    .find("*/")
                    .map(|n| i + n + 4)
                    .unwrap_or(text.len());
                continue;
            }
            b'{' => {
                let header = text[start..i].trim().to_string();
                let node = first_word(&header).to_string();
                frames.push(Frame { node, header });
                start = i + 1;
            }
            b'}' => {
                frames.pop();
                start = i + 1;
            }
            // A line ending in `\` continues the node.
            b'\n' | b';' if !text[start..i].trim_end().ends_with('\\') => {
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let start = start.min(cursor);
    Context {
        frames,
        statement: text[start..cursor].to_string(),
        statement_start: start,
        string_start,
    }
}

/// The index of the closing quote of a string whose text starts at `from`
/// (or the end of the text).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'"' => return j,
            _ => j += 1,
        }
    }
    bytes.len()
}

pub(crate) fn first_word(s: &str) -> &str {
    let s = s.trim_start();
    let end = s
        .find(|c: char| c.is_whitespace() || c == '"' || c == '{' || c == '=' || c == ';')
        .unwrap_or(s.len());
    &s[..end]
}

/// The value of `key="…"` in a node's text, when written plainly.
pub(crate) fn property(header: &str, key: &str) -> Option<String> {
    let at = header.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &header[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The first quoted argument of a node's text.
pub(crate) fn first_argument(header: &str) -> Option<String> {
    let rest = header.trim_start().strip_prefix(first_word(header))?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The quoted string around a byte offset: its text's start and end.
pub(crate) fn string_at(text: &str, offset: usize) -> Option<(usize, usize)> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |n| n + 1);
    let bytes = text.as_bytes();
    let mut i = line_start;
    while i < bytes.len() && bytes[i] != b'\n' {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'/') {
            return None;
        }
        if bytes[i] == b'"' {
            let end = string_end(bytes, i + 1);
            if i < offset && offset <= end {
                return Some((i + 1, end));
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_enclosing_nodes_and_the_statement() {
        let text = "stage \"a\" gate=\"g\" { // {\n    pass \"do";
        let c = context(text, text.len());
        assert_eq!(c.frames.len(), 1);
        assert_eq!(c.frames[0].node, "stage");
        assert_eq!(property(&c.frames[0].header, "gate").as_deref(), Some("g"));
        assert_eq!(c.statement.trim_start(), "pass \"do");
        assert_eq!(c.string_start, Some(text.len() - 2));
    }

    #[test]
    fn strings_with_braces_and_escapes_do_not_nest() {
        let text = "runner \"r\" {\n command \"{x}\\\"}\" \n}\nst";
        let c = context(text, text.len());
        assert!(c.frames.is_empty(), "{c:?}");
        assert_eq!(c.statement, "st");
    }

    #[test]
    fn the_string_under_an_offset() {
        let text = "timeout \"30m\" // \"x\"";
        assert_eq!(string_at(text, 10), Some((9, 12)));
        assert_eq!(string_at(text, 18), None);
        assert_eq!(
            first_argument("writes \"rep\" field=\"x\"").as_deref(),
            Some("rep")
        );
    }
}
