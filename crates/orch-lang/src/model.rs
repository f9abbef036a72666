//! The typed pipeline model, decoded from KDL by the loader.
//!
//! Every value a user wrote keeps its source span, so that the checks and
//! the engine can point back into the file without re-reading any text.

use miette::SourceSpan;
use std::time::Duration;

use crate::template::Template;

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub(crate) span: SourceSpan,
}

impl<T> Spanned<T> {
    pub(crate) fn new(value: T, span: SourceSpan) -> Self {
        Spanned { value, span }
    }
}

impl Spanned<String> {
    pub(crate) fn as_str(&self) -> &str {
        &self.value
    }
}

pub(crate) type Name = Spanned<String>;

/// A whole pipeline file.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub header: Option<Header>,
    pub transports: Vec<Transport>,
    pub artifacts: Vec<Artifact>,
    pub(crate) gates: Vec<Gate>,
    pub runners: Vec<Runner>,
    pub(crate) call_sites: Vec<CallSite>,
    pub stages: Vec<Stage>,
    pub(crate) ends: Vec<End>,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) approvals: Vec<Approval>,
    /// Every named top-level node as written, in file order, including those
    /// that failed to decode: one broken node must not make each reference
    /// to it an error too.
    pub declarations: Vec<Declaration>,
}

/// A top-level node's keyword, name and child keywords, recorded by the
/// loader before decoding, whether or not the node decodes.
#[derive(Debug, Clone)]
pub struct Declaration {
    /// `stage`, `end`, `runner`, … (never `pipeline`).
    pub(crate) keyword: &'static str,
    /// The first argument, when it is a string (maybe empty).
    pub(crate) name: Name,
    /// The keyword of each child node: a runner whose `timeout` is
    /// malformed has one, it is not missing.
    pub(crate) children: Vec<Name>,
}

/// The `pipeline "NAME" start="STAGE"` node.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: Name,
    pub start: Name,
    pub(crate) single_transport: bool,
    pub vars: Vec<Var>,
    /// `secret "NAME" "var.NAME"…`: environment variables (`{env.NAME}`)
    /// and pipeline variables (`var.NAME`) whose values orch redacts.
    pub secrets: Vec<Name>,
}

#[derive(Debug, Clone)]
pub struct Var {
    pub name: Name,
    pub default: String,
}

/// A command line: argv0 and its arguments, each a template.
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<Template>,
}

#[derive(Debug, Clone)]
pub struct EnvVar {
    pub(crate) key: Name,
    pub value: Template,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptMode {
    Stdin,
    Arg,
}

/// `retry "tool-error" attempts=N delay=D backoff=F max-delay=D`.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Total attempts, the first one included.
    pub attempts: u32,
    pub delay: Duration,
    pub backoff: f64,
    pub max_delay: Option<Duration>,
    pub span: SourceSpan,
}

impl Retry {
    /// No retry: one attempt.
    pub fn none() -> Self {
        Retry {
            attempts: 1,
            delay: Duration::ZERO,
            backoff: 1.0,
            max_delay: None,
            span: (0, 0).into(),
        }
    }

    /// The delay before attempt `next` (2-based: the first retry is attempt 2).
    pub fn delay_before(&self, next: u32) -> Duration {
        let exp = next.saturating_sub(2).min(64) as i32;
        let secs = self.delay.as_secs_f64() * self.backoff.powi(exp);
        let mut d = if secs.is_finite() && secs < 1.0e9 {
            Duration::from_secs_f64(secs.max(0.0))
        } else {
            Duration::from_secs(1_000_000_000)
        };
        if let Some(max) = self.max_delay {
            d = d.min(max);
        }
        d
    }
}

/// A producer's process: what a runner or a transport runs, where, with
/// which environment, for how long, and how often it is tried. The one
/// definition of the settings both share; the engine spawns it through
/// [`crate::invocation`].
#[derive(Debug, Clone)]
pub struct Process {
    /// `command`; `None` when missing or malformed (validation reports it).
    pub command: Option<Command>,
    /// `cwd`, beneath the worktree; the worktree itself when `None`.
    pub(crate) cwd: Option<Template>,
    /// `env "KEY" "VALUE"`, each on top of orch's own variables.
    pub env: Vec<EnvVar>,
    /// `timeout`; `None` when missing or malformed (validation reports it).
    pub timeout: Option<Spanned<Duration>>,
    /// `idle-timeout`: how long an attempt may print nothing.
    pub(crate) idle_timeout: Option<Spanned<Duration>>,
    /// `grace`: the delay between SIGTERM and SIGKILL to its process group.
    pub(crate) grace: Duration,
    /// `retry "tool-error" …`; one attempt when not given.
    pub retry: Retry,
}

