//! The structural schema: a KDL document's JSON form checked against
//! `schemas/pipeline.schema.json`, every error mapped back to a KDL span.
//!
//! The JSON form keeps source order: the document is an array of nodes, each
//! `{"node": NAME, "args": [...], "props": {...}, "children": [...]}`.

use crate::syntax::{Document as KdlDocument, Node as KdlNode, Value as KdlValue};
use jsonschema::error::ValidationErrorKind;
use miette::SourceSpan;
use serde_json::{Map, Value};
use std::sync::{Once, OnceLock};

use crate::code::Code;
use crate::diagnostic::{did_you_mean, Finding};

/// The schema text, as shipped in `schemas/`.
pub const SCHEMA: &str = include_str!("../../../schemas/pipeline.schema.json");

fn schema_value() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| {
        serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("bundled schema is not JSON: {e}"))
    })
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::draft202012::new(schema_value())
            .unwrap_or_else(|e| panic!("bundled schema does not compile: {e}"))
    })
}

/// Starts compiling the schema on another thread, once per process, so that
/// the compile (about as long as parsing the reference pipeline) overlaps
/// the KDL parse instead of following it. [`check`] waits for that thread
/// (or compiles the schema itself if it could not be started); the result
/// is the same validator either way.
pub(crate) fn prepare_in_background() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("orch-schema".to_string())
            .spawn(|| {
                validator();
            });
    });
}

/// A document's JSON form, and the document it came from, which gives the
/// span of each JSON pointer into the form.
pub struct JsonForm<'d> {
    pub(crate) value: Value,
    doc: &'d KdlDocument,
}

pub fn to_json(doc: &KdlDocument) -> JsonForm<'_> {
    JsonForm {
        value: nodes_json(doc),
        doc,
    }
}

fn nodes_json(doc: &KdlDocument) -> Value {
    Value::Array(doc.nodes().iter().map(node_json).collect())
}

fn node_json(node: &KdlNode) -> Value {
    let mut args = Vec::new();
    let mut props = Map::new();
    for e in node.entries() {
        match e.name() {
            None => args.push(value_json(e.value())),
            Some(k) => {
                props.insert(k.value().to_string(), value_json(e.value()));
            }
        }
    }
    let children = match node.children() {
        Some(c) => nodes_json(c),
        None => Value::Array(Vec::new()),
    };
    serde_json::json!({
        "node": node.name().value(),
        "args": args,
        "props": props,
        "children": children,
    })
}

/// A JSON pointer segment that is an array index as `serde_json` writes
/// one: decimal digits, no leading zero.
fn ptr_index(seg: &str) -> Option<usize> {
    if seg.is_empty()
        || !seg.bytes().all(|b| b.is_ascii_digit())
        || (seg.len() > 1 && seg.starts_with('0'))
    {
        return None;
    }
    seg.parse().ok()
}

fn escape_ptr(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn value_json(v: &KdlValue) -> Value {
    match v {
        KdlValue::String(s) => Value::String(s.clone()),
        KdlValue::Integer(i) => match i64::try_from(*i) {
            Ok(i) => Value::from(i),
            Err(_) => Value::from(*i as f64),
        },
        KdlValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        KdlValue::Bool(b) => Value::Bool(*b),
        KdlValue::Null => Value::Null,
    }
}

impl JsonForm<'_> {
    /// The span for a JSON pointer: its own, or its nearest ancestor's.
    ///
    /// A node (`/3`, `/3/children/0`) and its `node`, `args`, `props` and
    /// `children` members have the span of the node's name; an argument
    /// (`/3/args/1`) or a property (`/3/props/KEY`, the last one when a key
    /// is repeated) has the entry's span. Anything else falls back to its
    /// nearest ancestor that is one of these, and the document to `(0, 0)`.
    /// Found by walking the KDL document along the pointer, so that nothing
    /// is built for the (common) case where the schema finds no error.
    fn span_of(&self, ptr: &str) -> SourceSpan {
        let mut best: SourceSpan = (0, 0).into();
        let mut segs = ptr.split('/');
        if segs.next() != Some("") {
            return best;
        }
        let mut nodes = self.doc.nodes();
        loop {
            let Some(node) = segs.next().and_then(ptr_index).and_then(|i| nodes.get(i)) else {
                return best;
            };
            best = node.name().span();
            match segs.next() {
                Some("args") => {
                    if let Some(e) = segs
                        .next()
                        .and_then(ptr_index)
                        .and_then(|k| node.entries().iter().filter(|e| e.name().is_none()).nth(k))
                    {
                        best = e.span();
                    }
                    return best;
                }
                Some("props") => {
                    if let Some(key) = segs.next() {
                        if let Some(e) = node
                            .entries()
                            .iter()
                            .rev()
                            .find(|e| e.name().is_some_and(|n| escape_ptr(n.value()) == key))
                        {
                            best = e.span();
                        }
                    }
                    return best;
                }
                Some("children") => match node.children() {
                    Some(c) => nodes = c.nodes(),
                    None => return best,
                },
                _ => return best,
            }
        }
    }

    fn at(&self, ptr: &str) -> Option<&Value> {
        self.value.pointer(ptr)
    }

    /// The KDL node name of the node a pointer is inside.
    fn node_name(&self, ptr: &str) -> String {
        let mut p = ptr;
        loop {
            if let Some(Value::String(n)) = self.at(&format!("{p}/node")) {
                return n.clone();
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return "document".to_string(),
            }
        }
    }
}

