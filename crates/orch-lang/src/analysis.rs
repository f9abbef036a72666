//! The front door: a file's text → its checked pipeline and every finding.
//! Load, check the shape, check the semantics, one pass per file; `orch
//! validate`, `orch run` and the other commands all start here.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::code::Code;
use crate::diagnostic::{FileReport, Finding, Severity, SourceFile};
use crate::limits;
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
///
/// The JSON Schema runs only when the decoder reports a shape error: the
/// two state the same shape and are tested to agree (`tests/validate.rs`,
/// `tests/proptest_loader.rs`, through [`analyze_text_checking_schema`]),
/// so on a well-shaped file the schema would find nothing, and compiling it
/// (about 3 ms, more than reading and checking a small file) is saved.
/// When the decoder objects, the schema's findings are the ones reported,
/// as before.
pub fn analyze_text(path: &str, text: &str, opts: &Options) -> Analysis {
    analyze(
        SourceFile::new(path, text),
        opts,
        SchemaCheck::WhenDecoderObjects,
    )
}

/// As [`analyze_text`], but the JSON Schema checks every parsed document,
/// well-shaped or not: for the tests that the schema and the decoder agree.
pub fn analyze_text_checking_schema(path: &str, text: &str, opts: &Options) -> Analysis {
    analyze(SourceFile::new(path, text), opts, SchemaCheck::Always)
}

/// When the JSON Schema checks a parsed document.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SchemaCheck {
    Always,
    WhenDecoderObjects,
}

