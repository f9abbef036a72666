//! The orch pipeline language.
//!
//! Flow: text → KDL syntax tree ([`syntax`], decoded by [`loader`]) → shape checks ([`schema`]) →
//! typed model ([`model`]) → semantic checks ([`validate`], with the
//! transition-graph checks in [`validate::graph`]) → findings
//! ([`diagnostic`], codes in [`code`]); [`analysis`] runs them in that order. The views
//! ([`map`], [`roadmap`], [`diagram`], [`explain`], [`choice`]) read only
//! the model. No processes, no SQL: the language server depends on this
//! crate alone.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod analysis;
pub mod changes;
pub mod choice;
pub mod code;
pub mod diagnostic;
pub mod diagram;
pub mod duration;
pub mod explain;
pub mod fmt;
pub mod gate;
mod hash;
pub mod init;
pub mod invocation;
pub mod keyword;
mod limits;
pub mod loader;
pub mod map;
pub mod model;
pub mod roadmap;
pub mod schema;
pub mod svg;
pub mod symbols;
pub mod syntax;
pub mod template;
pub mod validate;
pub mod xml;
