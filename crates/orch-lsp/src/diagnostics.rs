//! orch's findings as LSP diagnostics, and their did-you-mean help as
//! quick fixes.

use std::collections::HashMap;

use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Location, NumberOrString, Range, TextEdit, Uri, WorkspaceEdit,
};
use miette::SourceSpan;
use orch_lang::diagnostic::{Finding, Severity};

use crate::document::Document;

/// Every finding of the document, as `orch validate` reports it.
pub(crate) fn of(doc: &mut Document, uri: &Uri) -> Vec<Diagnostic> {
    let findings = doc.analysis.report.findings.clone();
    findings.iter().map(|f| diagnostic(doc, uri, f)).collect()
}

fn diagnostic(doc: &mut Document, uri: &Uri, f: &Finding) -> Diagnostic {
    let mut message = f.message.clone();
    if let Some(h) = &f.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    let related = related(doc, uri, f);
    Diagnostic {
        range: doc.lines.range(&doc.text, f.span),
        severity: Some(match f.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(f.code.as_str().to_string())),
        source: Some("orch".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Diagnostic::default()
    }
}

/// The finding's label on its own span, and where the name it is about is
/// defined when that is elsewhere (the first of a duplicate, the suggested
/// name of a did-you-mean).
fn related(doc: &mut Document, uri: &Uri, f: &Finding) -> Vec<DiagnosticRelatedInformation> {
    let range = doc.lines.range(&doc.text, f.span);
    let mut out = vec![DiagnosticRelatedInformation {
        location: Location::new(uri.clone(), range),
        message: f.label.clone(),
    }];
    let (from, to) = (f.span.offset(), f.span.offset() + f.span.len());
    let suggestion = f.help.as_deref().and_then(suggested_name);
    let text = doc.text.clone();
    let index = doc.index();
    let mut extra = Vec::new();
    // The name the finding is about: the first written within its span.
    let about = index.within(from, to).next();
    if let Some(o) = about {
        if let Some(d) = index.definition(&o.key) {
            if d.span != o.span {
                extra.push((d.span, format!("`{}` is first defined here", d.key.name)));
            }
        }
        if let Some(name) = &suggestion {
            let mut key = o.key.clone();
            key.name = name.clone();
            if key.kind == orch_lang::symbols::Kind::Stage && index.definition(&key).is_none() {
                key.kind = orch_lang::symbols::Kind::End;
            }
            if let Some(d) = index.definition(&key) {
                extra.push((d.span, format!("`{name}` is defined here")));
            }
        }
    }
    for (span, message) in extra {
        out.push(DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), doc.lines.range(&text, span)),
            message,
        });
    }
    out
}

/// The name of a `did you mean `NAME`?` help line.
pub(crate) fn suggested_name(help: &str) -> Option<String> {
    let rest = help.split("did you mean `").nth(1)?;
    let end = rest.find("`?")?;
    Some(rest[..end].to_string())
}

/// Quick fixes for the findings that overlap `range`: apply the suggested name.
// lsp-types keys a WorkspaceEdit's changes by `Uri`, which clippy deems
// mutable (a cache inside); it is never mutated here.
#[allow(clippy::mutable_key_type)]
pub(crate) fn code_actions(doc: &Document, uri: &Uri, range: Range) -> Vec<CodeActionOrCommand> {
    let (from, to) = doc.lines.span(&doc.text, range);
    let mut out = Vec::new();
    for f in &doc.analysis.report.findings {
        let (start, end) = (f.span.offset(), f.span.offset() + f.span.len());
        if end < from || start > to {
            continue;
        }
        let Some(name) = f.help.as_deref().and_then(suggested_name) else {
            continue;
        };
        let target = replaced_span(&doc.text, f.span);
        let edit = TextEdit::new(doc.lines.range(&doc.text, target), name.clone());
        let changes = HashMap::from([(uri.clone(), vec![edit])]);
        let diagnostic = Diagnostic {
            range: doc.lines.range(&doc.text, f.span),
            code: Some(NumberOrString::String(f.code.as_str().to_string())),
            source: Some("orch".to_string()),
            message: f.message.clone(),
            ..Diagnostic::default()
        };
        out.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: format!("Change to `{name}`"),
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![diagnostic]),
            edit: Some(WorkspaceEdit {
                changes: Some(changes),
                ..WorkspaceEdit::default()
            }),
            is_preferred: Some(true),
            ..CodeAction::default()
        }));
    }
    out
}

/// The text a quick fix replaces: inside the quotes of a plainly quoted
/// string (`"x"` or `key="x"`), else the whole span.
fn replaced_span(text: &str, span: SourceSpan) -> SourceSpan {
    let start = span.offset().min(text.len());
    let end = (start + span.len()).min(text.len());
    let Some(written) = text.get(start..end) else {
        return span;
    };
    match (written.find('"'), written.rfind('"')) {
        (Some(a), Some(b)) if b > a && !written[a + 1..b].contains(['\\', '"']) => {
            (start + a + 1, b - a - 1).into()
        }
        _ => span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suggested_name_is_read_from_the_help() {
        assert_eq!(
            suggested_name("did you mean `testing`?").as_deref(),
            Some("testing")
        );
        assert_eq!(suggested_name("rename it"), None);
    }

    #[test]
    fn a_quick_fix_replaces_inside_the_quotes() {
        let text = r#"stage "a" gate="okk" {"#;
        let at = text.find("gate").unwrap_or(0);
        assert_eq!(replaced_span(text, (at, 10).into()), (at + 6, 3).into());
    }
}
