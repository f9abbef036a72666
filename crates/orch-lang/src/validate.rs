//! Semantic checks on the typed model: references, contracts, the C/P rules,
//! timeouts, regexes, placeholders, the transition graph and warnings.

use crate::hash::{HashMap, HashSet};
use miette::SourceSpan;
use std::path::Path;

use crate::code::{Code, Severity};
use crate::diagnostic::{Finding, Suggestions};
use crate::keyword as kw;
use crate::limits;
use crate::model::*;
use crate::template::{Placeholder, Template};

mod approval;
pub mod graph;
mod labels;

/// The names a file declares, from the loader's [`Declaration`]s, so that
/// one broken node does not make every reference to it an error.
#[derive(Debug, Default)]
struct Declared<'p> {
    /// Names by kind; stages and ends share the kind `stage`. Borrowed from
    /// the model: a large pipeline is not copied again.
    names: HashMap<&'static str, HashSet<&'p str>>,
    /// The child keywords written in each named top-level node, keyed by
    /// keyword and name.
    children: HashMap<(&'p str, &'p str), HashSet<&'p str>>,
}

impl<'p> Declared<'p> {
    fn from_pipeline(p: &'p Pipeline) -> Self {
        let mut d = Declared::default();
        for decl in &p.declarations {
            let kind = if decl.keyword == kw::END {
                kw::STAGE
            } else {
                decl.keyword
            };
            let name = decl.name.value.as_str();
            d.names.entry(kind).or_default().insert(name);
            d.children
                .entry((decl.keyword, name))
                .or_default()
                .extend(decl.children.iter().map(|c| c.value.as_str()));
        }
        d
    }

    /// Whether the `node` named `name` has a child `child`, well-formed or not.
    fn has_child(&self, node: &str, name: &str, child: &str) -> bool {
        self.children
            .get(&(node, name))
            .is_some_and(|c| c.contains(child))
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        self.names.get(kind).is_some_and(|s| s.contains(name))
    }

    /// The names of a kind; their number is known (see [`Suggestions`]).
    fn candidates(&self, kind: &str) -> impl ExactSizeIterator<Item = &str> {
        self.names
            .get(kind)
            .map(|s| s.iter())
            .unwrap_or_default()
            .copied()
    }
}

/// The names something refers to, by kind (`orch::unused`).
struct Used<'p> {
    call_sites: HashSet<&'p str>,
    gates: HashSet<&'p str>,
    artifacts: HashSet<&'p str>,
    approvals: HashSet<&'p str>,
    runners: HashSet<&'p str>,
    transports: HashSet<&'p str>,
    alerts: HashSet<&'p str>,
}

impl<'p> Used<'p> {
    fn of(p: &'p Pipeline) -> Used<'p> {
        let call_sites = p
            .stages
            .iter()
            .map(|s| s.call_site.value.as_str())
            .collect::<HashSet<&str>>();
        let gates = p
            .stages
            .iter()
            .map(|s| s.gate.value.as_str())
            .collect::<HashSet<&str>>();
        let artifacts = p
            .gates
            .iter()
            .map(|g| g.artifact.value.as_str())
            .chain(
                p.runners
                    .iter()
                    .filter_map(|r| r.writes.as_ref().map(|w| w.artifact.value.as_str())),
            )
            .chain(
                p.approvals
                    .iter()
                    .filter_map(|a| a.writes.as_ref().map(|w| w.value.as_str())),
            )
            .collect::<HashSet<&str>>();
        let approvals = p
            .call_sites
            .iter()
            .filter_map(|c| c.approval.as_ref().map(|a| a.value.as_str()))
            .collect::<HashSet<&str>>();
        let runners = p
            .call_sites
            .iter()
            .filter_map(|c| c.runner.as_ref().map(|r| r.value.as_str()))
            .collect::<HashSet<&str>>();
        let transports = p
            .call_sites
            .iter()
            .filter_map(|c| c.llm.as_ref().map(|l| l.transport.value.as_str()))
            .collect::<HashSet<&str>>();
        let alerts = p
            .stages
            .iter()
            .flat_map(|s| [&s.pass, &s.fail, &s.exhausted])
            .flatten()
            .filter_map(|t| t.alert.as_ref().map(|a| a.value.as_str()))
            .collect::<HashSet<&str>>();
        Used {
            call_sites,
            gates,
            artifacts,
            approvals,
            runners,
            transports,
            alerts,
        }
    }
}

/// Options that change what is checked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Skip the checks that look at the machine (PATH, prompt files).
    pub offline: bool,
}

struct Checker<'a> {
    p: &'a Pipeline,
    ix: Index<'a>,
    declared: &'a Declared<'a>,
    dir: &'a Path,
    out: Vec<Finding>,
    /// Findings kept, by severity: at most [`limits::MAX_FINDINGS`] of each
    /// (so that the report can still put every error it shows before the
    /// warnings); the others are only counted in `dropped`.
    kept: [usize; 2],
    dropped: limits::Dropped,
    suggest: Suggestions,
}

/// Runs every semantic check. `structural_ok` says the file's shape is sound,
/// which the graph checks need to say anything true. At most
/// [`limits::MAX_FINDINGS`] errors and as many warnings are returned, then
/// one `orch::too-many-findings` for the rest.
pub fn check(
    p: &Pipeline,
    pipeline_dir: &Path,
    structural_ok: bool,
    opts: &Options,
) -> Vec<Finding> {
    let (found, dropped) = check_counted(p, pipeline_dir, structural_ok, opts);
    if dropped.count == 0 {
        return found;
    }
    limits::cap(found, dropped)
}

