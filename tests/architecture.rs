//! The crates' dependency graph points one way: the language knows nothing
//! of processes or SQL (the language server will depend on it alone), the
//! store nothing of the language or the engine, the engine nothing of the
//! binary.

use std::process::Command;

/// Every package `package` depends on (normal dependencies, transitively
/// or, with `direct`, only its own).
fn dependencies(package: &str, direct: bool) -> Vec<String> {
    let depth = if direct { "1" } else { "999" };
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--depth",
            depth,
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_none_of(package: &str, direct: bool, forbidden: &[&str]) {
    let deps = dependencies(package, direct);
    assert!(deps.len() > 1, "{package} has dependencies: {deps:?}");
    for f in forbidden {
        assert!(
            !deps.iter().any(|d| d == f),
            "{package} must not depend on {f}"
        );
    }
}

#[test]
fn the_language_crate_has_no_runtime_no_sql_and_no_upper_layer() {
    assert_none_of(
        "orch-lang",
        false,
        &[
            "tokio",
            "rusqlite",
            "nix",
            "orch-store",
            "orch-engine",
            "orch",
            "clap",
        ],
    );
}

#[test]
fn the_store_knows_neither_the_language_nor_the_engine() {
    // tokio is allowed since the PostgreSQL store (issue 15): its client,
    // tokio-postgres, runs on it, and the design puts `postgres/` in this
    // crate beside `sqlite/` (shared/design/architecture.md). The store
    // still knows nothing of the language, the engine, the service or HTTP.
    assert_none_of(
        "orch-store",
        false,
        &[
            "orch-lang",
            "orch-engine",
            "orch",
            "orch-server",
            "axum",
            "hyper",
        ],
    );
}

#[test]
fn the_engine_does_not_reach_up_to_the_binary_nor_parse_text_nor_speak_sql() {
    assert_none_of(
        "orch-engine",
        false,
        &["orch", "orch-server", "clap", "axum"],
    );
    // KDL and SQL only through the language and the store.
    assert_none_of("orch-engine", true, &["kdl", "rusqlite"]);
}
