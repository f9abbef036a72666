//! The validator's checks on the transition graph (drawing it is
//! `diagram.rs`), each linear in stages + transitions:
//! reachability from `start`, a path to an end from every stage, and cycles
//! that only a `fail … budget=N` edge may close.

use miette::SourceSpan;
use std::collections::VecDeque;

use crate::hash::HashMap;

use crate::code::Code;
use crate::diagnostic::Finding;
use crate::model::*;

/// Which transition of a stage an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pass,
    Fail,
    Exhausted,
}

/// Stages are nodes `0..stages`, ends follow.
struct Graph<'p> {
    p: &'p Pipeline,
    /// All edges: (target, bounded by a fail budget, the transition).
    edges: Vec<Vec<(usize, bool, Slot)>>,
    stages: usize,
}

impl<'p> Graph<'p> {
    fn new(p: &'p Pipeline) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::default();
        for (i, s) in p.stages.iter().enumerate() {
            index.entry(s.name.value.as_str()).or_insert(i);
        }
        for (i, e) in p.ends.iter().enumerate() {
            index
                .entry(e.name.value.as_str())
                .or_insert(p.stages.len() + i);
        }
        let mut edges = vec![Vec::new(); p.stages.len() + p.ends.len()];
        for (i, s) in p.stages.iter().enumerate() {
            for (t, bounded, slot) in [
                (&s.pass, false, Slot::Pass),
                (
                    &s.fail,
                    s.fail.as_ref().is_some_and(|f| f.budget.is_some()),
                    Slot::Fail,
                ),
                (&s.exhausted, false, Slot::Exhausted),
            ] {
                if let Some(t) = t {
                    if let Some(&j) = index.get(t.target.value.as_str()) {
                        edges[i].push((j, bounded, slot));
                    }
                }
            }
        }
        Graph {
            p,
            edges,
            stages: p.stages.len(),
        }
    }

    fn reachable_from(&self, start: usize) -> Vec<bool> {
        let mut seen = vec![false; self.edges.len()];
        let mut queue = VecDeque::from([start]);
        seen[start] = true;
        while let Some(n) = queue.pop_front() {
            for &(m, _, _) in &self.edges[n] {
                if !seen[m] {
                    seen[m] = true;
                    queue.push_back(m);
                }
            }
        }
        seen
    }

    fn reaches_an_end(&self) -> Vec<bool> {
        let mut rev = vec![Vec::new(); self.edges.len()];
        for (n, out) in self.edges.iter().enumerate() {
            for &(m, _, _) in out {
                rev[m].push(n);
            }
        }
        let mut seen = vec![false; self.edges.len()];
        let mut queue: VecDeque<usize> = (self.stages..self.edges.len()).collect();
        for &e in &queue {
            seen[e] = true;
        }
        while let Some(n) = queue.pop_front() {
            for &m in &rev[n] {
                if !seen[m] {
                    seen[m] = true;
                    queue.push_back(m);
                }
            }
        }
        seen
    }

