//! What differs between two versions of a pipeline file, top-level node by
//! node: what a resume with a changed pipeline reports.

use std::collections::HashMap;

/// Names what differs between two pipeline texts, node by node.
pub fn pipeline_changes(old: &str, new: &str) -> Vec<String> {
    fn nodes(text: &str) -> Option<Vec<(String, String)>> {
        if crate::limits::check(text).is_some() {
            return None;
        }
        let mut doc = kdl::KdlDocument::parse_v2(text).ok()?;
        doc.clear_format_recursive();
        Some(
            doc.nodes()
                .iter()
                .map(|n| {
                    let name = n
                        .entries()
                        .iter()
                        .find(|e| e.name().is_none())
                        .map(|e| match e.value().as_string() {
                            Some(s) => format!("\"{s}\""),
                            None => e.value().to_string(),
                        })
                        .unwrap_or_default();
                    (format!("{} {name}", n.name().value()), n.to_string())
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
}
