//! Strings with `{placeholder}`s: parsed once by the loader, rendered by the engine.
//!
//! `{{` and `}}` stand for literal braces.

use miette::SourceSpan;
use std::collections::HashMap;

/// A placeholder the language knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Task,
    Stage,
    Attempt,
    Worktree,
    TaskDir,
    /// The absolute directory of the pipeline file.
    PipelineDir,
    Var(String),
    Env(String),
}

/// The placeholders without a `.NAME`, for did-you-mean.
pub(crate) const FIXED_PLACEHOLDERS: &[&str] = &[
    "task",
    "stage",
    "attempt",
    "worktree",
    "task-dir",
    "pipeline-dir",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Literal(String),
    Placeholder(Placeholder, SourceSpan),
}

/// A problem found while parsing a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemplateError {
    pub(crate) message: String,
    pub(crate) span: SourceSpan,
    /// The text between the braces, for did-you-mean.
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub raw: String,
    pub parts: Vec<Part>,
    pub(crate) span: SourceSpan,
}

/// Values for rendering.
#[derive(Debug, Default, Clone)]
pub struct Context {
    pub task: String,
    pub stage: String,
    pub attempt: u32,
    pub worktree: String,
    pub task_dir: String,
    /// The absolute directory of the pipeline file.
    pub pipeline_dir: String,
    pub vars: HashMap<String, String>,
}

impl Template {
    /// Parses `raw`. `span` is the span of the string value in the source and
    /// `inner_offset` the byte offset of its first character when the source
    /// text is the string verbatim between quotes (then placeholder spans are
    /// exact); otherwise every finding points at the whole value.
    pub(crate) fn parse(
        raw: &str,
        span: SourceSpan,
        inner_offset: Option<usize>,
    ) -> (Template, Vec<TemplateError>) {
        let mut scan = Scan {
            raw,
            span,
            inner_offset,
            i: 0,
            lit: String::new(),
            parts: Vec::new(),
            errors: Vec::new(),
        };
        let bytes = raw.as_bytes();
        while scan.i < raw.len() {
            let i = scan.i;
            match (bytes[i], bytes.get(i + 1)) {
                (b'{', Some(b'{')) => scan.literal("{", 2),
                (b'}', Some(b'}')) => scan.literal("}", 2),
                (b'{', _) => scan.placeholder(),
                (b'}', _) => {
                    scan.error(
                        "unmatched `}` in a template (write `}}` for a literal brace)",
                        i,
                    );
                    scan.literal("}", 1);
                }
                _ => {
                    // Copy one whole UTF-8 character.
                    let ch_len = raw[i..].chars().next().map(char::len_utf8).unwrap_or(1);
                    scan.literal(&raw[i..i + ch_len], ch_len);
                }
            }
        }
        scan.flush();
        (
            Template {
                raw: raw.to_string(),
                parts: scan.parts,
                span,
            },
            scan.errors,
        )
    }

    /// A template holding only literal text.
    pub(crate) fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    pub(crate) fn placeholders(&self) -> impl Iterator<Item = (&Placeholder, SourceSpan)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(ph, span) => Some((ph, *span)),
            Part::Literal(_) => None,
        })
    }

    /// Renders the template. An `{env.NAME}` that is not set, or a `{var.NAME}`
    /// without a value, is an error: a command must not run with a silently
    /// empty argument.
    pub(crate) fn render(&self, ctx: &Context) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(p, _) => match p {
                    Placeholder::Task => out.push_str(&ctx.task),
                    Placeholder::Stage => out.push_str(&ctx.stage),
                    Placeholder::Attempt => out.push_str(&ctx.attempt.to_string()),
                    Placeholder::Worktree => out.push_str(&ctx.worktree),
                    Placeholder::TaskDir => out.push_str(&ctx.task_dir),
                    Placeholder::PipelineDir => out.push_str(&ctx.pipeline_dir),
                    Placeholder::Var(name) => match ctx.vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => return Err(format!("variable `{name}` has no value")),
                    },
                    Placeholder::Env(name) => match std::env::var(name) {
                        Ok(v) => out.push_str(&v),
                        Err(_) => return Err(format!("environment variable `{name}` is not set")),
                    },
                },
            }
        }
        Ok(out)
    }
}

