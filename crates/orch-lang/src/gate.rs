//! Gates: a fail-closed reading of an artifact against its contract.

use std::collections::HashMap;

use crate::model::{Artifact, Expectation, Gate};

/// The gate's decision and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub pass: bool,
    pub reason: String,
}

impl Verdict {
    pub fn fail(reason: impl Into<String>) -> Self {
        Verdict {
            pass: false,
            reason: reason.into(),
        }
    }
}

/// The `KEY: VALUE` lines at the start of a line; the first of each key wins.
pub fn parse_fields(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            continue;
        }
        out.entry(key.to_string())
            .or_insert_with(|| value.trim().to_string());
    }
    out
}

/// Judges an artifact's text against its contract and the gate.
pub fn judge(gate: &Gate, artifact: &Artifact, text: &str) -> Verdict {
    let fields = parse_fields(text);
    for f in &artifact.fields {
        match fields.get(&f.key.value) {
            None if f.required => {
                return Verdict::fail(format!(
                    "artifact {} has no `{}:` line",
                    artifact.path.value, f.key.value
                ))
            }
            None => {}
            Some(v) if !f.allows(v) => {
                let allowed = if f.allowed.is_empty() {
                    "a non-empty value".to_string()
                } else {
                    f.allowed
                        .iter()
                        .map(|a| a.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Verdict::fail(format!(
                    "`{}: {v}` in {} is not allowed (expected {allowed})",
                    f.key.value, artifact.path.value
                ));
            }
            Some(_) => {}
        }
    }
    for e in &gate.expects {
        let key = &e.key.value;
        let Some(value) = fields.get(key) else {
            return Verdict::fail(format!(
                "artifact {} has no `{key}:` line",
                artifact.path.value
            ));
        };
        match &e.expectation {
            Expectation::Equals(want) if value != &want.value => {
                return Verdict::fail(format!("`{key}` is {value}, expected {}", want.value))
            }
            Expectation::Matches(re) => match regex::Regex::new(&re.value) {
                Ok(r) if r.is_match(value) => {}
                Ok(_) => {
                    return Verdict::fail(format!(
                        "`{key}` is {value}, which does not match /{}/",
                        re.value
                    ))
                }
                Err(err) => return Verdict::fail(format!("invalid regex /{}/: {err}", re.value)),
            },
            Expectation::Equals(_) => {}
        }
    }
    let summary = gate
        .expects
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.key.value,
                fields.get(&e.key.value).map(String::as_str).unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Verdict {
        pass: true,
        reason: if summary.is_empty() {
            "artifact meets its contract".to_string()
        } else {
            summary
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_of_a_key_wins_and_only_at_line_start() {
        let f = parse_fields("result: PASS\n  result: FAIL\nresult: FAIL\nnote - x: y\n");
        assert_eq!(f.get("result").map(String::as_str), Some("PASS"));
        assert!(!f.contains_key("note - x"));
    }
}