/// Checks a document's JSON form against the schema.
pub fn check(form: &JsonForm) -> Vec<Finding> {
    let mut out: Vec<Finding> = validator()
        .iter_errors(&form.value)
        .flat_map(|e| findings(form, &e))
        .collect();
    out.sort_by_key(|f| (f.span.offset(), f.code.as_str()));
    out.dedup();
    out
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => format!("#{b}"),
        Value::Null => "#null".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a node".to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "#null",
        Value::Array(_) | Value::Object(_) => "a structure",
    }
}

/// The keys allowed where an `additionalProperties` error was raised, read
/// from the schema itself so that did-you-mean never goes stale.
fn allowed_keys(schema_path: &str) -> Vec<String> {
    let Some(base) = schema_path.strip_suffix("/additionalProperties") else {
        return Vec::new();
    };
    match schema_value().pointer(&format!("{base}/properties")) {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// One schema error can stand for several findings: every unknown property
/// of a node, every `pipeline` node after the first.
fn findings(form: &JsonForm<'_>, e: &jsonschema::ValidationError<'_>) -> Vec<Finding> {
    let ptr = e.instance_path().as_str();
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } if unexpected.len() > 1 => {
            unexpected
                .iter()
                .map(|key| {
                    let one = ValidationErrorKind::AdditionalProperties {
                        unexpected: vec![key.clone()],
                    };
                    finding_of(form, e, &one)
                })
                .collect()
        }
        _ if ptr.is_empty() => {
            let extra: Vec<usize> = form
                .value
                .as_array()
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .filter(|(_, n)| n.get("node").and_then(Value::as_str) == Some("pipeline"))
                        .skip(1)
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default();
            if extra.len() > 1 {
                extra
                    .into_iter()
                    .map(|i| {
                        Finding::new(
                            Code::DuplicatePipeline,
                            form.span_of(&format!("/{i}")),
                            "a file holds exactly one `pipeline` node",
                        )
                        .label("another `pipeline`")
                    })
                    .collect()
            } else {
                vec![finding_of(form, e, e.kind())]
            }
        }
        kind => vec![finding_of(form, e, kind)],
    }
}

/// Where a schema error points, as the wording of its finding needs it.
#[derive(Clone, Copy)]
struct At<'a> {
    form: &'a JsonForm<'a>,
    /// The JSON pointer into the document's form.
    ptr: &'a str,
    /// The pointer into the schema of the keyword that failed.
    schema_path: &'a str,
    /// The KDL node the pointer is inside.
    node: &'a str,
    span: SourceSpan,
    /// The pointer's last segment.
    last: &'a str,
    instance: &'a Value,
}