fn analyze(source: SourceFile, opts: &Options, mode: SchemaCheck) -> Analysis {
    let shared = std::sync::Arc::clone(&source.text);
    let text: &str = &shared;
    let path = source.path.clone();
    if mode == SchemaCheck::Always {
        schema::prepare_in_background();
    }
    let Loaded {
        source,
        parsed,
        pipeline,
        structural,
        semantic,
        mut dropped,
        complete,
    } = loader::load_source(source);
    // `pipeline.kdl` has the parent "", which is the current directory.
    let dir = Path::new(&path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut findings = Vec::new();
    let mut schema_findings = Vec::new();
    if !parsed {
        findings.extend(structural.iter().cloned());
    } else if !complete {
        // The loader stopped at its fill of findings: the pipeline is the
        // part before, which the schema and the checks would misjudge (every
        // reference to a later stage undefined), and which has errors.
        findings.extend(structural.iter().cloned());
        findings.extend(semantic);
    } else {
        if mode == SchemaCheck::Always || !structural.is_empty() {
            // The loader keeps no tree: read again for the schema, which
            // a well-shaped file never needs.
            if let Ok(doc) = crate::syntax::parse(text) {
                schema_findings = schema::check(&schema::to_json(&doc));
            }
        }
        // The schema is the authority on shape; the decoder's findings
        // only stand in if the two ever disagree, so that nothing is lost.
        if schema_findings.is_empty() {
            findings.extend(structural.iter().cloned());
        } else {
            findings.extend(schema_findings.iter().cloned());
        }
        let structural_ok = findings.is_empty();
        findings.extend(semantic);
        let (checked, more) = validate::check_counted(&pipeline, &dir, structural_ok, opts);
        findings.extend(checked);
        dropped.merge(more);
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
    let mut findings = limits::cap(findings, dropped);
    // The note on what is left out goes where the first of it was.
    findings.sort_by_key(|f| f.span.offset());
    Analysis {
        report: FileReport { source, findings },
        pipeline,
        schema_findings,
        decoder_findings: if parsed { structural } else { Vec::new() },
    }
}

/// Analyses one file's bytes: a file over `limits::MAX_FILE_BYTES` or not
/// UTF-8 is one `orch::bad-file` finding of that file.
pub fn analyze_bytes(path: &str, bytes: &[u8], opts: &Options) -> Analysis {
    if bytes.len() > limits::MAX_FILE_BYTES {
        return refused(path, String::new(), limits::too_large(bytes.len()));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => analyze_text(path, text, opts),
        Err(e) => {
            let at = e.valid_up_to();
            let text = String::from_utf8_lossy(bytes).into_owned();
            let finding = Finding::new(
                Code::BadFile,
                (at, 1).into(),
                format!("the file is not UTF-8 text: the byte at offset {at} is not valid UTF-8"),
            )
            .label("not UTF-8")
            .help("pipeline files are UTF-8; convert it, for example with `iconv -t UTF-8`");
            refused(path, text, finding)
        }
    }
}

/// As [`analyze_bytes`], keeping the bytes as the text (a large file is not
/// copied).
fn analyze_owned_bytes(path: &str, bytes: Vec<u8>, opts: &Options) -> Analysis {
    if bytes.len() > limits::MAX_FILE_BYTES {
        return refused(path, String::new(), limits::too_large(bytes.len()));
    }
    match String::from_utf8(bytes) {
        Ok(text) => analyze(
            SourceFile::new(path, text),
            opts,
            SchemaCheck::WhenDecoderObjects,
        ),
        Err(e) => analyze_bytes(path, e.as_bytes(), opts),
    }
}

/// An analysis of a file orch did not parse: one finding, an empty pipeline.
fn refused(path: &str, text: String, finding: Finding) -> Analysis {
    Analysis {
        report: FileReport {
            source: SourceFile::new(path, text),
            findings: vec![finding],
        },
        pipeline: Pipeline::default(),
        schema_findings: Vec::new(),
        decoder_findings: Vec::new(),
    }
}

/// Reads and analyses one file. A path that does not exist is an error;
/// a file that is there but cannot be checked (not a regular file, not
/// readable, too large, not UTF-8) is an `orch::bad-file` finding of it. A
/// FIFO or device is never opened.
pub fn analyze_file(path: &Path, opts: &Options) -> std::io::Result<Analysis> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path)?;
    let bad = |message: String, label: &str| {
        Ok(refused(
            &shown,
            String::new(),
            Finding::new(Code::BadFile, (0, 0).into(), message).label(label),
        ))
    };
    if meta.is_dir() {
        let why = match std::fs::read_dir(path) {
            Err(e) => e.to_string(),
            Ok(_) => "it is a directory".to_string(),
        };
        return bad(format!("cannot read the directory: {why}"), "not a file");
    }
    if !meta.is_file() {
        return bad(
            format!(
                "not a regular file ({}): orch reads pipelines from regular files only",
                file_kind(&meta.file_type())
            ),
            "not a regular file",
        );
    }
    if meta.len() > limits::MAX_FILE_BYTES as u64 {
        let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        return Ok(refused(&shown, String::new(), limits::too_large(len)));
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        // A file that grew since `metadata` is still read only to the limit.
        f.take(limits::MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => Ok(analyze_owned_bytes(&shown, bytes, opts)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
        Err(e) => bad(format!("cannot read the file: {e}"), "unreadable"),
    }
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Expands directories into the `*.kdl` files below them, sorted. Symbolic
/// links to directories below a named directory are not followed (so a
/// link cycle cannot make the walk endless); links to files are listed. A
/// `*.kdl` that is not a regular file (a FIFO) is listed, never opened, so
/// that [`analyze_file`] reports it; so is a subdirectory that cannot be
/// read. Only a named path that cannot be read is an error.
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
        .map(|e| (e.path(), e.file_type()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, kind) in entries {
        // `file_type` does not follow symbolic links.
        let is_real_dir = kind.as_ref().is_ok_and(|k| k.is_dir());
        if is_real_dir {
            if walk(&p, out).is_err() {
                out.push(p);
            }
        } else if p.extension().is_some_and(|e| e == "kdl") && !(is_link(&kind) && p.is_dir()) {
            out.push(p);
        }
    }
    Ok(())
}

fn is_link(kind: &std::io::Result<std::fs::FileType>) -> bool {
    kind.as_ref().is_ok_and(|k| k.is_symlink())
}
