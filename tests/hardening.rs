//! Hardening: what an adversarial sweep broke, one regression test per item,
//! with hostile producers as small `sh` scripts.

mod common;

#[path = "hardening/resume.rs"]
mod resume;

#[path = "hardening/validation.rs"]
mod validation;
