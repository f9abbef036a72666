//! `orch`: a declarative pipeline-as-config interpreter.
//!
//! Flow: text → KDL syntax tree ([`loader`]) → shape checks ([`schema`]) →
//! typed model ([`model`]) → semantic checks ([`validate`], [`graph`]) →
//! findings ([`diagnostic`]).

pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod diagram;
pub mod duration;
pub mod engine;
pub mod explain;
pub mod fmt;
pub mod gate;
pub mod graph;
pub mod history;
pub mod init;
pub mod junit;
pub mod loader;
pub mod lock;
pub mod map;
pub mod model;
pub mod process;
pub mod producer;
pub mod report;
pub mod roadmap;
pub mod schema;
pub mod store;
pub mod template;
pub mod validate;
