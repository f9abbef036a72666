//! `orch fmt`: the canonical layout of a pipeline file, through the `kdl`
//! crate's formatter. Comments stay; values keep how they were written
//! (quotes, number forms); spacing, indentation and blank lines between
//! top-level nodes are normalised. Formatting is idempotent.

use kdl::{KdlDocument, KdlError};

fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// Keeps each value's written form but normalises the space around it.
fn normalise_entries(doc: &mut KdlDocument) {
    for node in doc.nodes_mut() {
        for entry in node.entries_mut() {
            entry.keep_format();
            if let Some(f) = entry.format_mut() {
                if is_blank(&f.leading) {
                    f.leading = " ".into();
                } else if let Some(c) = inline_comment(&f.leading, " ", " ") {
                    f.leading = c;
                }
                if is_blank(&f.trailing) {
                    f.trailing.clear();
                }
                if is_blank(&f.after_key) {
                    f.after_key.clear();
                }
                if is_blank(&f.after_eq) {
                    f.after_eq.clear();
                }
            }
        }
        if let Some(children) = node.children_mut() {
            normalise_entries(children);
        }
    }
}

/// A comment kept inside a node's line (between an entry's key, `=` and
/// value, after an entry, before `{`), trimmed and with the spaces `orch
/// fmt` puts around it; `None` where there is none. A piece holding a line
/// break (an escaped newline with its `//` comment) is kept as written: it
/// cannot be joined onto one line.
fn inline_comment(piece: &str, before: &str, after: &str) -> Option<String> {
    if is_blank(piece) {
        None
    } else if piece.contains('\n') {
        Some(piece.to_string())
    } else {
        Some(format!("{before}{}{after}", piece.trim()))
    }
}

/// What the formatter drops from one node: each entry's comments after its
/// key, after its `=` and after its value, and the comment before `{`.
struct Inline {
    entries: Vec<[Option<String>; 3]>,
    before_children: Option<String>,
}

/// Each node's inline comments, in pre-order.
fn inline_comments(doc: &KdlDocument, out: &mut Vec<Inline>) {
    for node in doc.nodes() {
        let entries = node
            .entries()
            .iter()
            .map(|e| match e.format() {
                Some(f) => [
                    inline_comment(&f.after_key, " ", ""),
                    inline_comment(&f.after_eq, "", ""),
                    inline_comment(&f.trailing, " ", ""),
                ],
                None => [None, None, None],
            })
            .collect();
        let before_children = node
            .format()
            .and_then(|f| inline_comment(&f.before_children, " ", " "));
        out.push(Inline {
            entries,
            before_children,
        });
        if let Some(c) = node.children() {
            inline_comments(c, out);
        }
    }
}

fn restore_inline_comments(doc: &mut KdlDocument, kept: &mut impl Iterator<Item = Inline>) {
    for node in doc.nodes_mut() {
        let Some(inline) = kept.next() else { return };
        for (entry, [after_key, after_eq, trailing]) in
            node.entries_mut().iter_mut().zip(inline.entries)
        {
            if after_key.is_none() && after_eq.is_none() && trailing.is_none() {
                continue;
            }
            entry.keep_format();
            if let Some(f) = entry.format_mut() {
                f.after_key = after_key.unwrap_or_default();
                f.after_eq = after_eq.unwrap_or_default();
                f.trailing = trailing.unwrap_or_default();
            }
        }
        if let (Some(c), Some(f)) = (inline.before_children, node.format_mut()) {
            f.before_children = c;
        }
        if let Some(c) = node.children_mut() {
            restore_inline_comments(c, kept);
        }
    }
}

/// Each node's line comment (`// …` after the node), in pre-order: the
/// formatter would drop them.
fn line_comments(doc: &KdlDocument, out: &mut Vec<Option<String>>) {
    for node in doc.nodes() {
        out.push(
            node.format()
                .map(|f| f.terminator.trim())
                .filter(|t| t.starts_with("//"))
                .map(str::to_string),
        );
        if let Some(c) = node.children() {
            line_comments(c, out);
        }
    }
}

