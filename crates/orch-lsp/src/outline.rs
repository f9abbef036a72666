//! The outline (document symbols) and formatting.

use lsp_types::{DocumentSymbol, Range, SymbolKind, TextEdit};
use orch_lang::symbols::Kind;

use crate::document::Document;

#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be written.
pub(crate) fn symbols(doc: &mut Document) -> Vec<DocumentSymbol> {
    let defs: Vec<_> = doc
        .index()
        .definitions()
        .filter(|d| d.key.kind != Kind::Field && d.key.kind != Kind::Var)
        .cloned()
        .collect();
    defs.into_iter()
        .map(|d| {
            let node = d.node.unwrap_or(d.span);
            let range = doc.lines.range(&doc.text, node);
            let selection = doc.lines.range(&doc.text, d.span);
            DocumentSymbol {
                name: d.key.name.clone(),
                detail: Some(d.key.kind.keyword().to_string()),
                kind: symbol_kind(d.key.kind),
                tags: None,
                deprecated: None,
                // A node's span may not cover its name (a declaration only).
                range: if contains(range, selection) {
                    range
                } else {
                    selection
                },
                selection_range: selection,
                children: None,
            }
        })
        .collect()
}

fn contains(outer: Range, inner: Range) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn symbol_kind(k: Kind) -> SymbolKind {
    match k {
        Kind::Stage => SymbolKind::CLASS,
        Kind::End => SymbolKind::ENUM_MEMBER,
        Kind::Gate => SymbolKind::INTERFACE,
        Kind::Artifact => SymbolKind::STRUCT,
        Kind::Field => SymbolKind::FIELD,
        Kind::Runner => SymbolKind::FUNCTION,
        Kind::Transport => SymbolKind::MODULE,
        Kind::CallSite => SymbolKind::METHOD,
        Kind::Alert => SymbolKind::EVENT,
        Kind::Approval => SymbolKind::OBJECT,
        Kind::Var => SymbolKind::VARIABLE,
    }
}

/// `orch fmt`'s text as one edit of the whole document; nothing when the
/// file does not parse (the diagnostics say why) or is already formatted.
pub(crate) fn format(doc: &Document) -> Vec<TextEdit> {
    match orch_lang::fmt::format(&doc.text) {
        Ok(out) if out != doc.text => {
            let end = doc.lines.position(&doc.text, doc.text.len());
            vec![TextEdit::new(Range::new(Default::default(), end), out)]
        }
        _ => Vec::new(),
    }
}