fn finding_of(
    form: &JsonForm<'_>,
    e: &jsonschema::ValidationError<'_>,
    kind: &ValidationErrorKind,
) -> Finding {
    let ptr = e.instance_path().as_str();
    let schema_path = e.schema_path().as_str();
    let node = form.node_name(ptr);
    let span = form.span_of(ptr);
    let last = ptr.rsplit('/').next().unwrap_or("");
    let instance = e.instance();
    let at = At {
        form,
        ptr,
        schema_path,
        node: &node,
        span,
        last,
        instance,
    };
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_property(&at, unexpected)
        }
        ValidationErrorKind::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            Finding::new(
                Code::MissingValue,
                span,
                format!("`{node}` is missing the property `{p}`"),
            )
            .label(format!("needs the property `{p}`"))
        }
        ValidationErrorKind::Enum { options } if last == "node" => unknown_node(&at, options),
        ValidationErrorKind::Enum { options }
        | ValidationErrorKind::Constant {
            expected_value: options,
        } => not_allowed(&at, options),
        ValidationErrorKind::Type { .. } => wrong_type(&at),
        ValidationErrorKind::Pattern { .. } if schema_path.contains("duration") => {
            bad_duration(&at)
        }
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
            if schema_path.contains("exit-code") =>
        {
            bad_exit_code(&at)
        }
        ValidationErrorKind::Minimum { limit } => out_of_range(&at, "at least", limit),
        ValidationErrorKind::Maximum { limit } => out_of_range(&at, "at most", limit),
        ValidationErrorKind::MinItems { .. } if last == "args" => missing_arguments(&at),
        ValidationErrorKind::MaxItems { limit } if last == "args" => {
            too_many_arguments(&at, *limit)
        }
        // Worded as the decoder words it: a property by its key, a name
        // argument as "a name", any other argument by its description.
        ValidationErrorKind::MinLength { .. } => empty_value(&at),
        ValidationErrorKind::FalseSchema if last == "node" => no_child(&at),
        ValidationErrorKind::Contains
            if ptr.is_empty() && !schema_path.ends_with("/maxContains") =>
        {
            no_pipeline()
        }
        _ if ptr.is_empty() => pipeline_count(form),
        _ => Finding::new(
            Code::InvalidValue,
            span,
            format!("invalid value in `{node}`: {e}"),
        )
        .label("here"),
    }
}

fn bad_duration(at: &At<'_>) -> Finding {
    Finding::new(
        Code::BadDuration,
        at.span,
        format!(
            "{} is not a duration: expected a number and a unit (ms, s, m, h), like \"30s\" or \"1h30m\"",
            describe(at.instance)
        ),
    )
    .label("not a duration")
    .help("write a number and a unit: \"500ms\", \"30s\", \"15m\", \"2h\"")
}

fn bad_exit_code(at: &At<'_>) -> Finding {
    Finding::new(
        Code::BadExitCode,
        at.span,
        format!("exit codes are 0 to 255, found {}", describe(at.instance)),
    )
    .label("out of range")
    .help("a process can only exit with a code from 0 to 255")
}

/// A number below its minimum or above its maximum; a property is named by
/// its key, an argument by its node.
fn out_of_range(at: &At<'_>, bound: &str, limit: &Value) -> Finding {
    let what = if at.ptr.contains("/props/") {
        format!("`{}`", at.last)
    } else {
        format!("an argument of `{}`", at.node)
    };
    Finding::new(
        Code::InvalidValue,
        at.span,
        format!(
            "{what} must be {bound} {limit}, found {}",
            describe(at.instance)
        ),
    )
    .label("out of range")
}

/// `no-child`: a node that takes no children has one.
fn no_child(at: &At<'_>) -> Finding {
    let name = at.instance.as_str().unwrap_or_default();
    let parent_ptr = at.ptr.rsplitn(4, '/').nth(3).unwrap_or("");
    let parent = at.form.node_name(parent_ptr);
    Finding::new(
        Code::UnknownNode,
        at.span,
        format!("unknown node `{name}` in `{parent}`"),
    )
    .label("not allowed here")
    .help(format!("`{parent}` takes no children"))
}

fn no_pipeline() -> Finding {
    Finding::new(
        Code::MissingPipeline,
        (0, 0).into(),
        "the file has no `pipeline` node",
    )
    .label("expected `pipeline \"NAME\" start=\"STAGE\"`")
    .help("add `pipeline \"NAME\" start=\"FIRST-STAGE\"` at the top")
}

/// A failure at the document's root other than a missing `pipeline`: a
/// second one, or (if none is found) none.
fn pipeline_count(form: &JsonForm<'_>) -> Finding {
    let second = form
        .value
        .as_array()
        .and_then(|a| {
            a.iter()
                .enumerate()
                .filter(|(_, n)| n.get("node").and_then(Value::as_str) == Some("pipeline"))
                .nth(1)
        })
        .map(|(i, _)| form.span_of(&format!("/{i}")));
    match second {
        Some(s) => Finding::new(
            Code::DuplicatePipeline,
            s,
            "a file holds exactly one `pipeline` node",
        )
        .label("second `pipeline`"),
        None => Finding::new(
            Code::MissingPipeline,
            (0, 0).into(),
            "the file has no `pipeline` node",
        )
        .label("expected `pipeline \"NAME\" start=\"STAGE\"`"),
    }
}

