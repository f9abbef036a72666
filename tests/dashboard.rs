//! The dashboard of `orch serve` in a real browser: Debian's `chromium`
//! driven by `chromedriver` over WebDriver (fantoccini), against the real
//! binary on a loopback port, with `sh` producers and the real store.
//!
//! When the browser cannot start, these tests fail with the reason (install
//! `chromium` and `chromium-driver`; `.ci/run` does). Each page's
//! screenshot is saved under `target/dashboard/`; with
//! `UPDATE_DOCS_SCREENSHOTS=1` also as `docs/dashboard-*.png`. The time an
//! event takes to reach an open page is printed (run with `--nocapture`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const TOKEN: &str = "dash-token-8d2f";

/// An LLM stage (its agent writes the artifact), a serial runner stage that
/// may roll back to it, and an LLM stage whose verdict is a machine fact (an
/// avoidable LLM control path, on the roadmap).
const PIPELINE: &str = r#"
pipeline "dash" start="write" {
    var "scripts" "."
}

artifact "report" path="report.md" {
    field "result" "PASS" "FAIL"
    field "summary"
}

artifact "check-report" path="check.md" {
    field "result" "PASS" "FAIL"
}

gate "report-ok" artifact="report" {
    expect "result" "PASS"
}

gate "check-ok" artifact="check-report" {
    expect "result" "PASS"
}

transport "agent" {
    command "sh" "{var.scripts}/agent.sh"
    prompt "stdin"
    timeout "120s"
    grace "1s"
}

runner "rcheck" {
    command "sh" "{var.scripts}/check.sh"
    timeout "120s"
    grace "1s"
    exit-code 0 verdict="PASS"
    otherwise verdict="tool-error"
    writes "check-report"
}

call-site "writer" axis="P" verdict="judgement" mode="llm" {
    llm transport="agent" prompt="prompt.md"
}

call-site "checker" axis="C" verdict="machine" mode="runner" {
    runner "rcheck"
}

call-site "reviewer" axis="C" verdict="machine" mode="llm" {
    llm transport="agent" prompt="prompt.md"
}

stage "write" call-site="writer" gate="report-ok" {
    pass "check"
    exhausted "failed"
}

stage "check" call-site="checker" gate="check-ok" {
    pass "review"
    fail "write" budget=2
    exhausted "failed"
    serial #true
}

stage "review" call-site="reviewer" gate="report-ok" {
    pass "done"
    exhausted "failed"
}

end "done" outcome="success"
end "failed" outcome="failure"
"#;

/// The agent: prints a line holding a script tag, waits while its hold file
/// exists, and writes the report (FAIL for a task named `*fail*`) with a
/// summary holding a script tag.
const AGENT: &str = r#"
cat > /dev/null
echo "agent for $ORCH_TASK attempt $ORCH_ATTEMPT"
echo '<script>window.orchXss = 1</script>'
while [ -e "$OUT/hold-$ORCH_TASK-write" ]; do sleep 0.05; done
case "$ORCH_TASK" in *fail*) r=FAIL ;; *) r=PASS ;; esac
printf 'result: %s\nsummary: <script>window.orchXss = 2</script>\n' "$r" > "$ORCH_TASK_DIR/report.md"
echo "agent wrote result $r"
"#;

const CHECK: &str = r#"
echo "checking $ORCH_TASK"
while [ -e "$OUT/hold-$ORCH_TASK-check" ]; do sleep 0.05; done
exit 0
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir()
            .join(format!("orch-dashboard-tests.{}", std::process::id()))
            .join(format!("{name}-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("out")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        std::fs::write(root.join("pipeline.kdl"), PIPELINE).unwrap();
        std::fs::write(root.join("agent.sh"), AGENT).unwrap();
        std::fs::write(root.join("check.sh"), CHECK).unwrap();
        std::fs::write(root.join("prompt.md"), "Write the report.\n").unwrap();
        Sandbox { root }
    }

    fn hold(&self, what: &str) {
        std::fs::write(self.root.join("out").join(format!("hold-{what}")), "").unwrap();
    }

    fn release(&self, what: &str) {
        let _ = std::fs::remove_file(self.root.join("out").join(format!("hold-{what}")));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("sandbox kept: {}", self.root.display());
        }
    }
}

