//! Hardening: what an adversarial sweep broke, one regression test per item,
//! with hostile producers as small `sh` scripts.

mod common;

#[path = "hardening/resume.rs"]
mod resume;

#[path = "hardening/robust.rs"]
mod robust;
#[path = "hardening/secrets.rs"]
mod secrets;
#[path = "hardening/taskdir.rs"]
mod taskdir;
#[path = "hardening/validation.rs"]
mod validation;
