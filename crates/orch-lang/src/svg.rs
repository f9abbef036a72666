//! The transition graph as an SVG picture, for the dashboard of `orch
//! serve`: the same stages, labels and edges `orch graph` draws as Mermaid
//! or DOT ([`diagram`](crate::diagram)), laid out here so that no browser
//! script and no Graphviz is needed.
//!
//! Layout: one column, stages in declaration order then the ends. A `pass`
//! to the next node is a straight arrow down; every other edge runs in its
//! own lane, forward edges on the right, backward ones (rollbacks) on the
//! left. LLM stages are pills, runner stages boxes, hybrids hexagons (as
//! Mermaid's stadium, rectangle and hexagon); ends are double circles.

use std::collections::HashMap;
use std::fmt::Write;

use crate::diagram::{edges, label, Modes};
use crate::model::{Mode, Outcome, Pipeline};

const NODE_W: i64 = 230;
const NODE_H: i64 = 62;
const ROW: i64 = 104;
const LANE: i64 = 26;
/// Room for an edge's label beside its lane.
const LABEL_ROOM: i64 = 190;
const TOP: i64 = 16;
/// The horizontal radius of an end's outer circle.
const END_RX: i64 = NODE_W / 3;

use crate::xml::escape as esc;

/// A node of the column: a stage (with its mode) or an end.
struct Node {
    name: String,
    lines: Vec<String>,
    class: &'static str,
}

fn nodes(p: &Pipeline) -> Vec<Node> {
    let modes = Modes::new(p);
    let mut out = Vec::new();
    for s in &p.stages {
        let class = match modes.of(s) {
            Some(Mode::Llm) => "llm",
            Some(Mode::Hybrid) => "hybrid",
            Some(Mode::Runner) => "runner",
            Some(Mode::Human) => "human",
            None => "unknown",
        };
        out.push(Node {
            name: s.name.value.clone(),
            lines: label(&modes, s).lines().map(str::to_string).collect(),
            class,
        });
    }
    for e in &p.ends {
        let (class, outcome) = match e.outcome {
            Outcome::Success => ("end success", "success"),
            Outcome::Failure => ("end failure", "failure"),
        };
        out.push(Node {
            name: e.name.value.clone(),
            lines: vec![e.name.value.clone(), outcome.to_string()],
            class,
        });
    }
    out
}

/// An edge placed: its rows, kind, label and lane (0 for a straight one).
struct Placed {
    from: usize,
    to: usize,
    /// Half the width of the target node (an end is narrower).
    to_half: i64,
    kind: &'static str,
    label: String,
    lane: i64,
}

fn place(p: &Pipeline, index: &HashMap<&str, usize>) -> (Vec<Placed>, i64, i64) {
    let mut out = Vec::new();
    for s in &p.stages {
        for (from, to, l, kind) in edges(s) {
            let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) else {
                continue;
            };
            out.push(Placed {
                from: a,
                to: b,
                to_half: if b >= p.stages.len() {
                    END_RX
                } else {
                    NODE_W / 2
                },
                kind,
                label: l,
                lane: 0,
            });
        }
    }
    // Shorter edges run in the inner lanes, so that lanes do not cross.
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| (out[i].from.abs_diff(out[i].to), i));
    let (mut left, mut right) = (0, 0);
    for i in order {
        let e = &mut out[i];
        e.lane = if e.to == e.from + 1 && e.kind == "pass" {
            0
        } else if e.to >= e.from {
            right += 1;
            right
        } else {
            left += 1;
            -left
        };
    }
    (out, left, right)
}

/// The pipeline's graph as a standalone `<svg>` element. Every node is a
/// `<g class="node MODE" data-stage="NAME">` with a `<title>`, so a page can
/// style and find it.
pub fn render(p: &Pipeline) -> String {
    let nodes = nodes(p);
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate().rev() {
        index.insert(n.name.as_str(), i);
    }
    let (placed, left, right) = place(p, &index);
    let cx = 20 + left * LANE + if left > 0 { LABEL_ROOM } else { 0 } + NODE_W / 2;
    let width = cx + NODE_W / 2 + right * LANE + LABEL_ROOM + 20;
    let height = TOP * 2 + nodes.len().max(1) as i64 * ROW - (ROW - NODE_H);
    let top = |i: usize| TOP + i as i64 * ROW;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"orch-graph\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"stage graph\">\
         <defs><marker id=\"orch-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"currentColor\"/></marker></defs>"
    );
    for e in &placed {
        edge(&mut svg, e, cx, &top);
    }
    for (i, n) in nodes.iter().enumerate() {
        node(&mut svg, n, cx, top(i));
    }
    svg.push_str("</svg>");
    svg
}

