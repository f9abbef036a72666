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
/// A text [`crate::limits`] refuses is an error without diagnostics:
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
    let leadings: Vec<String> = doc
        .nodes()
        .iter()
        .map(|n| n.format().map(|f| f.leading.clone()).unwrap_or_default())
        .collect();
    normalise_entries(&mut doc);
    doc.autoformat();
    restore_line_comments(&mut doc, &mut comments.into_iter());
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
}