fn parse_placeholder(name: &str) -> Option<Placeholder> {
    let valid_ident = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    };
    Some(match name {
        "task" => Placeholder::Task,
        "stage" => Placeholder::Stage,
        "attempt" => Placeholder::Attempt,
        "worktree" => Placeholder::Worktree,
        "task-dir" => Placeholder::TaskDir,
        "pipeline-dir" => Placeholder::PipelineDir,
        _ => {
            if let Some(v) = name.strip_prefix("var.").filter(|v| valid_ident(v)) {
                Placeholder::Var(v.to_string())
            } else if let Some(v) = name.strip_prefix("env.").filter(|v| valid_ident(v)) {
                Placeholder::Env(v.to_string())
            } else {
                return None;
            }
        }
    })
}

/// The state of [`Template::parse`] walking a template's text.
struct Scan<'a> {
    raw: &'a str,
    span: SourceSpan,
    /// Where the text starts in the file, when it is known (a string
    /// written without escapes): each error then points at its bytes.
    inner_offset: Option<usize>,
    i: usize,
    lit: String,
    parts: Vec<Part>,
    errors: Vec<TemplateError>,
}

impl Scan<'_> {
    fn sub_span(&self, start: usize, end: usize) -> SourceSpan {
        match self.inner_offset {
            Some(o) => (o + start, end - start).into(),
            None => self.span,
        }
    }

    /// Literal text `text`, read from `len` bytes of the template.
    fn literal(&mut self, text: &str, len: usize) {
        self.lit.push_str(text);
        self.i += len;
    }

    fn flush(&mut self) {
        if !self.lit.is_empty() {
            self.parts
                .push(Part::Literal(std::mem::take(&mut self.lit)));
        }
    }

    fn error(&mut self, message: &str, at: usize) {
        self.errors.push(TemplateError {
            message: message.to_string(),
            span: self.sub_span(at, at + 1),
            name: None,
        });
    }

    /// `{NAME}` at `self.i`; a `{` with no `}` before the next `{` is an
    /// error and stays as literal text.
    fn placeholder(&mut self) {
        let (raw, i) = (self.raw, self.i);
        let close = raw[i + 1..]
            .find(['}', '{'])
            .map(|rel| i + 1 + rel)
            .filter(|&end| raw.as_bytes()[end] == b'}');
        let Some(end) = close else {
            self.error(
                "unclosed `{` in a template (write `{{` for a literal brace)",
                i,
            );
            self.literal("{", 1);
            return;
        };
        let name = &raw[i + 1..end];
        let ph_span = self.sub_span(i, end + 1);
        match parse_placeholder(name) {
            Some(p) => {
                self.flush();
                self.parts.push(Part::Placeholder(p, ph_span));
            }
            None => self.errors.push(TemplateError {
                message: format!("unknown placeholder `{{{name}}}`"),
                span: ph_span,
                name: Some(name.to_string()),
            }),
        }
        self.i = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Template, Vec<TemplateError>) {
        Template::parse(s, (0, s.len() + 2).into(), Some(1))
    }

    #[test]
    fn renders_known_placeholders_and_escapes() {
        let (t, errs) = parse("{task}/{stage}#{attempt} {{x}} {var.target}");
        assert!(errs.is_empty(), "{errs:?}");
        let mut ctx = Context {
            task: "t1".into(),
            stage: "build".into(),
            attempt: 2,
            ..Context::default()
        };
        ctx.vars.insert("target".into(), "tests/".into());
        assert_eq!(t.render(&ctx).unwrap(), "t1/build#2 {x} tests/");
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors_with_exact_spans() {
        let (_, errs) = parse("a {tsk} b {task");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].span, SourceSpan::from((3, 5)));
        assert_eq!(errs[0].name.as_deref(), Some("tsk"));
        assert!(errs[1].message.contains("unclosed"));
    }

    #[test]
    fn pipeline_dir_renders_the_pipeline_directory() {
        let (t, errs) = parse("sh {pipeline-dir}/demo/agent.sh");
        assert!(errs.is_empty(), "{errs:?}");
        let ctx = Context {
            pipeline_dir: "/abs/pipelines".into(),
            ..Context::default()
        };
        assert_eq!(t.render(&ctx).unwrap(), "sh /abs/pipelines/demo/agent.sh");
    }

    #[test]
    fn missing_variable_is_a_render_error() {
        let (t, _) = parse("{var.nope}");
        assert!(t.render(&Context::default()).is_err());
    }
}
