//! Findings about a pipeline file, and the one place they are rendered.

use miette::{
    Diagnostic, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

pub use crate::code::{Code, Severity};

/// One finding: a stable code, a message, a label on a span, maybe a help line.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: Code,
    /// The code's severity, kept beside it for the renderers and filters.
    pub severity: Severity,
    pub message: String,
    pub span: SourceSpan,
    pub label: String,
    pub help: Option<String>,
}

impl Finding {
    /// A finding with its code's severity.
    pub(crate) fn new(code: Code, span: SourceSpan, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.severity(),
            message: message.into(),
            span,
            label: "here".to_string(),
            help: None,
        }
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

/// `did you mean `x`?` for the closest candidate, if one is close enough.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(wanted, c);
        if score > 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// How many names of one file get a `did you mean` look-up.
pub(crate) const MAX_SUGGESTED: usize = 100;

/// How many names one file's look-ups may compare, in all.
pub(crate) const MAX_COMPARED: usize = 250_000;

/// [`did_you_mean`] for the checks of one file, with a bound on the work:
/// each look-up compares the name with every candidate, so a file with many
/// references to undefined names among many defined ones made validation
/// quadratic (20,000 stages naming an undefined stage: over a minute). The
/// first [`MAX_SUGGESTED`] look-ups run, while their candidates add up to at
/// most [`MAX_COMPARED`]; after that a finding has no suggestion (the
/// finding itself is still reported). The order of the checks is fixed, so
/// which findings get one is too.
#[derive(Debug)]
pub(crate) struct Suggestions {
    looked_up: usize,
    compared: usize,
}

impl Suggestions {
    pub(crate) fn new() -> Self {
        Suggestions {
            looked_up: 0,
            compared: 0,
        }
    }

    /// [`did_you_mean`], if the budget allows comparing `wanted` with every
    /// candidate (a candidate list of unknown length never is).
    pub(crate) fn did_you_mean<'a>(
        &mut self,
        wanted: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<String> {
        let candidates = candidates.into_iter();
        let n = candidates.size_hint().1?;
        if self.looked_up >= MAX_SUGGESTED || n > MAX_COMPARED - self.compared {
            return None;
        }
        self.looked_up += 1;
        self.compared += n;
        did_you_mean(wanted, candidates)
    }
}

/// A pipeline file's text with its line starts, for line:column look-ups.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub(crate) path: String,
    pub(crate) text: Arc<String>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub(crate) fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        let text: String = text.into();
        // Lines end where the reader's do: at any KDL 2.0 newline (CRLF,
        // CR, LF, NEL, VT, FF, LS, PS).
        let mut line_starts = vec![0];
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match crate::syntax::newline_len(b, i) {
                0 => i += 1,
                n => {
                    i += n;
                    line_starts.push(i);
                }
            }
        }
        SourceFile {
            path: path.into(),
            text: Arc::new(text),
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }
}

/// The file as miette reads it: only the lines around a span, found through
/// the line index. (miette's own `read_span` on a string scans from the
/// start, which made rendering many findings quadratic in the file's size.)
struct Windowed<'a>(&'a SourceFile);

impl SourceCode for Windowed<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let file = self.0;
        let text = file.text.as_str();
        let line_of = |offset: usize| file.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = span.offset().min(text.len());
        let end = (span.offset() + span.len()).min(text.len());
        let first = line_of(start).saturating_sub(context_lines_before);
        let last = line_of(end) + context_lines_after + 1;
        let from = file.line_starts[first];
        let to = file.line_starts.get(last).copied().unwrap_or(text.len());
        let window = &text[from..to];
        let local = SourceSpan::new((start - from).into(), end - start);
        let inner = window.read_span(&local, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            file.path.clone(),
            inner.data(),
            SourceSpan::new((inner.span().offset() + from).into(), inner.span().len()),
            inner.line() + first,
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// The longest source line shown in a snippet, in bytes. miette counts
/// columns in 16 bits and panics past 65,535; a finding on a longer line
/// (or in an empty file) is rendered without its snippet.
const MAX_SNIPPET_LINE: usize = 4096;

impl SourceFile {
    /// Whether the lines a span's snippet would show (with one line of
    /// context either side) are all short enough to print.
    fn snippet_fits(&self, span: SourceSpan) -> bool {
        let text = self.text.as_str();
        if text.is_empty() {
            return false;
        }
        let line_of = |offset: usize| self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = span.offset().min(text.len());
        let end = span.offset().saturating_add(span.len()).min(text.len());
        let first = line_of(start).saturating_sub(1);
        let last = (line_of(end) + 1).min(self.line_starts.len() - 1);
        (first..=last).all(|l| {
            let from = self.line_starts[l];
            let to = self.line_starts.get(l + 1).copied().unwrap_or(text.len());
            to - from <= MAX_SNIPPET_LINE
        })
    }
}

/// A finding bound to its file, which is what miette renders.
struct Rendered<'a> {
    finding: &'a Finding,
    source: Windowed<'a>,
    location: String,
    /// Whether to show the source lines (see [`MAX_SNIPPET_LINE`]).
    snippet: bool,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("finding", self.finding)
            .finish()
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.finding.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.finding.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.finding
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.snippet
            .then_some(&self.source as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.snippet {
            return None;
        }
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.finding.label.clone()),
            self.finding.span,
        ))))
    }
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// miette's report with the source snippet.
    Human,
    /// One JSON document.
    Json,
    /// GitHub Actions workflow commands (`::error file=…`).
    Github,
}

/// The findings of one file.
#[derive(Debug)]
pub struct FileReport {
    pub source: SourceFile,
    pub findings: Vec<Finding>,
}

