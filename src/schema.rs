//! The structural schema: a KDL document's JSON form checked against
//! `schemas/pipeline.schema.json`, every error mapped back to a KDL span.
//!
//! The JSON form keeps source order: the document is an array of nodes, each
//! `{"node": NAME, "args": [...], "props": {...}, "children": [...]}`.

use jsonschema::error::ValidationErrorKind;
use kdl::{KdlDocument, KdlNode, KdlValue};
use miette::SourceSpan;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::diagnostic::{did_you_mean, Finding};
use crate::loader::codes;

/// The schema text, as shipped in `schemas/`.
pub const SCHEMA: &str = include_str!("../schemas/pipeline.schema.json");

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

/// A document's JSON form and the span of each JSON pointer in it.
pub struct JsonForm {
    pub value: Value,
    spans: HashMap<String, SourceSpan>,
}

pub fn to_json(doc: &KdlDocument) -> JsonForm {
    let mut spans = HashMap::new();
    let value = nodes_json(doc, "", &mut spans);
    JsonForm { value, spans }
}

fn nodes_json(doc: &KdlDocument, prefix: &str, spans: &mut HashMap<String, SourceSpan>) -> Value {
    Value::Array(
        doc.nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| node_json(n, &format!("{prefix}/{i}"), spans))
            .collect(),
    )
}

