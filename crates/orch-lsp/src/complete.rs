//! Completion: the nodes valid at the cursor, the node's properties, enum
//! values, and the names a reference can take (`gate="` offers gates).

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, Position, Range,
    TextEdit,
};
use orch_lang::symbols::Kind;

use crate::document::Document;
use crate::grammar;
use crate::lexical::{self, Context};

/// What the cursor is on.
#[derive(Debug, PartialEq)]
enum Slot {
    /// The start of a statement: a node name.
    Node,
    /// After a node's name, outside a string: a property name.
    Property,
    /// Inside `key="…"`.
    Value(String),
    /// Inside the node's first argument.
    Argument,
}

pub(crate) fn complete(doc: &mut Document, pos: Position) -> Vec<CompletionItem> {
    let cursor = doc.lines.offset(&doc.text, pos);
    let cx = lexical::context(&doc.text, cursor);
    let (slot, from) = slot(&cx, cursor);
    // The cursor as a position in the text: the client's may lie past a
    // line's end or the last line, and the edit must not echo it.
    let range = Range::new(
        doc.lines.position(&doc.text, from),
        doc.lines.position(&doc.text, cursor),
    );
    let mut path: Vec<&str> = cx.frames.iter().map(|f| f.node.as_str()).collect();
    let node = lexical::first_word(&cx.statement).to_string();
    let items: Vec<(String, CompletionItemKind, String)> = match &slot {
        Slot::Node => grammar::children(&path)
            .into_iter()
            .map(|(n, d)| (n.to_string(), CompletionItemKind::KEYWORD, d.to_string()))
            .collect(),
        Slot::Property => {
            path.push(&node);
            grammar::properties(&path)
                .into_iter()
                .map(|p| (format!("{p}="), CompletionItemKind::PROPERTY, String::new()))
                .collect()
        }
        Slot::Value(key) => {
            path.push(&node);
            let mut v = values(grammar::property_values(&path, key));
            v.extend(value_names(doc, &cx, &node, key));
            v
        }
        Slot::Argument => {
            path.push(&node);
            let mut v = values(grammar::argument_values(&path));
            v.extend(argument_names(doc, &cx, &node));
            v
        }
    };
    items
        .into_iter()
        .map(|(label, kind, detail)| CompletionItem {
            text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(
                range,
                label.clone(),
            ))),
            label,
            kind: Some(kind),
            documentation: (!detail.is_empty()).then_some(Documentation::String(detail)),
            ..CompletionItem::default()
        })
        .collect()
}

fn values(v: Vec<&str>) -> Vec<(String, CompletionItemKind, String)> {
    v.into_iter()
        .map(|s| {
            (
                s.to_string(),
                CompletionItemKind::ENUM_MEMBER,
                String::new(),
            )
        })
        .collect()
}

/// The slot, and the offset where the text it replaces starts.
fn slot(cx: &Context, cursor: usize) -> (Slot, usize) {
    if let Some(s) = cx.string_start {
        let before = &cx.statement[..(s - 1).saturating_sub(cx.statement_start)];
        let before = before.trim_end();
        if let Some(head) = before.strip_suffix('=') {
            let key = head
                .rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("");
            return (Slot::Value(key.to_string()), s);
        }
        return (Slot::Argument, s);
    }
    let typed = cx.statement.trim_start();
    let word_start = cursor - cx.statement.len()
        + cx.statement
            .rfind(|c: char| c.is_whitespace())
            .map_or(0, |i| i + 1);
    if typed
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        (Slot::Node, word_start)
    } else {
        (Slot::Property, word_start)
    }
}

fn names(
    doc: &mut Document,
    kinds: &[Kind],
    scope: Option<&str>,
) -> Vec<(String, CompletionItemKind, String)> {
    let index = doc.names_index();
    kinds
        .iter()
        .flat_map(|k| {
            index.names(*k, scope).into_iter().map(move |n| {
                (
                    n.to_string(),
                    CompletionItemKind::REFERENCE,
                    k.keyword().to_string(),
                )
            })
        })
        .collect()
}

/// Names for `key="…"` of `node`.
fn value_names(
    doc: &mut Document,
    cx: &Context,
    node: &str,
    key: &str,
) -> Vec<(String, CompletionItemKind, String)> {
    let kind = match (node, key) {
        ("stage", "call-site") => Kind::CallSite,
        ("stage", "gate") => Kind::Gate,
        ("gate", "artifact") => Kind::Artifact,
        ("llm", "transport") => Kind::Transport,
        ("pass" | "fail" | "exhausted", "alert") => Kind::Alert,
        ("pipeline", "start") => Kind::Stage,
        ("writes", "field") => {
            let artifact = lexical::first_argument(&cx.statement);
            return names(doc, &[Kind::Field], artifact.as_deref());
        }
        _ => return Vec::new(),
    };
    names(doc, &[kind], None)
}

/// Names for the first argument of `node`.
fn argument_names(
    doc: &mut Document,
    cx: &Context,
    node: &str,
) -> Vec<(String, CompletionItemKind, String)> {
    let parent = cx.frames.last();
    match node {
        "pass" | "fail" | "exhausted" => names(doc, &[Kind::Stage, Kind::End], None),
        "runner" if parent.is_some_and(|f| f.node == "call-site") => {
            names(doc, &[Kind::Runner], None)
        }
        "approval" if parent.is_some_and(|f| f.node == "call-site") => {
            names(doc, &[Kind::Approval], None)
        }
        "writes" => names(doc, &[Kind::Artifact], None),
        "expect" => {
            let artifact = parent.and_then(|f| lexical::property(&f.header, "artifact"));
            names(doc, &[Kind::Field], artifact.as_deref())
        }
        "secret" => names(doc, &[Kind::Var], None)
            .into_iter()
            .map(|(n, k, d)| (format!("var.{n}"), k, d))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every completion's edit range, as ((line, character), (line, character)).
    fn ranges(doc: &mut Document, pos: Position) -> Vec<((u32, u32), (u32, u32))> {
        complete(doc, pos)
            .into_iter()
            .map(|item| match item.text_edit {
                Some(CompletionTextEdit::Edit(e)) => (
                    (e.range.start.line, e.range.start.character),
                    (e.range.end.line, e.range.end.character),
                ),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_position_past_the_text_is_clamped_to_it() {
        let mut doc = Document::new("file:///x.kdl", "stage \"a\"\nst".to_string());
        // Past the first line's end: its end.
        let r = ranges(&mut doc, Position::new(0, u32::MAX));
        assert!(!r.is_empty());
        assert!(r.iter().all(|&(_, end)| end == (0, 9)), "{r:?}");
        // Past the last line: the end of the text (`st` typed, replaced).
        let r = ranges(&mut doc, Position::new(u32::MAX, u32::MAX));
        assert!(!r.is_empty());
        assert!(r.iter().all(|&r| r == ((1, 0), (1, 2))), "{r:?}");
    }
}
