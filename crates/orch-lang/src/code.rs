//! Every finding code, its stable `orch::…` text and its severity, in one
//! table: the loader, the schema mapping and the checks all name codes from
//! here, and the fixture test walks [`Code::ALL`].

use serde::Serialize;
use std::fmt;

/// How bad a finding is. Fixed per code: a warning never fails `orch validate`
/// without `--strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// Declares [`Code`] from one table so that the variant, its text, its
/// severity and `ALL` cannot drift apart.
macro_rules! codes {
    ($($variant:ident = $text:literal, $severity:ident;)*) => {
        /// A finding's stable code. Users and CI scripts match on its text
        /// ([`Code::as_str`]), so a text never changes once published.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as users see it, like `orch::unknown-stage`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            pub const fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }
        }
    };
}

codes! {
    // Syntax and shape: the KDL parse, the JSON Schema and the decoder.
    Syntax = "orch::syntax", Error;
    BadFile = "orch::bad-file", Error;
    TooDeep = "orch::too-deep", Error;
    UnknownNode = "orch::unknown-node", Error;
    UnknownProperty = "orch::unknown-property", Error;
    InvalidValue = "orch::invalid-value", Error;
    MissingValue = "orch::missing-value", Error;
    TooManyArguments = "orch::too-many-arguments", Error;
    BadDuration = "orch::bad-duration", Error;
    BadExitCode = "orch::bad-exit-code", Error;
    MissingPipeline = "orch::missing-pipeline", Error;
    DuplicatePipeline = "orch::duplicate-pipeline", Error;
    DuplicateSetting = "orch::duplicate-setting", Error;
    DuplicateProperty = "orch::duplicate-property", Error;
    UnknownPlaceholder = "orch::unknown-placeholder", Error;
    // Semantics: the validator and the graph checks.
    DuplicateName = "orch::duplicate-name", Error;
    BadName = "orch::bad-name", Error;
    UnknownStage = "orch::unknown-stage", Error;
    StartNotStage = "orch::start-not-stage", Error;
    UnknownCallSite = "orch::unknown-call-site", Error;
    UnknownGate = "orch::unknown-gate", Error;
    UnknownArtifact = "orch::unknown-artifact", Error;
    UnknownRunner = "orch::unknown-runner", Error;
    UnknownTransport = "orch::unknown-transport", Error;
    UnknownAlert = "orch::unknown-alert", Error;
    UnknownField = "orch::unknown-field", Error;
    UnknownVariable = "orch::unknown-variable", Error;
    DuplicateField = "orch::duplicate-field", Error;
    DuplicateExitCode = "orch::duplicate-exit-code", Error;
    VerdictNotAllowed = "orch::verdict-not-allowed", Error;
    ExpectNeverHolds = "orch::expect-never-holds", Error;
    ArtifactMismatch = "orch::artifact-mismatch", Error;
    UnwritableField = "orch::unwritable-field", Error;
    MissingTimeout = "orch::missing-timeout", Error;
    MissingCommand = "orch::missing-command", Error;
    MissingWrites = "orch::missing-writes", Error;
    MissingProducer = "orch::missing-producer", Error;
    IgnoredProducer = "orch::ignored-producer", Warning;
    MissingTransition = "orch::missing-transition", Error;
    MissingJustification = "orch::missing-justification", Error;
    JudgementRunner = "orch::judgement-runner", Error;
    MultipleTransports = "orch::multiple-transports", Error;
    BadRegex = "orch::bad-regex", Error;
    BadPath = "orch::bad-path", Error;
    UnreachableStage = "orch::unreachable-stage", Error;
    NoPathToEnd = "orch::no-path-to-end", Error;
    UnboundedCycle = "orch::unbounded-cycle", Error;
    ExecutableNotFound = "orch::executable-not-found", Warning;
    PromptNotFound = "orch::prompt-not-found", Warning;
    Unused = "orch::unused", Warning;
    IneffectiveSetting = "orch::ineffective-setting", Warning;
    BadVariableName = "orch::bad-variable-name", Error;
    ZeroTimeout = "orch::zero-timeout", Error;
    DurationTooLong = "orch::duration-too-long", Error;
    // Approvals: a person's decision.
    UnknownApproval = "orch::unknown-approval", Error;
    NoApprovers = "orch::no-approvers", Error;
    DuplicateApprover = "orch::duplicate-approver", Error;
    MissingExpiry = "orch::missing-expiry", Error;
    BadDecisionField = "orch::bad-decision-field", Error;
    // Placement: labels a service must have.
    DuplicateLabel = "orch::duplicate-label", Error;
    // Output: a file with more findings than are reported.
    TooManyFindings = "orch::too-many-findings", Warning;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn texts_are_unique_and_prefixed() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            assert!(c.as_str().starts_with("orch::"), "{c:?}");
            assert!(seen.insert(c.as_str()), "{c} twice");
        }
    }
}