fn node_json(node: &KdlNode, ptr: &str, spans: &mut HashMap<String, SourceSpan>) -> Value {
    let name_span = node.name().span();
    for suffix in ["", "/node", "/args", "/props", "/children"] {
        spans.insert(format!("{ptr}{suffix}"), name_span);
    }
    let mut args = Vec::new();
    let mut props = Map::new();
    for e in node.entries() {
        match e.name() {
            None => {
                spans.insert(format!("{ptr}/args/{}", args.len()), e.span());
                args.push(value_json(e.value()));
            }
            Some(k) => {
                spans.insert(format!("{ptr}/props/{}", escape_ptr(k.value())), e.span());
                props.insert(k.value().to_string(), value_json(e.value()));
            }
        }
    }
    let children = match node.children() {
        Some(c) => nodes_json(c, &format!("{ptr}/children"), spans),
        None => Value::Array(Vec::new()),
    };
    serde_json::json!({
        "node": node.name().value(),
        "args": args,
        "props": props,
        "children": children,
    })
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

impl JsonForm {
    /// The span for a JSON pointer: its own, or its nearest ancestor's.
    fn span_of(&self, ptr: &str) -> SourceSpan {
        let mut p = ptr;
        loop {
            if let Some(s) = self.spans.get(p) {
                return *s;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return (0, 0).into(),
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
        .map(|e| finding(form, &e))
        .collect();
    out.sort_by_key(|f| (f.span.offset(), f.code));
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

fn finding(form: &JsonForm, e: &jsonschema::ValidationError<'_>) -> Finding {
    let ptr = e.instance_path().as_str().to_string();
    let schema_path = e.schema_path().as_str().to_string();
    let node = form.node_name(&ptr);
    let span = form.span_of(&ptr);
    let last = ptr.rsplit('/').next().unwrap_or("");
    let instance = e.instance();
    // How a message names the value: a property by its key, an argument by
    // its node.
    let value_name = || {
        if ptr.contains("/props/") {
            format!("`{last}`")
        } else {
            format!("an argument of `{node}`")
        }
    };
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let key = unexpected.first().cloned().unwrap_or_default();
            let allowed = allowed_keys(&schema_path);
            let help = did_you_mean(&key, allowed.iter().map(String::as_str)).or_else(|| {
                if allowed.is_empty() {
                    Some(format!("`{node}` takes no properties"))
                } else {
                    Some(format!("expected one of: {}", allowed.join(", ")))
                }
            });
            Finding::error(
                codes::UNKNOWN_PROPERTY,
                form.span_of(&format!("{ptr}/{}", escape_ptr(&key))),
                format!("unknown property `{key}` on `{node}`"),
            )
            .label("not a property of this node")
            .maybe_help(help)
        }
        ValidationErrorKind::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            Finding::error(
                codes::MISSING_VALUE,
                span,
                format!("`{node}` is missing the property `{p}`"),
            )
            .label(format!("needs the property `{p}`"))
        }
        ValidationErrorKind::Enum { options } if last == "node" => {
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
            Finding::error(codes::UNKNOWN_NODE, span, message)
                .label(label)
                .maybe_help(
                    did_you_mean(name, names.iter().copied())
                        .or_else(|| Some(format!("expected one of: {}", names.join(", ")))),
                )
        }
        ValidationErrorKind::Enum { options } | ValidationErrorKind::Constant { expected_value: options } => {
            let names: Vec<String> = match options.as_ref() {
                Value::Array(a) => a.iter().map(describe).collect(),
                v => vec![describe(v)],
            };
            let what = if ptr.contains("/props/") {
                format!("`{last}`")
            } else {
                format!("the argument of `{node}`")
            };
            let found = instance.as_str().unwrap_or_default();
            Finding::error(
                codes::INVALID_VALUE,
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
        ValidationErrorKind::Type { .. } => {
            let expected = schema_value()
                .pointer(&schema_path)
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
            Finding::error(
                codes::INVALID_VALUE,
                span,
                format!("{what} must be {expected}, found {}", kind_of(instance)),
            )
            .label(format!("expected {expected}"))
        }
        ValidationErrorKind::Pattern { .. } if schema_path.contains("duration") => {
            Finding::error(
                codes::BAD_DURATION,
                span,
                format!(
                    "{} is not a duration: expected a number and a unit (ms, s, m, h), like \"30s\" or \"1h30m\"",
                    describe(instance)
                ),
            )
            .label("not a duration")
            .help("write a number and a unit: \"500ms\", \"30s\", \"15m\", \"2h\"")
        }
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
            if schema_path.contains("exit-code") =>
        {
            Finding::error(
                codes::BAD_EXIT_CODE,
                span,
                format!("exit codes are 0 to 255, found {}", describe(instance)),
            )
            .label("out of range")
            .help("a process can only exit with a code from 0 to 255")
        }
        ValidationErrorKind::Minimum { limit } => Finding::error(
            codes::INVALID_VALUE,
            span,
            format!(
                "{} must be at least {limit}, found {}",
                value_name(),
                describe(instance)
            ),
        )
        .label("out of range"),
        ValidationErrorKind::Maximum { limit } => Finding::error(
            codes::INVALID_VALUE,
            span,
            format!(
                "{} must be at most {limit}, found {}",
                value_name(),
                describe(instance)
            ),
        )
        .label("out of range"),
        ValidationErrorKind::MinItems { .. } if last == "args" => {
            let what = schema_value()
                .pointer(&format!(
                    "{}/description",
                    schema_path.trim_end_matches("/minItems")
                ))
                .and_then(Value::as_str)
                .unwrap_or("an argument")
                .to_string();
            Finding::error(
                codes::MISSING_VALUE,
                span,
                format!("`{node}` is missing {what}"),
            )
            .label(format!("needs {what}"))
        }
        ValidationErrorKind::MaxItems { limit } if last == "args" => {
            let limit = *limit as usize;
            Finding::error(
                codes::TOO_MANY_ARGUMENTS,
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
        ValidationErrorKind::MinLength { .. } => {
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
            Finding::error(
                codes::INVALID_VALUE,
                span,
                format!("{what} must not be empty"),
            )
            .label(if is_name && !ptr.contains("/props/") {
                "empty name"
            } else {
                "empty value"
            })
        }
        // `no-child`: a node that takes no children has one.
        ValidationErrorKind::FalseSchema if last == "node" => {
            let name = instance.as_str().unwrap_or_default();
            let parent_ptr = ptr.rsplitn(4, '/').nth(3).unwrap_or("");
            let parent = form.node_name(parent_ptr);
            Finding::error(
                codes::UNKNOWN_NODE,
                span,
                format!("unknown node `{name}` in `{parent}`"),
            )
            .label("not allowed here")
            .help(format!("`{parent}` takes no children"))
        }
        ValidationErrorKind::Contains if ptr.is_empty() && !schema_path.ends_with("/maxContains") => Finding::error(
            codes::MISSING_PIPELINE,
            (0, 0).into(),
            "the file has no `pipeline` node",
        )
        .label("expected `pipeline \"NAME\" start=\"STAGE\"`")
        .help("add `pipeline \"NAME\" start=\"FIRST-STAGE\"` at the top"),
        _ if ptr.is_empty() => {
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
                Some(s) => Finding::error(
                    codes::DUPLICATE_PIPELINE,
                    s,
                    "a file holds exactly one `pipeline` node",
                )
                .label("second `pipeline`"),
                None => Finding::error(
                    codes::MISSING_PIPELINE,
                    (0, 0).into(),
                    "the file has no `pipeline` node",
                )
                .label("expected `pipeline \"NAME\" start=\"STAGE\"`"),
            }
        }
        _ => Finding::error(
            codes::INVALID_VALUE,
            span,
            format!("invalid value in `{node}`: {e}"),
        )
        .label("here"),
    }
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
