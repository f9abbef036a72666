//! Gates: a fail-closed reading of an artifact against its contract.

use std::borrow::Cow;
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

/// The most characters of a producer's value a reason quotes. A reason is
/// stored per attempt and per transition, streamed to every event client and
/// shown by the API and the dashboard, so a value the producer made huge
/// must not be copied into it whole.
pub const MAX_QUOTED_CHARS: usize = 200;

/// A producer's value as a reason quotes it: whole if it is at most
/// [`MAX_QUOTED_CHARS`] characters, else its first that many characters
/// (cut on a character boundary) and `… (N bytes)`.
pub fn quoted(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        None => Cow::Borrowed(value),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &value[..cut], value.len())),
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
                    "`{}: {}` in {} is not allowed (expected {allowed})",
                    f.key.value,
                    quoted(v),
                    artifact.path.value
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
                return Verdict::fail(format!(
                    "`{key}` is {}, expected {}",
                    quoted(value),
                    want.value
                ))
            }
            Expectation::Matches(re) => match regex::Regex::new(&re.value) {
                Ok(r) if r.is_match(value) => {}
                Ok(_) => {
                    return Verdict::fail(format!(
                        "`{key}` is {}, which does not match /{}/",
                        quoted(value),
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
                quoted(fields.get(&e.key.value).map(String::as_str).unwrap_or(""))
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

    const PIPELINE: &str = r#"
artifact "rep" path="r.md" {
    field "result" "PASS" "FAIL"
    field "note"
}
gate "eq" artifact="rep" {
    expect "note" "short"
}
gate "re" artifact="rep" {
    expect "note" matches="^x+$"
}
gate "any" artifact="rep" {
    expect "note" matches="."
}
"#;

    fn judged(gate: &str, text: &str) -> Verdict {
        let p = crate::loader::load("p.kdl", PIPELINE).pipeline;
        let g = p.gates.iter().find(|g| g.name.value == gate).unwrap();
        judge(g, &p.artifacts[0], text)
    }

    /// The reason of every verdict that quotes the producer's value, with
    /// a value of `n` bytes.
    fn reasons(value: &str) -> Vec<Verdict> {
        vec![
            judged("eq", &format!("result: {value}\nnote: x\n")),
            judged("eq", &format!("result: PASS\nnote: {value}\n")),
            judged("re", &format!("result: PASS\nnote: {value}\n")),
            judged("any", &format!("result: PASS\nnote: {value}\n")),
        ]
    }

    #[test]
    fn a_reason_quotes_a_long_value_only_in_part() {
        // Multi-byte characters: the cut falls on a character boundary.
        let value = format!("{}{}", "é".repeat(150), "y".repeat(1_000_000));
        let verdicts = reasons(&value);
        let passes: Vec<bool> = verdicts.iter().map(|v| v.pass).collect();
        // The verdicts are those of the whole value.
        assert_eq!(passes, [false, false, false, true]);
        let prefix = format!("{}{}", "é".repeat(150), "y".repeat(50));
        for v in &verdicts {
            assert!(v.reason.len() < 600, "{} bytes", v.reason.len());
            assert!(
                v.reason
                    .contains(&format!("{prefix}… ({} bytes)", value.len())),
                "{}",
                &v.reason[..v.reason.len().min(600)]
            );
        }
    }

    #[test]
    fn a_short_value_is_quoted_whole() {
        let value = "z".repeat(MAX_QUOTED_CHARS);
        for v in reasons(&value) {
            assert!(v.reason.contains(&value), "{}", v.reason);
            assert!(!v.reason.contains('…'), "{}", v.reason);
        }
        assert_eq!(
            judged("eq", "result: PASS\nnote: long\n").reason,
            "`note` is long, expected short"
        );
    }
}
