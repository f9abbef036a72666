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
    let mut edits = Vec::new();
    for r in doc.index().occurrences_of(&o.key) {
        let (a, b) = (r.span.offset(), r.span.offset() + r.span.len());
        if text.get(a..b) != Some(o.key.name.as_str()) {
            return Err(RenameError::Escaped(o.key.name.clone(), a));
        }
        edits.push(r.span);
    }
    let edits = edits
        .into_iter()
        .map(|s| TextEdit::new(doc.lines.range(&text, s), new_name.to_string()))
        .collect();
    Ok(WorkspaceEdit {
        changes: Some(HashMap::from([(uri.clone(), edits)])),
        ..WorkspaceEdit::default()
    })
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

/// A new name must be writable as a plain string, and as what the kind
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