/// As [`check`], with the findings past the limit counted, not summed up.
pub(crate) fn check_counted(
    p: &Pipeline,
    pipeline_dir: &Path,
    structural_ok: bool,
    opts: &Options,
) -> (Vec<Finding>, limits::Dropped) {
    let declared = Declared::from_pipeline(p);
    let mut c = Checker {
        p,
        ix: Index::new(p),
        declared: &declared,
        dir: pipeline_dir,
        out: Vec::new(),
        kept: [0; 2],
        dropped: Default::default(),
        suggest: Suggestions::new(),
    };
    c.duplicate_names();
    c.path_names();
    c.header();
    c.artifacts();
    c.gates();
    c.runners();
    c.transports();
    c.call_sites();
    c.approvals();
    c.labels();
    c.stages();
    c.alerts();
    c.placeholders();
    if structural_ok {
        for f in graph::check(p) {
            c.push(f);
        }
        c.unused();
        if !opts.offline {
            c.machine();
        }
    }
    (c.out, c.dropped)
}

/// The pipeline's declarations by name, so that the checks look a name up
/// in constant time rather than scanning a list per reference (which made
/// validation quadratic in the number of stages). The first declaration of
/// a name wins, as with the `Pipeline::artifact(…)`-style look-ups.
struct Index<'a> {
    artifacts: HashMap<&'a str, &'a Artifact>,
    gates: HashMap<&'a str, &'a Gate>,
    runners: HashMap<&'a str, &'a Runner>,
    call_sites: HashMap<&'a str, &'a CallSite>,
    ends: HashMap<&'a str, &'a End>,
}

fn by_name<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a str) -> HashMap<&'a str, &'a T> {
    let mut m = HashMap::with_capacity_and_hasher(items.len(), Default::default());
    for x in items {
        m.entry(name(x)).or_insert(x);
    }
    m
}

impl<'a> Index<'a> {
    fn new(p: &'a Pipeline) -> Self {
        Index {
            artifacts: by_name(&p.artifacts, |x| &x.name.value),
            gates: by_name(&p.gates, |x| &x.name.value),
            runners: by_name(&p.runners, |x| &x.name.value),
            call_sites: by_name(&p.call_sites, |x| &x.name.value),
            ends: by_name(&p.ends, |x| &x.name.value),
        }
    }
}

impl<'a> Checker<'a> {
    fn push(&mut self, f: Finding) {
        let kept = &mut self.kept[usize::from(f.severity == Severity::Error)];
        if *kept < limits::MAX_FINDINGS {
            *kept += 1;
            self.out.push(f);
        } else {
            self.dropped.add(f.span.offset());
        }
    }

    fn reference(&mut self, kind: &'static str, code: Code, r: &Name, what: &str) -> bool {
        if self.declared.has(kind, &r.value) {
            return true;
        }
        if self.kept[usize::from(code.severity() == Severity::Error)] >= limits::MAX_FINDINGS {
            // Not kept: no need to look for a close name.
            self.dropped.add(r.span.offset());
            return false;
        }
        let help = self
            .suggest
            .did_you_mean(&r.value, self.declared.candidates(kind));
        self.push(
            Finding::new(code, r.span, format!("{what} `{}` is not defined", r.value))
                .label(format!("no {what} of this name"))
                .maybe_help(help),
        );
        false
    }

    fn duplicate_names(&mut self) {
        let p = self.p;
        let groups: [(&str, Vec<&Name>); 8] = [
            (
                "stage or end",
                p.stages
                    .iter()
                    .map(|s| &s.name)
                    .chain(p.ends.iter().map(|e| &e.name))
                    .collect(),
            ),
            ("transport", p.transports.iter().map(|x| &x.name).collect()),
            ("artifact", p.artifacts.iter().map(|x| &x.name).collect()),
            ("gate", p.gates.iter().map(|x| &x.name).collect()),
            ("runner", p.runners.iter().map(|x| &x.name).collect()),
            ("call-site", p.call_sites.iter().map(|x| &x.name).collect()),
            ("alert", p.alerts.iter().map(|x| &x.name).collect()),
            ("approval", p.approvals.iter().map(|x| &x.name).collect()),
        ];
        for (what, mut names) in groups {
            names.sort_by_key(|n| n.span.offset());
            let mut first: HashSet<&str> = HashSet::default();
            for n in names {
                if first.contains(n.value.as_str()) {
                    self.push(
                        Finding::new(
                            Code::DuplicateName,
                            n.span,
                            format!("{what} `{}` is defined twice", n.value),
                        )
                        .label("second definition")
                        .help("names must be unique; rename or remove one of them"),
                    );
                } else {
                    first.insert(&n.value);
                }
            }
        }
        if let Some(h) = &p.header {
            let mut seen = HashSet::default();
            for v in &h.vars {
                let spellable = !v.name.value.is_empty()
                    && v.name
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
                if !spellable {
                    self.push(
                        Finding::new(
                            Code::BadVariableName,
                            v.name.span,
                            format!(
                                "variable `{}` cannot be used: `{{var.NAME}}` takes ASCII letters, digits, `_` and `-`",
                                v.name.value
                            ),
                        )
                        .label("no placeholder can spell this")
                        .help(format!(
                            "rename it, for example `{}`",
                            v.name
                                .value
                                .chars()
                                .map(|c| if c.is_ascii_alphanumeric() || "_-".contains(c) { c } else { '-' })
                                .collect::<String>()
                        )),
                    );
                }
                if !seen.insert(v.name.value.as_str()) {
                    self.push(
                        Finding::new(
                            Code::DuplicateName,
                            v.name.span,
                            format!("variable `{}` is defined twice", v.name.value),
                        )
                        .label("second definition"),
                    );
                }
            }
        }
    }

