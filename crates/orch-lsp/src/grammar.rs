//! The language's shape for completion, read from the JSON Schema that
//! `orch validate` checks against (`schemas/pipeline.schema.json`): which
//! nodes go where, their properties and enum values, so completion never
//! offers what the validator refuses.

use serde_json::Value;
use std::sync::OnceLock;

fn schema() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    // The bundled schema is tested to parse (orch-lang's tests); a broken
    // one gives no completions rather than a panic.
    V.get_or_init(|| serde_json::from_str(orch_lang::schema::SCHEMA).unwrap_or(Value::Null))
}

fn def(name: &str) -> Option<&'static Value> {
    schema().get("$defs")?.get(name)
}

fn def_of_ref(v: &Value) -> Option<&'static Value> {
    def(v.get("$ref")?.as_str()?.strip_prefix("#/$defs/")?)
}

/// A dispatching definition (`top-node`, `stage-child`): its node names and
/// the definition each selects.
fn choices(dispatch: &'static Value) -> Vec<(&'static str, &'static Value)> {
    let Some(all) = dispatch.get("allOf").and_then(Value::as_array) else {
        return Vec::new();
    };
    all.iter()
        .filter_map(|c| {
            let name = c.pointer("/if/properties/node/const")?.as_str()?;
            Some((name, def_of_ref(c.get("then")?)?))
        })
        .collect()
}

/// The definition of the innermost node of `path` (outermost first).
pub(crate) fn node_def(path: &[&str]) -> Option<&'static Value> {
    let mut dispatch = def("top-node")?;
    let mut current = None;
    for name in path {
        let (_, d) = choices(dispatch).into_iter().find(|(n, _)| n == name)?;
        current = Some(d);
        dispatch = def_of_ref(d.pointer("/properties/children/items")?)?;
    }
    current
}

/// The nodes allowed inside `path` (top-level nodes for an empty path),
/// each with its description.
pub(crate) fn children(path: &[&str]) -> Vec<(&'static str, &'static str)> {
    let dispatch = if path.is_empty() {
        def("top-node")
    } else {
        node_def(path)
            .and_then(|d| d.pointer("/properties/children/items"))
            .and_then(def_of_ref)
    };
    dispatch
        .map(choices)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, d)| (n, description(d)))
        .collect()
}

fn description(d: &'static Value) -> &'static str {
    d.get("description").and_then(Value::as_str).unwrap_or("")
}

/// The properties of the node at `path`.
pub(crate) fn properties(path: &[&str]) -> Vec<&'static str> {
    node_def(path)
        .and_then(|d| d.pointer("/properties/props/properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The values an enum property allows.
pub(crate) fn property_values(path: &[&str], key: &str) -> Vec<&'static str> {
    node_def(path)
        .and_then(|d| d.pointer("/properties/props/properties"))
        .and_then(|p| p.get(key))
        .map(enum_values)
        .unwrap_or_default()
}

/// The values an enum first argument allows (`prompt "stdin"`).
pub(crate) fn argument_values(path: &[&str]) -> Vec<&'static str> {
    node_def(path)
        .and_then(|d| d.pointer("/properties/args/prefixItems/0"))
        .map(enum_values)
        .unwrap_or_default()
}

fn enum_values(v: &'static Value) -> Vec<&'static str> {
    let v = def_of_ref(v).unwrap_or(v);
    if let Some(a) = v.get("enum").and_then(Value::as_array) {
        return a.iter().filter_map(Value::as_str).collect();
    }
    v.get("const")
        .and_then(Value::as_str)
        .map(|c| vec![c])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_gives_nodes_properties_and_values() {
        let top: Vec<_> = children(&[]).into_iter().map(|(n, _)| n).collect();
        assert!(
            top.contains(&"stage") && top.contains(&"call-site"),
            "{top:?}"
        );
        let in_stage: Vec<_> = children(&["stage"]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(in_stage, ["pass", "fail", "exhausted", "serial"]);
        assert_eq!(property_values(&["call-site"], "axis"), ["C", "P"]);
        assert_eq!(
            property_values(&["call-site"], "mode"),
            ["llm", "runner", "hybrid", "human"]
        );
        assert!(properties(&["stage"]).contains(&"gate"));
        assert_eq!(argument_values(&["transport", "prompt"]), ["stdin", "arg"]);
    }
}
