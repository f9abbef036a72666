//! The call-site map: each call-site's C/P facts, mode and derived
//! classification, as a doc page (Markdown) or a stable JSON document.

use serde::Serialize;

use crate::keyword;
use crate::model::*;

/// The classification `orch` derives from a call-site's axis, verdict kind
/// and mode (the table on the design page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// C, machine, llm: replace now.
    AvoidableLlmControlPath,
    /// C, machine, runner or hybrid.
    Deterministic,
    /// C, judgement, llm: kept, with its justification.
    KeepLlm,
    /// P: not on the control path.
    NotOnControlPath,
    /// C, human: a person decides (an approval).
    PersonDecides,
    /// C, judgement, runner or hybrid: rejected by validation.
    Invalid,
}

/// Who makes a control-path decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Decider {
    Machine,
    Llm,
    Person,
}

impl Decider {
    /// Who decides at a call-site; `None` off the control path.
    pub(crate) fn of(cs: &CallSite) -> Option<Decider> {
        match (cs.axis.value, cs.mode.value) {
            (Axis::P, _) => None,
            (Axis::C, Mode::Human) => Some(Decider::Person),
            (Axis::C, Mode::Llm) => Some(Decider::Llm),
            // A hybrid's runner decides; its LLM is a fallback.
            (Axis::C, Mode::Runner | Mode::Hybrid) => Some(Decider::Machine),
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Decider::Machine => "machine",
            Decider::Llm => "LLM",
            Decider::Person => "person",
        }
    }
}

impl Class {
    pub fn of(cs: &CallSite) -> Class {
        match (cs.axis.value, cs.verdict.value, cs.mode.value) {
            (Axis::P, _, _) => Class::NotOnControlPath,
            (Axis::C, _, Mode::Human) => Class::PersonDecides,
            (Axis::C, VerdictKind::Machine, Mode::Llm) => Class::AvoidableLlmControlPath,
            (Axis::C, VerdictKind::Machine, _) => Class::Deterministic,
            (Axis::C, VerdictKind::Judgement, Mode::Llm) => Class::KeepLlm,
            (Axis::C, VerdictKind::Judgement, _) => Class::Invalid,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Class::AvoidableLlmControlPath => "avoidable LLM control path",
            Class::Deterministic => "deterministic",
            Class::KeepLlm => "keep LLM",
            Class::NotOnControlPath => "not on the control path",
            Class::PersonDecides => "a person decides",
            Class::Invalid => "invalid: a runner cannot give a judgement",
        }
    }
}

pub fn axis_name(a: Axis) -> &'static str {
    match a {
        Axis::C => "C",
        Axis::P => "P",
    }
}