fn restore_line_comments(
    doc: &mut KdlDocument,
    comments: &mut impl Iterator<Item = Option<String>>,
) {
    for node in doc.nodes_mut() {
        if let Some(Some(comment)) = comments.next() {
            if let Some(f) = node.format_mut() {
                f.before_terminator = "  ".into();
                f.terminator = format!("{comment}\n");
            }
        }
        if let Some(c) = node.children_mut() {
            restore_line_comments(c, comments);
        }
    }
}

/// A top-level node's leading comments, each line trimmed, runs of blank
/// lines collapsed to one (so a user's grouping of nodes survives).
fn top_level_leading(leading: &str, first: bool) -> String {
    let mut out = String::new();
    let mut blank = false;
    // The last piece is the indentation before the node's name.
    let mut lines: Vec<&str> = leading.split('\n').collect();
    lines.pop();
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            blank = !out.is_empty() || !first;
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    if blank {
        out.push('\n');
    }
    out
}

/// The canonical text of a pipeline file.
///
/// A text `crate::limits` refuses is an error without diagnostics:
/// `orch validate` says why.
pub fn format(text: &str) -> Result<String, KdlError> {
    if crate::limits::check(text).is_some() {
        return Err(KdlError {
            input: std::sync::Arc::new(String::new()),
            diagnostics: Vec::new(),
        });
    }
    let mut doc = KdlDocument::parse_v2(text)?;
    let mut comments = Vec::new();
    line_comments(&doc, &mut comments);
    let mut inline = Vec::new();
    inline_comments(&doc, &mut inline);
    let leadings: Vec<String> = doc
        .nodes()
        .iter()
        .map(|n| n.format().map(|f| f.leading.clone()).unwrap_or_default())
        .collect();
    normalise_entries(&mut doc);
    doc.autoformat();
    restore_line_comments(&mut doc, &mut comments.into_iter());
    restore_inline_comments(&mut doc, &mut inline.into_iter());
    for (i, (node, leading)) in doc.nodes_mut().iter_mut().zip(leadings).enumerate() {
        if let Some(f) = node.format_mut() {
            f.leading = top_level_leading(&leading, i == 0);
        }
    }
    if let Some(f) = doc.format_mut() {
        f.leading.clear();
    }
    let mut out = doc.to_string();
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_spacing_and_keeps_comments_and_quotes() {
        let text = "// file\n\npipeline   \"x\"  start=\"a\"{\n  var \"t\"   \"v\"   // the target\n}\n\n\n// about a\nstage \"a\" call-site=\"c\" gate=\"g\" { pass \"done\"; exhausted \"done\" }\nend \"done\" outcome=\"success\"";
        let out = format(text).unwrap();
        assert_eq!(
            out,
            "// file\n\npipeline \"x\" start=\"a\" {\n    var \"t\" \"v\"  // the target\n}\n\n// about a\nstage \"a\" call-site=\"c\" gate=\"g\" {\n    pass \"done\"\n    exhausted \"done\"\n}\nend \"done\" outcome=\"success\"\n"
        );
        assert_eq!(format(&out).unwrap(), out, "formatting is idempotent");
    }

    #[test]
    fn keeps_comments_inside_a_nodes_line() {
        let text = "pipeline \"x\" start=/* c1 */\"a\"   /* c2 */   {\n  var \"t\"  /* c3 */  \"v\"\n}\nend \"done\" outcome /* c4 */ =\"success\" /* c5 */\n";
        let out = format(text).unwrap();
        assert_eq!(
            out,
            "pipeline \"x\" start=/* c1 */\"a\" /* c2 */ {\n    var \"t\" /* c3 */ \"v\"\n}\nend \"done\" outcome /* c4 */=\"success\" /* c5 */\n"
        );
        assert_eq!(format(&out).unwrap(), out, "formatting is idempotent");
    }
}