impl Process {
    /// Every template of the process: the command's arguments, the
    /// directory, then the environment's values.
    pub(crate) fn templates(&self) -> impl Iterator<Item = &Template> {
        self.command
            .iter()
            .flat_map(|c| c.argv.iter())
            .chain(self.cwd.iter())
            .chain(self.env.iter().map(|e| &e.value))
    }
}

/// How an LLM is invoked.
#[derive(Debug, Clone)]
pub struct Transport {
    pub(crate) name: Name,
    pub process: Process,
    pub(crate) prompt: PromptMode,
    pub(crate) cost_per_call: Option<f64>,
    /// `labels "gpu" …`: what a service must have to run its stages.
    pub(crate) labels: Vec<Spanned<String>>,
    pub(crate) span: SourceSpan,
}

/// One `field "KEY" "ALLOWED"…` of an artifact contract.
#[derive(Debug, Clone)]
pub struct Field {
    pub key: Name,
    /// Empty: any non-empty value.
    pub(crate) allowed: Vec<Spanned<String>>,
    pub(crate) required: bool,
}

impl Field {
    pub(crate) fn allows(&self, value: &str) -> bool {
        if self.allowed.is_empty() {
            !value.trim().is_empty()
        } else {
            self.allowed.iter().any(|a| a.value == value)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: Name,
    pub path: Spanned<String>,
    pub fields: Vec<Field>,
    pub(crate) span: SourceSpan,
}

impl Artifact {
    pub(crate) fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key.value == key)
    }
}

#[derive(Debug, Clone)]
pub enum Expectation {
    Equals(Spanned<String>),
    Matches(Spanned<String>),
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub key: Name,
    pub expectation: Expectation,
}

#[derive(Debug, Clone)]
pub struct Gate {
    pub(crate) name: Name,
    pub artifact: Name,
    pub expects: Vec<Expect>,
    pub(crate) span: SourceSpan,
}

/// `exit-code 1 5 verdict="FAIL"`.
#[derive(Debug, Clone)]
pub struct ExitMapping {
    pub codes: Vec<Spanned<i32>>,
    pub verdict: Spanned<String>,
}

/// `enabled #true env="VAR"`: the kill-switch.
#[derive(Debug, Clone)]
pub(crate) struct Switch {
    pub(crate) enabled: bool,
    pub(crate) env: Option<Name>,
}

/// `scope "repo" … env="VAR"`.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) repos: Vec<String>,
    pub(crate) env: Option<Name>,
}

/// `writes "ARTIFACT" field="KEY"`.
#[derive(Debug, Clone)]
pub struct Writes {
    pub artifact: Name,
    /// The verdict field; the artifact's first field when not given.
    pub field: Option<Name>,
    pub(crate) span: SourceSpan,
}

/// A deterministic producer.
#[derive(Debug, Clone)]
pub struct Runner {
    pub name: Name,
    pub process: Process,
    pub exit_codes: Vec<ExitMapping>,
    pub on_timeout: Option<Spanned<String>>,
    pub otherwise: Option<Spanned<String>>,
    pub(crate) enabled: Option<Switch>,
    pub(crate) scope: Option<Scope>,
    pub writes: Option<Writes>,
    /// `labels "gpu" …`: what a service must have to run its stages.
    pub(crate) labels: Vec<Spanned<String>>,
    pub(crate) span: SourceSpan,
}

impl Runner {
    /// The verdict for a finished process's exit code.
    pub fn verdict_for_exit(&self, code: i32) -> &str {
        self.exit_codes
            .iter()
            .find(|m| m.codes.iter().any(|c| c.value == code))
            .map(|m| m.verdict.value.as_str())
            .or(self.otherwise.as_ref().map(|o| o.value.as_str()))
            .unwrap_or(TOOL_ERROR)
    }

    /// The verdict when the attempt timed out.
    pub fn verdict_on_timeout(&self) -> &str {
        self.on_timeout
            .as_ref()
            .map(|o| o.value.as_str())
            .unwrap_or(TOOL_ERROR)
    }

    /// Every verdict this runner can give, with where it is written.
    pub(crate) fn verdicts(&self) -> impl Iterator<Item = &Spanned<String>> {
        self.exit_codes
            .iter()
            .map(|m| &m.verdict)
            .chain(self.on_timeout.iter())
            .chain(self.otherwise.iter())
    }
}

/// The reserved verdict: the producer did not execute.
pub const TOOL_ERROR: &str = "tool-error";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    C,
    P,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    Machine,
    Judgement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Llm,
    Runner,
    Hybrid,
    /// A person decides, through an [`Approval`].
    Human,
}