/// An unknown property, with did-you-mean from the schema's own keys.
fn unknown_property(at: &At<'_>, unexpected: &[String]) -> Finding {
    let At {
        form,
        ptr,
        schema_path,
        node,
        ..
    } = *at;
    let key = unexpected.first().cloned().unwrap_or_default();
    let allowed = allowed_keys(schema_path);
    let help = did_you_mean(&key, allowed.iter().map(String::as_str)).or_else(|| {
        if allowed.is_empty() {
            Some(format!("`{node}` takes no properties"))
        } else {
            Some(format!("expected one of: {}", allowed.join(", ")))
        }
    });
    Finding::new(
        Code::UnknownProperty,
        form.span_of(&format!("{ptr}/{}", escape_ptr(&key))),
        format!("unknown property `{key}` on `{node}`"),
    )
    .label("not a property of this node")
    .maybe_help(help)
}

/// A node name outside the schema's list for its place.
fn unknown_node(at: &At<'_>, options: &Value) -> Finding {
    let At {
        form,
        ptr,
        span,
        instance,
        ..
    } = *at;
    let name = instance.as_str().unwrap_or_default();
    let names: Vec<&str> = options
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let parent_ptr = ptr.rsplitn(4, '/').nth(3).unwrap_or("");
    let (message, label) = if ptr.matches('/').count() <= 2 {
        (format!("unknown node `{name}`"), "not a pipeline node")
    } else {
        (
            format!("unknown node `{name}` in `{}`", form.node_name(parent_ptr)),
            "not allowed here",
        )
    };
    Finding::new(Code::UnknownNode, span, message)
        .label(label)
        .maybe_help(
            did_you_mean(name, names.iter().copied())
                .or_else(|| Some(format!("expected one of: {}", names.join(", ")))),
        )
}

/// A value outside an enum or a constant.
fn not_allowed(at: &At<'_>, options: &Value) -> Finding {
    let At {
        ptr,
        node,
        span,
        last,
        instance,
        ..
    } = *at;
    let names: Vec<String> = match options {
        Value::Array(a) => a.iter().map(describe).collect(),
        v => vec![describe(v)],
    };
    let what = if ptr.contains("/props/") {
        format!("`{last}`")
    } else {
        format!("the argument of `{node}`")
    };
    let found = instance.as_str().unwrap_or_default();
    Finding::new(
        Code::InvalidValue,
        span,
        format!(
            "{what} must be {}{}, found {}",
            if names.len() > 1 { "one of " } else { "" },
            names.join(", "),
            describe(instance)
        ),
    )
    .label("not an allowed value")
    .maybe_help(did_you_mean(
        found,
        names.iter().map(|n| n.trim_matches('"')),
    ))
}