    /// Stage names become file names (`logs/STAGE.N.log`, the lock
    /// `stage.NAME.lock`), so they are restricted as task names are.
    fn path_names(&mut self) {
        for s in &self.p.stages {
            let name = &s.name.value;
            if name.is_empty() || is_path_safe_name(name) {
                continue;
            }
            self.push(
                Finding::new(
                    Code::BadName,
                    s.name.span,
                    format!(
                        "stage `{}` cannot name a file: stage names take letters, digits, `.`, `_` and `-`, not starting with `.` or `-`",
                        name.escape_debug()
                    ),
                )
                .label("names the stage's log and lock files")
                .help(format!("rename it, for example `{}`", safe_name_suggestion(name))),
            );
        }
    }

    fn header(&mut self) {
        let Some(h) = &self.p.header else { return };
        if self.ix.ends.contains_key(h.start.value.as_str()) {
            self.push(
                Finding::new(
                    Code::StartNotStage,
                    h.start.span,
                    format!("`start` names the end `{}`, not a stage", h.start.value),
                )
                .label("an end cannot be the first state"),
            );
        } else {
            self.reference(kw::STAGE, Code::UnknownStage, &h.start, "stage");
        }
        // A set, not a scan of the list per secret: many secrets among
        // many variables made this quadratic.
        let declared: HashSet<&str> = h.vars.iter().map(|v| v.name.value.as_str()).collect();
        for s in &h.secrets {
            let Some(name) = s.value.strip_prefix("var.") else {
                continue;
            };
            if name != "repo" && !declared.contains(name) {
                let suggestion = self.suggest.did_you_mean(name, declared.iter().copied());
                self.push(
                    Finding::new(
                        Code::UnknownVariable,
                        s.span,
                        format!("secret variable `{name}` is not declared"),
                    )
                    .label("unknown variable")
                    .maybe_help(
                        suggestion.or_else(|| {
                                Some(format!(
                                    "declare it in the pipeline: `var \"{name}\" \"DEFAULT\"`, or name an environment variable without `var.`"
                                ))
                            }),
                    ),
                );
            }
        }
        if h.single_transport && self.p.transports.len() > 1 {
            for t in &self.p.transports[1..] {
                self.push(
                    Finding::new(
                        Code::MultipleTransports,
                        t.name.span,
                        format!(
                            "transport `{}` is a second transport, but the pipeline says `single-transport=#true`",
                            t.name.value
                        ),
                    )
                    .label("second transport")
                    .help(format!(
                        "route every LLM call through `{}`, or drop `single-transport=#true`",
                        self.p.transports[0].name.value
                    )),
                );
            }
        }
    }

    fn artifacts(&mut self) {
        for a in &self.p.artifacts {
            if let Some(f) = bad_artifact_path(&a.path) {
                self.push(f);
            }
            let mut seen = HashSet::default();
            for f in &a.fields {
                if !seen.insert(f.key.value.as_str()) {
                    self.push(
                        Finding::new(
                            Code::DuplicateField,
                            f.key.span,
                            format!("field `{}` is declared twice", f.key.value),
                        )
                        .label("second declaration"),
                    );
                }
            }
        }
    }

    fn gates(&mut self) {
        // A pattern is compiled once however many gates use it (compiling
        // is most of what checking a gate costs).
        let mut compiled: HashMap<&str, Option<String>> = HashMap::default();
        for g in &self.p.gates {
            if !self.reference(kw::ARTIFACT, Code::UnknownArtifact, &g.artifact, "artifact") {
                continue;
            }
            let artifact = self.ix.artifacts.get(g.artifact.value.as_str()).copied();
            for e in &g.expects {
                if let Expectation::Matches(re) = &e.expectation {
                    let error = compiled.entry(re.value.as_str()).or_insert_with(|| {
                        regex::Regex::new(&re.value)
                            .err()
                            .map(|err| first_line(&err.to_string()))
                    });
                    if let Some(error) = error {
                        self.push(
                            Finding::new(
                                Code::BadRegex,
                                re.span,
                                format!("the regex does not compile: {error}"),
                            )
                            .label("invalid regex"),
                        );
                    }
                }
                let Some(a) = artifact else { continue };
                let Some(field) = a.field(&e.key.value) else {
                    let suggestion = self
                        .suggest
                        .did_you_mean(&e.key.value, a.fields.iter().map(|f| f.key.value.as_str()));
                    self.push(
                        Finding::new(
                            Code::UnknownField,
                            e.key.span,
                            format!("artifact `{}` has no field `{}`", a.name.value, e.key.value),
                        )
                        .label("not a field of the artifact")
                        .maybe_help(suggestion),
                    );
                    continue;
                };
                if let Expectation::Equals(v) = &e.expectation {
                    if !field.allowed.is_empty() && !field.allows(&v.value) {
                        let suggestion = self
                            .suggest
                            .did_you_mean(&v.value, field.allowed.iter().map(|a| a.value.as_str()));
                        self.push(
                            Finding::new(
                                Code::ExpectNeverHolds,
                                v.span,
                                format!(
                                    "`{}` can never be \"{}\": the artifact allows {}",
                                    e.key.value,
                                    v.value,
                                    list(&field.allowed)
                                ),
                            )
                            .label("not an allowed value")
                            .maybe_help(suggestion),
                        );
                    }
                }
            }
        }
    }

