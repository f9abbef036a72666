//! What orch refuses to parse: files larger than [`MAX_FILE_BYTES`] and
//! blocks nested deeper than [`MAX_DEPTH`]. Both are checked on the text,
//! before the KDL parser (which recurses once per level and takes time and
//! memory in proportion to the text) ever sees it.

use crate::code::Code;
use crate::diagnostic::Finding;

/// The largest pipeline file orch reads: 8 MiB. The reference pipeline is
/// under 20 KiB.
pub(crate) const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// The deepest nesting of `{ … }` blocks orch parses. The language itself
/// nests two levels (`call-site { llm { … } }`).
pub(crate) const MAX_DEPTH: usize = 64;

/// The finding for a text orch will not parse, if it is one.
pub(crate) fn check(text: &str) -> Option<Finding> {
    if text.len() > MAX_FILE_BYTES {
        return Some(too_large(text.len()));
    }
    too_deep(text).map(|offset| {
        Finding::new(
            Code::TooDeep,
            (offset, 1).into(),
            format!("blocks are nested more than {MAX_DEPTH} levels deep"),
        )
        .label(format!("level {}", MAX_DEPTH + 1))
        .help("pipeline nodes nest at most two levels; close the blocks above")
    })
}

/// A file of `len` bytes, over the limit.
pub(crate) fn too_large(len: usize) -> Finding {
    Finding::new(
        Code::BadFile,
        (0, 0).into(),
        format!(
            "the file is {len} bytes; orch reads pipeline files of at most {} MiB ({MAX_FILE_BYTES} bytes)",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
    .label("too large")
    .help("a pipeline is a few kilobytes; is this the right file?")
}

/// The offset of the first `{` that opens a block deeper than [`MAX_DEPTH`],
/// skipping strings (quoted, raw, multi-line) and comments.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        i = match b[i] {
            b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
                i + 1
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                i + 1
            }
            b'"' => skip_quoted(b, i),
            b'#' => skip_raw(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => skip_line(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => skip_block_comment(b, i),
            _ => i + 1,
        };
    }
    None
}

/// Past a `"…"` or `"""…"""` string starting at `i`, escapes honoured.
fn skip_quoted(b: &[u8], i: usize) -> usize {
    let multi = b[i..].starts_with(b"\"\"\"");
    let mut j = if multi { i + 3 } else { i + 1 };
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' if !multi => return j + 1,
            b'"' if b[j..].starts_with(b"\"\"\"") => return j + 3,
            _ => j += 1,
        }
    }
    b.len()
}

/// Past a raw string `#"…"#` (any number of `#`) starting at `i`; a `#`
/// that starts no string (`#true`) is one byte.
fn skip_raw(b: &[u8], i: usize) -> usize {
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    let open = i + hashes;
    if b.get(open) != Some(&b'"') {
        return open;
    }
    let mut j = open + 1;
    while j < b.len() {
        if b[j] == b'"' && b[j + 1..].iter().take_while(|&&c| c == b'#').count() >= hashes {
            return j + 1 + hashes;
        }
        j += 1;
    }
    b.len()
}

fn skip_line(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// Past a `/* … */` comment starting at `i`; these nest.
fn skip_block_comment(b: &[u8], i: usize) -> usize {
    let mut level = 0usize;
    let mut j = i;
    while j < b.len() {
        if b[j..].starts_with(b"/*") {
            level += 1;
            j += 2;
        } else if b[j..].starts_with(b"*/") {
            level -= 1;
            j += 2;
            if level == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}{}", "a {\n".repeat(n), "}\n".repeat(n))
    }

    #[test]
    fn finds_the_first_brace_beyond_the_limit() {
        assert_eq!(too_deep(&nested(MAX_DEPTH)), None);
        let text = nested(MAX_DEPTH + 1);
        assert_eq!(too_deep(&text), Some(MAX_DEPTH * 4 + 2));
        assert_eq!(too_deep(&nested(100_000)), Some(MAX_DEPTH * 4 + 2));
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_count() {
        let deep = "{".repeat(MAX_DEPTH + 1);
        for text in [
            format!("a \"{deep}\""),
            format!("a \"\\\"{deep}\""),
            format!("a #\"{deep}\"#"),
            format!("a ##\"\"#{deep}\"##"),
            format!("a \"\"\"\n{deep}\n\"\"\""),
            format!("// {deep}\n"),
            format!("/* /* */ {deep} */"),
        ] {
            assert_eq!(too_deep(&text), None, "{text}");
        }
        assert!(too_deep(&format!("a #true {deep}")).is_some());
    }

    #[test]
    fn unterminated_strings_and_comments_end_the_scan() {
        for text in ["a \"{{{", "a #\"{{", "/* {{", "a \"\\"] {
            assert_eq!(too_deep(text), None, "{text}");
        }
    }
}
