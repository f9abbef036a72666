//! What orch refuses to parse: files larger than [`MAX_FILE_BYTES`] and
//! blocks nested deeper than [`MAX_DEPTH`]. Both are checked on the text,
//! before the KDL parser (which recurses once per level and takes time and
//! memory in proportion to the text) ever sees it.

use crate::code::Code;
use crate::diagnostic::Finding;

/// The largest pipeline file orch reads: 8 MiB. The reference pipeline is
/// under 20 KiB.
pub(crate) const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// The largest prompt file orch reads, at validation and at run time: the
/// pipeline file's limit, 8 MiB. A prompt is rendered, then given to the
/// transport on its stdin or as an argument; one this large is a mistake.
pub(crate) const MAX_PROMPT_BYTES: usize = MAX_FILE_BYTES;

/// A prompt file's text, read without ever holding more than
/// [`MAX_PROMPT_BYTES`] + 1 bytes of it: `Ok(Err(len))` when it is larger
/// (`len` is at least [`MAX_PROMPT_BYTES`] + 1), an error when it cannot be
/// read or is not UTF-8 (as `read_to_string`).
pub(crate) fn read_prompt(path: &std::path::Path) -> std::io::Result<Result<String, u64>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    file.take(MAX_PROMPT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_PROMPT_BYTES {
        return Ok(Err(size.max(bytes.len() as u64)));
    }
    String::from_utf8(bytes)
        .map(Ok)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Why a prompt of `len` bytes is refused.
pub(crate) fn prompt_too_large(prompt: &str, len: u64) -> String {
    format!(
        "prompt file `{prompt}` is {len} bytes; orch reads prompt files of at most {} MiB ({MAX_PROMPT_BYTES} bytes)",
        MAX_PROMPT_BYTES / (1024 * 1024)
    )
}

/// The most findings reported for one file (javac's default, too). A file
/// with more is broken throughout; reporting them all cost time and memory
/// in proportion (a 2 MB file of `a` lines made 1,000,001 findings, 1.7 GB
/// and a 91 MB message to the editor). The loader stops reading a file once
/// it has this many, and the rest are summed up in one
/// `orch::too-many-findings`.
pub(crate) const MAX_FINDINGS: usize = 100;

/// Findings counted but not kept: how many, and where the first of them is.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Dropped {
    pub(crate) count: usize,
    pub(crate) first: Option<usize>,
}

impl Dropped {
    /// One more, at `offset`.
    pub(crate) fn add(&mut self, offset: usize) {
        self.count += 1;
        self.first = Some(self.first.map_or(offset, |f| f.min(offset)));
    }

    pub(crate) fn merge(&mut self, other: Dropped) {
        self.count += other.count;
        if let Some(o) = other.first {
            self.first = Some(self.first.map_or(o, |f| f.min(o)));
        }
    }
}

/// The finding where the loader stopped reading, at `offset`.
pub(crate) fn stopped_reading(offset: usize) -> Finding {
    Finding::new(
        Code::TooManyFindings,
        (offset, 0).into(),
        format!(
            "checking stopped after {MAX_FINDINGS} findings: the rest of the file is not checked"
        ),
    )
    .label("checked up to here")
    .help("fix the findings above and validate again")
}

