//! Property tests: whatever the text, loading and validating it neither
//! panics nor points outside the file, and rendering the findings works.
//!
//! Inputs: arbitrary bytes, KDL-looking noise, and the shipped pipeline and
//! valid fixtures with lines and tokens deleted, duplicated and swapped.

use proptest::prelude::*;

use orch_lang::analysis::{analyze_text, analyze_text_checking_schema, Analysis};
use orch_lang::diagnostic::{render, Format};
use orch_lang::validate::Options;

#[path = "common/mutations.rs"]
mod mutations;
use mutations::{apply, base, mutation, tokens, Mutation};

/// Checks `text` as a file next to the shipped pipeline (so that prompt look-ups
/// run) and asserts the properties every input must have.
fn check_and_assert(text: &str) -> Result<Analysis, TestCaseError> {
    let checked = analyze_text_checking_schema("pipelines/mutated.kdl", text, &Options::default());
    // Skipping the schema when the decoder finds the shape right (what the
    // commands do) reports the same findings.
    let lazy = analyze_text("pipelines/mutated.kdl", text, &Options::default());
    prop_assert_eq!(&lazy.report.findings, &checked.report.findings);
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
