//! Hover: what a name stands for (a call-site's classification, what
//! `orch explain` says of a stage, a runner's command and verdicts), and
//! the value of a duration.

use std::collections::HashMap;

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind, Position};
use orch_lang::duration;
use orch_lang::model::*;
use orch_lang::symbols::Kind;
use orch_lang::template::{Part, Placeholder};

use crate::document::Document;
use crate::lexical;

pub(crate) fn hover(doc: &mut Document, pos: Position) -> Option<Hover> {
    let offset = doc.lines.offset(&doc.text, pos);
    let under = doc.index().at(offset).cloned();
    let (markdown, span) = match under {
        Some(o) => (describe(doc, o.key.kind, &o.key.name)?, o.span),
        None => {
            let (a, b) = lexical::string_at(&doc.text, offset)?;
            let d = duration::parse(&doc.text[a..b]).ok()?;
            let value = format!(
                "duration `{}`: {} ({} ms)",
                &doc.text[a..b],
                duration::human(d),
                d.as_millis()
            );
            (value, (a, b - a).into())
        }
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: markdown,
        }),
        range: Some(doc.lines.range(&doc.text, span)),
    })
}

fn describe(doc: &Document, kind: Kind, name: &str) -> Option<String> {
    let p = &doc.analysis.pipeline;
    Some(match kind {
        Kind::CallSite => call_site(p.call_site(name)?),
        Kind::Stage => stage(doc, name)?,
        Kind::Runner => runner(p.runner(name)?),
        Kind::End => format!(
            "end `{name}`: outcome {}",
            match p.end(name)?.outcome {
                Outcome::Success => "success",
                Outcome::Failure => "failure",
            }
        ),
        Kind::Gate => {
            let g = p.gate(name)?;
            let mut s = format!("gate `{name}` reads artifact `{}`", g.artifact.value);
            for e in &g.expects {
                match &e.expectation {
                    Expectation::Equals(v) => {
                        s += &format!("\n- `{}` = `{}`", e.key.value, v.value)
                    }
                    Expectation::Matches(r) => {
                        s += &format!("\n- `{}` matches `/{}/`", e.key.value, r.value)
                    }
                }
            }
            s
        }
        Kind::Artifact => {
            let a = p.artifact(name)?;
            let fields: Vec<_> = a
                .fields
                .iter()
                .map(|f| format!("`{}`", f.key.value))
                .collect();
            format!(
                "artifact `{name}` at `{}`; fields {}",
                a.path.value,
                fields.join(", ")
            )
        }
        Kind::Transport => {
            let t = p.transport(name)?;
            format!(
                "transport `{name}`\n\ncommand: `{}`\n\ntimeout: {}\n\n{}",
                argv(t.process.command.as_ref()),
                t.process
                    .timeout
                    .as_ref()
                    .map_or("none".into(), |d| duration::human(d.value)),
                retry(&t.process.retry)
            )
        }
        Kind::Alert => format!(
            "alert `{name}`: `{}`",
            argv(p.alert(name)?.command.as_ref())
        ),
        Kind::Approval => approval(p.approval(name)?),
        Kind::Var => format!("var `{name}`, default `{}`", p.var_default(name)?),
        Kind::Field => format!("field `{name}`"),
    })
}

fn approval(a: &orch_lang::model::Approval) -> String {
    format!(
        "approval `{}`\n\napprovers: {}\n\nexpires: {}\n\nshows: {}\n\nwrites: {}",
        a.name.value,
        a.approver_names().join(", "),
        a.expires
            .as_ref()
            .map_or("never".into(), |d| duration::human(d.value)),
        if a.show.is_empty() {
            "nothing".into()
        } else {
            a.show
                .iter()
                .map(|s| format!("`{}`", s.value))
                .collect::<Vec<_>>()
                .join(", ")
        },
        a.writes
            .as_ref()
            .map_or("(none)".into(), |w| format!("`{}`", w.value))
    )
}

