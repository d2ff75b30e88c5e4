//! Device access from inside `berth run` (issue #3): a container with Docker's default
//! CAP_MKNOD may make a node of the host's disk but not open it; the standard nodes work.
//! On a hybrid host the rules go to the v1 devices controller, or with
//! `BERTH_CGROUP_DEVICES=bpf` to a BPF device program on the unified hierarchy, the path a
//! cgroup v2 host takes.

#[path = "containers_support/mod.rs"]
mod support;

use support::{stderr, stdout, Env};

const SCRIPT: &str = "cat /sys/fs/cgroup/devices/devices.list 2>/dev/null | head -n1
echo hi > /dev/null && head -c1 /dev/zero | wc -c
mknod /tmp/sda b 8 0 && head -c1 /tmp/sda";

fn run(env: &Env, bpf: bool, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(extra);
    args.extend(["busybox", "sh", "-c", SCRIPT]);
    let mut cmd = env.cmd(&args);
    if bpf {
        cmd.env("BERTH_CGROUP_DEVICES", "bpf");
    } else {
        cmd.env_remove("BERTH_CGROUP_DEVICES");
    }
    let out = cmd.output().expect("run berth");
    (out.status.code(), stdout(&out), stderr(&out))
}

fn hybrid() -> bool {
    std::path::Path::new("/sys/fs/cgroup/devices").exists()
}

#[test]
fn run_cannot_open_a_disk_node_it_made() {
    let Some(env) = Env::for_root_test("run_cannot_open_a_disk_node_it_made") else {
        return;
    };
    let (code, out, err) = run(&env, false, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    // v1: the container's devices cgroup is no longer open to every device.
    let list = if hybrid() { "c *:* m\n" } else { "" };
    assert_eq!(out, format!("{list}1\n"));
    assert_eq!(err, "head: /tmp/sda: Operation not permitted\n");

    // The v2 path on this host: the v1 devices cgroup is left open, the program refuses.
    let (code, out, err) = run(&env, true, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let list = if hybrid() { "a *:* rwm\n" } else { "" };
    assert_eq!(out, format!("{list}1\n"));
    assert_eq!(err, "head: /tmp/sda: Operation not permitted\n");

    // --privileged allows every device: the open reaches the disk (or finds none).
    for bpf in [false, true] {
        let (_, out, err) = run(&env, bpf, &["--privileged"]);
        assert!(out.ends_with("1\n"), "{out}{err}");
        assert!(!err.contains("Operation not permitted"), "{err}");
    }
    assert!(env.all_ids().is_empty());
}
