//! Text → KDL syntax tree → typed [`Pipeline`].
//!
//! The loader reads KDL 2.0 with [`crate::syntax`], checks the document's
//! shape twice over (the JSON Schema in `schema.rs`, and this decoder, which
//! must agree with it), and decodes into the model. Shape errors are
//! "structural" findings; duplicate settings are found here too since only
//! the decoder sees them.

use crate::syntax::{Entry as KdlEntry, Node as KdlNode, Value as KdlValue};
use miette::SourceSpan;
use std::time::Duration;

use crate::code::Code;
use crate::diagnostic::{did_you_mean, Finding, SourceFile};
use crate::duration;
use crate::keyword as kw;
use crate::model::*;
use crate::template::{Template, TemplateError};

/// What the loader made of a file.
pub struct Loaded {
    pub source: SourceFile,
    /// Whether the text is KDL (its tree is not kept: `syntax::parse` reads
    /// it again where it is needed, on the error path).
    pub parsed: bool,
    pub pipeline: Pipeline,
    /// Findings of the KDL parse and of the decoder's shape checks.
    pub(crate) structural: Vec<Finding>,
    /// Other findings the decoder made (duplicates, placeholders).
    pub(crate) semantic: Vec<Finding>,
    /// Findings the decoder made past [`crate::limits::MAX_FINDINGS`] and
    /// did not keep.
    pub(crate) dropped: crate::limits::Dropped,
    /// Whether every node was decoded: the decoder stops reading a file
    /// once it has [`crate::limits::MAX_FINDINGS`] findings, and then the
    /// pipeline is only the part before (`structural` ends with an
    /// `orch::too-many-findings` saying where).
    pub(crate) complete: bool,
}

/// Parses and decodes `text`. Never fails: every problem is a finding.
pub fn load(path: &str, text: &str) -> Loaded {
    load_source(SourceFile::new(path, text))
}

/// As [`load`], for a text already in a [`SourceFile`] (not copied again).
pub(crate) fn load_source(source: SourceFile) -> Loaded {
    let shared = std::sync::Arc::clone(&source.text);
    let text: &str = &shared;
    if let Some(refused) = crate::limits::check(text) {
        return Loaded {
            source,
            parsed: false,
            pipeline: Pipeline::default(),
            structural: vec![refused],
            semantic: Vec::new(),
            dropped: Default::default(),
            complete: true,
        };
    }
    let mut d = Decoder {
        text,
        structural: Vec::new(),
        semantic: Vec::new(),
        dropped: Default::default(),
        stopped: false,
    };
    let mut top = TopLevel::default();
    // Each top-level node is decoded as it is read, then dropped: the tree
    // of a large file is never whole in memory. Once the file has its
    // fill of findings, the rest is not read.
    let each = |node: crate::syntax::Node| {
        d.top_node(&mut top, &node);
        if d.findings() < crate::limits::MAX_FINDINGS {
            return std::ops::ControlFlow::Continue(());
        }
        let end = node.span().offset() + node.span().len();
        d.structural.push(crate::limits::stopped_reading(end));
        d.stopped = true;
        std::ops::ControlFlow::Break(())
    };
    match crate::syntax::parse_each(text, each) {
        Err(err) => {
            let structural =
                vec![
                    Finding::new(Code::Syntax, clamp(err.span, text.len()), err.message)
                        .label(err.label)
                        .maybe_help(err.help),
                ];
            Loaded {
                source,
                parsed: false,
                pipeline: Pipeline::default(),
                structural,
                semantic: Vec::new(),
                dropped: Default::default(),
                complete: true,
            }
        }
        Ok(()) => {
            let pipeline = d.finish(top);
            Loaded {
                source,
                parsed: true,
                pipeline,
                structural: d.structural,
                semantic: d.semantic,
                dropped: d.dropped,
                complete: !d.stopped,
            }
        }
    }
}

fn clamp(span: SourceSpan, len: usize) -> SourceSpan {
    let start = span.offset().min(len);
    let end = (span.offset() + span.len()).min(len);
    (start, end - start).into()
}

use crate::keyword::TOP_LEVEL;

pub(crate) fn value_kind(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

/// An integer value: a KDL integer, or a float without a fraction (JSON
/// Schema's `"integer"` takes `3.0`, so the decoder does too). Returns the
/// value when it fits an `i128`, and how to show it in a message.
fn integral(v: &KdlValue) -> Option<(Option<i128>, String)> {
    match v {
        KdlValue::Integer(i) => Some((Some(*i), i.to_string())),
        KdlValue::Float(f) if f.is_finite() && f.fract() == 0.0 => {
            let shown = if f.abs() < 1e16 {
                format!("{f:.0}")
            } else {
                format!("{f:e}")
            };
            Some(((f.abs() < 1e30).then_some(*f as i128), shown))
        }
        _ => None,
    }
}

/// The settings a runner and a transport share, as decoded so far. Each
/// slot is `Some` once its child was seen (so that a second one is a
/// duplicate); `grace` and `retry` hold `None` inside when it was malformed.
#[derive(Default)]
struct ProcessChildren {
    command: Option<Command>,
    cwd: Option<Template>,
    env: Vec<EnvVar>,
    timeout: Option<Spanned<Duration>>,
    idle_timeout: Option<Spanned<Duration>>,
    grace: Option<Option<Duration>>,
    retry: Option<Option<Retry>>,
}

impl ProcessChildren {
    /// The process as decoded, with the defaults of what was not given or
    /// was malformed (a missing `command` or `timeout` stays `None`).
    fn finish(self) -> Process {
        let ProcessChildren {
            command,
            cwd,
            env,
            timeout,
            idle_timeout,
            grace,
            retry,
        } = self;
        Process {
            command,
            cwd,
            env,
            timeout,
            idle_timeout,
            grace: grace.flatten().unwrap_or(DEFAULT_GRACE),
            retry: retry.flatten().unwrap_or_else(Retry::none),
        }
    }
}

/// The pipeline as decoded so far, node by node.
#[derive(Default)]
struct TopLevel {
    pipeline: Pipeline,
    pipeline_nodes: usize,
}

/// What a runner has beyond [`ProcessChildren`], as read so far.
#[derive(Default)]
struct RunnerChildren {
    exit_codes: Vec<ExitMapping>,
    on_timeout: Option<Spanned<String>>,
    otherwise: Option<Spanned<String>>,
    enabled: Option<Switch>,
    scope: Option<Scope>,
    writes: Option<Writes>,
    labels: Option<Vec<Spanned<String>>>,
}

struct Decoder<'t> {
    text: &'t str,
    structural: Vec<Finding>,
    semantic: Vec<Finding>,
    /// Findings past [`crate::limits::MAX_FINDINGS`], counted, not kept
    /// (one node can hold many).
    dropped: crate::limits::Dropped,
    /// Whether it stopped reading before the end of the file.
    stopped: bool,
}

