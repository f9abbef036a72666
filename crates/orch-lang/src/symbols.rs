//! Every name a pipeline file declares or refers to, with the span of the
//! name's own text: what go-to-definition, find-references and rename in
//! `orch lsp` stand on. Built from the model (which keeps every span), so a
//! reference is found exactly where the validator reads it.

use crate::keyword as kw;
use crate::model::*;
use crate::template::{Part, Placeholder, Template};
use miette::SourceSpan;
use std::collections::HashMap;

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Stage,
    End,
    Gate,
    Artifact,
    /// A field of an artifact (its scope is the artifact's name).
    Field,
    Runner,
    Transport,
    CallSite,
    Alert,
    Approval,
    Var,
}

impl Kind {
    /// The keyword that declares it.
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Stage => kw::STAGE,
            Kind::End => kw::END,
            Kind::Gate => kw::GATE,
            Kind::Artifact => kw::ARTIFACT,
            Kind::Field => "field",
            Kind::Runner => kw::RUNNER,
            Kind::Transport => kw::TRANSPORT,
            Kind::CallSite => kw::CALL_SITE,
            Kind::Alert => kw::ALERT,
            Kind::Approval => kw::APPROVAL,
            Kind::Var => "var",
        }
    }

    fn of_keyword(k: &str) -> Option<Kind> {
        Some(match k {
            kw::STAGE => Kind::Stage,
            kw::END => Kind::End,
            kw::GATE => Kind::Gate,
            kw::ARTIFACT => Kind::Artifact,
            kw::RUNNER => Kind::Runner,
            kw::TRANSPORT => Kind::Transport,
            kw::CALL_SITE => Kind::CallSite,
            kw::ALERT => Kind::Alert,
            kw::APPROVAL => Kind::Approval,
            _ => return None,
        })
    }
}

/// The identity of a name: its kind, its scope (the artifact of a field)
/// and its text. Stages and ends share one namespace; a reference to
/// either is resolved by what the file defines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub scope: Option<String>,
    pub name: String,
}

/// One place a name is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub key: Key,
    /// The name's text alone (inside the quotes, or `NAME` of `{var.NAME}`).
    pub span: SourceSpan,
    pub is_definition: bool,
    /// For a definition, the whole node that declares it (the outline's range).
    pub node: Option<SourceSpan>,
}

/// Every occurrence of every name in a file, in file order.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Sorted by offset.
    pub(crate) occurrences: Vec<Occurrence>,
    /// The first definition of each name, by its position in `occurrences`.
    first_definition: HashMap<Key, usize>,
}

impl Index {
    /// Indexes `p`, the model of `text`.
    pub fn build(p: &Pipeline, text: &str) -> Index {
        let mut b = Builder {
            text,
            out: Vec::new(),
            ends: p.ends.iter().map(|e| e.name.value.as_str()).collect(),
        };
        b.definitions(p);
        b.references(p);
        let mut occurrences = b.out;
        occurrences.sort_by_key(|o| (o.span.offset(), !o.is_definition));
        occurrences.dedup_by(|a, b| a.span == b.span && a.key == b.key);
        let mut first_definition = HashMap::new();
        for (i, o) in occurrences.iter().enumerate() {
            if o.is_definition {
                first_definition.entry(o.key.clone()).or_insert(i);
            }
        }
        Index {
            occurrences,
            first_definition,
        }
    }

    /// The occurrences written within `from..to`, in file order.
    pub fn within(&self, from: usize, to: usize) -> impl Iterator<Item = &Occurrence> {
        let first = self.occurrences.partition_point(|o| o.span.offset() < from);
        self.occurrences[first..]
            .iter()
            .take_while(move |o| o.span.offset() < to)
            .filter(move |o| o.span.offset() + o.span.len() <= to)
    }

    /// The occurrence under a byte offset (its end included, where an
    /// editor's cursor sits after typing a name).
    pub fn at(&self, offset: usize) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .find(|o| o.span.offset() <= offset && offset <= o.span.offset() + o.span.len())
    }

    /// The first definition of a name.
    pub fn definition(&self, key: &Key) -> Option<&Occurrence> {
        self.first_definition
            .get(key)
            .and_then(|&i| self.occurrences.get(i))
    }

    /// Every occurrence of a name, its definitions included.
    pub fn occurrences_of<'a>(&'a self, key: &'a Key) -> impl Iterator<Item = &'a Occurrence> {
        self.occurrences.iter().filter(move |o| &o.key == key)
    }

    /// The names defined of a kind (in a scope), in file order, once each.
    pub fn names(&self, kind: Kind, scope: Option<&str>) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.occurrences
            .iter()
            .filter(|o| o.is_definition && o.key.kind == kind && o.key.scope.as_deref() == scope)
            .map(|o| o.key.name.as_str())
            .filter(|n| seen.insert(*n))
            .collect()
    }

    /// The definitions, in file order (the outline).
    pub fn definitions(&self) -> impl Iterator<Item = &Occurrence> {
        self.occurrences.iter().filter(|o| o.is_definition)
    }
}

