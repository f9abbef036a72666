//! An escapee that scrubbed its environment cannot be attributed: it is
//! left alone while another attempt runs, and killed by the attempt that
//! ends alone. In its own test binary, so that "alone" is up to the test.

mod common;

use common::*;
use orch_engine::process;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_escapee_is_reaped_only_by_an_attempt_that_ends_alone() {
    process::become_subreaper();
    let dir = Dir::new("untagged");
    let (da, db) = (dir.sub("a"), dir.sub("b"));
    let (b, b_id) = start(spec(&db, &format!("{WAIT_GO}\nexit 0")));
    eventually("B to be spawned", || b_id.lock().unwrap().is_some()).await;
    let a_script = r#"
( setsid env -i PATH="$PATH" sh -c 'echo $$ >"$1/esc.tmp" && mv "$1/esc.tmp" "$1/esc.pid" && exec sleep 30' escapee "$D" & )
i=0
while [ ! -f "$D/esc.pid" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
exit 0
"#;
    let a = start(spec(&da, a_script)).0.await.unwrap();
    let esc = read_pid(&da.join("esc.pid")).expect("the escapee recorded its pid");
    assert_eq!(leak_pids(&a), Vec::<i32>::new(), "{:?}", a.leaks);
    assert!(alive(esc), "the untagged escapee was killed while B ran");

    std::fs::write(db.join("go"), "").unwrap();
    let b = b.await.unwrap();
    assert_eq!(leak_pids(&b), vec![esc], "{:?}", b.leaks);
    assert!(!alive(esc), "the untagged escapee {esc} survived");
}