    /// Strongly connected components of the graph without budgeted `fail`
    /// edges (Tarjan's algorithm, iterative so deep pipelines cannot
    /// overflow the stack). Returns each component's nodes.
    fn unbounded_components(&self) -> Vec<Vec<usize>> {
        let n = self.edges.len();
        let succ = |v: usize| {
            self.edges[v]
                .iter()
                .filter(|(_, b, _)| !b)
                .map(|(m, _, _)| *m)
        };
        let mut index = vec![usize::MAX; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut next = 0;
        let mut out = Vec::new();
        for root in 0..n {
            if index[root] != usize::MAX {
                continue;
            }
            // (node, position in its successor list)
            let mut work = vec![(root, 0usize)];
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(top) = work.len().checked_sub(1) {
                let (v, pos) = work[top];
                if let Some(w) = succ(v).nth(pos) {
                    work[top].1 += 1;
                    if index[w] == usize::MAX {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        work.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                } else {
                    work.pop();
                    if let Some(&(parent, _)) = work.last() {
                        low[parent] = low[parent].min(low[v]);
                    }
                    if low[v] == index[v] {
                        let mut comp = Vec::new();
                        while let Some(w) = stack.pop() {
                            on_stack[w] = false;
                            comp.push(w);
                            if w == v {
                                break;
                            }
                        }
                        let self_loop = succ(v).any(|m| m == v);
                        if comp.len() > 1 || self_loop {
                            comp.sort_unstable();
                            out.push(comp);
                        }
                    }
                }
            }
        }
        out
    }

    /// A shortest cycle through `from` inside `comp`, as node indices from
    /// `from` back to `from`.
    fn cycle(&self, from: usize, comp: &[usize]) -> Vec<usize> {
        let in_comp = |v: usize| comp.binary_search(&v).is_ok();
        let mut prev: HashMap<usize, usize> = HashMap::default();
        let mut queue = VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            for &(m, bounded, _) in &self.edges[v] {
                if bounded || !in_comp(m) {
                    continue;
                }
                if m == from {
                    let mut path = vec![v];
                    let mut cur = v;
                    while cur != from {
                        cur = prev[&cur];
                        path.push(cur);
                    }
                    path.reverse();
                    path.push(from);
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                    e.insert(v);
                    queue.push_back(m);
                }
            }
        }
        vec![from]
    }

    /// The unbudgeted transition of stage `from` that leads to `to`: a bare
    /// `fail` first, since adding its budget is the usual fix.
    fn closing(&self, from: usize, to: usize) -> Option<(Slot, &'p Transition)> {
        let s = &self.p.stages[from];
        let slots = |slot| {
            self.edges[from]
                .iter()
                .any(|&(m, bounded, k)| m == to && !bounded && k == slot)
        };
        [
            (Slot::Fail, &s.fail),
            (Slot::Pass, &s.pass),
            (Slot::Exhausted, &s.exhausted),
        ]
        .into_iter()
        .find(|(slot, _)| slots(*slot))
        .and_then(|(slot, t)| Some((slot, t.as_ref()?)))
    }

    fn name(&self, i: usize) -> &str {
        if i < self.stages {
            &self.p.stages[i].name.value
        } else {
            &self.p.ends[i - self.stages].name.value
        }
    }
}

pub fn check(p: &Pipeline) -> Vec<Finding> {
    let mut out = Vec::new();
    if p.stages.is_empty() {
        return out;
    }
    let g = Graph::new(p);
    let start = p
        .header
        .as_ref()
        .and_then(|h| p.stages.iter().position(|s| s.name.value == h.start.value));
    let reachable = start.map(|s| g.reachable_from(s));
    let to_end = g.reaches_an_end();
    for (i, s) in p.stages.iter().enumerate() {
        match &reachable {
            Some(r) if !r[i] => out.push(
                Finding::new(
                    Code::UnreachableStage,
                    s.name.span,
                    format!("stage `{}` cannot be reached from the start", s.name.value),
                )
                .label("unreachable")
                .help("point a `pass`, `fail` or `exhausted` transition at it, or remove it"),
            ),
            _ => {
                if !to_end[i] {
                    out.push(
                        Finding::new(
                            Code::NoPathToEnd,
                            s.name.span,
                            format!("stage `{}` has no path to an end", s.name.value),
                        )
                        .label("a task here could never finish")
                        .help("give it a transition that leads to an `end`"),
                    );
                }
            }
        }
    }
    for comp in g.unbounded_components() {
        out.push(unbounded_cycle(&g, &comp));
    }
    out
}

/// A transition's keyword and target: its node span runs on over trailing
/// blanks up to a comment.
fn head_span(t: &Transition) -> SourceSpan {
    let start = t.span.offset();
    let end = t.target.span.offset() + t.target.span.len();
    (start, end.saturating_sub(start)).into()
}

/// The finding for one unbounded cycle, labelled on the transition that
/// closes it: that line is what the user edits.
fn unbounded_cycle(g: &Graph<'_>, comp: &[usize]) -> Finding {
    let first = comp[0];
    let path = g.cycle(first, comp);
    let names: Vec<&str> = path.iter().map(|&i| g.name(i)).collect();
    let last = path.len().checked_sub(2).map_or(first, |i| path[i]);
    let route = "route the loop back through a `fail \"STAGE\" budget=N` transition".to_string();
    let (span, label, help) = match g.closing(last, first) {
        Some((Slot::Fail, t)) => (
            head_span(t),
            "this `fail` has no `budget`",
            format!("bound it: `fail \"{}\" budget=N`", t.target.value),
        ),
        Some((_, t)) => (
            head_span(t),
            "loops back with no `fail … budget=N` on the way",
            route,
        ),
        None => (
            g.p.stages[first].name.span,
            "a task could loop here forever",
            route,
        ),
    };
    Finding::new(
        Code::UnboundedCycle,
        span,
        format!(
            "the cycle {} has no `fail … budget=N` to bound it",
            names.join(" → ")
        ),
    )
    .label(label)
    .help(help)
}