/// What a named top-level node declares, read before (and regardless of)
/// decoding it. `pipeline` declares nothing that is referred to by name.
fn declaration(node: &KdlNode) -> Option<Declaration> {
    let keyword = TOP_LEVEL
        .iter()
        .copied()
        .find(|k| *k != kw::PIPELINE && *k == node.name().value())?;
    let first = args(node).next()?;
    let name = first.value().as_string()?;
    let children = node
        .children()
        .iter()
        .flat_map(|c| c.nodes())
        .map(|c| Spanned::new(c.name().value().to_string(), name_span(c)))
        .collect();
    Some(Declaration {
        keyword,
        name: Spanned::new(name.to_string(), first.span()),
        children,
    })
}

fn name_span(node: &KdlNode) -> SourceSpan {
    node.name().span()
}

fn args(node: &KdlNode) -> impl Iterator<Item = &KdlEntry> {
    node.entries().iter().filter(|e| e.name().is_none())
}

impl Decoder<'_> {
    /// How many findings the decoder has made so far, kept or not.
    fn findings(&self) -> usize {
        self.structural.len() + self.semantic.len() + self.dropped.count
    }

    /// Whether there is room for one more finding; if not, it is counted.
    fn room(&mut self, f: &Finding) -> bool {
        if self.structural.len() + self.semantic.len() < crate::limits::MAX_FINDINGS {
            return true;
        }
        self.dropped.add(f.span.offset());
        false
    }

    fn err(&mut self, f: Finding) {
        if self.room(&f) {
            self.structural.push(f);
        }
    }

    fn note(&mut self, f: Finding) {
        if self.room(&f) {
            self.semantic.push(f);
        }
    }

    /// Reports properties not in `allowed` and duplicated ones; returns the
    /// node's properties.
    fn check_props(&mut self, node: &KdlNode, allowed: &[&str]) {
        let mut seen: Vec<&str> = Vec::new();
        for e in node.entries() {
            let Some(key) = e.name() else { continue };
            let key = key.value();
            if !allowed.contains(&key) && !allowed.contains(&"*") {
                let f = Finding::new(
                    Code::UnknownProperty,
                    e.span(),
                    format!("unknown property `{key}` on `{}`", node.name().value()),
                )
                .label("not a property of this node")
                .maybe_help(did_you_mean(key, allowed.iter().copied()).or_else(|| {
                    if allowed.is_empty() {
                        Some(format!("`{}` takes no properties", node.name().value()))
                    } else {
                        Some(format!("expected one of: {}", allowed.join(", ")))
                    }
                }));
                self.err(f);
            } else if seen.contains(&key) {
                self.note(
                    Finding::new(
                        Code::DuplicateProperty,
                        e.span(),
                        format!("property `{key}` is given twice"),
                    )
                    .label("second value")
                    .help("remove one of them; KDL keeps only the last"),
                );
            } else {
                seen.push(key);
            }
        }
    }

    fn prop<'n>(&self, node: &'n KdlNode, key: &str) -> Option<&'n KdlEntry> {
        node.entries()
            .iter()
            .rev()
            .find(|e| e.name().map(|n| n.value()) == Some(key))
    }

    fn missing(&mut self, node: &KdlNode, what: &str) {
        let f = Finding::new(
            Code::MissingValue,
            name_span(node),
            format!("`{}` is missing {what}", node.name().value()),
        )
        .label(format!("needs {what}"));
        self.err(f);
    }

    fn wrong_type(&mut self, e: &KdlEntry, what: &str, expected: &str) {
        let f = Finding::new(
            Code::InvalidValue,
            e.span(),
            format!("{what} must be {expected}, found {}", value_kind(e.value())),
        )
        .label(format!("expected {expected}"));
        self.err(f);
    }

    fn string_of(&mut self, e: &KdlEntry, what: &str) -> Option<Spanned<String>> {
        match e.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), e.span())),
            _ => {
                self.wrong_type(e, what, "a string");
                None
            }
        }
    }

    fn req_string_prop(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<String>> {
        match self.prop(node, key) {
            Some(e) => self.string_of(e, &format!("`{key}`")),
            None => {
                self.missing(node, &format!("the property `{key}`"));
                None
            }
        }
    }

    fn opt_string_prop(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<String>> {
        let e = self.prop(node, key)?;
        self.string_of(e, &format!("`{key}`"))
    }

    /// Rejects an empty string where a name, a reference or a path is
    /// needed (the schema's `minLength: 1`). `what` is what the message calls
    /// the value; a name gets the label "empty name".
    fn non_empty(&mut self, s: Spanned<String>, what: &str) -> Option<Spanned<String>> {
        if !s.value.is_empty() {
            return Some(s);
        }
        let label = if what == "a name" {
            "empty name"
        } else {
            "empty value"
        };
        self.err(
            Finding::new(
                Code::InvalidValue,
                s.span,
                format!("{what} must not be empty"),
            )
            .label(label),
        );
        None
    }

    /// A required property holding a non-empty string.
    fn req_text_prop(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<String>> {
        let s = self.req_string_prop(node, key)?;
        self.non_empty(s, &format!("`{key}`"))
    }

    /// An optional property holding a non-empty string.
    fn opt_text_prop(&mut self, node: &KdlNode, key: &str) -> Option<Spanned<String>> {
        let s = self.opt_string_prop(node, key)?;
        self.non_empty(s, &format!("`{key}`"))
    }

    /// The node's one argument, a reference to something by name.
    fn one_name(&mut self, node: &KdlNode, what: &str) -> Option<Spanned<String>> {
        let s = self.one_string(node, what)?;
        self.non_empty(s, "a name")
    }

    fn bool_of(&mut self, e: &KdlEntry, what: &str) -> Option<bool> {
        match e.value() {
            KdlValue::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(e, what, "#true or #false");
                None
            }
        }
    }

    fn number_of(&mut self, e: &KdlEntry, what: &str, min: f64) -> Option<f64> {
        let v = match e.value() {
            KdlValue::Integer(i) => *i as f64,
            KdlValue::Float(f) => *f,
            _ => {
                self.wrong_type(e, what, "a number");
                return None;
            }
        };
        if !v.is_finite() || v < min {
            self.err(
                Finding::new(
                    Code::InvalidValue,
                    e.span(),
                    format!("{what} must be at least {min}, found {v}"),
                )
                .label("out of range"),
            );
            return None;
        }
        Some(v)
    }

    fn int_of(&mut self, e: &KdlEntry, what: &str, min: i128, max: i128) -> Option<i128> {
        let Some((n, shown)) = integral(e.value()) else {
            self.wrong_type(e, what, "an integer");
            return None;
        };
        match n {
            Some(i) if (min..=max).contains(&i) => Some(i),
            _ => {
                self.err(
                    Finding::new(
                        Code::InvalidValue,
                        e.span(),
                        format!("{what} must be between {min} and {max}, found {shown}"),
                    )
                    .label("out of range"),
                );
                None
            }
        }
    }

    /// Checks the argument count; returns the arguments.
    fn arg_count<'n>(
        &mut self,
        node: &'n KdlNode,
        min: usize,
        max: Option<usize>,
        what: &str,
    ) -> Vec<&'n KdlEntry> {
        let a: Vec<&KdlEntry> = args(node).collect();
        if a.len() < min {
            self.missing(node, what);
        }
        if let Some(max) = max {
            for extra in a.iter().skip(max) {
                let f = Finding::new(
                    Code::TooManyArguments,
                    extra.span(),
                    format!(
                        "`{}` takes {} argument{}",
                        node.name().value(),
                        if max == 0 {
                            "no".to_string()
                        } else {
                            format!("at most {max}")
                        },
                        if max == 1 { "" } else { "s" }
                    ),
                )
                .label("unexpected argument");
                self.err(f);
            }
        }
        a
    }

    /// The node's one name argument.
    fn name(&mut self, node: &KdlNode) -> Option<Name> {
        let a = self.arg_count(node, 1, Some(1), "a name");
        let e = a.first()?;
        let s = self.string_of(e, "a name")?;
        if s.value.is_empty() {
            self.err(
                Finding::new(Code::InvalidValue, e.span(), "a name must not be empty")
                    .label("empty name"),
            );
            return None;
        }
        Some(s)
    }

    /// One string argument (like `timeout "30s"`).
    fn one_string(&mut self, node: &KdlNode, what: &str) -> Option<Spanned<String>> {
        let a = self.arg_count(node, 1, Some(1), what);
        let e = a.first()?;
        self.string_of(e, what)
    }

    fn children<'n>(&mut self, node: &'n KdlNode, allowed: &[&str]) -> Vec<&'n KdlNode> {
        let Some(doc) = node.children() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for child in doc.nodes() {
            let name = child.name().value();
            if allowed.contains(&name) {
                out.push(child);
            } else {
                let f = Finding::new(
                    Code::UnknownNode,
                    name_span(child),
                    format!("unknown node `{name}` in `{}`", node.name().value()),
                )
                .label("not allowed here")
                .maybe_help(did_you_mean(name, allowed.iter().copied()).or_else(|| {
                    if allowed.is_empty() {
                        Some(format!("`{}` takes no children", node.name().value()))
                    } else {
                        Some(format!("expected one of: {}", allowed.join(", ")))
                    }
                }));
                self.err(f);
            }
        }
        out
    }

    /// Records a second occurrence of a child that may appear once.
    fn once<T>(&mut self, slot: &Option<T>, child: &KdlNode) -> bool {
        if slot.is_some() {
            self.note(
                Finding::new(
                    Code::DuplicateSetting,
                    name_span(child),
                    format!("`{}` is given twice", child.name().value()),
                )
                .label("second occurrence")
                .help("keep one of them"),
            );
            false
        } else {
            true
        }
    }

    fn duration(&mut self, s: &Spanned<String>) -> Option<Spanned<Duration>> {
        // The schema's pattern allows at most MAX_DURATION_DIGITS digits per
        // number, which also keeps every sum far from overflowing.
        let too_long = s
            .value
            .split(|c: char| !c.is_ascii_digit())
            .any(|digits| digits.len() > MAX_DURATION_DIGITS);
        match duration::parse(&s.value) {
            Ok(d) if !too_long => {
                if d > duration::MAX {
                    self.note(
                        Finding::new(
                            Code::DurationTooLong,
                            s.span,
                            format!(
                                "\"{}\" is longer than orch can wait: a duration is at most 100 years (\"876000h\")",
                                s.value
                            ),
                        )
                        .label("too long")
                        .help("write a duration that could actually elapse, like \"2h\""),
                    );
                }
                Some(Spanned::new(d, s.span))
            }
            _ => {
                self.err(
                    Finding::new(
                        Code::BadDuration,
                        s.span,
                        format!(
                            "\"{}\" is not a duration: expected a number and a unit (ms, s, m, h), like \"30s\" or \"1h30m\"",
                            s.value
                        ),
                    )
                    .label("not a duration")
                    .help("write a number and a unit: \"500ms\", \"30s\", \"15m\", \"2h\""),
                );
                None
            }
        }
    }

    fn duration_child(&mut self, child: &KdlNode) -> Option<Spanned<Duration>> {
        let s = self.one_string(child, "a duration")?;
        self.duration(&s)
    }

    fn template(&mut self, s: &Spanned<String>) -> Template {
        // Placeholder spans are exact when the source holds the string
        // verbatim between quotes at the end of the entry (`"…"` for an
        // argument, `KEY="…"` for a property); otherwise they cover the entry.
        let start = s.span.offset();
        let end = start + s.span.len();
        let inner = self
            .text
            .get(start..end)
            .and_then(|raw| raw.strip_suffix('"'))
            .and_then(|raw| raw.strip_suffix(s.value.as_str()))
            .filter(|raw| raw.ends_with('"'))
            .map(|_| end - 1 - s.value.len());
        let (t, errors) = Template::parse(&s.value, s.span, inner);
        for TemplateError {
            message,
            span,
            name,
        } in errors
        {
            let help = name
                .as_deref()
                .and_then(|n| did_you_mean(n, crate::template::FIXED_PLACEHOLDERS.iter().copied()))
                .unwrap_or_else(|| {
                    "placeholders are {task}, {stage}, {attempt}, {worktree}, {task-dir}, {pipeline-dir}, {var.NAME} and {env.NAME}".to_string()
                });
            self.note(
                Finding::new(Code::UnknownPlaceholder, span, message)
                    .label("unknown placeholder")
                    .help(help),
            );
        }
        t
    }

    fn command(&mut self, child: &KdlNode) -> Option<Command> {
        self.check_props(child, &[]);
        self.children(child, &[]);
        let a = self.arg_count(child, 1, None, "a program to run");
        let mut argv = Vec::new();
        for e in a {
            if let Some(s) = self.string_of(e, "a command argument") {
                argv.push(self.template(&s));
            }
        }
        if argv.is_empty() {
            return None;
        }
        Some(Command { argv })
    }

    fn env(&mut self, child: &KdlNode, out: &mut Vec<EnvVar>) {
        self.check_props(child, &["*"]);
        self.children(child, &[]);
        self.arg_count(child, 0, Some(0), "");
        for e in child.entries() {
            let Some(key) = e.name() else { continue };
            if let Some(v) = self.string_of(e, &format!("`{}`", key.value())) {
                let value = self.template(&v);
                out.push(EnvVar {
                    key: Spanned::new(key.value().to_string(), key.span()),
                    value,
                });
            }
        }
    }

    fn retry(&mut self, child: &KdlNode) -> Option<Retry> {
        self.check_props(child, &["attempts", "delay", "backoff", "max-delay"]);
        self.children(child, &[]);
        let on = self.one_string(child, "the verdict it retries (\"tool-error\")");
        if let Some(on) = &on {
            if on.value != TOOL_ERROR {
                self.err(
                    Finding::new(
                        Code::InvalidValue,
                        on.span,
                        format!("`retry` applies to \"tool-error\" only, found \"{}\"", on.value),
                    )
                    .label("expected \"tool-error\"")
                    .help("a verdict the producer gave is final; only a producer that did not execute is retried"),
                );
            }
        }
        let mut retry = Retry::none();
        retry.span = child.span();
        match self.prop(child, "attempts") {
            Some(e) => {
                if let Some(n) = self.int_of(e, "`attempts`", 1, 1000) {
                    retry.attempts = n as u32;
                }
            }
            None => self.missing(child, "the property `attempts`"),
        }
        if let Some(s) = self.opt_string_prop(child, "delay") {
            if let Some(d) = self.duration(&s) {
                retry.delay = d.value;
            }
        }
        if let Some(e) = self.prop(child, "backoff") {
            if let Some(b) = self.number_of(e, "`backoff`", 1.0) {
                retry.backoff = b;
            }
        }
        if let Some(s) = self.opt_string_prop(child, "max-delay") {
            retry.max_delay = self.duration(&s).map(|d| d.value);
        }
        on.map(|_| retry)
    }

    fn verdict_prop(&mut self, child: &KdlNode) -> Option<Spanned<String>> {
        self.check_props(child, &["verdict"]);
        self.children(child, &[]);
        // A blank verdict is not empty; the validator finds it outside the
        // written field's allowed values.
        self.req_text_prop(child, "verdict")
    }

    /// Decodes one top-level node into the pipeline being built.
    fn top_node(&mut self, top: &mut TopLevel, node: &KdlNode) {
        let p = &mut top.pipeline;
        let kind = node.name().value();
        if let Some(d) = declaration(node) {
            p.declarations.push(d);
        }
        match kind {
            kw::PIPELINE => {
                top.pipeline_nodes += 1;
                let header = self.header(node);
                if top.pipeline_nodes > 1 {
                    self.err(
                        Finding::new(
                            Code::DuplicatePipeline,
                            name_span(node),
                            "a file holds exactly one `pipeline` node",
                        )
                        .label("second `pipeline`"),
                    );
                } else {
                    p.header = header;
                }
            }
            kw::TRANSPORT => p.transports.extend(self.transport(node)),
            kw::ARTIFACT => p.artifacts.extend(self.artifact(node)),
            kw::GATE => p.gates.extend(self.gate(node)),
            kw::RUNNER => p.runners.extend(self.runner(node)),
            kw::CALL_SITE => p.call_sites.extend(self.call_site(node)),
            kw::STAGE => p.stages.extend(self.stage(node)),
            kw::END => p.ends.extend(self.end(node)),
            kw::ALERT => p.alerts.extend(self.alert(node)),
            kw::APPROVAL => p.approvals.extend(self.approval(node)),
            other => {
                let f = Finding::new(
                    Code::UnknownNode,
                    name_span(node),
                    format!("unknown node `{other}`"),
                )
                .label("not a pipeline node")
                .maybe_help(
                    did_you_mean(other, TOP_LEVEL.iter().copied())
                        .or_else(|| Some(format!("expected one of: {}", TOP_LEVEL.join(", ")))),
                );
                self.err(f);
            }
        }
    }

    /// The pipeline, once every top-level node was decoded; its lists are
    /// shrunk to fit (they grew by doubling, and live through every check).
    fn finish(&mut self, mut top: TopLevel) -> Pipeline {
        let p = &mut top.pipeline;
        p.declarations.shrink_to_fit();
        p.transports.shrink_to_fit();
        p.artifacts.shrink_to_fit();
        p.gates.shrink_to_fit();
        p.runners.shrink_to_fit();
        p.call_sites.shrink_to_fit();
        p.stages.shrink_to_fit();
        p.ends.shrink_to_fit();
        p.alerts.shrink_to_fit();
        p.approvals.shrink_to_fit();
        // A file read only in part may have its `pipeline` in the rest.
        if top.pipeline_nodes == 0 && !self.stopped {
            self.err(
                Finding::new(
                    Code::MissingPipeline,
                    (0, 0).into(),
                    "the file has no `pipeline` node",
                )
                .label("expected `pipeline \"NAME\" start=\"STAGE\"`")
                .help("add `pipeline \"NAME\" start=\"FIRST-STAGE\"` at the top"),
            );
        }
        top.pipeline
    }

    fn header(&mut self, node: &KdlNode) -> Option<Header> {
        self.check_props(node, &["start", "single-transport"]);
        let name = self.name(node);
        let start = self.req_text_prop(node, "start");
        let single_transport = match self.prop(node, "single-transport") {
            Some(e) => self.bool_of(e, "`single-transport`").unwrap_or(false),
            None => false,
        };
        let mut description = None;
        let mut vars: Vec<Var> = Vec::new();
        let mut secrets: Vec<Name> = Vec::new();
        for child in self.children(node, &["description", "var", "secret"]) {
            self.check_props(child, &[]);
            self.children(child, &[]);
            match child.name().value() {
                "description" => {
                    let d = self.one_string(child, "a description");
                    if self.once(&description, child) {
                        description = d.map(|d| d.value);
                    }
                }
                "secret" => {
                    let a = self.arg_count(child, 1, None, "one or more variable names");
                    for e in a {
                        if let Some(n) = self
                            .string_of(e, "a variable name")
                            .and_then(|n| self.non_empty(n, "a name"))
                        {
                            secrets.push(n);
                        }
                    }
                }
                _ => {
                    let a = self.arg_count(child, 2, Some(2), "a name and a default value");
                    let n = a
                        .first()
                        .and_then(|e| self.string_of(e, "a variable name"))
                        .and_then(|n| self.non_empty(n, "a name"));
                    let v = a.get(1).and_then(|e| self.string_of(e, "a default value"));
                    if let (Some(name), Some(default)) = (n, v) {
                        vars.push(Var {
                            name,
                            default: default.value,
                        });
                    }
                }
            }
        }
        Some(Header {
            name: name?,
            start: start?,
            single_transport,
            vars,
            secrets,
        })
    }

    fn transport(&mut self, node: &KdlNode) -> Option<Transport> {
        self.check_props(node, &[]);
        let name = self.name(node);
        let mut process = ProcessChildren::default();
        let mut prompt = None;
        let mut cost = None;
        let mut labels = None;
        for child in self.children(
            node,
            &[
                "command",
                "prompt",
                "timeout",
                "idle-timeout",
                "grace",
                "cwd",
                "env",
                "retry",
                "cost-per-call",
                "labels",
            ],
        ) {
            if self.process_child(child, &mut process) {
                continue;
            }
            match child.name().value() {
                "prompt" => self.prompt_mode(child, &mut prompt),
                "labels" => self.labels(child, &mut labels),
                _ => {
                    self.check_props(child, &[]);
                    self.children(child, &[]);
                    let a = self.arg_count(child, 1, Some(1), "a cost");
                    let c = a
                        .first()
                        .and_then(|e| self.number_of(e, "`cost-per-call`", 0.0));
                    if self.once(&cost, child) {
                        cost = Some(c);
                    }
                }
            }
        }
        Some(Transport {
            name: name?,
            process: process.finish(),
            prompt: prompt.flatten().unwrap_or(PromptMode::Stdin),
            cost_per_call: cost.flatten(),
            labels: labels.unwrap_or_default(),
            span: node.span(),
        })
    }

    /// `prompt "stdin"` or `prompt "arg"`. `slot` is `Some` once the child
    /// was seen, holding the mode if it was valid.
    fn prompt_mode(&mut self, child: &KdlNode, slot: &mut Option<Option<PromptMode>>) {
        self.check_props(child, &[]);
        self.children(child, &[]);
        let Some(s) = self.one_string(child, "\"stdin\" or \"arg\"") else {
            return;
        };
        let mode = match s.value.as_str() {
            "stdin" => Some(PromptMode::Stdin),
            "arg" => Some(PromptMode::Arg),
            other => {
                self.err(
                    Finding::new(
                        Code::InvalidValue,
                        s.span,
                        format!("`prompt` must be \"stdin\" or \"arg\", found \"{other}\""),
                    )
                    .label("expected \"stdin\" or \"arg\"")
                    .maybe_help(did_you_mean(other, ["stdin", "arg"])),
                );
                None
            }
        };
        if self.once(slot, child) {
            *slot = Some(mode);
        }
    }

    /// Decodes `child` into `s` if it is one of the settings runners and
    /// transports share; returns whether it was.
    fn process_child(&mut self, child: &KdlNode, s: &mut ProcessChildren) -> bool {
        match child.name().value() {
            "command" => {
                let c = self.command(child);
                if self.once(&s.command, child) {
                    s.command = c;
                }
            }
            "cwd" => {
                self.check_props(child, &[]);
                self.children(child, &[]);
                let c = self
                    .one_string(child, "a directory")
                    .map(|s| self.template(&s));
                if self.once(&s.cwd, child) {
                    s.cwd = c;
                }
            }
            "env" => self.env(child, &mut s.env),
            "timeout" | "idle-timeout" | "grace" => {
                self.check_props(child, &[]);
                self.children(child, &[]);
                let d = self.duration_child(child);
                match child.name().value() {
                    "timeout" => {
                        if self.once(&s.timeout, child) {
                            s.timeout = d;
                        }
                    }
                    "idle-timeout" => {
                        if self.once(&s.idle_timeout, child) {
                            s.idle_timeout = d;
                        }
                    }
                    _ => {
                        if self.once(&s.grace, child) {
                            s.grace = Some(d.map(|d| d.value));
                        }
                    }
                }
            }
            "retry" => {
                let r = self.retry(child);
                if self.once(&s.retry, child) {
                    s.retry = Some(r);
                }
            }
            _ => return false,
        }
        true
    }

    fn artifact(&mut self, node: &KdlNode) -> Option<Artifact> {
        self.check_props(node, &["path"]);
        let name = self.name(node);
        let path = self.req_text_prop(node, "path");
        let mut fields = Vec::new();
        for child in self.children(node, &["field"]) {
            self.check_props(child, &["required"]);
            self.children(child, &[]);
            let a = self.arg_count(child, 1, None, "a key");
            let key = a
                .first()
                .and_then(|e| self.string_of(e, "a field key"))
                .and_then(|k| self.non_empty(k, "a key"));
            let mut allowed = Vec::new();
            for e in a.iter().skip(1) {
                if let Some(s) = self.string_of(e, "an allowed value") {
                    allowed.push(s);
                }
            }
            let required = match self.prop(child, "required") {
                Some(e) => self.bool_of(e, "`required`").unwrap_or(true),
                None => true,
            };
            if let Some(key) = key {
                fields.push(Field {
                    key,
                    allowed,
                    required,
                });
            }
        }
        Some(Artifact {
            name: name?,
            path: path?,
            fields,
            span: node.span(),
        })
    }

    fn gate(&mut self, node: &KdlNode) -> Option<Gate> {
        self.check_props(node, &["artifact"]);
        let name = self.name(node);
        let artifact = self.req_text_prop(node, "artifact");
        let mut expects = Vec::new();
        for child in self.children(node, &["expect"]) {
            self.check_props(child, &["matches"]);
            self.children(child, &[]);
            let a = self.arg_count(child, 1, Some(2), "a key");
            let key = a.first().and_then(|e| self.string_of(e, "a field key"));
            let value = a
                .get(1)
                .and_then(|e| self.string_of(e, "the expected value"));
            let matches = self.opt_string_prop(child, "matches");
            let expectation = match (value, matches) {
                (Some(v), None) => Some(Expectation::Equals(v)),
                (None, Some(m)) => Some(Expectation::Matches(m)),
                (Some(_), Some(m)) => {
                    self.err(
                        Finding::new(
                            Code::InvalidValue,
                            m.span,
                            "`expect` takes either a value or `matches=`, not both",
                        )
                        .label("second expectation"),
                    );
                    None
                }
                (None, None) => {
                    if a.len() < 2 {
                        self.missing(child, "an expected value or `matches=\"REGEX\"`");
                    }
                    None
                }
            };
            if let (Some(key), Some(expectation)) = (key, expectation) {
                expects.push(Expect { key, expectation });
            }
        }
        Some(Gate {
            name: name?,
            artifact: artifact?,
            expects,
            span: node.span(),
        })
    }

    fn runner(&mut self, node: &KdlNode) -> Option<Runner> {
        self.check_props(node, &[]);
        let name = self.name(node);
        let mut process = ProcessChildren::default();
        let mut own = RunnerChildren::default();
        for child in self.children(
            node,
            &[
                "command",
                "cwd",
                "env",
                "timeout",
                "idle-timeout",
                "grace",
                "exit-code",
                "on-timeout",
                "otherwise",
                "retry",
                "enabled",
                "scope",
                "writes",
                "labels",
            ],
        ) {
            if !self.process_child(child, &mut process) {
                self.runner_child(child, &mut own);
            }
        }
        let RunnerChildren {
            exit_codes,
            on_timeout,
            otherwise,
            enabled,
            scope,
            writes,
            labels,
        } = own;
        Some(Runner {
            name: name?,
            process: process.finish(),
            exit_codes,
            on_timeout,
            otherwise,
            enabled,
            scope,
            writes,
            labels: labels.unwrap_or_default(),
            span: node.span(),
        })
    }

    /// A child only a runner has (the process settings it shares with a
    /// transport are [`Self::process_child`]'s).
    fn runner_child(&mut self, child: &KdlNode, own: &mut RunnerChildren) {
        match child.name().value() {
            "exit-code" => {
                if let Some(m) = self.exit_code(child) {
                    own.exit_codes.push(m);
                }
            }
            "on-timeout" | "otherwise" => {
                self.arg_count(child, 0, Some(0), "");
                let v = self.verdict_prop(child);
                let slot = if child.name().value() == "on-timeout" {
                    &mut own.on_timeout
                } else {
                    &mut own.otherwise
                };
                if self.once(slot, child) {
                    *slot = v;
                }
            }
            "enabled" => {
                let s = self.switch(child);
                if self.once(&own.enabled, child) {
                    own.enabled = s;
                }
            }
            "labels" => self.labels(child, &mut own.labels),
            "scope" => {
                let s = self.scope(child);
                if self.once(&own.scope, child) {
                    own.scope = Some(s);
                }
            }
            _ => {
                let w = self.writes(child);
                if self.once(&own.writes, child) {
                    own.writes = w;
                }
            }
        }
    }

    /// `labels "gpu" "macos"` on a runner or transport, once.
    fn labels(&mut self, child: &KdlNode, slot: &mut Option<Vec<Spanned<String>>>) {
        self.check_props(child, &[]);
        self.children(child, &[]);
        let names = self.strings(child, "one or more labels");
        if self.once(slot, child) {
            *slot = Some(names);
        }
    }

    /// `exit-code 1 5 verdict="FAIL"`; `None` without a verdict or a code.
    fn exit_code(&mut self, child: &KdlNode) -> Option<ExitMapping> {
        let verdict = self.verdict_prop(child);
        let a = self.arg_count(child, 1, None, "an exit code");
        let mut codes = Vec::new();
        for e in a {
            match integral(e.value()) {
                Some((Some(i), _)) if (0..=255).contains(&i) => {
                    codes.push(Spanned::new(i as i32, e.span()))
                }
                Some((_, shown)) => self.err(
                    Finding::new(
                        Code::BadExitCode,
                        e.span(),
                        format!("exit codes are 0 to 255, found {shown}"),
                    )
                    .label("out of range")
                    .help("a process can only exit with a code from 0 to 255"),
                ),
                None => self.wrong_type(e, "an exit code", "an integer"),
            }
        }
        let verdict = verdict?;
        (!codes.is_empty()).then_some(ExitMapping { codes, verdict })
    }

    /// `enabled #true env="VAR"`.
    fn switch(&mut self, child: &KdlNode) -> Option<Switch> {
        self.check_props(child, &["env"]);
        self.children(child, &[]);
        let a = self.arg_count(child, 1, Some(1), "#true or #false");
        let on = a.first().and_then(|e| self.bool_of(e, "`enabled`"));
        let env = self.opt_text_prop(child, "env");
        on.map(|enabled| Switch { enabled, env })
    }

    /// `scope "repo" … env="VAR"`.
    fn scope(&mut self, child: &KdlNode) -> Scope {
        self.check_props(child, &["env"]);
        self.children(child, &[]);
        let mut repos = Vec::new();
        for e in args(child) {
            if let Some(s) = self.string_of(e, "a repository name") {
                repos.push(s.value);
            }
        }
        let env = self.opt_text_prop(child, "env");
        Scope { repos, env }
    }

    /// `writes "ARTIFACT" field="KEY"`.
    fn writes(&mut self, child: &KdlNode) -> Option<Writes> {
        self.check_props(child, &["field"]);
        self.children(child, &[]);
        let artifact = self.one_name(child, "an artifact name");
        let field = self.opt_text_prop(child, "field");
        artifact.map(|artifact| Writes {
            artifact,
            field,
            span: child.span(),
        })
    }

    fn enum_prop<T: Copy>(
        &mut self,
        node: &KdlNode,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let s = self.req_string_prop(node, key)?;
        match options.iter().find(|(n, _)| *n == s.value) {
            Some((_, v)) => Some(Spanned::new(*v, s.span)),
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(
                    Finding::new(
                        Code::InvalidValue,
                        s.span,
                        format!(
                            "`{key}` must be one of {}, found \"{}\"",
                            names
                                .iter()
                                .map(|n| format!("\"{n}\""))
                                .collect::<Vec<_>>()
                                .join(", "),
                            s.value
                        ),
                    )
                    .label("not an allowed value")
                    .maybe_help(did_you_mean(&s.value, names.iter().copied())),
                );
                None
            }
        }
    }

    fn call_site(&mut self, node: &KdlNode) -> Option<CallSite> {
        self.check_props(node, &["axis", "verdict", "mode"]);
        let name = self.name(node);
        let axis = self.enum_prop(node, "axis", &[("C", Axis::C), ("P", Axis::P)]);
        let verdict = self.enum_prop(
            node,
            "verdict",
            &[
                ("machine", VerdictKind::Machine),
                ("judgement", VerdictKind::Judgement),
            ],
        );
        let mode = self.enum_prop(node, "mode", kw::MODES);
        let mut runner = None;
        let mut llm = None;
        let mut why = None;
        let mut approval = None;
        for child in self.children(node, &["runner", "llm", "why", "approval"]) {
            match child.name().value() {
                "approval" => {
                    self.check_props(child, &[]);
                    self.children(child, &[]);
                    let a = self.one_name(child, "an approval name");
                    if self.once(&approval, child) {
                        approval = a;
                    }
                }
                "runner" => {
                    self.check_props(child, &[]);
                    self.children(child, &[]);
                    let r = self.one_name(child, "a runner name");
                    if self.once(&runner, child) {
                        runner = r;
                    }
                }
                "llm" => {
                    self.check_props(child, &["transport", "prompt"]);
                    self.children(child, &[]);
                    self.arg_count(child, 0, Some(0), "");
                    let t = self.req_text_prop(child, "transport");
                    let p = self.req_text_prop(child, "prompt");
                    let l = match (t, p) {
                        (Some(transport), Some(prompt)) => Some(Llm {
                            transport,
                            prompt,
                            span: child.span(),
                        }),
                        _ => None,
                    };
                    if self.once(&llm, child) {
                        llm = l;
                    }
                }
                _ => {
                    self.check_props(child, &[]);
                    self.children(child, &[]);
                    let w = self
                        .one_string(child, "a justification")
                        .and_then(|w| self.non_empty(w, "a justification"));
                    if self.once(&why, child) {
                        why = w;
                    }
                }
            }
        }
        Some(CallSite {
            name: name?,
            axis: axis?,
            verdict: verdict?,
            mode: mode?,
            runner,
            llm,
            approval,
            why,
            span: node.span(),
        })
    }

    fn transition(&mut self, child: &KdlNode, props: &[&str]) -> Option<Transition> {
        self.check_props(child, props);
        self.children(child, &[]);
        let target = self.one_name(child, "a target stage or end");
        let budget = match self.prop(child, "budget") {
            Some(e) if props.contains(&"budget") => self
                .int_of(e, "`budget`", 0, 1_000_000)
                .map(|b| Spanned::new(b as u32, e.span())),
            _ => None,
        };
        let alert = if props.contains(&"alert") {
            self.opt_text_prop(child, "alert")
        } else {
            None
        };
        Some(Transition {
            target: target?,
            budget,
            alert,
            span: child.span(),
        })
    }

    fn stage(&mut self, node: &KdlNode) -> Option<Stage> {
        self.check_props(node, &["call-site", "gate"]);
        let name = self.name(node);
        let call_site = self.req_text_prop(node, "call-site");
        let gate = self.req_text_prop(node, "gate");
        let mut pass = None;
        let mut fail = None;
        let mut exhausted = None;
        let mut serial: Option<bool> = None;
        for child in self.children(node, &["pass", "fail", "exhausted", "serial"]) {
            match child.name().value() {
                "pass" => {
                    let t = self.transition(child, &[]);
                    if self.once(&pass, child) {
                        pass = t;
                    }
                }
                "fail" => {
                    let t = self.transition(child, &["budget"]);
                    if self.once(&fail, child) {
                        fail = t;
                    }
                }
                "exhausted" => {
                    let t = self.transition(child, &["alert"]);
                    if self.once(&exhausted, child) {
                        exhausted = t;
                    }
                }
                _ => {
                    self.check_props(child, &[]);
                    self.children(child, &[]);
                    let a = self.arg_count(child, 1, Some(1), "#true or #false");
                    let s = a.first().and_then(|e| self.bool_of(e, "`serial`"));
                    if self.once(&serial, child) {
                        serial = s;
                    }
                }
            }
        }
        Some(Stage {
            name: name?,
            call_site: call_site?,
            gate: gate?,
            pass,
            fail,
            exhausted,
            serial: serial.unwrap_or(false),
            span: node.span(),
        })
    }

    fn end(&mut self, node: &KdlNode) -> Option<End> {
        self.check_props(node, &["outcome"]);
        self.children(node, &[]);
        let name = self.name(node);
        let outcome = self.enum_prop(
            node,
            "outcome",
            &[("success", Outcome::Success), ("failure", Outcome::Failure)],
        );
        Some(End {
            name: name?,
            outcome: outcome?.value,
            span: node.span(),
        })
    }

    fn alert(&mut self, node: &KdlNode) -> Option<Alert> {
        self.check_props(node, &[]);
        let name = self.name(node);
        let mut command = None;
        let mut timeout: Option<Spanned<Duration>> = None;
        for child in self.children(node, &["command", "timeout"]) {
            if child.name().value() == "command" {
                let c = self.command(child);
                if self.once(&command, child) {
                    command = c;
                }
            } else {
                self.check_props(child, &[]);
                self.children(child, &[]);
                let d = self.duration_child(child);
                if self.once(&timeout, child) {
                    timeout = d;
                }
            }
        }
        Some(Alert {
            name: name?,
            command,
            timeout: timeout.unwrap_or(Spanned::new(DEFAULT_ALERT_TIMEOUT, node.span())),
            span: node.span(),
        })
    }
}