struct Builder<'t> {
    text: &'t str,
    out: Vec<Occurrence>,
    ends: std::collections::HashSet<&'t str>,
}

impl Builder<'_> {
    fn push(&mut self, kind: Kind, scope: Option<&str>, name: &Name, def: Option<SourceSpan>) {
        if name.value.is_empty() {
            return;
        }
        self.out.push(Occurrence {
            key: Key {
                kind,
                scope: scope.map(str::to_string),
                name: name.value.clone(),
            },
            span: name_span(self.text, name.span, &name.value),
            is_definition: def.is_some(),
            node: def,
        });
    }

    fn definitions(&mut self, p: &Pipeline) {
        if let Some(h) = &p.header {
            for v in &h.vars {
                self.push(Kind::Var, None, &v.name, Some(v.name.span));
            }
        }
        for t in &p.transports {
            self.push(Kind::Transport, None, &t.name, Some(t.span));
        }
        for a in &p.artifacts {
            self.push(Kind::Artifact, None, &a.name, Some(a.span));
            for f in &a.fields {
                self.push(Kind::Field, Some(&a.name.value), &f.key, Some(f.key.span));
            }
        }
        for g in &p.gates {
            self.push(Kind::Gate, None, &g.name, Some(g.span));
        }
        for r in &p.runners {
            self.push(Kind::Runner, None, &r.name, Some(r.span));
        }
        for c in &p.call_sites {
            self.push(Kind::CallSite, None, &c.name, Some(c.span));
        }
        for s in &p.stages {
            self.push(Kind::Stage, None, &s.name, Some(s.span));
        }
        for e in &p.ends {
            self.push(Kind::End, None, &e.name, Some(e.span));
        }
        for a in &p.alerts {
            self.push(Kind::Alert, None, &a.name, Some(a.span));
        }
        for a in &p.approvals {
            self.push(Kind::Approval, None, &a.name, Some(a.span));
        }
        self.declared_only(p);
    }

    /// A node that did not decode still defines its name, so that a
    /// reference to a half-typed stage still finds it.
    fn declared_only(&mut self, p: &Pipeline) {
        let known: std::collections::HashSet<(Kind, String)> = self
            .out
            .iter()
            .map(|o| (o.key.kind, o.key.name.clone()))
            .collect();
        for d in &p.declarations {
            let Some(kind) = Kind::of_keyword(d.keyword) else {
                continue;
            };
            if !known.contains(&(kind, d.name.value.clone())) {
                self.push(kind, None, &d.name, Some(d.name.span));
            }
        }
    }

    fn target(&mut self, name: &Name) {
        let kind = if self.ends.contains(name.value.as_str()) {
            Kind::End
        } else {
            Kind::Stage
        };
        self.push(kind, None, name, None);
    }

    fn references(&mut self, p: &Pipeline) {
        if let Some(h) = &p.header {
            self.target(&h.start);
            for s in &h.secrets {
                self.secret(s);
            }
        }
        for t in &p.transports {
            self.templates(t.process.templates());
        }
        for g in &p.gates {
            self.push(Kind::Artifact, None, &g.artifact, None);
            for e in &g.expects {
                self.push(Kind::Field, Some(&g.artifact.value), &e.key, None);
            }
        }
        for r in &p.runners {
            self.templates(r.process.templates());
            if let Some(w) = &r.writes {
                self.push(Kind::Artifact, None, &w.artifact, None);
                if let Some(f) = &w.field {
                    self.push(Kind::Field, Some(&w.artifact.value), f, None);
                }
            }
        }
        for c in &p.call_sites {
            if let Some(r) = &c.runner {
                self.push(Kind::Runner, None, r, None);
            }
            if let Some(l) = &c.llm {
                self.push(Kind::Transport, None, &l.transport, None);
            }
            if let Some(a) = &c.approval {
                self.push(Kind::Approval, None, a, None);
            }
        }
        for a in &p.approvals {
            if let Some(w) = &a.writes {
                self.push(Kind::Artifact, None, w, None);
            }
        }
        for s in &p.stages {
            self.push(Kind::CallSite, None, &s.call_site, None);
            self.push(Kind::Gate, None, &s.gate, None);
            for t in [&s.pass, &s.fail, &s.exhausted].into_iter().flatten() {
                self.target(&t.target);
                if let Some(a) = &t.alert {
                    self.push(Kind::Alert, None, a, None);
                }
            }
        }
        for a in &p.alerts {
            self.templates(a.command.iter().flat_map(|c| c.argv.iter()));
        }
    }

    /// `secret "var.NAME"` refers to the variable NAME.
    fn secret(&mut self, s: &Name) {
        let Some(var) = s.value.strip_prefix("var.") else {
            return;
        };
        let whole = name_span(self.text, s.span, &s.value);
        let span = (whole.offset() + 4, var.len()).into();
        let exact = self.text.get(whole.offset()..whole.offset() + whole.len()) == Some(&s.value);
        let name = Name::new(var.to_string(), if exact { span } else { whole });
        self.push(Kind::Var, None, &name, None);
    }

    fn templates<'t>(&mut self, all: impl IntoIterator<Item = &'t Template>) {
        let mut found = Vec::new();
        for t in all {
            for part in &t.parts {
                if let Part::Placeholder(Placeholder::Var(name), span) = part {
                    found.push(Name::new(name.clone(), var_span(self.text, *span, name)));
                }
            }
        }
        for n in found {
            self.push(Kind::Var, None, &n, None);
        }
    }
}