    fn runners(&mut self) {
        for r in &self.p.runners {
            self.process(kw::RUNNER, &r.name, &r.process, "15m");
            self.runner_exit_codes(r);
            let Some((a, field)) = self.runner_written_field(r) else {
                continue;
            };
            self.runner_verdicts(r, a, field);
            self.runner_unwritable_fields(r, a, field);
        }
    }

    /// Each exit code maps to one verdict.
    fn runner_exit_codes(&mut self, r: &Runner) {
        let mut codes_seen: HashMap<i32, SourceSpan> = HashMap::default();
        for m in &r.exit_codes {
            for c in &m.codes {
                if codes_seen.insert(c.value, c.span).is_some() {
                    self.push(
                        Finding::new(
                            Code::DuplicateExitCode,
                            c.span,
                            format!("exit code {} is mapped twice", c.value),
                        )
                        .label("second mapping")
                        .help("each exit code maps to one verdict"),
                    );
                }
            }
        }
    }

    /// The artifact a runner writes and the field its verdict goes to;
    /// `None` (with a finding where one is due) when either is missing.
    fn runner_written_field(&mut self, r: &Runner) -> Option<(&'a Artifact, &'a Field)> {
        let Some(w) = &r.writes else {
            if !self
                .declared
                .has_child(kw::RUNNER, &r.name.value, kw::WRITES)
            {
                self.push(
                    Finding::new(
                        Code::MissingWrites,
                        r.name.span,
                        format!(
                            "runner `{}` does not say which artifact it writes",
                            r.name.value
                        ),
                    )
                    .label("no `writes`")
                    .help("add `writes \"ARTIFACT\"`"),
                );
            }
            return None;
        };
        if !self.reference(kw::ARTIFACT, Code::UnknownArtifact, &w.artifact, "artifact") {
            return None;
        }
        let a = self.ix.artifacts.get(w.artifact.value.as_str()).copied()?;
        let field = match &w.field {
            Some(f) => a.field(&f.value).or_else(|| {
                let suggestion = self
                    .suggest
                    .did_you_mean(&f.value, a.fields.iter().map(|f| f.key.value.as_str()));
                self.push(
                    Finding::new(
                        Code::UnknownField,
                        f.span,
                        format!("artifact `{}` has no field `{}`", a.name.value, f.value),
                    )
                    .label("not a field of the artifact")
                    .maybe_help(suggestion),
                );
                None
            })?,
            None => a.fields.first().or_else(|| {
                self.push(
                    Finding::new(
                        Code::UnknownField,
                        w.artifact.span,
                        format!(
                            "artifact `{}` has no field for the runner's verdict",
                            a.name.value
                        ),
                    )
                    .label("artifact without fields")
                    .help("declare `field \"result\" \"PASS\" \"FAIL\"` in the artifact"),
                );
                None
            })?,
        };
        Some((a, field))
    }

    /// Every verdict a runner can give must be allowed by its field.
    fn runner_verdicts(&mut self, r: &Runner, a: &Artifact, field: &Field) {
        for v in r.verdicts() {
            if v.value != TOOL_ERROR && !field.allows(&v.value) {
                let suggestion = self.suggest.did_you_mean(
                    &v.value,
                    field
                        .allowed
                        .iter()
                        .map(|a| a.value.as_str())
                        .chain(std::iter::once(TOOL_ERROR)),
                );
                self.push(
                    Finding::new(
                        Code::VerdictNotAllowed,
                        v.span,
                        format!(
                            "verdict \"{}\" is not an allowed value of `{}` in artifact `{}` (allowed: {})",
                            v.value,
                            field.key.value,
                            a.name.value,
                            list(&field.allowed)
                        ),
                    )
                    .label("not an allowed value")
                    .maybe_help(suggestion),
                );
            }
        }
    }

    /// orch writes a runner's artifact itself, with the verdict field only:
    /// another required field is never there, so the gate never passes.
    fn runner_unwritable_fields(&mut self, r: &Runner, a: &Artifact, written: &Field) {
        let Some(w) = &r.writes else { return };
        for f in &a.fields {
            if !f.required || f.key.value == written.key.value {
                continue;
            }
            self.push(
                Finding::new(
                    Code::UnwritableField,
                    w.span,
                    format!(
                        "artifact `{}` requires field `{}`, but runner `{}` writes only `{}`: a gate on it can never pass",
                        a.name.value, f.key.value, r.name.value, written.key.value
                    ),
                )
                .label(format!("orch writes only `{}` here", written.key.value))
                .help(format!(
                    "mark the field optional (`field \"{}\" required=#false`), or let an LLM write this artifact",
                    f.key.value
                )),
            );
        }
    }

