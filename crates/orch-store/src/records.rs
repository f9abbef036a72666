//! The domain records the store keeps, with an enum for every state. These
//! are what the engine writes and what history, status and reports read;
//! how a store lays them out (SQL rows, columns) is its own business.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Declares a closed set of states with their stored spellings. Parsing an
/// unknown spelling is an error: a damaged or newer store is refused, never
/// read as some default state.
macro_rules! spelled {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownSpelling;

            fn from_str(s: &str) -> Result<Self, UnknownSpelling> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownSpelling {
                        what: stringify!($name),
                        found: s.to_string(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A stored state this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{found}`")]
pub struct UnknownSpelling {
    pub(crate) what: &'static str,
    pub(crate) found: String,
}

spelled! {
    /// Where a run is in its life.
    RunStatus {
        /// Taking steps (or its process died mid-step: see the task lock).
        Running => "running",
        /// Stopped by a signal or a cancel; `--resume` continues it.
        Interrupted => "interrupted",
        /// Reached an end.
        Finished => "finished",
        /// Replaced by a new run (`--restart`).
        Abandoned => "abandoned",
        /// Cancelled through the service (`orch cancel`): its producers were
        /// terminated; `--resume` can still continue it.
        Cancelled => "cancelled",
        /// Stopped at an approval stage with its request pending;
        /// `--resume` continues it once a decision exists (or it expired).
        Waiting => "waiting",
    }
}

spelled! {
    /// How a finished run ended: the outcome of its end.
    Outcome {
        Success => "success",
        Failure => "failure",
    }
}

spelled! {
    /// What produced an attempt.
    ProducerKind {
        Runner => "runner",
        Llm => "llm",
        /// A person's decision: nothing is spawned.
        Approval => "approval",
    }
}

spelled! {
    /// Which of a stage's transitions was taken.
    TransitionKind {
        Pass => "pass",
        /// A rollback, counted against the `fail` budget.
        Fail => "fail",
        /// The stage failed closed.
        Exhausted => "exhausted",
    }
}

spelled! {
    /// Where an attempt is in its life; each is recorded before the next begins.
    Step {
        /// The record exists; the producer may or may not have been spawned.
        Started => "started",
        /// The producer ended; exit and verdict are recorded.
        Exited => "exited",
        /// The artifact is on disk (written by orch or the agent).
        Artifact => "artifact",
        /// The gate's decision is recorded.
        Gated => "gated",
        /// The transition is recorded (or the attempt was deferred).
        Done => "done",
        /// `orch` stopped while the producer ran; the attempt is not finished.
        Interrupted => "interrupted",
    }
}

spelled! {
    /// Whether a queued alert ran, and how.
    AlertStatus {
        Pending => "pending",
        Ok => "ok",
        Failed => "failed",
    }
}

spelled! {
    /// Where a task submitted to the service is in the queue.
    QueueState {
        /// Waiting for a worker.
        Queued => "queued",
        /// Taken by a worker (or in flight when the service stopped: resumed
        /// on its next start).
        Running => "running",
        /// Its run reached an end (success or failure: see the run).
        Finished => "finished",
        /// Its run could not be set up or taken further (see `error`).
        Failed => "failed",
        /// Cancelled before or while it ran.
        Cancelled => "cancelled",
        /// Its run waits for a person's decision; it holds no worker and is
        /// queued again when the decision comes or the request expires.
        Waiting => "waiting",
    }
}

/// A task submitted to the service.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTask {
    /// Submission order.
    pub(crate) id: i64,
    pub task: String,
    /// The `--var` overrides it was submitted with.
    pub vars: BTreeMap<String, String>,
    /// Absolute.
    pub worktree: String,
    pub state: QueueState,
    /// Why it failed, for `Failed`.
    pub error: Option<String>,
    pub submitted_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The labels its next stage needs, when a service without them
    /// released it at that stage's boundary (empty: any service may take
    /// it). Only services holding every one of them take it.
    pub needs: Vec<String>,
}

/// Whether a service holding `labels` may run a stage needing `needs`.
pub fn holds_all(labels: &[String], needs: &[String]) -> bool {
    needs.iter().all(|n| labels.contains(n))
}

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewQueuedTask<'a> {
    pub task: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    pub worktree: &'a str,
    /// The labels its first stage needs (empty: none); only a service that
    /// has them takes it.
    pub needs: &'a [String],
}

/// One run of a task through the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: i64,
    pub task: String,
    pub pipeline_path: String,
    pub pipeline_hash: String,
    pub pipeline_text: String,
    pub status: RunStatus,
    pub outcome: Option<Outcome>,
    pub end_name: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// The pipeline's own name (`None` for runs recorded before it was kept).
    pub pipeline_name: Option<String>,
    /// The variables the run runs with (declared defaults and `--var`).
    pub vars: BTreeMap<String, String>,
    /// The directory its producers work in, absolute.
    pub worktree: String,
}

/// A new run, as recorded before its first step.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub task: &'a str,
    pub pipeline_path: &'a str,
    pub pipeline_name: &'a str,
    pub pipeline_hash: &'a str,
    pub pipeline_text: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    pub worktree: &'a str,
    pub host: &'a str,
}

/// Something a run's account must say beyond its steps: a consent given on
/// resume, a change noticed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunNote {
    pub(crate) at_ms: i64,
    pub text: String,
}

/// The process group a producer ran in, and what identifies it beyond its
/// number: a stored group id is signalled only while all of it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub pgid: i64,
    /// The leader's start time, in clock ticks since boot.
    pub leader_start: Option<i64>,
    pub boot_id: Option<String>,
    pub host: Option<String>,
    /// The supervision token the group's processes carry in their environment.
    pub token: Option<String>,
}

/// The bytes of an attempt's artifact as a store kept them, with the
/// digest recorded with them (the reader checks the bytes against it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub sha256: String,
    pub content: Vec<u8>,
}

/// One attempt of a stage: a producer run, its exit, artifact, gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: i64,
    pub run_id: i64,
    pub task: String,
    pub stage: String,
    pub attempt: i64,
    /// Transitions the run had taken when the attempt began: attempts with
    /// the same visit belong to one stay in the stage.
    pub visit: i64,
    pub call_site: String,
    pub producer: ProducerKind,
    pub producer_name: String,
    pub argv: Vec<String>,
    pub defers: i64,
    pub step: Step,
    pub group: Option<GroupRecord>,
    pub exit_code: Option<i64>,
    pub exit: Option<String>,
    pub verdict: Option<String>,
    pub leaked: bool,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub log_path: String,
    pub artifact_sha256: Option<String>,
    pub gate_pass: Option<bool>,
    pub gate_reason: Option<String>,
    pub tail: Vec<String>,
}

/// A new attempt, as recorded before its producer starts.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub run_id: i64,
    pub task: &'a str,
    pub stage: &'a str,
    pub attempt: i64,
    pub visit: i64,
    pub call_site: &'a str,
    pub producer: ProducerKind,
    pub producer_name: &'a str,
    pub argv: &'a [String],
    pub defers: i64,
    pub log_path: &'a str,
}

/// How an attempt's producer ended.
#[derive(Debug, Clone)]
pub struct ExitRecord<'a> {
    pub exit_code: Option<i32>,
    /// How it ended, in words ("exit code 1", "timed out").
    pub exit: &'a str,
    pub verdict: &'a str,
    /// Processes that outlived the producer's group, described.
    pub leaks: &'a [String],
    pub duration: std::time::Duration,
    /// The last lines of its output.
    pub tail: &'a [String],
}

/// A transition taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub id: i64,
    pub attempt_id: Option<i64>,
    pub from_stage: String,
    pub kind: TransitionKind,
    pub to_stage: String,
    pub reason: String,
}

/// A transition about to be recorded, with the alert it queues.
#[derive(Debug, Clone)]
pub struct NewTransition<'a> {
    pub run_id: i64,
    pub attempt_id: Option<i64>,
    pub from: &'a str,
    pub kind: TransitionKind,
    pub to: &'a str,
    pub reason: &'a str,
    pub alert: Option<&'a str>,
}

/// Where a run is: how many transitions it took and where the last led.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub transitions: i64,
    pub last_to: Option<String>,
}

/// A queued alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub stage: String,
    pub alert: String,
    pub status: AlertStatus,
    /// How it ended, as recorded (`exit code 3`, `alert not defined …`);
    /// none while it is pending.
    pub exit: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_unknown_ones_are_refused() {
        for s in Step::ALL {
            assert_eq!(s.as_str().parse::<Step>(), Ok(*s));
        }
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
        }
        for s in QueueState::ALL {
            assert_eq!(s.as_str().parse::<QueueState>(), Ok(*s));
        }
        let e = "paused".parse::<Step>().unwrap_err();
        assert_eq!(e.to_string(), "unknown Step `paused`");
    }
}

/// A finished LLM attempt, for the roadmap's ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAttempt {
    pub call_site: String,
    pub duration_ms: i64,
    /// The digest of the pipeline file the attempt's run used.
    pub pipeline_hash: String,
}

/// A service sharing the store (PostgreSQL): who it is, what it may run,
/// what it holds, and when it last renewed its lease.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServiceRecord {
    pub(crate) id: String,
    pub name: String,
    pub host: String,
    pub(crate) pid: i64,
    pub labels: Vec<String>,
    /// Queue entries it holds (`running` under its lease).
    pub tasks_held: i64,
    pub renewed_ms: i64,
    pub(crate) expires_ms: i64,
    /// Its lease has not expired.
    pub live: bool,
}

spelled! {
    /// A person's decision on an approval request.
    Decision {
        Approved => "approved",
        Rejected => "rejected",
    }
}

impl Decision {
    /// How the decision artifact spells it (`decision: APPROVED`).
    pub fn artifact_value(self) -> &'static str {
        match self {
            Decision::Approved => "APPROVED",
            Decision::Rejected => "REJECTED",
        }
    }
}

/// A pending-or-decided request for a person's decision, recorded when a
/// run reaches an approval stage (one per approval attempt).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalRequest {
    pub id: i64,
    pub run_id: i64,
    pub attempt_id: i64,
    pub task: String,
    pub stage: String,
    /// The `approval` node's name.
    pub approval: String,
    /// Who may decide, as the pipeline said when the request was made.
    pub approvers: Vec<String>,
    /// Artifact paths (beneath the task directory) the approver is shown.
    pub show: Vec<String>,
    pub requested_ms: i64,
    /// No decision is accepted from this time on; the stage fails closed.
    pub expires_ms: i64,
}

/// A request to record.
#[derive(Debug, Clone)]
pub struct NewApprovalRequest<'a> {
    pub run_id: i64,
    pub attempt_id: i64,
    pub task: &'a str,
    pub stage: &'a str,
    pub approval: &'a str,
    pub approvers: &'a [String],
    pub show: &'a [String],
    pub requested_ms: i64,
    pub expires_ms: i64,
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalDecision {
    pub id: i64,
    pub request_id: i64,
    pub decision: Decision,
    /// Who decided (checked against the request's approvers before).
    pub decider: String,
    pub comment: String,
    pub at_ms: i64,
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    pub decision: Decision,
    pub decider: &'a str,
    pub comment: &'a str,
    pub at_ms: i64,
}

/// A request with its decision, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Approval {
    pub request: ApprovalRequest,
    pub decision: Option<ApprovalDecision>,
}

/// What became of a decision the store was asked to record.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionOutcome {
    /// Committed: the id of the decision.
    Recorded(i64),
    /// Nothing written: the request already has this decision.
    AlreadyDecided(ApprovalDecision),
    /// Nothing written: the decision came at or after the request's expiry.
    Expired,
    /// Nothing written: no request has this id.
    NoRequest,
}
