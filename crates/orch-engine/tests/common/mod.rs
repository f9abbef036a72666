//! What the process tests share: scripts, a scratch directory, running an
//! attempt on its own task, reading `/proc`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orch_engine::process::{self, GroupIdentity, Outcome, Spec};
use orch_lang::invocation::Invocation;
use tokio::sync::watch;

/// Starts an escapee that leaves the group with `setsid` and records its pid
/// in `$D/esc.pid`, then waits (bounded) until it has.
pub const ESCAPE: &str = r#"
setsid sh -c 'echo $$ >"$1/esc.tmp" && mv "$1/esc.tmp" "$1/esc.pid" && exec sleep 30' escapee "$D" &
i=0
while [ ! -f "$D/esc.pid" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
"#;

/// The same, but the escapee is started from a subshell that exits at once,
/// so it is reparented to `orch` while the attempt is still running.
pub const DAEMONIZE: &str = r#"
( setsid sh -c 'echo $$ >"$1/esc.tmp" && mv "$1/esc.tmp" "$1/esc.pid" && exec sleep 30' escapee "$D" & )
i=0
while [ ! -f "$D/esc.pid" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
"#;

/// Waits (bounded) until `$D/go` exists.
pub const WAIT_GO: &str = r#"
i=0
while [ ! -f "$D/go" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
"#;

pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("orch-process-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    pub fn sub(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sh -c script` in `dir`, with `$D` set to `dir`.
pub fn spec(dir: &Path, script: &str) -> Spec {
    Spec {
        invocation: Invocation {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: vec![("D".into(), dir.display().to_string())],
            stdin: None,
            timeout: Duration::from_secs(120),
            idle_timeout: None,
            grace: Duration::from_secs(1),
        },
        log: dir.join("log"),
        redactor: Default::default(),
    }
}

/// Runs `spec` on its own task; the identity reported at spawn goes to the
/// returned slot.
pub fn start(
    spec: Spec,
) -> (
    tokio::task::JoinHandle<Outcome>,
    Arc<Mutex<Option<GroupIdentity>>>,
) {
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(async move {
        let _keep = tx;
        process::run(&spec, |id| *s.lock().unwrap() = Some(id.clone()), rx).await
    });
    (handle, slot)
}

/// Bounded polling for a condition.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = text.rsplit_once(')')?.1.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub async fn pid_in(path: PathBuf) -> i32 {
    eventually(&format!("{} to be written", path.display()), || {
        read_pid(&path).is_some()
    })
    .await;
    read_pid(&path).unwrap()
}

pub fn leak_pids(o: &Outcome) -> Vec<i32> {
    o.leaks.iter().map(|l| l.pid).collect()
}
