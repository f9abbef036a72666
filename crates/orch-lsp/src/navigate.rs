//! Go to definition, find references and rename, over the name index.

use std::collections::HashMap;

use lsp_types::{Location, Position, PrepareRenameResponse, TextEdit, Uri, WorkspaceEdit};
use orch_lang::symbols::{Key, Kind, Occurrence};
use orch_lang::validate::is_path_safe_name;

use crate::document::Document;

/// The name under the cursor.
fn under(doc: &mut Document, pos: Position) -> Option<Occurrence> {
    let offset = doc.lines.offset(&doc.text, pos);
    doc.index().at(offset).cloned()
}

pub(crate) fn definition(doc: &mut Document, uri: &Uri, pos: Position) -> Option<Location> {
    let o = under(doc, pos)?;
    let d = doc.index().definition(&o.key)?.span;
    Some(Location::new(uri.clone(), doc.lines.range(&doc.text, d)))
}

pub(crate) fn references(
    doc: &mut Document,
    uri: &Uri,
    pos: Position,
    with_decl: bool,
) -> Vec<Location> {
    let Some(o) = under(doc, pos) else {
        return Vec::new();
    };
    let spans: Vec<_> = doc
        .index()
        .occurrences_of(&o.key)
        .filter(|r| with_decl || !r.is_definition)
        .map(|r| r.span)
        .collect();
    spans
        .into_iter()
        .map(|s| Location::new(uri.clone(), doc.lines.range(&doc.text, s)))
        .collect()
}

pub(crate) fn prepare_rename(doc: &mut Document, pos: Position) -> Option<PrepareRenameResponse> {
    let o = under(doc, pos)?;
    Some(PrepareRenameResponse::RangeWithPlaceholder {
        range: doc.lines.range(&doc.text, o.span),
        placeholder: o.key.name,
    })
}

