//! `orch lsp` spoken to as an editor does: the real binary as a child
//! process, JSON-RPC over its stdin/stdout, on the reference pipeline and
//! broken variants of it.

mod common;

use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};

use common::{repo_root, HANG};

/// A language client on a running `orch lsp`.
struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
    /// Notifications received while waiting for a response.
    notes: Vec<Value>,
}

impl Client {
    fn start() -> Client {
        Client::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Client {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
        cmd.arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start orch lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(m) = read_message(&mut r) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        let mut c = Client {
            child,
            stdin,
            incoming,
            next_id: 0,
            notes: Vec::new(),
        };
        let init = c.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": {}}),
        );
        assert_eq!(
            init["result"]["capabilities"]["textDocumentSync"],
            json!(1),
            "full sync: {init}"
        );
        c.notify("initialized", json!({}));
        c
    }

    fn send(&mut self, v: &Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its response (the whole message).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self
                .incoming
                .recv_timeout(HANG)
                .unwrap_or_else(|e| panic!("no answer to {method} ({e}): the server died or hung"));
            if m.get("id") == Some(&json!(id)) {
                return m;
            }
            self.notes.push(m);
        }
    }

    /// The result of a request that must succeed.
    fn ok(&mut self, method: &str, params: Value) -> Value {
        let m = self.request(method, params);
        assert!(m.get("error").is_none(), "{method}: {m}");
        m["result"].clone()
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        if let Some(i) = self.notes.iter().position(|n| is_diagnostics_of(n, uri)) {
            let n = self.notes.remove(i);
            return n["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        loop {
            let m = self
                .incoming
                .recv_timeout(HANG)
                .unwrap_or_else(|e| panic!("no diagnostics for {uri} ({e})"));
            if is_diagnostics_of(&m, uri) {
                return m["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            self.notes.push(m);
        }
    }

    fn open(&mut self, uri: &str, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "kdl", "version": 1, "text": text}}),
        );
        self.diagnostics(uri)
    }

    fn change(&mut self, uri: &str, version: i32, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
        self.diagnostics(uri)
    }

    fn at(&mut self, method: &str, uri: &str, pos: Value) -> Value {
        self.ok(
            method,
            json!({"textDocument": {"uri": uri}, "position": pos}),
        )
    }

    /// `shutdown` then `exit`; the process ends with status 0.
    fn shutdown(mut self) {
        let r = self.request("shutdown", Value::Null);
        assert_eq!(r["result"], Value::Null, "{r}");
        self.notify("exit", Value::Null);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "orch lsp exited with {status}");
    }
}

fn is_diagnostics_of(m: &Value, uri: &str) -> bool {
    m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
}

fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn reference_text() -> String {
    std::fs::read_to_string(repo_root().join("pipelines/orchestrator.kdl")).expect("read")
}

