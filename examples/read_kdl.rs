//! The KDL reader alone: reads FILE with `orch_lang::syntax::parse` (and,
//! with `--kdl`, with the `kdl` crate's `KdlDocument::parse_v2`) REPEAT
//! times inside one process and prints the throughput, best and median.
//!
//! `cargo run --release --example read_kdl -- FILE [REPEAT] [--kdl]`

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().expect("usage: read_kdl FILE [REPEAT] [--kdl]");
    let repeat: usize = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .map(|r| r.parse().expect("REPEAT is a number"))
        .unwrap_or(10);
    let kdl = args.iter().any(|a| a == "--kdl");
    let text = std::fs::read_to_string(path).expect("readable UTF-8 file");
    let mut times = Vec::with_capacity(repeat);
    let mut nodes = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        nodes = if kdl {
            kdl::KdlDocument::parse_v2(&text)
                .expect("valid KDL")
                .nodes()
                .len()
        } else {
            orch_lang::syntax::parse(&text)
                .expect("valid KDL")
                .nodes()
                .len()
        };
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let mb = text.len() as f64 / 1e6;
    let (best, median) = (times[0], times[times.len() / 2]);
    println!(
        "{} {path}: {} bytes, {nodes} top-level nodes, best {:.2} ms ({:.1} MB/s), median {:.2} ms ({:.1} MB/s)",
        if kdl { "kdl-crate" } else { "reader" },
        text.len(),
        best * 1e3,
        mb / best,
        median * 1e3,
        mb / median
    );
}
