//! Attaching to a running container's output (`start -a`, `logs -f --tail 0`) shows what it
//! writes from then on, as Docker's attach does, never a replay of the log written before,
//! also when the log has rotated files.

#[path = "containers_support/mod.rs"]
mod support;

use std::process::Stdio;

use support::{eventually, stderr, stdout, Env};

#[test]
fn attach_and_follow_from_now_show_only_new_output() {
    let Some(env) = Env::for_root_test("attach_and_follow_from_now_show_only_new_output") else {
        return;
    };
    // Small files, so the output before the attach spans the live file and a rotated one.
    std::fs::write(
        env.root().join("berth.toml"),
        "[log]\nmax-size = \"16k\"\nmax-file = 2\n",
    )
    .expect("berth.toml");
    // The new output comes once the test touches /go (at most 10 s after `ready`).
    env.ok(&[
        "run",
        "-d",
        "--name",
        "attach-now",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "seq 1 600; echo ready; \
         i=0; while [ ! -e /go ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
         echo new; echo e-new >&2; exit 5",
    ]);
    assert!(eventually(10, || env
        .ok(&["logs", "--tail", "1", "attach-now"])
        .contains("ready")));
    let id = env.inspect("attach-now", "{{.Id}}");
    let log = env
        .ok(&["inspect", "-f", "{{.LogPath}}", "attach-now"])
        .to_string();
    assert!(
        std::path::Path::new(&format!("{log}.1")).exists(),
        "the log of {id} has not rotated: the test needs more output"
    );
    let follow = env
        .cmd(&["logs", "-f", "--tail", "0", "attach-now"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let attach = env
        .cmd(&["start", "-a", "attach-now"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start -a");
    // Both are following the log before the container writes on (2 s to get there, ample
    // on a loaded 2-core machine; the old berth's replay did not depend on timing).
    std::thread::sleep(std::time::Duration::from_secs(2));
    env.ok(&["exec", "attach-now", "touch", "/go"]);
    let attach = attach.wait_with_output().expect("start -a");
    let follow = follow.wait_with_output().expect("logs -f");
    assert_eq!(attach.status.code(), Some(5), "{}", stderr(&attach));
    assert_eq!(stdout(&attach), "new\n");
    assert_eq!(stderr(&attach), "e-new\n");
    assert!(follow.status.success(), "{}", stderr(&follow));
    assert_eq!(stdout(&follow), "new\n");
    assert_eq!(stderr(&follow), "e-new\n");
    // A positive --tail still shows the last entries before following.
    // (stderr's entry counts too.)
    let out = env.berth(&["logs", "--tail", "3", "attach-now"]);
    assert_eq!(stdout(&out), "ready\nnew\n");
    env.ok(&["rm", "attach-now"]);
}
