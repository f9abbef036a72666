//! Property tests: whatever the text, loading and validating it neither
//! panics nor points outside the file, and rendering the findings works.
//!
//! Inputs: arbitrary bytes, KDL-looking noise, and the shipped pipeline and
//! valid fixtures with lines and tokens deleted, duplicated and swapped.

use proptest::prelude::*;

use orch_lang::analysis::{analyze_text, Analysis};
use orch_lang::diagnostic::{render, Format};
use orch_lang::validate::Options;

const ORCHESTRATOR: &str = include_str!("../pipelines/orchestrator.kdl");
const HYBRID: &str = include_str!("fixtures/valid/hybrid.kdl");
const CYCLE: &str = include_str!("fixtures/valid/cycle-bounded-by-budget.kdl");

/// Checks `text` as a file next to the shipped pipeline (so that prompt look-ups
/// run) and asserts the properties every input must have.
fn check_and_assert(text: &str) -> Result<Analysis, TestCaseError> {
    let checked = analyze_text("pipelines/mutated.kdl", text, &Options::default());
    for f in &checked
        .report
        .findings
        .iter()
        .chain(&checked.schema_findings)
        .chain(&checked.decoder_findings)
        .collect::<Vec<_>>()
    {
        let (start, end) = (f.span.offset(), f.span.offset() + f.span.len());
        prop_assert!(
            end <= text.len(),
            "{} `{}` spans {start}..{end}, past the end of a {}-byte text",
            f.code,
            f.message,
            text.len()
        );
        prop_assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "{} `{}` spans {start}..{end}, inside a character",
            f.code,
            f.message
        );
        prop_assert!(!f.message.is_empty(), "{} has no message", f.code);
    }
    for format in [Format::Human, Format::Json, Format::Github] {
        let reports = [orch_lang::diagnostic::FileReport {
            source: checked.report.source.clone(),
            findings: checked.report.findings.clone(),
        }];
        let out = render(&reports, format, false);
        prop_assert!(!out.is_empty() || format == Format::Github);
    }
    Ok(checked)
}

/// The schema and the decoder, which state the same shape, agree on whether
/// a parsed document has a shape error.
fn assert_agree(checked: &Analysis) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        checked.schema_findings.is_empty(),
        checked.decoder_findings.is_empty(),
        "schema: {:?}\ndecoder: {:?}",
        checked
            .schema_findings
            .iter()
            .map(|f| (f.code, &f.message))
            .collect::<Vec<_>>(),
        checked
            .decoder_findings
            .iter()
            .map(|f| (f.code, &f.message))
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// An edit; each index is taken modulo the number of lines or tokens.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    DeleteToken(usize),
    DuplicateToken(usize),
    SwapTokens(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
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
fn tokens(text: &str) -> Vec<(usize, usize)> {
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

fn apply(text: &str, m: &Mutation) -> String {
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

fn base() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => Just(ORCHESTRATOR),
        1 => Just(HYBRID),
        1 => Just(CYCLE),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check_and_assert(&text)?;
    }

    #[test]
    fn kdl_like_noise_never_panics(
        text in "([a-z\\-]{1,8}|\"[a-z{}. é]{0,6}\"|#true|#null|-?[0-9]{1,4}(\\.[0-9])?|[=;{}()/*#\\\\ ]|\n){0,60}"
    ) {
        let checked = check_and_assert(&text)?;
        assert_agree(&checked)?;
    }

    #[test]
    fn mutated_pipelines_never_panic(
        base in base(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let text = mutations.iter().fold(base.to_string(), |t, m| apply(&t, m));
        let checked = check_and_assert(&text)?;
        assert_agree(&checked)?;
    }
}

#[test]
fn mutations_do_what_they_say() {
    let t = "a b\nc d\n";
    assert_eq!(apply(t, &Mutation::DeleteLine(0)), "c d\n");
    assert_eq!(apply(t, &Mutation::DuplicateLine(9)), "a b\nc d\nc d\n");
    assert_eq!(tokens(t), [(0, 1), (2, 3), (4, 5), (6, 7)]);
    assert_eq!(apply(t, &Mutation::DeleteToken(1)), "a \nc d\n");
    assert_eq!(apply(t, &Mutation::DuplicateToken(0)), "a a b\nc d\n");
    assert_eq!(apply(t, &Mutation::SwapTokens(3, 0)), "d b\nc a\n");
}