pub fn verdict_name(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::Machine => "machine",
        VerdictKind::Judgement => "judgement",
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct KillSwitch {
    pub(crate) enabled: bool,
    pub(crate) env: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ScopeJson {
    pub(crate) repos: Vec<String>,
    pub(crate) env: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RunnerJson {
    pub(crate) name: String,
    pub(crate) argv: Vec<String>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) writes: Option<String>,
    pub(crate) kill_switch: Option<KillSwitch>,
    pub(crate) scope: Option<ScopeJson>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GateJson {
    pub(crate) stage: String,
    pub(crate) gate: String,
    pub(crate) artifact: String,
    pub(crate) path: String,
    pub(crate) verdict_field: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CallSiteJson {
    pub name: String,
    pub stages: Vec<String>,
    pub axis: &'static str,
    pub verdict: &'static str,
    pub mode: &'static str,
    pub classification: Class,
    /// Who makes the decision; absent off the control path.
    pub(crate) decided_by: Option<Decider>,
    pub(crate) why: Option<String>,
    pub(crate) runner: Option<RunnerJson>,
    pub(crate) transport: Option<String>,
    pub(crate) prompt: Option<String>,
    pub(crate) approval: Option<ApprovalJson>,
    pub(crate) gates: Vec<GateJson>,
}

/// A human call-site's approval: who may decide, and for how long.
#[derive(Debug, Serialize)]
pub(crate) struct ApprovalJson {
    pub(crate) name: String,
    pub(crate) approvers: Vec<String>,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) show: Vec<String>,
    pub(crate) writes: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TransportJson {
    pub(crate) name: String,
    pub(crate) argv: Vec<String>,
    pub(crate) prompt: &'static str,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) cost_per_call: Option<f64>,
}

/// The map as data; the JSON form is this, versioned.
#[derive(Debug, Serialize)]
pub struct Map {
    pub(crate) version: u32,
    pub(crate) pipeline: String,
    pub call_sites: Vec<CallSiteJson>,
    pub(crate) transports: Vec<TransportJson>,
    /// `single-transport=#true` declared, and whether it holds.
    pub(crate) single_transport: SingleTransport,
    pub(crate) avoidable_llm_control_paths: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SingleTransport {
    pub(crate) declared: bool,
    pub(crate) holds: bool,
}

/// The JSON map format's version; bump it when a field changes meaning.
pub(crate) const MAP_VERSION: u32 = 1;

fn argv(c: &Option<Command>) -> Vec<String> {
    c.as_ref()
        .map(|c| c.argv.iter().map(|t| t.raw.clone()).collect())
        .unwrap_or_default()
}

/// The verdict field a gate's artifact is judged on: the field a runner
/// writes, else the first field the gate expects, else the artifact's first.
fn verdict_field(p: &Pipeline, gate: &Gate, runner: Option<&Runner>) -> Option<String> {
    if let Some(w) = runner.and_then(|r| r.writes.as_ref()) {
        if w.artifact.value == gate.artifact.value {
            if let Some(f) = &w.field {
                return Some(f.value.clone());
            }
        }
    }
    gate.expects
        .first()
        .map(|e| e.key.value.clone())
        .or_else(|| {
            p.artifact(&gate.artifact.value)
                .and_then(|a| a.fields.first().map(|f| f.key.value.clone()))
        })
}

/// One call-site's entry: its stages, runner, transport and gates.
fn call_site_json(p: &Pipeline, cs: &CallSite) -> CallSiteJson {
    let stages: Vec<&Stage> = p
        .stages
        .iter()
        .filter(|s| s.call_site.value == cs.name.value)
        .collect();
    let runner = cs.runner.as_ref().and_then(|r| p.runner(&r.value));
    let gates = stages
        .iter()
        .filter_map(|s| {
            let g = p.gate(&s.gate.value)?;
            let a = p.artifact(&g.artifact.value)?;
            Some(GateJson {
                stage: s.name.value.clone(),
                gate: g.name.value.clone(),
                artifact: a.name.value.clone(),
                path: a.path.value.clone(),
                verdict_field: verdict_field(p, g, runner),
            })
        })
        .collect();
    CallSiteJson {
        name: cs.name.value.clone(),
        stages: stages.iter().map(|s| s.name.value.clone()).collect(),
        axis: axis_name(cs.axis.value),
        verdict: verdict_name(cs.verdict.value),
        mode: keyword::mode(cs.mode.value),
        classification: Class::of(cs),
        decided_by: Decider::of(cs),
        why: cs.why.as_ref().map(|w| w.value.clone()),
        runner: runner.map(|r| RunnerJson {
            name: r.name.value.clone(),
            argv: argv(&r.process.command),
            timeout_ms: r
                .process
                .timeout
                .as_ref()
                .map(|t| t.value.as_millis() as u64),
            writes: r.writes.as_ref().map(|w| w.artifact.value.clone()),
            kill_switch: r.enabled.as_ref().map(|e| KillSwitch {
                enabled: e.enabled,
                env: e.env.as_ref().map(|v| v.value.clone()),
            }),
            scope: r.scope.as_ref().map(|s| ScopeJson {
                repos: s.repos.clone(),
                env: s.env.as_ref().map(|v| v.value.clone()),
            }),
        }),
        transport: cs.llm.as_ref().map(|l| l.transport.value.clone()),
        prompt: cs.llm.as_ref().map(|l| l.prompt.value.clone()),
        approval: approval_json(p, cs),
        gates,
    }
}

fn approval_json(p: &Pipeline, cs: &CallSite) -> Option<ApprovalJson> {
    if cs.mode.value != Mode::Human {
        return None;
    }
    let a = p.approval(&cs.approval.as_ref()?.value)?;
    Some(ApprovalJson {
        name: a.name.value.clone(),
        approvers: a.approver_names(),
        expires_ms: a.expires.as_ref().map(|d| d.value.as_millis() as u64),
        show: a.show.iter().map(|s| s.value.clone()).collect(),
        writes: a.writes.as_ref().map(|w| w.value.clone()),
    })
}

pub fn build(p: &Pipeline) -> Map {
    let name = p
        .header
        .as_ref()
        .map(|h| h.name.value.clone())
        .unwrap_or_default();
    let call_sites: Vec<CallSiteJson> = p
        .call_sites
        .iter()
        .map(|cs| call_site_json(p, cs))
        .collect();
    let transports: Vec<TransportJson> = p
        .transports
        .iter()
        .map(|t| TransportJson {
            name: t.name.value.clone(),
            argv: argv(&t.process.command),
            prompt: match t.prompt {
                PromptMode::Stdin => "stdin",
                PromptMode::Arg => "arg",
            },
            timeout_ms: t
                .process
                .timeout
                .as_ref()
                .map(|d| d.value.as_millis() as u64),
            cost_per_call: t.cost_per_call,
        })
        .collect();
    let declared = p.header.as_ref().is_some_and(|h| h.single_transport);
    let avoidable = call_sites
        .iter()
        .filter(|c| c.classification == Class::AvoidableLlmControlPath)
        .map(|c| c.name.clone())
        .collect();
    Map {
        version: MAP_VERSION,
        pipeline: name,
        single_transport: SingleTransport {
            declared,
            holds: transports.len() <= 1,
        },
        call_sites,
        transports,
        avoidable_llm_control_paths: avoidable,
    }
}

pub fn to_json(m: &Map) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(m)? + "\n")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    if s.is_empty() {
        "—".into()
    } else {
        format!("`{}`", cell(s))
    }
}

/// The table row of one call-site.
fn call_site_row(c: &CallSiteJson) -> String {
    let gates = c
        .gates
        .iter()
        .map(|g| {
            format!(
                "`{}` → `{}` ({})",
                g.gate,
                g.path,
                g.verdict_field
                    .as_deref()
                    .map(|f| format!("`{f}`"))
                    .unwrap_or_else(|| "—".into())
            )
        })
        .collect::<Vec<_>>()
        .join("<br>");
    let (switch, scope) = match &c.runner {
        Some(r) => (
            r.kill_switch
                .as_ref()
                .map(|k| {
                    format!(
                        "{}{}",
                        if k.enabled { "on" } else { "off" },
                        k.env
                            .as_deref()
                            .map(|e| format!(" (`{e}`)"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "always on".into()),
            r.scope
                .as_ref()
                .map(|sc| {
                    format!(
                        "{}{}",
                        sc.repos.join(", "),
                        sc.env
                            .as_deref()
                            .map(|e| format!(" (`{e}`)"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "every repo".into()),
        ),
        None => ("—".into(), "—".into()),
    };
    format!(
        "| `{}` | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} |\n",
        cell(&c.name),
        if c.stages.is_empty() {
            "—".into()
        } else {
            c.stages
                .iter()
                .map(|st| format!("`{st}`"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        c.axis,
        c.verdict,
        c.mode,
        c.classification.describe(),
        code(c.runner.as_ref().map(|r| r.name.as_str()).unwrap_or("")),
        code(c.transport.as_deref().unwrap_or("")),
        if gates.is_empty() {
            "—".into()
        } else {
            gates
        },
        switch,
        cell(&scope),
    )
}

pub fn to_markdown(m: &Map) -> String {
    let mut s = format!("# LLM call-site map: pipeline `{}`\n\n", m.pipeline);
    s.push_str(
        "Generated by `orch map` from the pipeline file, which is the source of truth. \
         Do not edit by hand: `orch map --check` fails when this page drifts.\n\n",
    );
    s.push_str("## Call-sites\n\n");
    s.push_str("| call-site | stage(s) | axis | verdict | mode | classification | runner | transport | gate → artifact (verdict field) | kill-switch | scope |\n");
    s.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for c in &m.call_sites {
        s.push_str(&call_site_row(c));
    }
    let kept: Vec<&CallSiteJson> = m
        .call_sites
        .iter()
        .filter(|c| c.classification == Class::KeepLlm)
        .collect();
    if !kept.is_empty() {
        s.push_str("\n## Kept LLM control paths and why\n\n");
        for c in kept {
            s.push_str(&format!(
                "- `{}`: {}\n",
                c.name,
                c.why.as_deref().unwrap_or("(no justification)")
            ));
        }
    }
    s.push_str(&decisions_markdown(m));
    s.push_str("\n## Transports\n\n");
    if m.transports.is_empty() {
        s.push_str("None: no call-site uses an LLM.\n");
    }
    for t in &m.transports {
        s.push_str(&format!(
            "- `{}`: `{}`, prompt on {}, timeout {}{}\n",
            t.name,
            t.argv.join(" "),
            t.prompt,
            t.timeout_ms
                .map(|ms| crate::duration::human(std::time::Duration::from_millis(ms)))
                .unwrap_or_else(|| "none".into()),
            t.cost_per_call
                .map(|c| format!(", cost per call {c}"))
                .unwrap_or_default()
        ));
    }
    s.push_str(&format!(
        "\nSingle transport: {}.\n",
        match (m.single_transport.declared, m.single_transport.holds) {
            (true, true) => "declared, and it holds",
            (true, false) => "declared, and it does NOT hold",
            (false, true) => "not declared; it holds",
            (false, false) => "not declared; several transports are in use",
        }
    ));
    s.push_str("\n## Avoidable LLM control paths\n\n");
    if m.avoidable_llm_control_paths.is_empty() {
        s.push_str("None: every control-path verdict that a machine can compute is computed by a runner.\n");
    } else {
        for c in &m.avoidable_llm_control_paths {
            s.push_str(&format!(
                "- `{c}`: the verdict is a machine fact but an LLM produces it; replace it with a runner (or `mode=\"hybrid\"` to keep a fallback).\n"
            ));
        }
    }
    s
}

/// Every control-path decision and who makes it: a machine, an LLM or a
/// person (with who may decide and for how long).
fn decisions_markdown(m: &Map) -> String {
    let mut s = String::from("\n## Control-path decisions and who makes them\n\n");
    let mut any = false;
    for c in &m.call_sites {
        let Some(d) = c.decided_by else { continue };
        any = true;
        let stages = if c.stages.is_empty() {
            "no stage".to_string()
        } else {
            c.stages
                .iter()
                .map(|st| format!("`{st}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "- `{}` ({stages}): {}",
            cell(&c.name),
            d.describe()
        ));
        if let Some(a) = &c.approval {
            s.push_str(&format!(
                ", approval `{}` by {}, expires after {}",
                a.name,
                if a.approvers.is_empty() {
                    "nobody".to_string()
                } else {
                    a.approvers
                        .iter()
                        .map(|n| format!("`{}`", cell(n)))
                        .collect::<Vec<_>>()
                        .join(" or ")
                },
                a.expires_ms
                    .map(|ms| crate::duration::human(std::time::Duration::from_millis(ms)))
                    .unwrap_or_else(|| "never (invalid)".into())
            ));
        }
        s.push('\n');
    }
    if !any {
        s.push_str("None: no call-site is on the control path.\n");
    }
    s
}

/// A unified diff from `committed` to `generated`, or `None` when equal.
pub fn drift(committed: &str, generated: &str, path: &str) -> Option<String> {
    if committed == generated {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(committed, generated)
            .unified_diff()
            .header(path, "generated by orch map")
            .to_string(),
    )
}