fn call_site(cs: &CallSite) -> String {
    let mut s = format!(
        "call-site `{}`\n\naxis: {} · verdict: {} · mode: {}\n\nclassification: **{}**",
        cs.name.value,
        orch_lang::map::axis_name(cs.axis.value),
        orch_lang::map::verdict_name(cs.verdict.value),
        orch_lang::keyword::mode(cs.mode.value),
        orch_lang::map::Class::of(cs).describe()
    );
    if let Some(w) = &cs.why {
        s += &format!("\n\nwhy: {}", w.value);
    }
    s
}

fn argv(c: Option<&Command>) -> String {
    c.map(|c| {
        c.argv
            .iter()
            .map(|t| t.raw.clone())
            .collect::<Vec<_>>()
            .join(" ")
    })
    .unwrap_or_else(|| "(none)".into())
}

fn retry(r: &Retry) -> String {
    if r.attempts <= 1 {
        return "retry budget: none (one attempt)".into();
    }
    format!(
        "retry budget: {} attempts on tool-error, delay {}, backoff ×{}{}",
        r.attempts,
        duration::human(r.delay),
        r.backoff,
        r.max_delay
            .map(|d| format!(", at most {}", duration::human(d)))
            .unwrap_or_default()
    )
}

fn runner(r: &Runner) -> String {
    let mut s = format!(
        "runner `{}`\n\ncommand: `{}`\n\ntimeout: {}\n\nexit codes:",
        r.name.value,
        argv(r.process.command.as_ref()),
        r.process
            .timeout
            .as_ref()
            .map_or("none".into(), |d| duration::human(d.value)),
    );
    for m in &r.exit_codes {
        let codes: Vec<_> = m.codes.iter().map(|c| c.value.to_string()).collect();
        s += &format!("\n- {} → {}", codes.join(" "), m.verdict.value);
    }
    if let Some(o) = &r.on_timeout {
        s += &format!("\n- timeout → {}", o.value);
    }
    s += &format!(
        "\n- otherwise → {}\n\n{}",
        r.otherwise
            .as_ref()
            .map_or(TOOL_ERROR, |o| o.value.as_str()),
        retry(&r.process.retry)
    );
    s
}

/// What `orch explain` prints for the stage, with the variables' defaults,
/// the file's directory as the worktree, and this process's environment;
/// values of `{env.NAME}` placeholders and secret variables are hidden.
fn stage(doc: &Document, name: &str) -> Option<String> {
    let p = &doc.analysis.pipeline;
    p.stage(name)?;
    let vars: HashMap<String, String> = p
        .header
        .iter()
        .flat_map(|h| h.vars.iter())
        .map(|v| (v.name.value.clone(), v.default.clone()))
        .collect();
    let dir = doc.dir();
    let repo = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let hidden = hidden_values(p, &vars);
    let env = |k: &str| std::env::var(k).ok();
    let redact = |s: &str| {
        hidden
            .iter()
            .fold(s.to_string(), |acc, h| acc.replace(h.as_str(), "***"))
    };
    let path = doc.path.clone().unwrap_or_else(|| dir.join("pipeline.kdl"));
    let text =
        orch_lang::explain::explain_redacted(p, name, &vars, &repo, &dir, &path, &env, &redact)
            .unwrap_or_else(|e| e);
    Some(format!("```text\n{text}```"))
}

/// The values a hover must not show: secret variables and environment
/// variables a template reads.
fn hidden_values(p: &Pipeline, vars: &HashMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = &p.header {
        for s in &h.secrets {
            let value = match s.value.strip_prefix("var.") {
                Some(v) => vars.get(v).cloned(),
                None => std::env::var(&s.value).ok(),
            };
            out.extend(value);
        }
    }
    let commands = p
        .runners
        .iter()
        .map(|r| &r.process)
        .chain(p.transports.iter().map(|t| &t.process))
        .flat_map(|process| {
            process
                .command
                .iter()
                .flat_map(|c| c.argv.iter())
                .chain(process.env.iter().map(|e| &e.value))
        });
    for t in commands {
        for part in &t.parts {
            if let Part::Placeholder(Placeholder::Env(name), _) = part {
                out.extend(std::env::var(name).ok());
            }
        }
    }
    out.retain(|v| !v.is_empty());
    out
}
