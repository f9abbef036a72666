//! Test hook: `ORCH_FAILPOINT=POINT` or `POINT@STAGE` makes orch kill itself
//! with SIGKILL at that step, exactly as a crash would, so the durability
//! tests can stop it at every step boundary.

/// A step boundary the durability tests can crash at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Point {
    BeforeSpawn,
    AfterExit,
    AfterArtifact,
    AfterGate,
    /// `orch approve`/`reject`, checks passed, before the decision is committed.
    BeforeDecision,
    /// The decision is committed, before it is acknowledged.
    AfterDecision,
}

impl Point {
    fn as_str(self) -> &'static str {
        match self {
            Point::BeforeSpawn => "before-spawn",
            Point::AfterExit => "after-exit",
            Point::AfterArtifact => "after-artifact",
            Point::AfterGate => "after-gate",
            Point::BeforeDecision => "before-decision",
            Point::AfterDecision => "after-decision",
        }
    }
}

pub(crate) fn hit(point: Point, stage: &str) {
    let Ok(want) = std::env::var("ORCH_FAILPOINT") else {
        return;
    };
    let point = point.as_str();
    let hit = match want.split_once('@') {
        Some((p, s)) => p == point && s == stage,
        None => want == point,
    };
    if hit {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}