/// A value of the wrong type, worded with the schema's expected type.
fn wrong_type(at: &At<'_>) -> Finding {
    let At {
        ptr,
        schema_path,
        node,
        span,
        last,
        instance,
        ..
    } = *at;
    let expected = schema_value()
        .pointer(schema_path)
        .map(|t| match t {
            Value::String(s) => type_word(s).to_string(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(type_word)
                .collect::<Vec<_>>()
                .join(" or "),
            _ => "another type".to_string(),
        })
        .unwrap_or_else(|| "another type".to_string());
    let what = if ptr.contains("/props/") {
        format!("`{last}`")
    } else {
        format!("an argument of `{node}`")
    };
    Finding::new(
        Code::InvalidValue,
        span,
        format!("{what} must be {expected}, found {}", kind_of(instance)),
    )
    .label(format!("expected {expected}"))
}

/// Too few arguments, worded with the schema's description of them.
fn missing_arguments(at: &At<'_>) -> Finding {
    let At {
        schema_path,
        node,
        span,
        ..
    } = *at;
    let what = schema_value()
        .pointer(&format!(
            "{}/description",
            schema_path.trim_end_matches("/minItems")
        ))
        .and_then(Value::as_str)
        .unwrap_or("an argument")
        .to_string();
    Finding::new(
        Code::MissingValue,
        span,
        format!("`{node}` is missing {what}"),
    )
    .label(format!("needs {what}"))
}

/// Arguments past the schema's `maxItems`, reported at the first extra one.
fn too_many_arguments(at: &At<'_>, limit: u64) -> Finding {
    let At {
        form, ptr, node, ..
    } = *at;
    let limit = limit as usize;
    Finding::new(
        Code::TooManyArguments,
        form.span_of(&format!("{ptr}/{limit}")),
        format!(
            "`{node}` takes {} argument{}",
            if limit == 0 {
                "no".to_string()
            } else {
                format!("at most {limit}")
            },
            if limit == 1 { "" } else { "s" }
        ),
    )
    .label("unexpected argument")
}

/// An empty string where a name, reference or path is needed.
fn empty_value(at: &At<'_>) -> Finding {
    let At {
        ptr,
        schema_path,
        span,
        last,
        ..
    } = *at;
    // Worded as the decoder words it: a property by its key, a name
    // argument as "a name", any other argument by its description.
    let is_name = schema_path.starts_with("/$defs/name/");
    let what = if ptr.contains("/props/") {
        format!("`{last}`")
    } else if is_name {
        "a name".to_string()
    } else {
        schema_path
            .find("/properties/args/")
            .and_then(|i| {
                schema_value().pointer(&format!(
                    "{}/properties/args/description",
                    &schema_path[..i]
                ))
            })
            .and_then(Value::as_str)
            .unwrap_or("a value")
            .to_string()
    };
    Finding::new(
        Code::InvalidValue,
        span,
        format!("{what} must not be empty"),
    )
    .label(if is_name && !ptr.contains("/props/") {
        "empty name"
    } else {
        "empty value"
    })
}

fn type_word(t: &str) -> &'static str {
    match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "#true or #false",
        "null" => "#null",
        "array" => "a list",
        _ => "a node",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The span of every pointer the JSON form has, built the way the form
    /// once stored them: the oracle for `span_of`.
    fn all_spans(doc: &KdlDocument, prefix: &str, out: &mut HashMap<String, SourceSpan>) {
        for (i, node) in doc.nodes().iter().enumerate() {
            let ptr = format!("{prefix}/{i}");
            for suffix in ["", "/node", "/args", "/props", "/children"] {
                out.insert(format!("{ptr}{suffix}"), node.name().span());
            }
            let mut args = 0;
            for e in node.entries() {
                match e.name() {
                    None => {
                        out.insert(format!("{ptr}/args/{args}"), e.span());
                        args += 1;
                    }
                    Some(k) => {
                        out.insert(format!("{ptr}/props/{}", escape_ptr(k.value())), e.span());
                    }
                }
            }
            if let Some(c) = node.children() {
                all_spans(c, &format!("{ptr}/children"), out);
            }
        }
    }

    fn nearest(spans: &HashMap<String, SourceSpan>, ptr: &str) -> SourceSpan {
        let mut p = ptr;
        loop {
            if let Some(s) = spans.get(p) {
                return *s;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return (0, 0).into(),
            }
        }
    }

    #[test]
    fn span_of_finds_each_pointer_or_its_nearest_ancestor() {
        let text = r#"
pipeline "p" start="a" x=1 x=2 "a/b~c"=3 {
    var "k" "v"
    description "d" 7 {
        deep 1 2 y=#true { deeper "z" }
    }
}
stage "a" call-site="c" gate="g" { pass "done"; }
end "done" outcome="success"
"#;
        let doc = crate::syntax::parse(text).unwrap();
        let form = to_json(&doc);
        let mut spans = HashMap::new();
        all_spans(&doc, "", &mut spans);
        let mut ptrs: Vec<String> = spans.keys().cloned().collect();
        for extra in [
            "",
            "/",
            "x",
            "/9",
            "/01",
            "/0/",
            "/0/nope",
            "/0/args/5",
            "/0/args/01",
            "/0/args/0/x",
            "/0/props/zz",
            "/0/props/x/deeper",
            "/0/props/a~1b~0c",
            "/0/props/a/b~c",
            "/0/children/7",
            "/0/children/1/children/0/args/1",
            "/0/children/1/children/0/children/0/node/x",
            "/1/children/0/props/q",
            "/2/children",
            "/2/children/0",
            "/0/node/x",
            "/-1",
            "/99999999999999999999999",
        ] {
            ptrs.push(extra.to_string());
        }
        for p in &ptrs {
            assert_eq!(form.span_of(p), nearest(&spans, p), "pointer {p:?}");
        }
    }
}