/// A running `orch serve` on a loopback port.
struct Serve {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Serve {
    fn start(sb: &Sandbox) -> Serve {
        Serve::start_on(sb, "127.0.0.1:0")
    }

    fn start_on(sb: &Sandbox, listen: &str) -> Serve {
        Serve::start_with(sb, listen, &["-p", "pipeline.kdl"])
    }

    fn start_with(sb: &Sandbox, listen: &str, args: &[&str]) -> Serve {
        let stderr = sb.root.join("serve.log");
        let mut child = Command::new(ORCH)
            .current_dir(&sb.root)
            .args(["serve", "--state-dir", "state"])
            .args(args)
            .args(["--workers", "4", "--listen", listen])
            .env("OUT", sb.root.join("out"))
            .env("T_OUT", sb.root.join("out"))
            .env("ORCH_TOKEN", TOKEN)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn orch serve");
        let stdout = child.stdout.take().expect("its stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("orch serve: listening on http://") {
                        break a.to_string();
                    }
                }
                _ => panic!(
                    "orch serve did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                ),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Serve {
            child,
            addr,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn submit(&self, task: &str) {
        let body = json!({ "task": task }).to_string();
        let (s, v) = http(
            &self.addr,
            "POST",
            "/api/v1/tasks",
            Some(TOKEN),
            body.as_bytes(),
        );
        assert_eq!(s, 201, "submit {task}: {v}\n{}", self.log());
    }

    fn task(&self, task: &str) -> Value {
        let (s, v) = http(
            &self.addr,
            "GET",
            &format!("/api/v1/tasks/{task}"),
            None,
            b"",
        );
        assert_eq!(s, 200, "GET task {task}: {v}");
        serde_json::from_str(&v).unwrap()
    }

    fn queue_state(&self, task: &str) -> String {
        self.task(task)["queue"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; the status and the body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the service");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, rest.to_string())
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `chromedriver` and a headless `chromium` session; both ended on drop.
struct Browser {
    driver: Child,
    client: Option<Client>,
    profile: PathBuf,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

impl Browser {
    /// Starts the browser, or fails the test with the reason.
    async fn start(sb: &Sandbox) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sb.root.join("chromedriver.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): the browser tests need Debian's \
                     `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver)"
                )
            });
        let profile = sb.root.join("chromium-profile");
        let mut browser = Browser {
            driver,
            client: None,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!("chromedriver exited at start ({status}): see its log in the sandbox");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", browser.profile.display()),
                    "--window-size=1200,900",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromium did not start through chromedriver: {e}"));
        browser.client = Some(client);
        browser
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    async fn goto(&self, url: &str) {
        self.c().goto(url).await.expect("navigate");
    }

    async fn text(&self, css: &str) -> String {
        self.c()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("its text")
    }

    async fn js(&self, script: &str) -> Value {
        self.c()
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Waits (up to 30s) until the script returns true.
    async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Saves the page as `target/dashboard/NAME.png` (and in docs/ when
    /// asked).
    async fn screenshot(&self, name: &str) {
        let png = self.c().screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target").join("dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        let in_docs = ["queue", "queue-phone", "task", "pipeline", "approval"].contains(&name);
        if in_docs && std::env::var_os("UPDATE_DOCS_SCREENSHOTS").is_some() {
            std::fs::write(
                root.join("docs").join(format!("dashboard-{name}.png")),
                &png,
            )
            .unwrap();
        }
    }

    async fn end(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromium() -> String {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!(
        "no chromium binary (/usr/bin/chromium): install Debian's `chromium` and `chromium-driver`"
    )
}

fn ended(s: &Serve, task: &str) -> bool {
    matches!(
        s.queue_state(task).as_str(),
        "finished" | "failed" | "cancelled"
    )
}

#[tokio::test]
async fn queue_page_lists_tasks_and_shows_a_new_submission_without_a_reload() {
    let sb = Sandbox::new("queue");
    let s = Serve::start(&sb);
    // `first` holds the serial stage; `second` waits for it.
    sb.hold("first-check");
    s.submit("first");
    wait_until(
        "first holds the serial stage",
        Duration::from_secs(60),
        || s.task("first")["live"]["stage"] == "check",
    )
    .await;
    s.submit("second");
    wait_until(
        "second waits for the serial stage",
        Duration::from_secs(60),
        || s.task("second")["live"]["waiting"]["stage"] == "check",
    )
    .await;
    let b = Browser::start(&sb).await;
    b.goto(&s.url("/")).await;
    assert!(b.text("#row-first").await.contains("check"));
    let waiting = b.text("#row-second").await;
    assert!(
        waiting.contains("waiting") && waiting.contains("held by task first"),
        "{waiting}"
    );
    b.until(
        "the stream is connected",
        "return document.getElementById('live').textContent === 'live'",
    )
    .await;
    // A mark on the page: gone if it reloads.
    b.js("window.orchMark = 42; return true").await;
    let t0 = b.js("return Date.now()").await.as_f64().unwrap();
    s.submit("third");
    b.until(
        "third appears",
        "return !!document.getElementById('row-third')",
    )
    .await;
    let seen = b
        .js("return window.orchSeen['third']")
        .await
        .as_f64()
        .unwrap();
    println!(
        "dashboard: a submission reached the open queue page in {:.0} ms",
        seen - t0
    );
    assert_eq!(
        b.js("return window.orchMark").await,
        json!(42),
        "the page was reloaded"
    );
    b.until(
        "third waits too, counted",
        "return document.getElementById('row-third').dataset.state === 'waiting' \
         && document.querySelector('[data-count=waiting]').textContent === '2'",
    )
    .await;
    // After the fresh rows' highlight fades.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    b.screenshot("queue").await;
    // An engine event: the held stage finishes; its row says so.
    let t1 = b.js("return Date.now()").await.as_f64().unwrap();
    sb.release("first-check");
    b.until(
        "first succeeds on the page",
        "return document.getElementById('row-first').dataset.state === 'success'",
    )
    .await;
    let seen = b
        .js("return window.orchSeen['first']")
        .await
        .as_f64()
        .unwrap();
    println!("dashboard: the run's end reached the open queue page {:.0} ms after the hold was released (the stage's own finishing included)", seen - t1);
    wait_until("all end", Duration::from_secs(60), || {
        ["first", "second", "third"].iter().all(|t| ended(&s, t))
    })
    .await;
    b.until(
        "every row ends success",
        "return [...document.querySelectorAll('#queue tbody tr')].every(r => r.dataset.state === 'success')",
    )
    .await;
    assert_eq!(b.js("return window.orchMark").await, json!(42));
    // The filter, without JavaScript's help: a link.
    s.submit("fourth-fail");
    wait_until("fourth-fail ends", Duration::from_secs(60), || {
        ended(&s, "fourth-fail")
    })
    .await;
    b.goto(&s.url("/?outcome=failure")).await;
    let rows = b
        .js("return [...document.querySelectorAll('#queue tbody tr')].map(r => r.id.slice(4))")
        .await;
    assert_eq!(rows, json!(["fourth-fail"]));
    b.goto(&s.url("/")).await;
    let rows = b
        .js("return [...document.querySelectorAll('#queue tbody tr')].map(r => r.id.slice(4))")
        .await;
    assert_eq!(
        rows,
        json!(["fourth-fail", "third", "second", "first"]),
        "newest first"
    );
    // Phone width: nothing wider than the screen.
    b.c().set_window_size(390, 844).await.unwrap();
    b.until(
        "the page fits 390px",
        "return document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    b.screenshot("queue-phone").await;
    b.end().await;
}

#[tokio::test]
async fn task_page_shows_the_failed_gate_the_log_and_untrusted_text_as_text() {
    let sb = Sandbox::new("task");
    let s = Serve::start(&sb);
    s.submit("t-fail");
    wait_until("t-fail ends", Duration::from_secs(60), || {
        ended(&s, "t-fail")
    })
    .await;
    let b = Browser::start(&sb).await;
    b.goto(&s.url("/tasks/t-fail")).await;
    let gate = b.text("li.attempt[data-stage='write'] .gate.fail").await;
    assert!(gate.starts_with("gate FAIL: "), "{gate}");
    let api_reason = s.task("t-fail")["runs"][0]["attempts"][0]["gate_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(gate.ends_with(&api_reason), "{gate} / {api_reason}");
    assert!(api_reason.contains("FAIL"), "{api_reason}");
    // The log tail, opened with the keyboard's Enter on its summary.
    b.c()
        .find(Locator::Css(
            "li.attempt[data-stage='write'] details.log summary",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let tail = b
        .text("li.attempt[data-stage='write'] details.log pre")
        .await;
    assert!(tail.contains("agent for t-fail attempt 1"), "{tail}");
    assert!(
        tail.contains("<script>window.orchXss = 1</script>"),
        "{tail}"
    );
    // The artifact's field, as text.
    let summary = b.text("tr[data-field='summary'] td").await;
    assert_eq!(summary, "<script>window.orchXss = 2</script>");
    assert_eq!(b.text("tr[data-field='result'] td").await, "FAIL");
    assert_eq!(
        b.js("return typeof window.orchXss").await,
        json!("undefined")
    );
    assert_eq!(
        b.js("return document.querySelectorAll('main script').length")
            .await,
        json!(0)
    );
    b.screenshot("task").await;
    // The whole log, one link away.
    b.c()
        .find(Locator::Css("li.attempt[data-stage='write'] details.log a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let whole = b.text("pre.whole").await;
    assert!(
        whole.contains("<script>window.orchXss = 1</script>"),
        "{whole}"
    );
    assert!(whole.contains("agent wrote result FAIL"), "{whole}");
    assert_eq!(
        b.js("return typeof window.orchXss").await,
        json!("undefined")
    );
    // Without JavaScript the page is whole: the server's HTML has it all.
    let (st, html) = http(&s.addr, "GET", "/tasks/t-fail", None, b"");
    assert_eq!(st, 200);
    assert!(html.contains("&lt;script&gt;window.orchXss = 1&lt;/script&gt;"));
    assert!(!html.contains("<script>window.orchXss"));
    b.end().await;
}

#[tokio::test]
async fn cancel_works_with_the_token_and_is_refused_without() {
    let sb = Sandbox::new("cancel");
    let s = Serve::start(&sb);
    sb.hold("held-write");
    s.submit("held");
    wait_until("held runs", Duration::from_secs(60), || {
        s.task("held")["live"]["stage"] == "write"
    })
    .await;
    let b = Browser::start(&sb).await;
    b.goto(&s.url("/tasks/held")).await;
    // A wrong token: refused, nothing cancelled.
    let form = b.c().form(Locator::Css("form.cancel")).await.unwrap();
    form.set_by_name("token", "not-the-token").await.unwrap();
    form.submit().await.unwrap();
    let refusal = b.text("p.refusal").await;
    assert!(refusal.contains("token is missing or wrong"), "{refusal}");
    assert_eq!(s.queue_state("held"), "running");
    // No token at all (a request without the form's field): refused too.
    let (st, _) = http(&s.addr, "POST", "/tasks/held/cancel", None, b"");
    assert_eq!(st, 401);
    assert_eq!(s.queue_state("held"), "running");
    // The token, typed into the form: cancelled.
    b.goto(&s.url("/tasks/held")).await;
    let form = b.c().form(Locator::Css("form.cancel")).await.unwrap();
    form.set_by_name("token", TOKEN).await.unwrap();
    form.submit().await.unwrap();
    b.until(
        "the page says cancelled",
        "return !!document.querySelector('p.notice')",
    )
    .await;
    assert_eq!(b.text("p.notice").await, "Cancelled.");
    assert_eq!(s.queue_state("held"), "cancelled");
    assert!(b.text("h1").await.contains("cancelled"));
    b.screenshot("task-cancelled").await;
    b.end().await;
}

/// Alice's token; `tokens` lists its SHA-256 under her name.
const ALICE: &str = "alice-token-51c0";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Submits the task page's approval form with `token` and no comment
/// through `button`, expecting a refusal; its text.
async fn decide_in_page(b: &Browser, s: &Serve, token: &str, button: &str) -> String {
    b.goto(&s.url("/tasks/rel")).await;
    let form = b.c().form(Locator::Css("form.approval")).await.unwrap();
    form.set_by_name("token", token).await.unwrap();
    form.submit_with(Locator::Css(button)).await.unwrap();
    b.until(
        "the refusal",
        "return !!document.querySelector('p.refusal')",
    )
    .await;
    b.text("p.refusal").await
}

#[tokio::test]
async fn a_pending_approval_is_decided_on_the_task_page_as_the_token_says() {
    let sb = Sandbox::new("approval");
    // tests/fixtures/approvals/release.kdl: build, then alice or bob
    // approves (shown report.md); approved → done.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/approvals/release.kdl");
    std::fs::copy(&fixture, sb.root.join("release.kdl")).unwrap();
    std::fs::write(
        sb.root.join("tokens"),
        format!("alice {}\n", sha256_hex(ALICE)),
    )
    .unwrap();
    let s = Serve::start_with(
        &sb,
        "127.0.0.1:0",
        &["-p", "release.kdl", "--tokens-file", "tokens"],
    );
    // The build's runner appends to $T_OUT/builds.
    s.submit("rel");
    wait_until("rel waits for a decision", Duration::from_secs(60), || {
        s.queue_state("rel") == "waiting"
    })
    .await;
    let b = Browser::start(&sb).await;
    b.goto(&s.url("/tasks/rel")).await;
    let facts = b.text("section.approval dl").await;
    assert!(facts.contains("release"), "{facts}");
    assert!(facts.contains("approve-deploy"), "{facts}");
    assert!(facts.contains("alice, bob"), "{facts}");
    let shown = b.text("section.approval pre[data-show='report.md']").await;
    assert!(shown.contains("result: PASS"), "{shown}");
    b.screenshot("approval").await;

    // The service's own token names no decider: refused, nothing decided.
    let refusal = decide_in_page(&b, &s, TOKEN, "button.approve").await;
    assert!(refusal.contains("names no decider"), "{refusal}");
    assert_eq!(s.queue_state("rel"), "waiting");

    // Alice rejects without a comment: refused, nothing decided.
    let refusal = decide_in_page(&b, &s, ALICE, "button.reject").await;
    assert!(refusal.contains("needs a comment"), "{refusal}");
    assert_eq!(s.queue_state("rel"), "waiting");

    // Alice approves: the page says so and the task goes on to `done`.
    b.goto(&s.url("/tasks/rel")).await;
    let form = b.c().form(Locator::Css("form.approval")).await.unwrap();
    form.set_by_name("token", ALICE).await.unwrap();
    form.set_by_name("comment", "ship <it>").await.unwrap();
    form.submit_with(Locator::Css("button.approve"))
        .await
        .unwrap();
    b.until(
        "the page says approved",
        "return !!document.querySelector('p.notice')",
    )
    .await;
    assert!(b.text("p.notice").await.starts_with("Approved."));
    wait_until("rel ends", Duration::from_secs(60), || ended(&s, "rel")).await;
    let t = s.task("rel");
    let run = &t["runs"][0];
    assert_eq!(run["outcome"], "success", "{t}");
    assert_eq!(run["end"], "done", "{t}");
    // The decision is alice's, from her token, with her comment.
    let (st, q) = http(&s.addr, "GET", "/api/v1/tasks/rel", None, b"");
    assert_eq!(st, 200);
    assert!(q.contains("decided by alice"), "{q}");
    // Decided: the page offers no form any more.
    b.goto(&s.url("/tasks/rel")).await;
    let forms = b
        .js("return document.querySelectorAll('form.approval').length")
        .await;
    assert_eq!(forms, json!(0));
    b.end().await;
}

#[tokio::test]
async fn pipeline_page_draws_every_stage() {
    let sb = Sandbox::new("pipeline");
    let s = Serve::start(&sb);
    s.submit("p1");
    wait_until("p1 ends", Duration::from_secs(60), || ended(&s, "p1")).await;
    let b = Browser::start(&sb).await;
    b.goto(&s.url("/pipeline")).await;
    for (name, class) in [
        ("write", "node llm"),
        ("check", "node runner"),
        ("review", "node llm"),
        ("done", "node end success"),
        ("failed", "node end failure"),
    ] {
        let got = b
            .c()
            .find(Locator::Css(&format!(
                "svg.orch-graph g[data-stage='{name}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("no node for {name}: {e}"))
            .attr("class")
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(class), "{name}");
    }
    // Drawn: the graph has a size on the page.
    let width = b
        .js("return document.querySelector('svg.orch-graph').getBoundingClientRect().width")
        .await;
    assert!(width.as_f64().unwrap() > 100.0, "{width}");
    assert!(b
        .text("#map tr[data-call-site='writer']")
        .await
        .contains("not on the control path"));
    assert!(b
        .text("#map tr[data-call-site='checker']")
        .await
        .contains("deterministic"));
    assert!(b
        .text("#map tr[data-call-site='reviewer']")
        .await
        .contains("avoidable LLM control path"));
    // The roadmap: the avoidable one, with the LLM attempt p1 recorded.
    let entries = b
        .js("return [...document.querySelectorAll('#roadmap li')].map(l => l.dataset.callSite)")
        .await;
    assert_eq!(entries, json!(["reviewer"]));
    let entry = b.text("#roadmap li").await;
    assert!(entry.contains("1 LLM attempt(s)"), "{entry}");
    // Tall enough for the map and the roadmap too.
    b.c().set_window_size(1200, 1300).await.unwrap();
    b.screenshot("pipeline").await;
    // Keyboard: the first Tab reaches the skip link.
    b.c()
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{e004}")
        .await
        .unwrap();
    assert_eq!(
        b.js("return document.activeElement.className").await,
        json!("skip")
    );
    b.end().await;
}

/// Beyond loopback the pages follow the API's rule: no read without the
/// token. (No browser needed: a browser sends no `Authorization` header.)
#[test]
fn beyond_loopback_the_pages_need_the_token() {
    let sb = Sandbox::new("wide");
    let s = Serve::start_on(&sb, "0.0.0.0:0");
    let port = s.addr.rsplit_once(':').unwrap().1;
    let addr = format!("127.0.0.1:{port}");
    for path in [
        "/",
        "/pipeline",
        "/tasks/x",
        "/rows/x",
        "/assets/dashboard.css",
    ] {
        let (st, page) = http(&addr, "GET", path, None, b"");
        assert_eq!(st, 401, "{path} without the token: {page}");
        assert!(page.contains("need the token"), "{page}");
    }
    for (path, want) in [("/", 200), ("/pipeline", 200), ("/tasks/x", 404)] {
        let (st, page) = http(&addr, "GET", path, Some(TOKEN), b"");
        assert_eq!(st, want, "{path} with the token: {page}");
    }
    let (st, _) = http(&addr, "POST", "/tasks/x/cancel", None, b"token=wrong");
    assert_eq!(st, 401);
}
