//! `orch run` end to end: the real binary on small fixture pipelines
//! (tests/fixtures/run/*.kdl) whose runners, transports and alerts are tiny
//! `sh` scripts (tests/fixtures/run/scripts/) that record what they saw in the
//! sandbox's `out/` directory (T_OUT). Each module covers one part of the run
//! semantics of the pipeline language.

mod common;

#[path = "run/choice.rs"]
mod choice;
#[path = "run/cli.rs"]
mod cli;
#[path = "run/demo.rs"]
mod demo;
#[path = "run/environment.rs"]
mod environment;
#[path = "run/gate.rs"]
mod gate;
#[path = "run/history.rs"]
mod history;
#[path = "run/outcome.rs"]
mod outcome;
#[path = "run/runner.rs"]
mod runner;
#[path = "run/serial.rs"]
mod serial;
#[path = "run/transitions.rs"]
mod transitions;
#[path = "run/transport.rs"]
mod transport;
