//! The language's keywords, spelled once. The decoder matches on them, the
//! loader records them in [`Declaration`](crate::model::Declaration)s and
//! the validator looks them up; the JSON Schema states the same names and a
//! test holds the two together.

use crate::model::Mode;

pub const PIPELINE: &str = "pipeline";
pub const TRANSPORT: &str = "transport";
pub const ARTIFACT: &str = "artifact";
pub const GATE: &str = "gate";
pub const RUNNER: &str = "runner";
pub const CALL_SITE: &str = "call-site";
pub const STAGE: &str = "stage";
pub const END: &str = "end";
pub const ALERT: &str = "alert";
pub const APPROVAL: &str = "approval";

/// Every top-level node, in the order the documentation lists them.
pub const TOP_LEVEL: &[&str] = &[
    PIPELINE, TRANSPORT, ARTIFACT, GATE, RUNNER, CALL_SITE, STAGE, END, ALERT, APPROVAL,
];

// Children whose presence the validator asks about (written, even if
// malformed); `runner` is both a node and a call-site's child.
pub const COMMAND: &str = "command";
pub const TIMEOUT: &str = "timeout";
pub const WRITES: &str = "writes";
pub const PASS: &str = "pass";
pub const EXHAUSTED: &str = "exhausted";
pub const LLM: &str = "llm";
pub const WHY: &str = "why";
pub const APPROVERS: &str = "approvers";
pub const EXPIRES: &str = "expires";

/// A call-site's `mode` values.
pub const MODES: &[(&str, Mode)] = &[
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
