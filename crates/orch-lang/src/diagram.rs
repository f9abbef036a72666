//! `orch graph`: the transition graph as Mermaid or Graphviz DOT (and, in
//! [`svg`](crate::svg), as a picture drawn from the same stages and edges).

use std::collections::HashMap;

use crate::model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DiagramFormat {
    Mermaid,
    Dot,
}

/// Each stage's mode, through its call-site (looked up once, not per stage).
pub(crate) struct Modes<'p>(HashMap<&'p str, Mode>);

impl<'p> Modes<'p> {
    pub(crate) fn new(p: &'p Pipeline) -> Self {
        let mut m = HashMap::new();
        for c in &p.call_sites {
            m.entry(c.name.as_str()).or_insert(c.mode.value);
        }
        Modes(m)
    }

    pub(crate) fn of(&self, s: &Stage) -> Option<Mode> {
        self.0.get(s.call_site.as_str()).copied()
    }
}

pub(crate) fn label(modes: &Modes<'_>, s: &Stage) -> String {
    let mode = match modes.of(s) {
        Some(Mode::Llm) => "llm",
        Some(Mode::Runner) => "runner",
        Some(Mode::Hybrid) => "hybrid",
        Some(Mode::Human) => "human",
        None => "?",
    };
    format!(
        "{}\n{mode}: {}{}",
        s.name.value,
        s.call_site.value,
        if s.serial { "\nserial" } else { "" }
    )
}

/// Edges: (from, to, label, kind).
pub(crate) fn edges(s: &Stage) -> Vec<(&str, &str, String, &'static str)> {
    let mut out = Vec::new();
    if let Some(t) = &s.pass {
        out.push((
            s.name.as_str(),
            t.target.as_str(),
            "pass".to_string(),
            "pass",
        ));
    }
    if let Some(t) = &s.fail {
        let l = match &t.budget {
            Some(b) => format!("fail (budget {})", b.value),
            None => "fail".to_string(),
        };
        out.push((s.name.as_str(), t.target.as_str(), l, "fail"));
    }
    if let Some(t) = &s.exhausted {
        let l = match &t.alert {
            Some(a) => format!("exhausted (alert {})", a.value),
            None => "exhausted".to_string(),
        };
        out.push((s.name.as_str(), t.target.as_str(), l, "exhausted"));
    }
    out
}

pub fn render(p: &Pipeline, format: DiagramFormat) -> String {
    match format {
        DiagramFormat::Mermaid => mermaid(p),
        DiagramFormat::Dot => dot(p),
    }
}

fn mermaid(p: &Pipeline) -> String {
    let modes = Modes::new(p);
    let stage_index: HashMap<&str, usize> = p
        .stages
        .iter()
        .enumerate()
        .rev()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let end_index: HashMap<&str, usize> = p
        .ends
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    // Mermaid ids cannot hold every character a name can: number them.
    let id = |name: &str| -> String {
        if let Some(i) = stage_index.get(name) {
            format!("s{i}")
        } else if let Some(i) = end_index.get(name) {
            format!("e{i}")
        } else {
            "unknown".into()
        }
    };
    let text = |s: &str| s.replace('"', "#quot;").replace('\n', "<br/>");
    let mut out = String::from("flowchart TD\n");
    for (i, s) in p.stages.iter().enumerate() {
        let l = text(&label(&modes, s));
        let shape = match modes.of(s) {
            Some(Mode::Llm) => format!("s{i}([\"{l}\"])"),
            Some(Mode::Hybrid) => format!("s{i}{{{{\"{l}\"}}}}"),
            // A person's decision: a trapezoid, like a manual operation.
            Some(Mode::Human) => format!("s{i}[/\"{l}\"\\]"),
            _ => format!("s{i}[\"{l}\"]"),
        };
        out.push_str(&format!("    {shape}\n"));
    }
    for (i, e) in p.ends.iter().enumerate() {
        let mark = match e.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        };
        out.push_str(&format!(
            "    e{i}((\"{}<br/>{mark}\"))\n",
            text(&e.name.value)
        ));
    }
    for s in &p.stages {
        for (from, to, l, kind) in edges(s) {
            let arrow = match kind {
                "pass" => "-->",
                "fail" => "-.->",
                _ => "==>",
            };
            out.push_str(&format!(
                "    {} {arrow}|\"{}\"| {}\n",
                id(from),
                text(&l),
                id(to)
            ));
        }
    }
    out.push_str(&mermaid_classes(p, &modes));
    out
}

/// The colour of each stage by who decides it, as Mermaid classes.
fn mermaid_classes(p: &Pipeline, modes: &Modes) -> String {
    let mut out = String::new();
    out.push_str("    classDef llm fill:#fde2e4,stroke:#c9184a\n");
    out.push_str("    classDef runner fill:#d8f3dc,stroke:#2d6a4f\n");
    out.push_str("    classDef hybrid fill:#fff3bf,stroke:#e67700\n");
    if p.stages.iter().any(|s| modes.of(s) == Some(Mode::Human)) {
        out.push_str("    classDef human fill:#dbe4ff,stroke:#364fc7\n");
    }
    for (i, s) in p.stages.iter().enumerate() {
        let class = match modes.of(s) {
            Some(Mode::Llm) => "llm",
            Some(Mode::Hybrid) => "hybrid",
            Some(Mode::Human) => "human",
            _ => "runner",
        };
        out.push_str(&format!("    class s{i} {class}\n"));
    }
    out
}

fn dot(p: &Pipeline) -> String {
    let modes = Modes::new(p);
    let q = |s: &str| {
        format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        )
    };
    let name = p
        .header
        .as_ref()
        .map(|h| h.name.value.as_str())
        .unwrap_or("pipeline");
    let mut out = format!(
        "digraph {} {{\n    rankdir=TB;\n    node [fontname=\"Helvetica\"];\n",
        q(name)
    );
    for s in &p.stages {
        let (shape, color) = match modes.of(s) {
            Some(Mode::Llm) => ("ellipse", "#fde2e4"),
            Some(Mode::Hybrid) => ("hexagon", "#fff3bf"),
            Some(Mode::Human) => ("invtrapezium", "#dbe4ff"),
            _ => ("box", "#d8f3dc"),
        };
        out.push_str(&format!(
            "    {} [label={}, shape={shape}, style=\"filled{}\", fillcolor=\"{color}\"];\n",
            q(&s.name.value),
            q(&label(&modes, s)),
            if s.serial { ",bold" } else { "" }
        ));
    }
    for e in &p.ends {
        let outcome = match e.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        };
        out.push_str(&format!(
            "    {} [label={}, shape=doublecircle];\n",
            q(&e.name.value),
            q(&format!("{}\n{outcome}", e.name.value))
        ));
    }
    for s in &p.stages {
        for (from, to, l, kind) in edges(s) {
            let style = match kind {
                "pass" => "solid",
                "fail" => "dashed",
                _ => "bold",
            };
            out.push_str(&format!(
                "    {} -> {} [label={}, style={style}];\n",
                q(from),
                q(to),
                q(&l)
            ));
        }
    }
    out.push_str("}\n");
    out
}
