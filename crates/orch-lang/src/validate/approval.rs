//! The checks on approvals (a person's decision) and the human call-sites
//! and stages that use them.

use crate::hash::HashSet;

use super::Checker;
use crate::code::Code;
use crate::diagnostic::Finding;
use crate::keyword as kw;
use crate::model::*;

impl Checker<'_> {
    /// Every approval: approvers given and unique, an expiry, and a written
    /// artifact whose `decision` field allows exactly APPROVED and REJECTED.
    pub(super) fn approvals(&mut self) {
        for a in &self.p.approvals {
            let has = |child| self.declared.has_child(kw::APPROVAL, &a.name.value, child);
            if a.approvers.is_empty() && !has(kw::APPROVERS) {
                self.push(
                    Finding::new(
                        Code::NoApprovers,
                        a.name.span,
                        format!("approval `{}` names nobody who may decide", a.name.value),
                    )
                    .label("no approvers")
                    .help("add `approvers \"NAME\"…`: the people allowed to decide"),
                );
            }
            let mut seen = HashSet::default();
            for n in &a.approvers {
                if !seen.insert(n.value.as_str()) {
                    self.push(
                        Finding::new(
                            Code::DuplicateApprover,
                            n.span,
                            format!("approver `{}` is named twice", n.value),
                        )
                        .label("second mention")
                        .help("name each approver once"),
                    );
                }
            }
            if a.expires.is_none() && !has(kw::EXPIRES) {
                self.push(
                    Finding::new(
                        Code::MissingExpiry,
                        a.name.span,
                        format!("approval `{}` could wait forever", a.name.value),
                    )
                    .label("no `expires`")
                    .help("add `expires \"24h\"`: with no decision by then the stage fails closed"),
                );
            }
            match &a.writes {
                Some(w) if self.reference(kw::ARTIFACT, Code::UnknownArtifact, w, "artifact") => {
                    self.decision_field(w);
                }
                Some(_) => {}
                None if !has(kw::WRITES) => self.push(
                    Finding::new(
                        Code::MissingWrites,
                        a.name.span,
                        format!(
                            "approval `{}` does not say which artifact the decision is written to",
                            a.name.value
                        ),
                    )
                    .label("no `writes`")
                    .help("add `writes \"ARTIFACT\"`; its gate reads the decision"),
                ),
                None => {}
            }
        }
    }

    /// The written artifact holds `field "decision" "APPROVED" "REJECTED"`.
    fn decision_field(&mut self, artifact: &Name) {
        let Some(a) = self.ix.artifacts.get(artifact.value.as_str()).copied() else {
            return;
        };
        let allowed: HashSet<&str> = a
            .field(DECISION_FIELD)
            .map(|f| f.allowed.iter().map(|v| v.value.as_str()).collect())
            .unwrap_or_default();
        let exact: HashSet<&str> = [APPROVED, REJECTED].into_iter().collect();
        if a.field(DECISION_FIELD).is_none() || allowed != exact {
            let span = a
                .field(DECISION_FIELD)
                .map(|f| f.key.span)
                .unwrap_or(a.name.span);
            self.push(
                Finding::new(
                    Code::BadDecisionField,
                    span,
                    format!(
                        "artifact `{}` receives a decision, so it needs a `decision` field allowing exactly APPROVED and REJECTED",
                        a.name.value
                    ),
                )
                .label("not a decision field")
                .help("declare `field \"decision\" \"APPROVED\" \"REJECTED\"`"),
            );
        }
    }

    /// A call-site's approval. True when the call-site is `mode="human"`
    /// (the caller then skips the runner and LLM checks).
    pub(super) fn call_site_approval(&mut self, c: &CallSite) -> bool {
        let human = c.mode.value == Mode::Human;
        if let Some(a) = &c.approval {
            self.reference(kw::APPROVAL, Code::UnknownApproval, a, "approval");
            if !human {
                self.push(
                    Finding::new(
                        Code::IgnoredProducer,
                        a.span,
                        format!(
                            "call-site `{}` has mode=\"{}\", so its approval is never asked for",
                            c.name.value,
                            kw::mode(c.mode.value)
                        ),
                    )
                    .label("ignored")
                    .help("set mode=\"human\" to let a person decide"),
                );
            }
        }
        if !human {
            return false;
        }
        if c.approval.is_none()
            && !self
                .declared
                .has_child(kw::CALL_SITE, &c.name.value, kw::APPROVAL)
        {
            self.push(
                Finding::new(
                    Code::MissingProducer,
                    c.mode.span,
                    format!(
                        "call-site `{}` has mode=\"human\" but no `approval`",
                        c.name.value
                    ),
                )
                .label("needs an approval")
                .help("add `approval \"NAME\"` to the call-site"),
            );
        }
        let ignored = c
            .runner
            .as_ref()
            .map(|r| r.span)
            .into_iter()
            .chain(c.llm.as_ref().map(|l| l.span));
        for span in ignored.collect::<Vec<_>>() {
            self.push(
                Finding::new(
                    Code::IgnoredProducer,
                    span,
                    format!(
                        "call-site `{}` has mode=\"human\": a person decides, so this is never used",
                        c.name.value
                    ),
                )
                .label("ignored")
                .help("remove it, or use mode=\"hybrid\" for a runner with an LLM fallback"),
            );
        }
        true
    }

    /// A human stage's gate reads the artifact its approval writes.
    pub(super) fn stage_approval(&mut self, s: &Stage) {
        let Some(c) = self.ix.call_sites.get(s.call_site.value.as_str()).copied() else {
            return;
        };
        if c.mode.value != Mode::Human {
            return;
        }
        let approval = c.approval.as_ref().and_then(|a| self.p.approval(&a.value));
        let gate = self.ix.gates.get(s.gate.value.as_str()).copied();
        let (Some(a), Some(g)) = (approval, gate) else {
            return;
        };
        let Some(w) = &a.writes else { return };
        let known = |n: &Name| self.declared.has(kw::ARTIFACT, &n.value);
        if w.value != g.artifact.value && known(w) && known(&g.artifact) {
            self.push(
                Finding::new(
                    Code::ArtifactMismatch,
                    s.gate.span,
                    format!(
                        "gate `{}` reads artifact `{}`, but approval `{}` writes `{}`",
                        g.name.value, g.artifact.value, a.name.value, w.value
                    ),
                )
                .label("the gate would never see the decision")
                .help("make the gate read the artifact the approval writes"),
            );
        }
    }
}
