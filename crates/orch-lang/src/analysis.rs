//! The front door: a file's text → its checked pipeline and every finding.
//! Load, check the shape, check the semantics, one pass per file; `orch
//! validate`, `orch run` and the other commands all start here.

use std::path::{Path, PathBuf};

use crate::diagnostic::{FileReport, Finding, Severity};
use crate::loader::{self, Loaded};
use crate::model::Pipeline;
use crate::schema;
use crate::validate::{self, Options};

/// Everything known about one analysed file.
pub struct Analysis {
    pub report: FileReport,
    pub pipeline: Pipeline,
    /// Findings of the JSON Schema alone (for the schema/decoder agreement test).
    pub schema_findings: Vec<Finding>,
    /// The decoder's own shape findings.
    pub decoder_findings: Vec<Finding>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error)
    }
}

/// Analyses one file's text. All findings, sorted by position.
pub fn analyze_text(path: &str, text: &str, opts: &Options) -> Analysis {
    schema::prepare_in_background();
    let Loaded {
        source,
        document,
        pipeline,
        structural,
        semantic,
    } = loader::load(path, text);
    // `pipeline.kdl` has the parent "", which is the current directory.
    let dir = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut findings = Vec::new();
    let mut schema_findings = Vec::new();
    match &document {
        None => findings.extend(structural.iter().cloned()),
        Some(doc) => {
            schema_findings = schema::check(&schema::to_json(doc));
            // The schema is the authority on shape; the decoder's findings
            // only stand in if the two ever disagree, so that nothing is lost.
            if schema_findings.is_empty() {
                findings.extend(structural.iter().cloned());
            } else {
                findings.extend(schema_findings.iter().cloned());
            }
            let structural_ok = findings.is_empty();
            findings.extend(semantic);
            findings.extend(validate::check(&pipeline, &dir, structural_ok, opts));
        }
    }
    findings.sort_by(|a, b| {
        // By the code's text, as when codes were strings: output order is stable.
        (a.span.offset(), a.span.len(), a.code.as_str(), &a.message).cmp(&(
            b.span.offset(),
            b.span.len(),
            b.code.as_str(),
            &b.message,
        ))
    });
    findings.dedup();
    Analysis {
        report: FileReport { source, findings },
        pipeline,
        schema_findings,
        decoder_findings: if document.is_some() {
            structural
        } else {
            Vec::new()
        },
    }
}

/// Reads and analyses one file.
pub fn analyze_file(path: &Path, opts: &Options) -> std::io::Result<Analysis> {
    let text = std::fs::read_to_string(path)?;
    Ok(analyze_text(&path.display().to_string(), &text, opts))
}

/// Expands directories into the `*.kdl` files below them, sorted.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "kdl") {
            out.push(p);
        }
    }
    Ok(())
}
