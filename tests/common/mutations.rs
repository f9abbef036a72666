//! The edits the property tests make to valid pipelines (shared by
//! `proptest_loader.rs` and `kdl_reader.rs`): lines and whitespace-separated
//! tokens deleted, duplicated and swapped.

use proptest::prelude::*;

pub const ORCHESTRATOR: &str = include_str!("../../pipelines/orchestrator.kdl");
pub const HYBRID: &str = include_str!("../fixtures/valid/hybrid.kdl");
pub const CYCLE: &str = include_str!("../fixtures/valid/cycle-bounded-by-budget.kdl");

/// An edit; each index is taken modulo the number of lines or tokens.
#[derive(Debug, Clone)]
pub enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    DeleteToken(usize),
    DuplicateToken(usize),
    SwapTokens(usize, usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::DeleteToken),
        any::<usize>().prop_map(Mutation::DuplicateToken),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapTokens(a, b)),
    ]
}

/// Byte ranges of the whitespace-separated tokens of `text`.
pub fn tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

pub fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let toks = tokens(text);
    match m {
        Mutation::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % lines.len());
            lines.concat()
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let i = i % lines.len();
            lines.insert(i, lines[i]);
            lines.concat()
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (a % lines.len(), b % lines.len());
            lines.swap(a, b);
            lines.concat()
        }
        Mutation::DeleteToken(i) if !toks.is_empty() => {
            let (s, e) = toks[i % toks.len()];
            format!("{}{}", &text[..s], &text[e..])
        }
        Mutation::DuplicateToken(i) if !toks.is_empty() => {
            let (s, e) = toks[i % toks.len()];
            format!("{} {}", &text[..e], &text[s..])
        }
        Mutation::SwapTokens(a, b) if !toks.is_empty() => {
            let (a, b) = (toks[a % toks.len()], toks[b % toks.len()]);
            let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
            if first == second {
                return text.to_string();
            }
            format!(
                "{}{}{}{}{}",
                &text[..first.0],
                &text[second.0..second.1],
                &text[first.1..second.0],
                &text[first.0..first.1],
                &text[second.1..]
            )
        }
        _ => text.to_string(),
    }
}

pub fn base() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => Just(ORCHESTRATOR),
        1 => Just(HYBRID),
        1 => Just(CYCLE),
    ]
}