fn edge(svg: &mut String, e: &Placed, cx: i64, top: &impl Fn(usize) -> i64) {
    let class = format!("edge {}", e.kind);
    let label = esc(&e.label);
    if e.lane == 0 {
        let (y1, y2) = (top(e.from) + NODE_H, top(e.to));
        let _ = write!(
            svg,
            "<g class=\"{class}\"><path d=\"M{cx},{y1}L{cx},{y2}\" marker-end=\"url(#orch-arrow)\"/>\
             <text x=\"{}\" y=\"{}\">{label}</text></g>",
            cx + 8,
            (y1 + y2) / 2 + 4
        );
        return;
    }
    let right = e.lane > 0;
    let sign = if right { 1 } else { -1 };
    let from_side = cx + sign * NODE_W / 2;
    let to_side = cx + sign * e.to_half;
    let x = from_side + e.lane * LANE;
    // Lanes leave and reach their nodes a little apart.
    let apart = (2 + 7 * e.lane.abs()).min(NODE_H / 2 - 4);
    let y1 = top(e.from) + NODE_H / 2 + sign * apart;
    let y2 = top(e.to) + NODE_H / 2 - sign * apart;
    let (tx, anchor) = if right {
        (x + 6, "start")
    } else {
        (x - 6, "end")
    };
    let _ = write!(
        svg,
        "<g class=\"{class}\"><path d=\"M{from_side},{y1}L{x},{y1}L{x},{y2}L{to_side},{y2}\" \
         marker-end=\"url(#orch-arrow)\"/><text x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text></g>",
        (y1 + y2) / 2 + 4
    );
}

fn node(svg: &mut String, n: &Node, cx: i64, y: i64) {
    let x = cx - NODE_W / 2;
    let (w, h) = (NODE_W, NODE_H);
    let shape = match n.class {
        "llm" => format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"{}\"/>",
            h / 2
        ),
        "hybrid" => {
            let d = 18;
            format!(
                "<polygon points=\"{},{y} {},{y} {},{} {},{} {},{} {x},{}\"/>",
                x + d,
                x + w - d,
                x + w,
                y + h / 2,
                x + w - d,
                y + h,
                x + d,
                y + h,
                y + h / 2
            )
        }
        // A person decides: a trapezoid, as `orch graph` draws it.
        "human" => {
            let d = 14;
            format!(
                "<polygon points=\"{x},{y} {},{y} {},{} {},{}\"/>",
                x + w,
                x + w - d,
                y + h,
                x + d,
                y + h
            )
        }
        c if c.starts_with("end") => format!(
            "<ellipse cx=\"{cx}\" cy=\"{}\" rx=\"{}\" ry=\"{}\"/><ellipse cx=\"{cx}\" cy=\"{}\" rx=\"{}\" ry=\"{}\"/>",
            y + h / 2,
            END_RX,
            h / 2,
            y + h / 2,
            END_RX - 5,
            h / 2 - 5
        ),
        _ => format!("<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"3\"/>"),
    };
    let name = esc(&n.name);
    let _ = write!(
        svg,
        "<g class=\"node {}\" data-stage=\"{name}\"><title>{}</title>{shape}",
        n.class,
        esc(&n.lines.join(", "))
    );
    let first = y + h / 2 - (n.lines.len() as i64 - 1) * 8 + 4;
    for (i, line) in n.lines.iter().enumerate() {
        let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
        let _ = write!(
            svg,
            "<text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\"{weight}>{}</text>",
            first + i as i64 * 16,
            esc(line)
        );
    }
    svg.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
pipeline "p" start="plan" {
}
artifact "r" path="r.md" {
    field "result" "PASS" "FAIL"
}
gate "ok" artifact="r" {
    expect "result" "PASS"
}
runner "t" {
    command "true"
    writes "r"
}
transport "claude" {
    command "true"
    prompt "stdin"
}
call-site "c-run" axis="C" verdict="machine" mode="runner" {
    runner "t"
}
call-site "c-llm" axis="P" verdict="judgement" mode="llm" {
    llm transport="claude" prompt="p.md"
}
stage "plan" call-site="c-llm" gate="ok" {
    pass "test"
    exhausted "failed"
}
stage "test" call-site="c-run" gate="ok" {
    pass "done"
    fail "plan" budget=2
    exhausted "failed"
    serial #true
}
end "done" outcome="success"
end "failed" outcome="failure"
"#;

    #[test]
    fn every_stage_and_end_is_a_node_and_modes_are_told_apart() {
        let p = crate::loader::load("p.kdl", PIPELINE).pipeline;
        let svg = render(&p);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        for (name, class) in [
            ("plan", "node llm"),
            ("test", "node runner"),
            ("done", "node end success"),
            ("failed", "node end failure"),
        ] {
            assert!(
                svg.contains(&format!("<g class=\"{class}\" data-stage=\"{name}\">")),
                "{name} as {class} in {svg}"
            );
        }
        // The rollback runs on the left with its budget; pass is straight.
        assert!(svg.contains("<g class=\"edge fail\">"));
        assert!(svg.contains("fail (budget 2)"));
        assert!(svg.contains("text-anchor=\"end\">fail (budget 2)</text>"));
        assert!(svg.contains("serial"));
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}