impl Decoder<'_> {
    /// `approval "NAME" { approvers …; expires "D"; show …; writes "A" }`.
    fn approval(&mut self, node: &KdlNode) -> Option<Approval> {
        self.check_props(node, &[]);
        let name = self.name(node);
        let mut approvers: Option<Vec<Name>> = None;
        let mut expires: Option<Option<Spanned<Duration>>> = None;
        let mut show: Vec<Spanned<String>> = Vec::new();
        let mut writes: Option<Option<Name>> = None;
        for child in self.children(node, &["approvers", "expires", "show", "writes"]) {
            self.check_props(child, &[]);
            self.children(child, &[]);
            match child.name().value() {
                "approvers" => {
                    let names = self.strings(child, "one or more approver names");
                    if self.once(&approvers, child) {
                        approvers = Some(names);
                    }
                }
                "expires" => {
                    let d = self.duration_child(child);
                    if self.once(&expires, child) {
                        expires = Some(d);
                    }
                }
                "show" => show.extend(self.strings(child, "one or more artifact paths")),
                _ => {
                    let w = self.one_name(child, "an artifact name");
                    if self.once(&writes, child) {
                        writes = Some(w);
                    }
                }
            }
        }
        Some(Approval {
            name: name?,
            approvers: approvers.unwrap_or_default(),
            expires: expires.flatten(),
            show,
            writes: writes.flatten(),
            span: node.span(),
        })
    }

    /// One or more non-empty string arguments.
    fn strings(&mut self, child: &KdlNode, what: &str) -> Vec<Spanned<String>> {
        let a = self.arg_count(child, 1, None, what);
        let mut out = Vec::new();
        for e in a {
            if let Some(s) = self
                .string_of(e, what)
                .and_then(|s| self.non_empty(s, "a name"))
            {
                out.push(s);
            }
        }
        out
    }
}

/// The most digits a number in a duration may have (`"999999999ms"`).
pub(crate) const MAX_DURATION_DIGITS: usize = 9;

/// SIGTERM → SIGKILL delay when a producer states no `grace`.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How long an alert may run when it states no `timeout`.
pub(crate) const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(60);
