//! `orch roadmap`: which LLM control paths to replace first, ranked by what
//! the run history says replacing each would save.

use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

use crate::duration::human;
use crate::map::Class;
use crate::model::{Mode, Pipeline};

#[derive(Debug, Serialize)]
pub struct Entry {
    pub call_site: String,
    pub stages: Vec<String>,
    /// `avoidable` (C, machine, llm) or `hybrid-fallback` (a hybrid whose LLM fallback fired).
    pub kind: &'static str,
    pub(crate) transport: Option<String>,
    pub llm_attempts: usize,
    pub total_ms: i64,
    pub(crate) median_ms: Option<i64>,
    pub cost: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Roadmap {
    pub(crate) version: u32,
    pub(crate) pipeline: String,
    /// False when the store holds no LLM attempts of these call-sites.
    pub(crate) has_history: bool,
    pub entries: Vec<Entry>,
    /// Control-path decisions a person makes (approvals): never replaced,
    /// listed so that the roadmap shows who decides.
    pub(crate) people: Vec<PersonDecision>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PersonDecision {
    pub(crate) call_site: String,
    pub(crate) stages: Vec<String>,
    pub(crate) approvers: Vec<String>,
}

/// Builds the roadmap from the pipeline and `(call-site, duration_ms)` of
/// every recorded LLM attempt.
pub fn build(p: &Pipeline, llm_attempts: &[(String, i64)]) -> Roadmap {
    let mut by_site: HashMap<&str, Vec<i64>> = HashMap::new();
    for (cs, ms) in llm_attempts {
        by_site.entry(cs.as_str()).or_default().push(*ms);
    }
    let mut entries = Vec::new();
    for cs in &p.call_sites {
        let durations = by_site.get(cs.name.value.as_str());
        let kind = match (Class::of(cs), cs.mode.value) {
            (Class::AvoidableLlmControlPath, _) => "avoidable",
            (Class::Deterministic, Mode::Hybrid) if durations.is_some() => "hybrid-fallback",
            _ => continue,
        };
        let mut d: Vec<i64> = durations.cloned().unwrap_or_default();
        d.sort_unstable();
        let transport = cs.llm.as_ref().map(|l| l.transport.value.clone());
        let cost_per_call = transport
            .as_deref()
            .and_then(|t| p.transport(t))
            .and_then(|t| t.cost_per_call);
        entries.push(Entry {
            call_site: cs.name.value.clone(),
            stages: stages_of(p, &cs.name.value),
            kind,
            transport,
            llm_attempts: d.len(),
            total_ms: d.iter().sum(),
            median_ms: median(&d),
            cost: cost_per_call.map(|c| c * d.len() as f64),
        });
    }
    let has_history = entries.iter().any(|e| e.llm_attempts > 0);
    // Most saved first: cost where known, then time; ties keep pipeline order.
    entries.sort_by(|a, b| {
        b.cost
            .unwrap_or(0.0)
            .total_cmp(&a.cost.unwrap_or(0.0))
            .then(b.total_ms.cmp(&a.total_ms))
    });
    Roadmap {
        version: 1,
        pipeline: p
            .header
            .as_ref()
            .map(|h| h.name.value.clone())
            .unwrap_or_default(),
        has_history,
        entries,
        people: people(p),
    }
}

/// The stages that use a call-site, in pipeline order.
fn stages_of(p: &Pipeline, cs: &str) -> Vec<String> {
    p.stages
        .iter()
        .filter(|s| s.call_site.value == cs)
        .map(|s| s.name.value.clone())
        .collect()
}

/// The median of sorted durations.
fn median(d: &[i64]) -> Option<i64> {
    match d.len() {
        0 => None,
        n if n % 2 == 1 => Some(d[n / 2]),
        n => Some((d[n / 2 - 1] + d[n / 2]) / 2),
    }
}

/// The control-path decisions a person makes (approvals), which stay.
fn people(p: &Pipeline) -> Vec<PersonDecision> {
    p.call_sites
        .iter()
        .filter(|cs| Class::of(cs) == Class::PersonDecides)
        .map(|cs| PersonDecision {
            call_site: cs.name.value.clone(),
            stages: stages_of(p, &cs.name.value),
            approvers: cs
                .approval
                .as_ref()
                .and_then(|a| p.approval(&a.value))
                .map(|a| a.approver_names())
                .unwrap_or_default(),
        })
        .collect()
}

/// The roadmap's closing list: decisions a person makes, which stay.
fn people_text(r: &Roadmap) -> String {
    if r.people.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nDecided by a person (approvals, not to replace):\n");
    for d in &r.people {
        s.push_str(&format!(
            "- `{}` (stage {}): {}\n",
            d.call_site,
            if d.stages.is_empty() {
                "none".to_string()
            } else {
                d.stages.join(", ")
            },
            d.approvers.join(" or ")
        ));
    }
    s
}

pub fn to_text(r: &Roadmap) -> String {
    let mut s = format!("Roadmap for pipeline `{}`\n\n", r.pipeline);
    if r.entries.is_empty() {
        s.push_str("Nothing to replace: no avoidable LLM control path, and no hybrid fallback has fired.\n");
        s.push_str(&people_text(r));
        return s;
    }
    if !r.has_history {
        s.push_str("No run history for these call-sites yet: listed in pipeline order.\n\n");
    }
    for (i, e) in r.entries.iter().enumerate() {
        s.push_str(&format!(
            "{}. `{}` (stage {}) — {}\n",
            i + 1,
            e.call_site,
            if e.stages.is_empty() {
                "none".to_string()
            } else {
                e.stages.join(", ")
            },
            match e.kind {
                "avoidable" => "avoidable LLM control path: the verdict is a machine fact",
                _ => "hybrid whose LLM fallback has fired",
            }
        ));
        if e.llm_attempts > 0 {
            s.push_str(&format!(
                "   {} LLM attempt(s), {} in total, median {}{}\n",
                e.llm_attempts,
                human(Duration::from_millis(e.total_ms.max(0) as u64)),
                human(Duration::from_millis(e.median_ms.unwrap_or(0).max(0) as u64)),
                e.cost.map(|c| format!(", cost {c:.2}")).unwrap_or_default()
            ));
        } else {
            s.push_str("   no LLM attempts recorded\n");
        }
    }
    s.push_str(&people_text(r));
    s
}
