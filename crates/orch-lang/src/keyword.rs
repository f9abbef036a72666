//! The language's keywords, spelled once. The decoder matches on them, the
//! loader records them in [`Declaration`](crate::model::Declaration)s and
//! the validator looks them up; the JSON Schema states the same names and a
//! test holds the two together.

use crate::model::Mode;

pub(crate) const PIPELINE: &str = "pipeline";
pub(crate) const TRANSPORT: &str = "transport";
pub(crate) const ARTIFACT: &str = "artifact";
pub(crate) const GATE: &str = "gate";
pub(crate) const RUNNER: &str = "runner";
pub(crate) const CALL_SITE: &str = "call-site";
pub(crate) const STAGE: &str = "stage";
pub(crate) const END: &str = "end";
pub(crate) const ALERT: &str = "alert";
pub(crate) const APPROVAL: &str = "approval";

/// Every top-level node, in the order the documentation lists them.
pub(crate) const TOP_LEVEL: &[&str] = &[
    PIPELINE, TRANSPORT, ARTIFACT, GATE, RUNNER, CALL_SITE, STAGE, END, ALERT, APPROVAL,
];

// Children whose presence the validator asks about (written, even if
// malformed); `runner` is both a node and a call-site's child.
pub(crate) const COMMAND: &str = "command";
pub(crate) const TIMEOUT: &str = "timeout";
pub(crate) const WRITES: &str = "writes";
pub(crate) const PASS: &str = "pass";
pub(crate) const EXHAUSTED: &str = "exhausted";
pub(crate) const LLM: &str = "llm";
pub(crate) const WHY: &str = "why";
pub(crate) const APPROVERS: &str = "approvers";
pub(crate) const EXPIRES: &str = "expires";

/// A call-site's `mode` values.
pub(crate) const MODES: &[(&str, Mode)] = &[
    ("llm", Mode::Llm),
    ("runner", Mode::Runner),
    ("hybrid", Mode::Hybrid),
    ("human", Mode::Human),
];

/// How a mode is written.
pub fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Llm => "llm",
        Mode::Runner => "runner",
        Mode::Hybrid => "hybrid",
        Mode::Human => "human",
    }
}