/// The span of NAME in `{var.NAME}` when the source holds it verbatim;
/// otherwise the placeholder's span.
fn var_span(text: &str, span: SourceSpan, name: &str) -> SourceSpan {
    let written = format!("{{var.{name}}}");
    match text.get(span.offset()..span.offset() + span.len()) {
        Some(s) if s == written => (span.offset() + 5, name.len()).into(),
        _ => span,
    }
}

/// The span of a name's own text within the span of the value (or entry)
/// that holds it: inside `"…"` when written plainly quoted, the bare word
/// when written as an identifier; the given span when the text is escaped.
pub(crate) fn name_span(text: &str, span: SourceSpan, name: &str) -> SourceSpan {
    let start = span.offset().min(text.len());
    let Some(written) = text.get(start..(start + span.len()).min(text.len())) else {
        return span;
    };
    if written == name {
        return span;
    }
    if let Some(i) = written.rfind(&format!("\"{name}\"")) {
        return (start + i + 1, name.len()).into();
    }
    match written.rfind(name) {
        Some(i) if !name.is_empty() => (start + i, name.len()).into(),
        _ => span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader;

    fn index(text: &str) -> Index {
        Index::build(&loader::load("p.kdl", text).pipeline, text)
    }

    const TEXT: &str = r#"pipeline "p" start="a" {
    var "target" "tests/"
    secret "var.target"
}
artifact "rep" path="r.md" {
    field "status" "DONE" "BLOCKED"
}
gate "ok" artifact="rep" {
    expect "status" "DONE"
}
runner "r" {
    command "sh" "-c" "x {var.target}"
    timeout "1m"
    exit-code 0 verdict="DONE"
    writes "rep" field="status"
}
call-site "c" axis="C" verdict="machine" mode="runner" {
    runner "r"
}
stage "a" call-site="c" gate="ok" {
    pass "done"
    exhausted "done"
}
end "done" outcome="success"
"#;

    fn text_of(span: SourceSpan) -> &'static str {
        &TEXT[span.offset()..span.offset() + span.len()]
    }

    #[test]
    fn every_name_is_found_with_its_own_text() {
        let ix = index(TEXT);
        for o in &ix.occurrences {
            assert_eq!(text_of(o.span), o.key.name, "{o:?}");
        }
        let count = |kind, name: &str| {
            ix.occurrences
                .iter()
                .filter(|o| o.key.kind == kind && o.key.name == name)
                .count()
        };
        assert_eq!(
            count(Kind::Var, "target"),
            3,
            "definition, secret, placeholder"
        );
        assert_eq!(
            count(Kind::Field, "status"),
            3,
            "field, expect, writes field="
        );
        assert_eq!(count(Kind::Artifact, "rep"), 3);
        assert_eq!(count(Kind::Stage, "a"), 2, "definition and start=");
        assert_eq!(count(Kind::End, "done"), 3);
        assert_eq!(count(Kind::Runner, "r"), 2);
        assert_eq!(count(Kind::CallSite, "c"), 2);
        assert_eq!(count(Kind::Gate, "ok"), 2);
    }

    #[test]
    fn a_stage_that_does_not_decode_still_defines_its_name() {
        let text = "pipeline \"p\" start=\"a\"\nstage \"a\" {\n    pass \"a\"\n}\n";
        let ix = index(text);
        let key = Key {
            kind: Kind::Stage,
            scope: None,
            name: "a".into(),
        };
        assert!(ix.definition(&key).is_some(), "{:?}", ix.occurrences);
    }

    #[test]
    fn the_occurrence_under_the_cursor_includes_its_end() {
        let ix = index(TEXT);
        let at = TEXT.find("gate=\"ok\"").unwrap() + 6;
        assert_eq!(ix.at(at).map(|o| o.key.kind), Some(Kind::Gate));
        assert_eq!(ix.at(at + 2).map(|o| o.key.kind), Some(Kind::Gate));
    }
}