/// `llm transport="T" prompt="prompts/x.md"`.
#[derive(Debug, Clone)]
pub struct Llm {
    pub(crate) transport: Name,
    pub(crate) prompt: Spanned<String>,
    pub(crate) span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct CallSite {
    pub name: Name,
    pub axis: Spanned<Axis>,
    pub verdict: Spanned<VerdictKind>,
    pub mode: Spanned<Mode>,
    pub(crate) runner: Option<Name>,
    pub(crate) llm: Option<Llm>,
    /// `approval "NAME"`: the request a `mode="human"` call-site makes.
    pub(crate) approval: Option<Name>,
    pub why: Option<Spanned<String>>,
    pub(crate) span: SourceSpan,
}

/// A `pass`, `fail` or `exhausted` edge.
#[derive(Debug, Clone)]
pub struct Transition {
    pub target: Name,
    pub budget: Option<Spanned<u32>>,
    pub alert: Option<Name>,
    pub(crate) span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Name,
    pub call_site: Name,
    pub gate: Name,
    pub pass: Option<Transition>,
    pub fail: Option<Transition>,
    pub exhausted: Option<Transition>,
    pub serial: bool,
    pub(crate) span: SourceSpan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone)]
pub struct End {
    pub(crate) name: Name,
    pub outcome: Outcome,
    pub(crate) span: SourceSpan,
}

/// `approval "NAME"`: a person's decision as a stage's producer.
#[derive(Debug, Clone)]
pub struct Approval {
    pub name: Name,
    /// Who may decide; validation wants at least one, each once.
    pub(crate) approvers: Vec<Name>,
    /// How long the request waits; then the stage fails closed.
    pub expires: Option<Spanned<Duration>>,
    /// Artifact paths (beneath the task directory) the approver is shown.
    pub show: Vec<Spanned<String>>,
    /// The artifact orch writes from the decision.
    pub writes: Option<Name>,
    pub(crate) span: SourceSpan,
}

impl Approval {
    pub fn approver_names(&self) -> Vec<String> {
        self.approvers.iter().map(|a| a.value.clone()).collect()
    }
}

/// The field a decision artifact's gate reads, and its two values.
pub const DECISION_FIELD: &str = "decision";
pub(crate) const APPROVED: &str = "APPROVED";
pub(crate) const REJECTED: &str = "REJECTED";

#[derive(Debug, Clone)]
pub struct Alert {
    pub(crate) name: Name,
    pub command: Option<Command>,
    /// Its `timeout`, or the default (spanning the whole node).
    pub(crate) timeout: Spanned<Duration>,
    pub(crate) span: SourceSpan,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.value == name)
    }
    pub fn end(&self, name: &str) -> Option<&End> {
        self.ends.iter().find(|s| s.name.value == name)
    }
    pub fn call_site(&self, name: &str) -> Option<&CallSite> {
        self.call_sites.iter().find(|s| s.name.value == name)
    }
    pub fn gate(&self, name: &str) -> Option<&Gate> {
        self.gates.iter().find(|s| s.name.value == name)
    }
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|s| s.name.value == name)
    }
    pub fn runner(&self, name: &str) -> Option<&Runner> {
        self.runners.iter().find(|s| s.name.value == name)
    }
    pub fn transport(&self, name: &str) -> Option<&Transport> {
        self.transports.iter().find(|s| s.name.value == name)
    }
    pub fn approval(&self, name: &str) -> Option<&Approval> {
        self.approvals.iter().find(|s| s.name.value == name)
    }
    /// The approval a stage asks for, when its call-site is `mode="human"`.
    pub fn approval_of_stage(&self, stage: &str) -> Option<&Approval> {
        let cs = self.call_site(&self.stage(stage)?.call_site.value)?;
        if cs.mode.value != Mode::Human {
            return None;
        }
        self.approval(&cs.approval.as_ref()?.value)
    }
    /// The labels a service must hold to run a stage: those of its
    /// call-site's runner and transport (a hybrid's both), sorted, each
    /// once. Empty for a stage any service may run.
    pub fn labels_of_stage(&self, stage: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let Some(cs) = self
            .stage(stage)
            .and_then(|s| self.call_site(&s.call_site.value))
        else {
            return out;
        };
        let uses_runner = matches!(cs.mode.value, Mode::Runner | Mode::Hybrid);
        let uses_llm = matches!(cs.mode.value, Mode::Llm | Mode::Hybrid);
        if uses_runner {
            if let Some(r) = cs.runner.as_ref().and_then(|r| self.runner(&r.value)) {
                out.extend(r.labels.iter().map(|l| l.value.clone()));
            }
        }
        if uses_llm {
            if let Some(t) = cs
                .llm
                .as_ref()
                .and_then(|l| self.transport(&l.transport.value))
            {
                out.extend(t.labels.iter().map(|l| l.value.clone()));
            }
        }
        out.sort();
        out.dedup();
        out
    }
    pub fn alert(&self, name: &str) -> Option<&Alert> {
        self.alerts.iter().find(|s| s.name.value == name)
    }
    pub fn var_default(&self, name: &str) -> Option<&str> {
        self.header
            .as_ref()?
            .vars
            .iter()
            .find(|v| v.name.value == name)
            .map(|v| v.default.as_str())
    }
}