/// Renders findings of one or more files in the chosen format.
pub fn render(reports: &[FileReport], format: Format, color: bool) -> String {
    match format {
        Format::Human => render_human(reports, color),
        Format::Json => render_json(reports),
        Format::Github => render_github(reports),
    }
}

fn render_human(reports: &[FileReport], color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    let (mut errors, mut warnings) = (0, 0);
    for report in reports {
        for f in &report.findings {
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
            let (line, col) = report.source.line_col(f.span.offset());
            let rendered = Rendered {
                finding: f,
                source: Windowed(&report.source),
                location: format!("{}:{}:{}", report.source.path, line, col),
                snippet: report.source.snippet_fits(f.span),
            };
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, &rendered);
            out.push('\n');
        }
    }
    let files = reports.len();
    out.push_str(&format!(
        "{} file{} checked: {} error{}, {} warning{}\n",
        files,
        plural(files),
        errors,
        plural(errors),
        warnings,
        plural(warnings)
    ));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One finding of the JSON document. Fields in alphabetical order: the
/// order the document has always had (it was built as a sorted map).
#[derive(Serialize)]
struct JsonFinding<'a> {
    code: &'a str,
    column: usize,
    end_column: usize,
    end_line: usize,
    help: Option<&'a str>,
    label: &'a str,
    length: usize,
    line: usize,
    message: &'a str,
    offset: usize,
    path: &'a str,
    severity: Severity,
}

fn render_json(reports: &[FileReport]) -> String {
    let mut findings = Vec::new();
    for report in reports {
        for f in &report.findings {
            let (line, column) = report.source.line_col(f.span.offset());
            let (end_line, end_column) = report.source.line_col(f.span.offset() + f.span.len());
            findings.push(JsonFinding {
                code: f.code.as_str(),
                severity: f.severity,
                message: &f.message,
                label: &f.label,
                help: f.help.as_deref(),
                path: &report.source.path,
                line,
                column,
                end_line,
                end_column,
                offset: f.span.offset(),
                length: f.span.len(),
            });
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let doc = JsonReport {
        version: 1,
        files: reports.iter().map(|r| r.source.path.as_str()).collect(),
        errors,
        warnings: findings.len() - errors,
        findings,
    };
    // Strings, numbers and a derived enum into a String: serde_json fails
    // only on a map with non-string keys or a failing `Serialize`, neither
    // of which these types have. (It printed an empty document "on error".)
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON of plain records");
    s.push('\n');
    s
}

/// `orch validate --format json`'s document (fields in alphabetical order,
/// as [`JsonFinding`]'s).
#[derive(Serialize)]
struct JsonReport<'a> {
    errors: usize,
    files: Vec<&'a str>,
    findings: Vec<JsonFinding<'a>>,
    version: u32,
    warnings: usize,
}

/// Escapes for a workflow command's message (`%`, CR, LF) and, with
/// `property`, for a property value (also `:` and `,`).
fn gh_escape(s: &str, property: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ':' if property => out.push_str("%3A"),
            ',' if property => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
}

fn render_github(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for report in reports {
        for f in &report.findings {
            let (line, col) = report.source.line_col(f.span.offset());
            let (end_line, end_col) = report.source.line_col(f.span.offset() + f.span.len());
            let kind = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut message = f.message.clone();
            if let Some(h) = &f.help {
                message.push_str(&format!(" (help: {h})"));
            }
            out.push_str(&format!(
                "::{kind} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}\n",
                gh_escape(&report.source.path, true),
                gh_escape(f.code.as_str(), true),
                gh_escape(&message, false),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let s = SourceFile::new("x.kdl", "ab\nçd\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(5), (2, 2));
        assert_eq!(s.line_col(100), (3, 1));
    }

    #[test]
    fn suggestions_stop_after_a_number_of_look_ups() {
        let mut s = Suggestions::new();
        for _ in 0..MAX_SUGGESTED {
            assert_eq!(
                s.did_you_mean("testng", ["testing"]).as_deref(),
                Some("did you mean `testing`?")
            );
        }
        assert_eq!(s.did_you_mean("testng", ["testing"]), None);
    }

    #[test]
    fn suggestions_stop_when_the_comparisons_run_out() {
        let names: Vec<String> = (0..MAX_COMPARED / 2)
            .map(|i| format!("stage-{i}"))
            .collect();
        let mut s = Suggestions::new();
        // Two look-ups of half the budget each are all it allows.
        for _ in 0..2 {
            assert!(s
                .did_you_mean("stage-1x", names.iter().map(String::as_str))
                .is_some());
        }
        assert_eq!(s.did_you_mean("stage-1x", ["stage-1"]), None);
        // A list whose length is not known is never compared.
        let mut s = Suggestions::new();
        let mut all = names.iter().map(String::as_str);
        let unknown = std::iter::from_fn(move || all.next());
        assert_eq!(s.did_you_mean("stage-1x", unknown), None);
        assert_eq!(
            s.did_you_mean("stage-1x", ["stage-1"]).as_deref(),
            Some("did you mean `stage-1`?")
        );
    }

    #[test]
    fn did_you_mean_picks_the_closest() {
        assert_eq!(
            did_you_mean("testng", ["analysis", "testing", "deploy"]).as_deref(),
            Some("did you mean `testing`?")
        );
        assert_eq!(did_you_mean("zzz", ["analysis"]), None);
    }

    #[test]
    fn github_escapes_properties_and_messages() {
        assert_eq!(gh_escape("a:b,c%\n", true), "a%3Ab%2Cc%25%0A");
        assert_eq!(gh_escape("a:b,c", false), "a:b,c");
    }
}
