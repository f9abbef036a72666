//! `orch roadmap`: avoidable LLM control paths ranked by this pipeline's
//! run history.

use orch_store::{RunStore, StoreLocation};
use std::path::Path;

use super::{exit, json_doc, load_valid, print, read_store};

/// `orch roadmap`.
pub fn command(path: &Path, at: &StoreLocation, json: bool) -> u8 {
    let p = match load_valid(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let name = p
        .header
        .as_ref()
        .map(|h| h.name.value.clone())
        .unwrap_or_default();
    let attempts = match read_store(at, async |store| match store {
        Some(store) => store.llm_attempts(&name).await,
        None => Ok(Vec::new()),
    }) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    // History counts only runs of this pipeline (by its name); say how much
    // of it ran an earlier version of the file.
    let digest = std::fs::read_to_string(path)
        .map(|t| orch_engine::pipeline_digest(&t))
        .unwrap_or_default();
    let earlier = attempts
        .iter()
        .filter(|a| a.pipeline_hash != digest)
        .count();
    let history = format!(
        "ranked by {} recorded LLM attempt(s) of pipeline `{name}`{}",
        attempts.len(),
        if earlier > 0 {
            format!(
                "; {earlier} of them ran an earlier version of {}",
                path.display()
            )
        } else {
            String::new()
        }
    );
    let pairs: Vec<(String, i64)> = attempts
        .into_iter()
        .map(|a| (a.call_site, a.duration_ms))
        .collect();
    let r = orch_lang::roadmap::build(&p, &pairs);
    if json {
        let mut doc = match serde_json::to_value(&r) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: cannot write the JSON document: {e}");
                return exit::USAGE;
            }
        };
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("history".into(), serde_json::Value::String(history));
        }
        match json_doc(&doc) {
            Ok(doc) => print(&doc),
            Err(e) => {
                eprintln!("error: cannot write the JSON document: {e}");
                return exit::USAGE;
            }
        }
    } else {
        print(&orch_lang::roadmap::to_text(&r));
        print(&format!("({history})\n"));
    }
    exit::OK
}