/// Why a rename is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum RenameError {
    #[error("no name to rename here")]
    NoName,
    #[error("cannot rename to `{0}`: {1}")]
    Invalid(String, &'static str),
    #[error("cannot rename to `{0}`: {1} `{0}` already exists")]
    Taken(String, &'static str),
    #[error("cannot rename `{0}`: it is written with escapes at offset {1}; edit it by hand")]
    Escaped(String, usize),
}

// lsp-types keys a WorkspaceEdit's changes by `Uri`, which clippy deems
// mutable (a cache inside); it is never mutated here.
#[allow(clippy::mutable_key_type)]
pub(crate) fn rename(
    doc: &mut Document,
    uri: &Uri,
    pos: Position,
    new_name: &str,
) -> Result<WorkspaceEdit, RenameError> {
    let o = under(doc, pos).ok_or(RenameError::NoName)?;
    valid(o.key.kind, new_name)?;
    let taken = namespace(o.key.kind).iter().find(|k| {
        doc.index()
            .definition(&Key {
                kind: **k,
                scope: o.key.scope.clone(),
                name: new_name.to_string(),
            })
            .is_some()
    });
    if let Some(k) = taken {
        if new_name != o.key.name {
            return Err(RenameError::Taken(new_name.to_string(), k.keyword()));
        }
    }
    let text = doc.text.clone();
    let mut spans = Vec::new();
    for r in doc.index().occurrences_of(&o.key) {
        let (a, b) = (r.span.offset(), r.span.offset() + r.span.len());
        if text.get(a..b) != Some(o.key.name.as_str()) {
            return Err(RenameError::Escaped(o.key.name.clone(), a));
        }
        spans.push(r.span);
    }
    // A bare word stays bare when the new name can be one; otherwise it is
    // quoted. Inside a string (`"…"`, `#"…"#`, `{var.NAME}`) the new name
    // goes in as it is: `valid` saw that a string can hold it verbatim.
    let bare = syntax_bare(new_name);
    let edits = spans
        .into_iter()
        .map(|s| {
            let written = if is_word(&text, s.offset()) && !bare {
                quoted(new_name)
            } else {
                new_name.to_string()
            };
            TextEdit::new(doc.lines.range(&text, s), written)
        })
        .collect();
    Ok(WorkspaceEdit {
        changes: Some(HashMap::from([(uri.clone(), edits)])),
        ..WorkspaceEdit::default()
    })
}

/// Whether the occurrence at `offset` is a bare word of its own (a node
/// name, a property's key or value, an argument), not the inside of a
/// quoted or raw string nor the `NAME` of a bare `var.NAME`: what precedes
/// it is the text's start, a space, a line break or one of the characters
/// KDL ends an identifier at (a `"` opens a string).
fn is_word(text: &str, offset: usize) -> bool {
    text.get(..offset)
        .and_then(|before| before.chars().next_back())
        .is_none_or(|c| c.is_whitespace() || "\\/(){};[]#=".contains(c))
}

/// Whether `name` reads back as itself when written bare: a KDL 2.0
/// identifier string, not a keyword (`true`, `null`, `inf`…), not starting
/// like a number, with no space or character KDL reserves. Asked of the
/// reader itself: the name alone is a document of one bare node so named.
fn syntax_bare(name: &str) -> bool {
    let Ok(doc) = orch_lang::syntax::parse(name) else {
        return false;
    };
    match doc.nodes() {
        [n] => {
            n.ty().is_none()
                && n.entries().is_empty()
                && n.children().is_none()
                && n.name().value() == name
                && n.name().span() == (0, name.len()).into()
        }
        _ => false,
    }
}

/// `name` as a quoted KDL string.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_kdl_reserved(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Code points a KDL string cannot hold as they are: the line separators
/// that are newlines to KDL but not controls to Rust, and the ones KDL 2.0
/// disallows anywhere (direction marks and isolates, the BOM).
fn is_kdl_reserved(c: char) -> bool {
    matches!(c,
        '\u{2028}' | '\u{2029}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

/// The kinds whose names a new name must not collide with.
fn namespace(kind: Kind) -> &'static [Kind] {
    match kind {
        Kind::Stage | Kind::End => &[Kind::Stage, Kind::End],
        Kind::Gate => &[Kind::Gate],
        Kind::Artifact => &[Kind::Artifact],
        Kind::Field => &[Kind::Field],
        Kind::Runner => &[Kind::Runner],
        Kind::Transport => &[Kind::Transport],
        Kind::CallSite => &[Kind::CallSite],
        Kind::Alert => &[Kind::Alert],
        Kind::Approval => &[Kind::Approval],
        Kind::Var => &[Kind::Var],
    }
}

/// A new name must be writable inside a string as it is (no escapes), and as what the kind
/// needs: a file name for stages, a placeholder for variables.
fn valid(kind: Kind, name: &str) -> Result<(), RenameError> {
    let bad = |why| Err(RenameError::Invalid(name.to_string(), why));
    if name.is_empty() {
        return bad("a name must not be empty");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return bad("a name has no quotes, backslashes or control characters");
    }
    if name.chars().any(is_kdl_reserved) {
        return bad("a name has no line separators, direction marks or byte-order marks");
    }
    match kind {
        Kind::Stage | Kind::End if !is_path_safe_name(name) => {
            bad("stage names take letters, digits, `.`, `_` and `-`, not starting with `.` or `-`")
        }
        Kind::Var
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            bad("`{var.NAME}` takes ASCII letters, digits, `_` and `-`")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_lang::syntax::{self, Node, Value};

    /// A pipeline whose gate, end and variable are written bare.
    const TEXT: &str = r#"pipeline "p" start="s" {
    var target "x"
}
transport "t" {
    command "sh" "run.sh" "{var.target}"
    prompt "stdin"
    timeout "1m"
}
artifact "rep" path="r.md" {
    field "result"
}
gate g artifact="rep" {
    expect "result" "PASS"
}
call-site "cs" axis="C" verdict="judgement" mode="llm" {
    llm transport="t" prompt="prompt.md"
    why "test"
}
stage "s" call-site="cs" gate=g {
    pass done
    exhausted "failed"
}
end done outcome="success"
end "failed" outcome="failure"
"#;

    /// A document's structure without spans, `old` read as `new` wherever
    /// it is a whole name or string, and `{var.old}` as `{var.new}`.
    fn shape(nodes: &[Node], old: &str, new: &str) -> String {
        let s = |v: &str| {
            if v == old {
                new.to_string()
            } else {
                v.replace(&format!("{{var.{old}}}"), &format!("{{var.{new}}}"))
            }
        };
        let mut out = String::new();
        for n in nodes {
            out.push_str(&format!("{:?}", s(n.name().value())));
            for e in n.entries() {
                if let Some(k) = e.name() {
                    out.push_str(&format!(" {:?}=", s(k.value())));
                } else {
                    out.push(' ');
                }
                match e.value() {
                    Value::String(v) => out.push_str(&format!("{:?}", s(v))),
                    v => out.push_str(&format!("{v:?}")),
                }
            }
            if let Some(c) = n.children() {
                out.push_str(&format!(" {{ {} }}", shape(c.nodes(), old, new)));
            }
            out.push_str("; ");
        }
        out
    }

    /// The text after renaming the name at `needle` (+`delta` bytes).
    fn renamed(needle: &str, delta: usize, new: &str) -> Result<String, RenameError> {
        let uri: Uri = "file:///tmp/p.kdl".parse().expect("uri");
        let mut doc = Document::new(uri.as_str(), TEXT.to_string());
        let at = TEXT.find(needle).expect("needle") + delta;
        let pos = doc.lines.position(TEXT, at);
        let edit = rename(&mut doc, &uri, pos, new)?;
        let mut edits = edit.changes.expect("changes").remove(&uri).expect("edits");
        edits.sort_by_key(|e| std::cmp::Reverse((e.range.start.line, e.range.start.character)));
        let mut text = TEXT.to_string();
        for e in edits {
            let (a, b) = doc.lines.span(TEXT, e.range);
            text.replace_range(a..b, &e.new_text);
        }
        Ok(text)
    }

    /// Renaming `old` (at `needle`) to `new` gives a file that reads back
    /// as the same document with the new name.
    fn assert_renames(needle: &str, delta: usize, old: &str, new: &str) -> String {
        let text = renamed(needle, delta, new).unwrap_or_else(|e| panic!("{new:?}: {e}"));
        let before = syntax::parse(TEXT).expect("parses");
        let after = syntax::parse(&text).unwrap_or_else(|e| panic!("{new:?}: {e}\n{text}"));
        assert_eq!(
            shape(after.nodes(), "", ""),
            shape(before.nodes(), old, new),
            "{new:?}:\n{text}"
        );
        text
    }

    #[test]
    fn a_bare_name_stays_bare_when_it_can_and_is_quoted_when_not() {
        let text = assert_renames("gate g", 5, "g", "gg");
        assert!(text.contains("gate gg artifact") && text.contains("gate=gg "));
        let text = assert_renames("gate g", 5, "g", "a b");
        assert!(text.contains("gate \"a b\" artifact") && text.contains("gate=\"a b\" "));
        for new in [
            "#true",
            "true",
            "false",
            "null",
            "inf",
            "-inf",
            "nan",
            "#nan",
            "1x",
            "-1",
            "+1",
            ".5",
            "-.5",
            "x=y",
            "a;b",
            "a{b",
            "(t)x",
            "a/b",
            "a//b",
            "/-x",
            "a#b",
            "[x]",
            "a\u{a0}b",
            "a\u{3000}b",
            "é😀",
            "-",
            ".x",
            "r#x",
            "a,b",
        ] {
            assert_renames("gate g", 5, "g", new);
        }
        // An end: `pass done` and `end done`; a variable: its bare
        // definition and the `{var.NAME}` inside a string.
        let text = assert_renames("pass done", 5, "done", "true");
        assert!(text.contains("pass \"true\"") && text.contains("end \"true\" outcome"));
        let text = assert_renames("{var.target}", 5, "target", "1st");
        assert!(text.contains("var \"1st\" \"x\"") && text.contains("\"{var.1st}\""));
    }

    #[test]
    fn a_name_no_string_can_hold_verbatim_is_refused() {
        for new in [
            "a\u{2028}b",
            "a\u{feff}",
            "\u{200e}x",
            "a\"b",
            "a\\b",
            "a\nb",
            "a\rb",
        ] {
            assert!(
                matches!(renamed("gate g", 5, new), Err(RenameError::Invalid(..))),
                "{new:?}"
            );
        }
    }

    #[test]
    fn bare_identifiers_are_what_the_reader_reads_bare() {
        for ok in [
            "g", "a-b", "a.b", "-x", "é", "a+b", "x1", "a'b", "a,b", "--", "a<b",
        ] {
            assert!(syntax_bare(ok), "{ok:?}");
        }
        for no in [
            "",
            "true",
            "#true",
            "null",
            "inf",
            "-inf",
            "nan",
            "1",
            "-1",
            "+1x",
            ".5",
            "a b",
            "a=b",
            "a;b",
            "a\"",
            "(t)a",
            "a/b",
            "a{",
            "}",
            "a\u{a0}b",
            "a\u{2028}",
            "#x",
        ] {
            assert!(!syntax_bare(no), "{no:?}");
        }
    }
}