fn uri_of(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The LSP position (UTF-16) of byte `offset` in `text`.
fn pos(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = text[start..offset].chars().map(char::len_utf16).sum();
    json!({"line": line, "character": character})
}

/// The position `delta` bytes into the first occurrence of `needle`.
fn pos_of(text: &str, needle: &str, delta: usize) -> Value {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    pos(text, at + delta)
}

/// The range of `name` inside the first occurrence of `needle`.
fn range_in(text: &str, needle: &str, name: &str) -> Value {
    let at = text.find(needle).expect("needle") + needle.find(name).expect("name in needle");
    json!({"start": pos(text, at), "end": pos(text, at + name.len())})
}

/// A temporary directory holding one pipeline file.
struct TempPipeline {
    dir: PathBuf,
    path: PathBuf,
}

impl TempPipeline {
    fn new(name: &str, text: &str) -> TempPipeline {
        let dir = std::env::temp_dir().join(format!("orch-lsp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("orchestrator.kdl");
        std::fs::write(&path, text).expect("write");
        TempPipeline { dir, path }
    }
}

impl Drop for TempPipeline {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `orch validate --format json` of a file: its findings.
fn validate_json(path: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["validate", "--format", "json"])
        .arg(path)
        .output()
        .expect("orch validate");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("validate JSON");
    doc["findings"].as_array().cloned().unwrap_or_default()
}

/// A finding of `orch validate --format json` as the LSP diagnostic it must be.
fn expected_diagnostic(f: &Value) -> Value {
    let n = |k: &str| f[k].as_u64().expect("number") - 1;
    let mut message = f["message"].as_str().expect("message").to_string();
    if let Some(h) = f["help"].as_str() {
        message.push_str(&format!("\nhelp: {h}"));
    }
    json!({
        "range": {
            "start": {"line": n("line"), "character": n("column")},
            "end": {"line": n("end_line"), "character": n("end_column")},
        },
        "severity": if f["severity"] == "error" { 1 } else { 2 },
        "code": f["code"],
        "source": "orch",
        "message": message,
    })
}

/// The diagnostic without its related information (compared separately).
fn without_related(d: &Value) -> Value {
    let mut d = d.clone();
    if let Some(m) = d.as_object_mut() {
        m.remove("relatedInformation");
    }
    d
}

fn assert_same_as_validate(diags: &[Value], path: &Path) {
    let expected: Vec<Value> = validate_json(path)
        .iter()
        .map(expected_diagnostic)
        .collect();
    let got: Vec<Value> = diags.iter().map(without_related).collect();
    assert_eq!(
        got, expected,
        "the diagnostics are orch validate's findings"
    );
}

/// The reference pipeline with a misspelt gate reference.
fn broken_gate() -> String {
    reference_text().replace("gate=\"tests-passed\" {", "gate=\"tests-pased\" {")
}

#[test]
fn diagnostics_are_orch_validates_findings_on_open_and_change() {
    let file = TempPipeline::new("diag", &reference_text());
    let uri = uri_of(&file.path);
    let mut c = Client::start();
    let clean = c.open(&uri, &reference_text());
    assert_same_as_validate(&clean, &file.path);
    assert!(
        clean.iter().all(|d| d["severity"] == 2),
        "no errors: {clean:?}"
    );

    std::fs::write(&file.path, broken_gate()).expect("write");
    let broken = c.change(&uri, 2, &broken_gate());
    assert_same_as_validate(&broken, &file.path);
    let unknown: Vec<_> = broken
        .iter()
        .filter(|d| d["code"] == "orch::unknown-gate")
        .collect();
    assert_eq!(unknown.len(), 1, "{broken:?}");
    // Related information: the label on the finding's span, and the
    // suggested gate's definition.
    let text = broken_gate();
    assert_eq!(
        unknown[0]["relatedInformation"],
        json!([
            {"location": {"uri": uri, "range": unknown[0]["range"]}, "message": "no gate of this name"},
            {"location": {"uri": uri, "range": range_in(&text, "gate \"tests-passed\"", "tests-passed")},
             "message": "`tests-passed` is defined here"},
        ])
    );

    // A syntax error: still orch validate's finding, at its place.
    let half = reference_text().replace("pass \"deploy\"\n", "pass \"deploy\n");
    std::fs::write(&file.path, &half).expect("write");
    let diags = c.change(&uri, 3, &half);
    assert_same_as_validate(&diags, &file.path);
    assert!(
        diags.iter().any(|d| d["code"] == "orch::syntax"),
        "{diags:?}"
    );
    c.shutdown();
}

#[test]
fn cr_and_crlf_end_lines_in_the_server_and_in_orch_validate() {
    // `bogus` is on the second line whichever line break precedes it: the
    // server and `orch validate` counted `\n` only (line 1, column 24).
    for nl in ["\r", "\r\n", "\n"] {
        let text = format!("pipeline \"p\" start=\"s\"{nl}bogus 1{nl}");
        let file = TempPipeline::new("newlines", &text);
        let uri = uri_of(&file.path);
        let mut c = Client::start();
        let diags = c.open(&uri, &text);
        let bogus = diags
            .iter()
            .find(|d| d["code"] == "orch::unknown-node")
            .unwrap_or_else(|| panic!("{nl:?}: {diags:?}"));
        assert_eq!(
            bogus["range"],
            json!({"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 5}}),
            "{nl:?}"
        );
        assert_same_as_validate(&diags, &file.path);
        c.shutdown();
    }
    // `orch validate` counts lines as the KDL reader does, so the other
    // KDL 2.0 newlines (FF, VT, NEL, LS, PS) end lines too.
    for nl in ["\u{c}", "\u{b}", "\u{85}", "\u{2028}", "\u{2029}"] {
        let text = format!("pipeline \"p\" start=\"s\"{nl}bogus 1{nl}");
        let file = TempPipeline::new("newlines", &text);
        let findings = validate_json(&file.path);
        let bogus = findings
            .iter()
            .find(|f| f["code"] == "orch::unknown-node")
            .unwrap_or_else(|| panic!("{nl:?}: {findings:?}"));
        assert_eq!(
            (&bogus["line"], &bogus["column"]),
            (&json!(2), &json!(1)),
            "{nl:?}"
        );
    }
}

#[test]
fn the_did_you_mean_help_is_a_quick_fix() {
    let text = broken_gate();
    let file = TempPipeline::new("fix", &text);
    let uri = uri_of(&file.path);
    let mut c = Client::start();
    c.open(&uri, &text);
    let at = pos_of(&text, "tests-pased", 2);
    let actions = c.ok(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
               "context": {"diagnostics": []}}),
    );
    let actions = actions.as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["title"], "Change to `tests-passed`");
    assert_eq!(actions[0]["kind"], "quickfix");
    assert_eq!(
        actions[0]["edit"]["changes"][&uri],
        json!([{"range": range_in(&text, "gate=\"tests-pased\"", "tests-pased"), "newText": "tests-passed"}])
    );
    // Applied, the finding is gone.
    let fixed = text.replace("tests-pased", "tests-passed");
    let diags = c.change(&uri, 2, &fixed);
    assert!(
        diags.iter().all(|d| d["code"] != "orch::unknown-gate"),
        "{diags:?}"
    );
    c.shutdown();
}

#[test]
fn definition_and_references_for_every_kind_of_name() {
    let text = reference_text();
    let uri = uri_of(&repo_root().join("pipelines/orchestrator.kdl"));
    let mut c = Client::start();
    c.open(&uri, &text);
    // (where the cursor is, where the definition is)
    let cases = [
        (
            ("gate=\"tests-passed\"", 8),
            ("gate \"tests-passed\"", "tests-passed"),
        ),
        (
            ("call-site=\"tester\"", 12),
            ("call-site \"tester\"", "tester"),
        ),
        (
            ("artifact=\"review\"", 11),
            ("artifact \"review\"", "review"),
        ),
        (
            ("runner \"pytest\"\n    llm", 9),
            ("runner \"pytest\" {", "pytest"),
        ),
        (
            ("transport=\"claude\"", 12),
            ("transport \"claude\"", "claude"),
        ),
        (("alert=\"ops\"", 8), ("alert \"ops\"", "ops")),
        (("pass \"done\"", 7), ("end \"done\"", "done")),
        (
            ("start=\"analysis\"", 8),
            ("stage \"analysis\"", "analysis"),
        ),
        (("{var.target}", 6), ("var \"target\"", "target")),
        (("expect \"verdict\"", 9), ("field \"verdict\"", "verdict")),
        (("field=\"result\"", 8), ("field \"result\"", "result")),
    ];
    for ((needle, delta), (def, name)) in cases {
        let got = c.at(
            "textDocument/definition",
            &uri,
            pos_of(&text, needle, delta),
        );
        assert_eq!(
            got,
            json!({"uri": uri, "range": range_in(&text, def, name)}),
            "definition from {needle:?}"
        );
    }
    let refs = c.ok(
        "textDocument/references",
        json!({"textDocument": {"uri": uri}, "position": pos_of(&text, "alert \"ops\"", 8),
               "context": {"includeDeclaration": true}}),
    );
    let refs = refs.as_array().expect("refs");
    assert_eq!(
        refs.len(),
        9,
        "8 exhausted edges and the definition: {refs:?}"
    );
    let refs = c.ok(
        "textDocument/references",
        json!({"textDocument": {"uri": uri}, "position": pos_of(&text, "var \"target\"", 6),
               "context": {"includeDeclaration": false}}),
    );
    assert_eq!(
        refs,
        json!([{"uri": uri, "range": range_in(&text, "{var.target}", "target")}])
    );
    c.shutdown();
}

#[test]
fn rename_updates_the_definition_and_every_reference_or_says_why_not() {
    let text = reference_text();
    let uri = uri_of(&repo_root().join("pipelines/orchestrator.kdl"));
    let mut c = Client::start();
    c.open(&uri, &text);
    let at = pos_of(&text, "stage \"development\"", 8);
    let edit = c.ok(
        "textDocument/rename",
        json!({"textDocument": {"uri": uri}, "position": at, "newName": "dev"}),
    );
    let edits = edit["changes"][&uri].as_array().expect("edits").clone();
    // The definition, `pass "development"` and three `fail "development"`.
    assert_eq!(edits.len(), 5, "{edits:?}");
    let mut renamed = text.clone();
    let mut offsets: Vec<(usize, usize)> = Vec::new();
    for e in &edits {
        assert_eq!(e["newText"], "dev");
        let line = e["range"]["start"]["line"].as_u64().expect("line") as usize;
        let ch = e["range"]["start"]["character"].as_u64().expect("ch") as usize;
        let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
        offsets.push((start + ch, "development".len()));
    }
    offsets.sort();
    for (o, len) in offsets.into_iter().rev() {
        assert_eq!(&renamed[o..o + len], "development");
        renamed.replace_range(o..o + len, "dev");
    }
    assert_eq!(renamed, text.replace("\"development\"", "\"dev\""));
    // Taken, invalid: refused with a message.
    for (new, why) in [
        ("review", "cannot rename to `review`: stage `review` already exists"),
        ("done", "cannot rename to `done`: end `done` already exists"),
        ("a b", "cannot rename to `a b`: stage names take letters, digits, `.`, `_` and `-`, not starting with `.` or `-`"),
        ("", "cannot rename to ``: a name must not be empty"),
    ] {
        let r = c.request(
            "textDocument/rename",
            json!({"textDocument": {"uri": uri}, "position": at, "newName": new}),
        );
        assert_eq!(r["error"]["message"], why, "{r}");
        assert_eq!(r["error"]["code"], -32803, "RequestFailed: {r}");
    }
    // A variable: its definition and the `{var.NAME}` inside a string.
    let edit = c.ok(
        "textDocument/rename",
        json!({"textDocument": {"uri": uri}, "position": pos_of(&text, "{var.target}", 7), "newName": "suite"}),
    );
    assert_eq!(
        edit["changes"][&uri],
        json!([
            {"range": range_in(&text, "var \"target\"", "target"), "newText": "suite"},
            {"range": range_in(&text, "{var.target}", "target"), "newText": "suite"},
        ])
    );
    c.shutdown();
}

fn hover_text(c: &mut Client, uri: &str, pos: Value) -> String {
    let h = c.at("textDocument/hover", uri, pos);
    h["contents"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn hover_says_what_a_name_stands_for() {
    let text = reference_text();
    let uri = uri_of(&repo_root().join("pipelines/orchestrator.kdl"));
    let mut c = Client::start();
    c.open(&uri, &text);
    assert_eq!(
        hover_text(&mut c, &uri, pos_of(&text, "call-site=\"tester\"", 12)),
        "call-site `tester`\n\naxis: C · verdict: machine · mode: hybrid\n\nclassification: **deterministic**"
    );
    assert_eq!(
        hover_text(&mut c, &uri, pos_of(&text, "runner \"deploy-finalizer\"", 9)),
        "runner `deploy-finalizer`\n\ncommand: `sh scripts/deploy.sh {task}`\n\ntimeout: 10m00s\n\nexit codes:\n- 0 → DEPLOYED\n- 1 → FAILED\n- otherwise → tool-error\n\nretry budget: 3 attempts on tool-error, delay 1m00s, backoff ×2"
    );
    let stage = hover_text(&mut c, &uri, pos_of(&text, "stage \"review\"", 8));
    assert!(stage.starts_with("```text\nstage `review`\n  call-site `reviewer`: axis=C verdict=judgement mode=llm → keep LLM\n"), "{stage}");
    assert!(stage.contains("  transitions:\n    pass → testing\n    fail → development (at most 3 times per task)\n    exhausted → failed, alert `ops`\n"), "{stage}");
    assert_eq!(
        hover_text(&mut c, &uri, pos_of(&text, "timeout \"15m\"", 10)),
        "duration `15m`: 15m00s (900000 ms)"
    );
    c.shutdown();
}

fn labels(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["label"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn completion_offers_nodes_properties_values_and_names() {
    let base = reference_text();
    let uri = uri_of(&repo_root().join("pipelines/orchestrator.kdl"));
    let mut c = Client::start();
    c.open(&uri, &base);
    let mut v = 1;
    let mut complete_after = |c: &mut Client, insert_after: &str, typed: &str| {
        let at = base.find(insert_after).expect("anchor") + insert_after.len();
        let text = format!("{}{typed}{}", &base[..at], &base[at..]);
        v += 1;
        c.change(&uri, v, &text);
        labels(&c.at(
            "textDocument/completion",
            &uri,
            pos(&text, at + typed.len()),
        ))
    };
    let stage_line = "stage \"review\" call-site=\"reviewer\" gate=\"review-approved\" {\n";
    assert_eq!(
        complete_after(&mut c, stage_line, "    "),
        ["pass", "fail", "exhausted", "serial"]
    );
    assert_eq!(
        complete_after(&mut c, "alert \"ops\" {\n", "\n"),
        ["command", "timeout"]
    );
    assert_eq!(
        complete_after(&mut c, "end \"failed\" outcome=\"failure\"\n", "st"),
        [
            "pipeline",
            "transport",
            "artifact",
            "gate",
            "runner",
            "call-site",
            "stage",
            "end",
            "alert",
            "approval"
        ]
    );
    assert_eq!(
        complete_after(
            &mut c,
            "end \"failed\" outcome=\"failure\"\n",
            "stage \"x\" gate=\""
        ),
        [
            "analysis-done",
            "architecture-done",
            "implementation-done",
            "review-approved",
            "tests-passed",
            "staging-passed",
            "deployed",
            "healthy"
        ]
    );
    assert_eq!(
        complete_after(
            &mut c,
            "end \"failed\" outcome=\"failure\"\n",
            "call-site \"x\" axis=\"C\" mode=\""
        ),
        ["llm", "runner", "hybrid", "human"]
    );
    assert_eq!(
        complete_after(
            &mut c,
            "end \"failed\" outcome=\"failure\"\n",
            "end \"x\" outcome=\""
        ),
        ["success", "failure"]
    );
    assert_eq!(
        complete_after(
            &mut c,
            "end \"failed\" outcome=\"failure\"\n",
            "call-site \"x\" "
        ),
        ["axis=", "mode=", "verdict="]
    );
    assert_eq!(
        complete_after(&mut c, "    idle-timeout \"5m\"\n", "    prompt \""),
        ["stdin", "arg"]
    );
    assert_eq!(
        complete_after(&mut c, stage_line, "    fail \""),
        [
            "analysis",
            "architecture",
            "development",
            "review",
            "testing",
            "deploy-staging",
            "deploy",
            "post-deploy-monitor",
            "done",
            "failed"
        ]
    );
    assert_eq!(
        complete_after(
            &mut c,
            "gate \"review-approved\" artifact=\"review\" {\n",
            "    expect \""
        ),
        ["verdict", "summary"]
    );
    c.shutdown();
}

#[test]
fn outline_and_formatting() {
    let text = reference_text();
    let uri = uri_of(&repo_root().join("pipelines/orchestrator.kdl"));
    let mut c = Client::start();
    c.open(&uri, &text);
    let symbols = c.ok(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    let names: Vec<String> = symbols
        .as_array()
        .expect("symbols")
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["detail"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(names.len(), 1 + 8 + 8 + 4 + 8 + 8 + 2 + 1, "{names:?}");
    assert_eq!(names[0], "transport claude");
    assert!(names.contains(&"call-site tester".to_string()), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("alert ops"));

    // Formatted already: no edit. Messy: one edit to orch fmt's text.
    let none = c.ok(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(none, json!([]));
    let messy = text.replace(
        "end \"done\" outcome=\"success\"",
        "end   \"done\"    outcome=\"success\"",
    );
    let file = TempPipeline::new("fmt", &messy);
    c.change(&uri, 2, &messy);
    let edits = c.ok(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("fmt")
        .arg(&file.path)
        .output()
        .expect("orch fmt");
    assert!(out.status.success());
    let formatted = std::fs::read_to_string(&file.path).expect("read");
    assert_eq!(formatted, text, "orch fmt restores the reference layout");
    assert_eq!(
        edits,
        json!([{"range": {"start": {"line": 0, "character": 0}, "end": pos(&messy, messy.len())}, "newText": formatted}])
    );
    c.shutdown();
}

#[test]
fn a_panic_in_a_request_is_an_error_and_the_server_keeps_serving() {
    let text = reference_text();
    let uri = uri_of(&repo_root().join("pipelines/orchestrator.kdl"));
    let mut c = Client::start_with(&[("ORCH_LSP_PANIC", "textDocument/hover")]);
    c.open(&uri, &text);
    let r = c.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": pos_of(&text, "gate=\"healthy\"", 7)}),
    );
    assert_eq!(r["error"]["code"], -32603, "{r}");
    assert_eq!(
        r["error"]["message"],
        "internal error in textDocument/hover: failpoint ORCH_LSP_PANIC=textDocument/hover"
    );
    let d = c.at(
        "textDocument/definition",
        &uri,
        pos_of(&text, "gate=\"healthy\"", 7),
    );
    assert_eq!(d["range"], range_in(&text, "gate \"healthy\"", "healthy"));
    c.shutdown();
}

#[test]
fn bad_input_and_a_deleted_file_never_stop_the_server() {
    let file = TempPipeline::new("deleted", &reference_text());
    let uri = uri_of(&file.path);
    let mut c = Client::start();
    c.open(&uri, &reference_text());
    std::fs::remove_file(&file.path).expect("rm");
    let diags = c.change(
        &uri,
        2,
        "stage \"a\" call-site=\"\u{0}\" gate={ \u{1F600}\n\"\\",
    );
    assert!(diags.iter().any(|d| d["severity"] == 1), "{diags:?}");
    for method in [
        "textDocument/hover",
        "textDocument/definition",
        "textDocument/completion",
    ] {
        for p in [
            json!({"line": 0, "character": 14}),
            json!({"line": 99, "character": 99}),
        ] {
            c.at(method, &uri, p);
        }
    }
    // A request for a document never opened, and one with bad params: errors.
    let r = c.request("textDocument/hover", json!({"textDocument": {"uri": "file:///nowhere.kdl"}, "position": {"line": 0, "character": 0}}));
    assert_eq!(
        r["error"]["message"],
        "the document file:///nowhere.kdl is not open"
    );
    let r = c.request("textDocument/hover", json!({"nonsense": true}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    c.shutdown();
}

/// LSP framing of JSON-RPC messages, as one buffer.
fn frames(msgs: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let body = m.to_string();
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    }
    out
}

#[test]
fn shutdown_and_exit_in_one_write_end_with_status_0() {
    // A client may send everything at once: the server read `exit` along
    // with `shutdown` and then waited for another (status 2). A request
    // between the two is refused (InvalidRequest), as the protocol says.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start orch lsp");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(&frames(&[
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
            json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": {"textDocument": {"uri": "file:///x.kdl"}, "position": {"line": 0, "character": 0}}}),
            json!({"jsonrpc": "2.0", "method": "exit"}),
        ]))
        .expect("write");
    stdin.flush().expect("flush");
    // stdin stays open: the server must end on `exit`, not on end of input.
    let run = common::finish(child, std::time::Duration::from_secs(20));
    drop(stdin);
    assert!(run.status.success(), "{:?}: {}", run.status, run.stderr);
    let mut r = BufReader::new(run.stdout.as_bytes());
    let mut answers = Vec::new();
    while let Some(m) = read_message(&mut r) {
        answers.push(m);
    }
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(
        answers[1],
        json!({"jsonrpc": "2.0", "id": 2, "result": null})
    );
    assert_eq!(answers[2]["id"], 3, "{answers:?}");
    assert_eq!(answers[2]["error"]["code"], -32600, "{answers:?}");
}

/// One random edit: replace `len` bytes at a relative position by `insert`.
fn apply(text: &str, at: f64, len: usize, insert: &str) -> String {
    let mut a = ((text.len() as f64) * at) as usize;
    while !text.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = (a + len).min(text.len());
    while !text.is_char_boundary(b) {
        b += 1;
    }
    format!("{}{insert}{}", &text[..a], &text[b..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random edits of the reference pipeline: every request is answered
    /// (a result or an error, never silence) and the server stays alive.
    #[test]
    fn random_edits_never_stop_the_server(
        edits in prop::collection::vec(
            (0.0f64..1.0, 0usize..40, "(\\PC|[\"{}=;\\\\\n]){0,12}", 0.0f64..1.0),
            1..8,
        )
    ) {
        let uri = "file:///nonexistent/dir/p.kdl";
        let mut c = Client::start();
        let mut text = reference_text();
        c.open(uri, &text);
        for (i, (at, len, insert, cursor)) in edits.iter().enumerate() {
            text = apply(&text, *at, *len, insert);
            c.change(uri, i as i32 + 2, &text);
            let mut o = ((text.len() as f64) * cursor) as usize;
            while !text.is_char_boundary(o) {
                o -= 1;
            }
            let p = pos(&text, o);
            for method in ["textDocument/hover", "textDocument/definition", "textDocument/completion",
                           "textDocument/documentSymbol", "textDocument/formatting", "textDocument/codeAction",
                           "textDocument/references", "textDocument/rename"] {
                let params = json!({"textDocument": {"uri": uri}, "position": p, "newName": "x",
                    "context": {"includeDeclaration": true, "diagnostics": []},
                    "range": {"start": p, "end": p}, "options": {"tabSize": 4, "insertSpaces": true}});
                let r = c.request(method, params);
                prop_assert!(r.get("result").is_some() || r.get("error").is_some(), "{method}: {r}");
                if let Some(e) = r.get("error") {
                    prop_assert_ne!(&e["code"], &json!(-32603), "{}: internal error {}", method, r);
                }
            }
        }
        c.shutdown();
    }
}

/// The first ```lua block of docs/editors.md: the Neovim set-up users copy.
fn neovim_snippet() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/editors.md")).expect("editors.md");
    let start = doc
        .find("```lua\n")
        .expect("a lua block in docs/editors.md")
        + 7;
    let len = doc[start..].find("```").expect("the block's end");
    doc[start..start + len].to_string()
}

/// A real editor: headless Neovim, configured with the documented snippet,
/// opens a broken pipeline and reports orch's diagnostics.
#[test]
fn neovim_reports_the_diagnostics() {
    let nvim = Command::new("nvim").arg("--version").output();
    assert!(
        nvim.as_ref().is_ok_and(|o| o.status.success()),
        "nvim is not installed: this test needs a real editor client \
         (Debian: apt-get install neovim; .ci/run installs it)"
    );
    let text = broken_gate();
    let file = TempPipeline::new("nvim", &text);
    let init = file.dir.join("init.lua");
    std::fs::write(&init, neovim_snippet()).expect("init.lua");
    let out = file.dir.join("diagnostics.txt");
    let check = file.dir.join("check.lua");
    std::fs::write(
        &check,
        r#"
local function lsp_code(d)
  if d.code then return d.code end
  local l = d.user_data and d.user_data.lsp
  return l and l.code or ""
end
vim.wait(30000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local out = {}
for _, d in ipairs(vim.diagnostic.get(0)) do
  table.insert(out, string.format("%d:%d:%s:%d", d.lnum, d.col, lsp_code(d), d.severity))
end
table.sort(out)
vim.fn.writefile(out, os.getenv("ORCH_NVIM_OUT"))
vim.cmd("qa!")
"#,
    )
    .expect("check.lua");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_orch"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("nvim")
        .args(["--headless", "-n", "-i", "NONE", "-u"])
        .arg(&init)
        .arg("-c")
        .arg(format!("luafile {}", check.display()))
        .arg(&file.path)
        .current_dir(&file.dir)
        .env("PATH", path)
        .env("ORCH_NVIM_OUT", &out)
        .env("XDG_STATE_HOME", file.dir.join("state"))
        .env("XDG_DATA_HOME", file.dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run nvim");
    assert!(status.success(), "nvim exited with {status}");
    let got = std::fs::read_to_string(&out).expect("nvim wrote the diagnostics");
    // What orch validate finds, as Neovim numbers them (0-based, severity 1 = error).
    let mut expected: Vec<String> = validate_json(&file.path)
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}:{}",
                f["line"].as_u64().unwrap_or(0) - 1,
                f["column"].as_u64().unwrap_or(0) - 1,
                f["code"].as_str().unwrap_or(""),
                if f["severity"] == "error" { 1 } else { 2 }
            )
        })
        .collect();
    expected.sort();
    assert!(
        expected.iter().any(|e| e.contains("orch::unknown-gate")),
        "{expected:?}"
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), expected);
}

/// The server stands on the language crate alone: no engine, store,
/// service, runtime or SQL in its dependency tree.
#[test]
fn the_language_server_depends_on_the_language_crate_alone() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            "orch-lsp",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deps: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(deps.iter().any(|d| d == "orch-lang"), "{deps:?}");
    for f in [
        "orch-engine",
        "orch-store",
        "orch-server",
        "orch",
        "tokio",
        "rusqlite",
    ] {
        assert!(
            !deps.iter().any(|d| d == f),
            "orch-lsp must not depend on {f}"
        );
    }
}
