//! Which producer a call-site gets now (runner or LLM transport), and why:
//! the kill-switch and scope decisions, pure functions of the model and the
//! environment.

use crate::model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Runner,
    Llm,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Runner => "runner",
            Kind::Llm => "llm",
        }
    }
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sourced<T> {
    pub(crate) value: T,
    /// "pipeline file" or "environment variable NAME".
    pub(crate) source: String,
}

/// A producer: a runner, or an LLM through its transport.
#[derive(Debug, Clone, Copy)]
pub enum Producer<'p> {
    Runner(&'p Runner),
    Llm(&'p Transport, &'p Llm),
}

impl Producer<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            Producer::Runner(_) => Kind::Runner,
            Producer::Llm(..) => Kind::Llm,
        }
    }

    /// The runner's or the transport's name.
    pub fn name(&self) -> &str {
        match self {
            Producer::Runner(r) => &r.name.value,
            Producer::Llm(t, _) => &t.name.value,
        }
    }
}

/// The producer a call-site gets now, and why.
#[derive(Debug, Clone)]
pub struct Choice<'p> {
    pub producer: Producer<'p>,
    /// The runner's kill-switch, when the call-site has a runner.
    pub(crate) enabled: Option<Sourced<bool>>,
    /// Whether the repository is in the runner's scope, likewise.
    pub(crate) in_scope: Option<Sourced<bool>>,
    pub reason: String,
}

/// `1/0/true/false/yes/no/on/off`, any case.
pub(crate) fn parse_switch(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The kill-switch of a runner: its variable when set, else the file's value.
pub(crate) fn switch_value(
    r: &Runner,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Sourced<bool>, String> {
    let Some(sw) = &r.enabled else {
        return Ok(Sourced {
            value: true,
            source: "default (no `enabled`)".into(),
        });
    };
    if let Some(var) = &sw.env {
        if let Some(v) = env(&var.value) {
            return match parse_switch(&v) {
                Some(b) => Ok(Sourced {
                    value: b,
                    source: format!("environment variable {}={v}", var.value),
                }),
                None => Err(format!(
                    "{}={v:?} is not a switch value (use 1/0, true/false, yes/no, on/off)",
                    var.value
                )),
            };
        }
    }
    Ok(Sourced {
        value: sw.enabled,
        source: "pipeline file".into(),
    })
}

/// Whether `repo` is in the runner's scope: its variable (CSV) when set,
/// else the file's list; no `scope` means every repository.
pub(crate) fn scope_value(
    r: &Runner,
    repo: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Sourced<bool> {
    let Some(scope) = &r.scope else {
        return Sourced {
            value: true,
            source: "default (no `scope`: every repository)".into(),
        };
    };
    if let Some(var) = &scope.env {
        if let Some(v) = env(&var.value) {
            let repos: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            return Sourced {
                value: repos.contains(&repo),
                source: format!("environment variable {}={v}", var.value),
            };
        }
    }
    Sourced {
        value: scope.repos.iter().any(|s| s == repo),
        source: format!("pipeline file ({})", scope.repos.join(", ")),
    }
}

/// Picks the producer for a call-site. An error means the stage cannot run
/// as configured and must fail closed.
pub fn choose<'p>(
    p: &'p Pipeline,
    cs: &'p CallSite,
    repo: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Choice<'p>, String> {
    let runner = cs.runner.as_ref().and_then(|r| p.runner(&r.value));
    let llm = cs
        .llm
        .as_ref()
        .and_then(|l| p.transport(&l.transport.value).map(|t| (t, l)));
    match cs.mode.value {
        // A person decides: the engine records a request, nothing is spawned.
        Mode::Human => Err(format!(
            "call-site `{}` has mode=\"human\": a person decides, no process runs",
            cs.name.value
        )),
        Mode::Llm => match llm {
            Some((t, l)) => Ok(Choice {
                producer: Producer::Llm(t, l),
                enabled: None,
                in_scope: None,
                reason: "mode=\"llm\"".into(),
            }),
            None => Err(format!("call-site `{}` has no usable LLM", cs.name.value)),
        },
        Mode::Runner | Mode::Hybrid => {
            let Some(r) = runner else {
                return Err(format!(
                    "call-site `{}` has no usable runner",
                    cs.name.value
                ));
            };
            let enabled = switch_value(r, env)?;
            let in_scope = scope_value(r, repo, env);
            let use_runner = enabled.value && in_scope.value;
            let mut reason = if use_runner {
                format!(
                    "runner `{}` is enabled and repo `{repo}` is in scope",
                    r.name.value
                )
            } else if !enabled.value {
                format!(
                    "runner `{}` is switched off ({})",
                    r.name.value, enabled.source
                )
            } else {
                format!(
                    "repo `{repo}` is not in the scope of runner `{}` ({})",
                    r.name.value, in_scope.source
                )
            };
            let producer = match llm {
                _ if use_runner => Producer::Runner(r),
                Some((t, l)) if cs.mode.value == Mode::Hybrid => {
                    reason.push_str("; falling back to the LLM");
                    Producer::Llm(t, l)
                }
                _ => return Err(format!("{reason}, and mode=\"runner\" has no fallback")),
            };
            Ok(Choice {
                producer,
                enabled: Some(enabled),
                in_scope: Some(in_scope),
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_values() {
        for t in ["1", "true", "YES", "on"] {
            assert_eq!(parse_switch(t), Some(true));
        }
        for f in ["0", "false", "no", "Off"] {
            assert_eq!(parse_switch(f), Some(false));
        }
        assert_eq!(parse_switch("maybe"), None);
    }
}