    /// The process of the runner or transport `name` (`keyword` says
    /// which): its timing, and its `command` and `timeout`, which it must
    /// have (the help for a missing one suggests `timeout "EXAMPLE"`).
    fn process(&mut self, keyword: &str, name: &Name, p: &Process, example: &str) {
        self.timing(keyword, name, p);
        let has = |child| self.declared.has_child(keyword, &name.value, child);
        if p.command.is_none() && !has(kw::COMMAND) {
            self.push(
                Finding::new(
                    Code::MissingCommand,
                    name.span,
                    format!("{keyword} `{}` has no `command`", name.value),
                )
                .label("nothing to run")
                .help("add `command \"PROGRAM\" \"ARG\"…`"),
            );
        }
        if p.timeout.is_none() && !has(kw::TIMEOUT) {
            self.push(
                Finding::new(
                    Code::MissingTimeout,
                    name.span,
                    format!("{keyword} `{}` has no `timeout`", name.value),
                )
                .label("could hang forever")
                .help(format!(
                    "add `timeout \"{example}\"`: every producer states how long it may run"
                )),
            );
        }
    }

    /// Timeouts and retry delays that cannot work as written.
    fn timing(&mut self, what: &str, name: &Name, p: &Process) {
        let (timeout, idle, retry) = (p.timeout.as_ref(), p.idle_timeout.as_ref(), &p.retry);
        if let Some(t) = timeout.filter(|t| t.value.is_zero()) {
            self.push(
                Finding::new(
                    Code::ZeroTimeout,
                    t.span,
                    format!("{what} `{}` has a timeout of zero", name.value),
                )
                .label("every attempt would time out at once")
                .help("give the producer the time it needs, like \"15m\""),
            );
        }
        if let Some(i) = idle.filter(|i| i.value.is_zero()) {
            self.push(
                Finding::new(
                    Code::ZeroTimeout,
                    i.span,
                    format!("{what} `{}` has an idle timeout of zero", name.value),
                )
                .label("every attempt would end at once")
                .help(
                    "remove `idle-timeout`, or give it the longest silence to allow, like \"5m\"",
                ),
            );
        }
        if let (Some(t), Some(i)) = (timeout, idle) {
            if !t.value.is_zero() && i.value >= t.value {
                self.push(
                    Finding::new(
                        Code::IneffectiveSetting,
                        i.span,
                        format!(
                            "the idle timeout of {what} `{}` is not shorter than its timeout, so it never fires",
                            name.value
                        ),
                    )
                    .label("never reached")
                    .help("make `idle-timeout` shorter than `timeout`, or remove it"),
                );
            }
        }
        if let Some(max) = retry.max_delay {
            if max < retry.delay {
                self.push(
                    Finding::new(
                        Code::IneffectiveSetting,
                        retry.span,
                        format!(
                            "the retry of {what} `{}` caps its delay below the delay itself, so `delay` and `backoff` have no effect",
                            name.value
                        ),
                    )
                    .label("`max-delay` is shorter than `delay`")
                    .help("make `max-delay` at least `delay`, or remove it"),
                );
            }
        }
    }

    fn transports(&mut self) {
        for t in &self.p.transports {
            self.process(kw::TRANSPORT, &t.name, &t.process, "30m");
        }
    }

    fn call_sites(&mut self) {
        for c in &self.p.call_sites {
            if self.call_site_approval(c) {
                // A person decides: no runner, no LLM (checked there).
                continue;
            }
            let mode = c.mode.value;
            self.call_site_runner(c, matches!(mode, Mode::Runner | Mode::Hybrid));
            self.call_site_llm(c, matches!(mode, Mode::Llm | Mode::Hybrid));
            if c.axis.value == Axis::C && c.verdict.value == VerdictKind::Judgement {
                self.call_site_judgement(c);
            }
        }
    }

    /// The call-site's runner: it resolves, is needed by the mode, or is
    /// missing when the mode needs one.
    fn call_site_runner(&mut self, c: &CallSite, needs_runner: bool) {
        let has = |child| self.declared.has_child(kw::CALL_SITE, &c.name.value, child);
        let mode = c.mode.value;
        match (&c.runner, needs_runner) {
            (Some(r), _) => {
                self.reference(kw::RUNNER, Code::UnknownRunner, r, "runner");
                if !needs_runner {
                    self.push(
                        Finding::new(
                            Code::IgnoredProducer,
                            r.span,
                            format!(
                                "call-site `{}` has mode=\"llm\", so its runner is never used",
                                c.name.value
                            ),
                        )
                        .label("ignored")
                        .help("set mode=\"hybrid\" to let the runner decide"),
                    );
                }
            }
            (None, true) if !has(kw::RUNNER) => self.push(
                Finding::new(
                    Code::MissingProducer,
                    c.mode.span,
                    format!(
                        "call-site `{}` has mode=\"{}\" but no `runner`",
                        c.name.value,
                        kw::mode(mode)
                    ),
                )
                .label("needs a runner")
                .help("add `runner \"NAME\"` to the call-site"),
            ),
            (None, _) => {}
        }
    }

