//! Where `orch validate`'s time goes, phase by phase, inside one process:
//! the same calls `analysis::analyze_text` makes, each timed.
//!
//! `cargo run --release --example validate_phases -- FILE [REPEAT]`

use std::path::Path;
use std::time::Instant;

use orch_lang::diagnostic::{self, FileReport, Format};
use orch_lang::validate::graph;
use orch_lang::{loader, schema, validate};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: validate_phases FILE [REPEAT]");
    let repeat: usize = args.next().map(|r| r.parse().unwrap()).unwrap_or(1);
    let text = std::fs::read_to_string(&path).expect("readable file");
    let dir = Path::new(&path)
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut rows: Vec<(&str, f64)> = Vec::new();
    let mut add = |name: &'static str, t: Instant| {
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match rows.iter_mut().find(|(n, _)| *n == name) {
            Some(r) => r.1 += ms,
            None => rows.push((name, ms)),
        }
    };
    let t = Instant::now();
    let tiny = orch_lang::syntax::parse("pipeline \"x\" start=\"a\"").unwrap();
    schema::check(&schema::to_json(&tiny));
    add("first schema::check on a tiny doc (compiles the schema)", t);
    for _ in 0..repeat {
        let t = Instant::now();
        let doc = kdl::KdlDocument::parse_v2(&text).unwrap();
        add("kdl crate parse (parse_v2 alone)", t);
        drop(doc);

        let t = Instant::now();
        let doc = orch_lang::syntax::parse(&text).unwrap();
        add("reader parse (syntax::parse alone)", t);
        drop(doc);

        let t = Instant::now();
        let loaded = loader::load(&path, &text);
        add("loader::load (parse + decode)", t);
        assert!(loaded.parsed, "the file is KDL");
        let doc = orch_lang::syntax::parse(&text).unwrap();

        let t = Instant::now();
        let form = schema::to_json(&doc);
        add("schema::to_json", t);
        let t = Instant::now();
        let sf = schema::check(&form);
        add("schema::check (jsonschema)", t);
        let t = Instant::now();
        drop(form);
        add("drop json form", t);

        let opts = validate::Options { offline: true };
        let t = Instant::now();
        let f_off = validate::check(&loaded.pipeline, &dir, sf.is_empty(), &opts);
        add("validate::check offline (incl. graph)", t);
        let t = Instant::now();
        let g = graph::check(&loaded.pipeline);
        add("  of which graph::check", t);
        let opts = validate::Options::default();
        let t = Instant::now();
        let f = validate::check(&loaded.pipeline, &dir, sf.is_empty(), &opts);
        add("validate::check (with PATH, prompts)", t);

        let t = Instant::now();
        let report = FileReport {
            source: loaded.source.clone(),
            findings: f,
        };
        let out = diagnostic::render(&[report], Format::Human, false);
        add("render", t);
        assert!(f_off.len() + g.len() < usize::MAX && !out.is_empty());

        let t = Instant::now();
        drop(loaded);
        add("drop loaded (doc + model)", t);
    }
    for (n, ms) in rows {
        println!("{:>10.3} ms  {n}", ms / repeat as f64);
    }
}
