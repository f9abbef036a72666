//! What differs between two versions of a pipeline file, top-level node by
//! node: what a resume with a changed pipeline reports.

use std::collections::HashMap;
use std::fmt::Write;

use crate::syntax::{Node, Value};

/// A value as the file would write it (strings quoted).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Bool(b) => format!("#{b}"),
        Value::Null => "#null".into(),
    }
}

/// A node's content without its formatting and comments: two nodes that
/// read the same have the same text.
fn canonical(n: &Node, out: &mut String) {
    if let Some(t) = n.ty() {
        let _ = write!(out, "({:?})", t.value());
    }
    let _ = write!(out, "{:?}", n.name().value());
    for e in n.entries() {
        out.push(' ');
        if let Some(t) = e.ty() {
            let _ = write!(out, "({:?})", t.value());
        }
        if let Some(k) = e.name() {
            let _ = write!(out, "{:?}=", k.value());
        }
        let _ = write!(out, "{:?}", e.value());
    }
    if let Some(c) = n.children() {
        out.push_str(" {");
        for child in c.nodes() {
            canonical(child, out);
            out.push(';');
        }
        out.push('}');
    }
}

/// Names what differs between two pipeline texts, node by node.
pub fn pipeline_changes(old: &str, new: &str) -> Vec<String> {
    fn nodes(text: &str) -> Option<Vec<(String, String)>> {
        if crate::limits::check(text).is_some() {
            return None;
        }
        let doc = crate::syntax::parse(text).ok()?;
        Some(
            doc.nodes()
                .iter()
                .map(|n| {
                    let name = n
                        .entries()
                        .iter()
                        .find(|e| e.name().is_none())
                        .map(|e| shown(e.value()))
                        .unwrap_or_default();
                    let mut content = String::new();
                    canonical(n, &mut content);
                    (format!("{} {name}", n.name().value()), content)
                })
                .collect(),
        )
    }
    let (Some(a), Some(b)) = (nodes(old), nodes(new)) else {
        return vec!["the file's text".into()];
    };
    let old_map: HashMap<&str, &str> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new_map: HashMap<&str, &str> = b.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    for (k, v) in &a {
        match new_map.get(k.as_str()) {
            None => out.push(format!("removed `{k}`")),
            Some(n) if n != v => out.push(format!("changed `{k}`")),
            _ => {}
        }
    }
    for (k, _) in &b {
        if !old_map.contains_key(k.as_str()) {
            out.push(format!("added `{k}`"));
        }
    }
    if out.is_empty() {
        out.push("formatting or comments only".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_changes_name_nodes() {
        let old = "pipeline \"p\" start=\"a\"\nstage \"a\" call-site=\"c\" gate=\"g\"\n";
        let new = "pipeline \"p\" start=\"a\"\nstage \"a\" call-site=\"d\" gate=\"g\"\nend \"e\" outcome=\"success\"\n";
        let c = pipeline_changes(old, new);
        assert_eq!(c, vec!["changed `stage \"a\"`", "added `end \"e\"`"]);
    }

    #[test]
    fn formatting_and_comments_are_no_change() {
        let old = "pipeline \"p\" start=\"a\" {\n    description \"d\"\n}\n";
        let new = "// note\npipeline   \"p\"   start=#\"a\"# { description d; }\n";
        assert_eq!(
            pipeline_changes(old, new),
            vec!["formatting or comments only"]
        );
        let moved = "pipeline \"p\" start=\"a\" { description \"e\"; }\n";
        assert_eq!(
            pipeline_changes(old, moved),
            vec!["changed `pipeline \"p\"`"]
        );
    }
}