    /// The call-site's LLM, as [`Self::call_site_runner`] for the runner.
    fn call_site_llm(&mut self, c: &CallSite, needs_llm: bool) {
        let has = |child| self.declared.has_child(kw::CALL_SITE, &c.name.value, child);
        let mode = c.mode.value;
        match (&c.llm, needs_llm) {
            (Some(l), _) => {
                self.reference(
                    kw::TRANSPORT,
                    Code::UnknownTransport,
                    &l.transport,
                    "transport",
                );
                if !needs_llm {
                    self.push(
                        Finding::new(
                            Code::IgnoredProducer,
                            l.span,
                            format!(
                                "call-site `{}` has mode=\"runner\", so its LLM is never used",
                                c.name.value
                            ),
                        )
                        .label("ignored")
                        .help("set mode=\"hybrid\" to keep the LLM as the fallback"),
                    );
                }
            }
            (None, true) if !has(kw::LLM) => self.push(
                Finding::new(
                    Code::MissingProducer,
                    c.mode.span,
                    format!(
                        "call-site `{}` has mode=\"{}\" but no `llm`",
                        c.name.value,
                        kw::mode(mode)
                    ),
                )
                .label("needs an LLM")
                .help("add `llm transport=\"NAME\" prompt=\"prompts/FILE.md\"`"),
            ),
            (None, _) => {}
        }
    }

    /// A judgement on the control path: an LLM that says why, never a runner.
    fn call_site_judgement(&mut self, c: &CallSite) {
        let has = |child| self.declared.has_child(kw::CALL_SITE, &c.name.value, child);
        let mode = c.mode.value;
        if mode == Mode::Llm && c.why.is_none() && !has(kw::WHY) {
            self.push(
                Finding::new(
                    Code::MissingJustification,
                    c.name.span,
                    format!(
                        "call-site `{}` keeps an LLM on the control path without saying why",
                        c.name.value
                    ),
                )
                .label("axis=\"C\" verdict=\"judgement\" mode=\"llm\"")
                .help("add `why \"…\"`: the judgement this LLM call makes"),
            );
        }
        if mode != Mode::Llm {
            self.push(
                Finding::new(
                    Code::JudgementRunner,
                    c.mode.span,
                    format!(
                        "call-site `{}` needs a judgement, which a runner cannot give",
                        c.name.value
                    ),
                )
                .label(format!("mode=\"{}\"", kw::mode(mode)))
                .help("use mode=\"llm\", or verdict=\"machine\" if the verdict can be computed"),
            );
        }
    }

    fn stages(&mut self) {
        for s in &self.p.stages {
            self.reference(
                kw::CALL_SITE,
                Code::UnknownCallSite,
                &s.call_site,
                "call-site",
            );
            self.reference(kw::GATE, Code::UnknownGate, &s.gate, "gate");
            for t in [&s.pass, &s.fail, &s.exhausted].into_iter().flatten() {
                self.reference(kw::STAGE, Code::UnknownStage, &t.target, "stage or end");
                if let Some(a) = &t.alert {
                    self.reference(kw::ALERT, Code::UnknownAlert, a, "alert");
                }
            }
            for (slot, what) in [(&s.pass, kw::PASS), (&s.exhausted, kw::EXHAUSTED)] {
                if slot.is_none() && !self.declared.has_child(kw::STAGE, &s.name.value, what) {
                    self.push(
                        Finding::new(
                            Code::MissingTransition,
                            s.name.span,
                            format!("stage `{}` has no `{what}` transition", s.name.value),
                        )
                        .label(format!("needs `{what}`"))
                        .help(if what == kw::PASS {
                            "add `pass \"NEXT\"`: where the task goes when the gate holds"
                        } else {
                            "add `exhausted \"END\"`: where the task goes when it fails closed"
                        }),
                    );
                }
            }
            self.stage_approval(s);
            // The runner must write the artifact the gate reads.
            let runner = self
                .ix
                .call_sites
                .get(s.call_site.value.as_str())
                .filter(|c| c.mode.value != Mode::Llm)
                .and_then(|c| c.runner.as_ref())
                .and_then(|r| self.ix.runners.get(r.value.as_str()).copied());
            let gate = self.ix.gates.get(s.gate.value.as_str()).copied();
            if let (Some(r), Some(g)) = (runner, gate) {
                if let Some(w) = &r.writes {
                    // An artifact that does not exist is reported where it is named.
                    let known = |a: &Name| self.declared.has(kw::ARTIFACT, &a.value);
                    if w.artifact.value != g.artifact.value
                        && known(&w.artifact)
                        && known(&g.artifact)
                    {
                        self.push(
                            Finding::new(
                                Code::ArtifactMismatch,
                                s.gate.span,
                                format!(
                                    "gate `{}` reads artifact `{}`, but runner `{}` writes `{}`",
                                    g.name.value, g.artifact.value, r.name.value, w.artifact.value
                                ),
                            )
                            .label("the gate would never see the runner's verdict")
                            .help("make the gate read the artifact the runner writes"),
                        );
                    }
                }
            }
        }
    }

    fn alerts(&mut self) {
        for a in &self.p.alerts {
            if a.command.is_none() {
                self.push(
                    Finding::new(
                        Code::MissingCommand,
                        a.name.span,
                        format!("alert `{}` has no `command`", a.name.value),
                    )
                    .label("nothing to run")
                    .help("add `command \"PROGRAM\" \"ARG\"…`"),
                );
            }
            if a.timeout.value.is_zero() {
                self.push(
                    Finding::new(
                        Code::ZeroTimeout,
                        a.timeout.span,
                        format!("alert `{}` has a timeout of zero", a.name.value),
                    )
                    .label("the alert would time out before it is sent")
                    .help("give the alert the time it needs, like \"30s\""),
                );
            }
        }
    }