/// At most [`MAX_FINDINGS`] of `findings` (errors first, so that an error
/// is never hidden behind warnings), in their order, and one
/// `orch::too-many-findings` for the rest, placed where the first of them
/// is, if any is left out. `dropped` more were never collected.
pub(crate) fn cap(findings: Vec<Finding>, dropped: Dropped) -> Vec<Finding> {
    use crate::code::Severity;
    let (notes, mut rest): (Vec<Finding>, Vec<Finding>) = findings
        .into_iter()
        .partition(|f| f.code == Code::TooManyFindings);
    if rest.len() <= MAX_FINDINGS && dropped.count == 0 {
        rest.extend(notes);
        return rest;
    }
    let errors = rest
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let mut warnings_kept = MAX_FINDINGS.saturating_sub(errors);
    let mut errors_kept = MAX_FINDINGS;
    let mut first_left_out: Option<usize> = dropped.first;
    let mut kept = Vec::with_capacity(MAX_FINDINGS + notes.len() + 1);
    let total = rest.len();
    for f in rest {
        let room = match f.severity {
            Severity::Error => &mut errors_kept,
            Severity::Warning => &mut warnings_kept,
        };
        if *room > 0 {
            *room -= 1;
            kept.push(f);
        } else {
            let at = f.span.offset();
            first_left_out = Some(first_left_out.map_or(at, |f| f.min(at)));
        }
    }
    let left_out = total - kept.len() + dropped.count;
    kept.extend(notes);
    if left_out > 0 {
        let at = first_left_out
            .or_else(|| kept.last().map(|f| f.span.offset()))
            .unwrap_or(0);
        let n = match left_out {
            1 => "1 more finding is".to_string(),
            n => format!("{n} more findings are"),
        };
        kept.push(
            Finding::new(
                Code::TooManyFindings,
                (at, 0).into(),
                format!("{n} not shown: orch reports at most {MAX_FINDINGS} per file"),
            )
            .label("the first of them is here or after")
            .help("fix the findings above and validate again"),
        );
    }
    kept
}

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
    fn a_prompt_over_the_limit_is_refused_reading_at_most_one_byte_more() {
        let dir = std::env::temp_dir().join(format!("orch-prompt-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.md");
        // Sparse: 1 GiB on disk costs nothing, and reading it whole would
        // take a second and a GiB of memory.
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(1 << 30).unwrap();
        assert_eq!(read_prompt(&big).unwrap(), Err(1 << 30));
        let at_limit = dir.join("at-limit.md");
        std::fs::write(&at_limit, "a".repeat(MAX_PROMPT_BYTES)).unwrap();
        assert_eq!(
            read_prompt(&at_limit).unwrap().map(|t| t.len()),
            Ok(MAX_PROMPT_BYTES)
        );
        let latin1 = dir.join("latin1.md");
        std::fs::write(&latin1, b"caf\xe9").unwrap();
        assert!(read_prompt(&latin1).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn finding(code: Code, offset: usize) -> Finding {
        Finding::new(code, (offset, 1).into(), format!("at {offset}"))
    }

    #[test]
    fn a_cap_keeps_errors_before_warnings_and_counts_the_rest() {
        // 150 warnings, then 120 errors: the errors shown are the first
        // 100, and no warning hides one.
        let mut all: Vec<Finding> = (0..150).map(|i| finding(Code::Unused, i)).collect();
        all.extend((150..270).map(|i| finding(Code::UnknownStage, i)));
        let kept = cap(
            all,
            Dropped {
                count: 3,
                first: Some(500),
            },
        );
        assert_eq!(kept.len(), MAX_FINDINGS + 1);
        assert!(kept[..MAX_FINDINGS]
            .iter()
            .all(|f| f.code == Code::UnknownStage));
        let note = &kept[MAX_FINDINGS];
        assert_eq!(note.code, Code::TooManyFindings);
        assert_eq!(
            note.message,
            "173 more findings are not shown: orch reports at most 100 per file"
        );
        assert_eq!(note.span.offset(), 0);
        // At most the limit: nothing changes.
        let few: Vec<Finding> = (0..MAX_FINDINGS)
            .map(|i| finding(Code::Unused, i))
            .collect();
        assert_eq!(cap(few.clone(), Dropped::default()), few);
    }

    #[test]
    fn the_loader_stops_reading_a_file_at_its_fill_of_findings() {
        // 1,000,000 unknown nodes were 1,000,001 findings, 1.7 GB.
        let text = format!("{}pipeline \"p\" start=\"s\"\n", "a\n".repeat(1_000_000));
        let loaded = crate::loader::load("p.kdl", &text);
        assert!(!loaded.complete);
        assert_eq!(loaded.structural.len(), MAX_FINDINGS + 1);
        let last = &loaded.structural[MAX_FINDINGS];
        assert_eq!(last.code, Code::TooManyFindings);
        assert_eq!(last.span.offset(), 2 * MAX_FINDINGS - 1);
        assert!(loaded.pipeline.header.is_none());
        let a = crate::analysis::analyze_text("p.kdl", &text, &Default::default());
        assert_eq!(a.report.findings.len(), MAX_FINDINGS + 1);
        assert!(a.has_errors());
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