    /// `{var.NAME}` must name a declared variable.
    fn placeholders(&mut self) {
        let vars: HashSet<&str> = self
            .p
            .header
            .iter()
            .flat_map(|h| h.vars.iter().map(|v| v.name.value.as_str()))
            .collect();
        let mut templates: Vec<&Template> = Vec::new();
        let p = self.p;
        for r in &p.runners {
            templates.extend(r.process.templates());
        }
        for t in &p.transports {
            templates.extend(t.process.templates());
        }
        for a in &p.alerts {
            templates.extend(a.command.iter().flat_map(|c| c.argv.iter()));
        }
        for t in templates {
            for (ph, span) in t.placeholders() {
                if let Placeholder::Var(name) = ph {
                    if !vars.contains(name.as_str()) {
                        let suggestion = self.suggest.did_you_mean(name, vars.iter().copied());
                        self.push(
                            Finding::new(
                                Code::UnknownVariable,
                                span,
                                format!("variable `{name}` is not declared"),
                            )
                            .label("unknown variable")
                            .maybe_help(suggestion.or_else(|| {
                                Some(format!(
                                    "declare it in the pipeline: `var \"{name}\" \"DEFAULT\"`"
                                ))
                            })),
                        );
                    }
                }
            }
        }
    }

    fn unused(&mut self) {
        let p = self.p;
        let used = Used::of(p);
        let mut unused = |what: &str, name: &Name, used: &HashSet<&str>| {
            if !used.contains(name.value.as_str()) {
                self.push(
                    Finding::new(
                        Code::Unused,
                        name.span,
                        format!("{what} `{}` is never used", name.value),
                    )
                    .label("unused")
                    .help(format!(
                        "remove it, or refer to it from a {}",
                        user_of(what)
                    )),
                );
            }
        };
        for x in &p.call_sites {
            unused("call-site", &x.name, &used.call_sites);
        }
        for x in &p.gates {
            unused("gate", &x.name, &used.gates);
        }
        for x in &p.artifacts {
            unused("artifact", &x.name, &used.artifacts);
        }
        for x in &p.runners {
            unused("runner", &x.name, &used.runners);
        }
        for x in &p.transports {
            unused("transport", &x.name, &used.transports);
        }
        for x in &p.alerts {
            unused("alert", &x.name, &used.alerts);
        }
        for x in &p.approvals {
            unused("approval", &x.name, &used.approvals);
        }
    }

    /// Warnings about this machine: executables on PATH, prompt files.
    fn machine(&mut self) {
        let p = self.p;
        let commands = p
            .runners
            .iter()
            .filter_map(|r| r.process.command.as_ref().map(|c| ("runner", &r.name, c)))
            .chain(p.transports.iter().filter_map(|t| {
                t.process
                    .command
                    .as_ref()
                    .map(|c| ("transport", &t.name, c))
            }))
            .chain(
                p.alerts
                    .iter()
                    .filter_map(|a| a.command.as_ref().map(|c| ("alert", &a.name, c))),
            );
        let mut found = Vec::new();
        // One PATH search per program, however many producers share it.
        let mut on_path: HashMap<&str, bool> = HashMap::default();
        for (what, name, cmd) in commands {
            let Some(argv0) = cmd.argv.first() else {
                continue;
            };
            if !argv0.is_literal() || argv0.raw.contains('/') {
                // Relative and templated paths resolve at run time, in the producer's cwd.
                continue;
            }
            let found_on_path = *on_path
                .entry(argv0.raw.as_str())
                .or_insert_with(|| which::which(&argv0.raw).is_ok());
            if !found_on_path {
                found.push(
                    Finding::new(
                        Code::ExecutableNotFound,
                        argv0.span,
                        format!(
                            "{what} `{}` runs `{}`, which is not on PATH here",
                            name.value, argv0.raw
                        ),
                    )
                    .label("not found on PATH")
                    .help("install it, or the stage will fail with a tool-error when it runs"),
                );
            }
        }
        for f in found {
            self.push(f);
        }
        self.prompts();
    }

    /// Prompt files: each must exist, and since it is rendered as a
    /// template at run time, its placeholders must be ones orch knows.
    fn prompts(&mut self) {
        let vars: HashSet<String> = self
            .p
            .header
            .iter()
            .flat_map(|h| h.vars.iter().map(|v| v.name.value.clone()))
            .collect();
        // One stat and read per prompt file, however many call-sites share it:
        // `None` when it does not exist; an empty text when it cannot be read
        // as text (which is reported at run time); its length when it is
        // over the limit (of which no more than one byte past it is read).
        let mut texts: HashMap<&str, Option<Result<String, u64>>> = HashMap::default();
        let mut found = Vec::new();
        for c in &self.p.call_sites {
            let Some(l) = &c.llm else { continue };
            let text = texts.entry(l.prompt.value.as_str()).or_insert_with(|| {
                let path = self.dir.join(&l.prompt.value);
                path.is_file().then(|| {
                    crate::limits::read_prompt(&path).unwrap_or_else(|_| Ok(String::new()))
                })
            });
            if let Some(Err(len)) = text {
                found.push(
                    Finding::new(
                        Code::BadFile,
                        l.prompt.span,
                        crate::limits::prompt_too_large(&l.prompt.value, *len),
                    )
                    .label("too large")
                    .help("a prompt is a few kilobytes; is this the right file?"),
                );
                continue;
            }
            let Some(Ok(text)) = text else {
                found.push(
                    Finding::new(
                        Code::PromptNotFound,
                        l.prompt.span,
                        format!(
                            "prompt file `{}` does not exist (looked in {})",
                            l.prompt.value,
                            self.dir.display()
                        ),
                    )
                    .label("no such file")
                    .help("prompt paths are relative to the pipeline file"),
                );
                continue;
            };
            found.extend(prompt_placeholders(&l.prompt, text, &vars));
        }
        for f in found {
            self.push(f);
        }
    }
}

/// The placeholders of a prompt file that would fail its rendering: the
/// first bad one, located inside the file, as a finding on `prompt=`.
fn prompt_placeholders(
    prompt: &Spanned<String>,
    text: &str,
    vars: &HashSet<String>,
) -> Option<Finding> {
    let (template, errors) = Template::parse(text, (0, 0).into(), Some(0));
    let mut bad: Vec<(SourceSpan, String, Code)> = errors
        .into_iter()
        .map(|e| (e.span, e.message, Code::UnknownPlaceholder))
        .collect();
    for (ph, span) in template.placeholders() {
        if let Placeholder::Var(name) = ph {
            if !vars.contains(name) {
                bad.push((
                    span,
                    format!("variable `{name}` is not declared"),
                    Code::UnknownVariable,
                ));
            }
        }
    }
    bad.sort_by_key(|(span, _, _)| span.offset());
    let more = bad.len().saturating_sub(1);
    let (span, message, code) = bad.into_iter().next()?;
    let (line, col) =
        crate::diagnostic::SourceFile::new(&prompt.value, text).line_col(span.offset());
    let more = match more {
        0 => String::new(),
        1 => " (and 1 more)".to_string(),
        n => format!(" (and {n} more)"),
    };
    Some(
        Finding::new(
            code,
            prompt.span,
            format!(
                "prompt file `{}`, line {line}, column {col}: {message}{more}",
                prompt.value
            ),
        )
        .label("the prompt is rendered as a template")
        .help("in a prompt, write `{{` and `}}` for literal braces; placeholders are {task}, {stage}, {attempt}, {worktree}, {task-dir}, {pipeline-dir}, {var.NAME} and {env.NAME}"),
    )
}

/// Letters, digits, `.`, `_` and `-`, not starting with `.` or `-`: the
/// names orch may turn into file names (the same rule as task names).
pub fn is_path_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn safe_name_suggestion(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['.', '-']);
    if trimmed.is_empty() {
        "build".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The task directory's own entries, which no artifact may overwrite.
const RESERVED_IN_TASK_DIR: &[&str] = &["logs"];

/// Why an artifact path cannot be used, as a finding; `None` when it can.
/// Artifacts are files inside the task directory, next to orch's own `logs/`.
fn bad_artifact_path(path: &Spanned<String>) -> Option<Finding> {
    use std::path::Component;
    let value = &path.value;
    if value.is_empty() {
        // `orch::invalid-value`, reported by the shape checks.
        return None;
    }
    let p = Path::new(value);
    let escaping = p.is_absolute()
        || p.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        });
    let finding = |message: String, label: &str, help: &str| {
        Some(
            Finding::new(Code::BadPath, path.span, message)
                .label(label)
                .help(help),
        )
    };
    if escaping {
        return finding(
            format!("artifact path `{value}` must stay inside the task directory"),
            "absolute or escaping path",
            "write a relative path such as \"13-test-report.md\"",
        );
    }
    if value.contains('\0') {
        return finding(
            format!(
                "artifact path `{}` contains a NUL character",
                value.escape_debug()
            ),
            "not a file name",
            "write a relative path such as \"13-test-report.md\"",
        );
    }
    let normal: Vec<_> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if normal.is_empty() || value.ends_with('/') {
        return finding(
            format!("artifact path `{value}` names a directory, not a file"),
            "not a file",
            "name a file, such as \"13-test-report.md\"",
        );
    }
    if normal
        .first()
        .is_some_and(|first| RESERVED_IN_TASK_DIR.iter().any(|r| *first == *r))
    {
        return finding(
            format!("artifact path `{value}` collides with orch's own `logs` directory"),
            "reserved by orch",
            "orch writes the attempts' logs there; choose another name, such as \"13-test-report.md\"",
        );
    }
    None
}

fn user_of(what: &str) -> &'static str {
    match what {
        "call-site" | "gate" => "stage",
        "artifact" => "gate, runner or approval",
        "runner" | "transport" | "approval" => "call-site",
        _ => "stage's `exhausted` transition",
    }
}

fn list(values: &[Spanned<String>]) -> String {
    if values.is_empty() {
        return "any non-empty value".to_string();
    }
    values
        .iter()
        .map(|v| format!("\"{}\"", v.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last non-empty line of a multi-line message (the regex crate's
/// errors end with the actual complaint), without its `error: ` prefix.
fn first_line(s: &str) -> String {
    let last = s
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(s);
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}
