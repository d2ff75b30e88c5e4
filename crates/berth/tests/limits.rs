//! Resource limits through `berth run` (issue 3, "Limits"): the OOM killer at `--memory`,
//! the cgroup files carrying the values asked, `--pids-limit` against a fork bomb.

#[path = "containers_support/mod.rs"]
mod support;

use std::fs;

use support::{stderr, stdout, Env};

/// The value of cgroup file `file` of container `id` under controller `ctrl` (v1) or the
/// unified hierarchy (v2).
fn cgroup_file(ctrl: &str, id: &str, file: &str) -> Option<String> {
    [
        format!("/sys/fs/cgroup/{ctrl}/berth/{id}/{file}"),
        format!("/sys/fs/cgroup/berth/{id}/{file}"),
    ]
    .iter()
    .find_map(|p| fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
}

#[test]
fn memory_limit_oom_kills_with_137_and_oomkilled_true() {
    let Some(env) = Env::for_root_test("memory_limit_oom_kills_with_137_and_oomkilled_true") else {
        return;
    };
    let out = env.berth(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--tmpfs",
        "/big:size=200m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/big/f",
        "bs=1M",
        "count=100",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert_eq!(env.inspect("hog", "{{.State.OOMKilled}}"), "true");
    assert_eq!(env.inspect("hog", "{{.State.ExitCode}}"), "137");
    env.ok(&["rm", "hog"]);
}

#[test]
fn cgroup_files_carry_the_values_asked() {
    let Some(env) = Env::for_root_test("cgroup_files_carry_the_values_asked") else {
        return;
    };
    let id = env.ok(&[
        "run",
        "-d",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpu-shares",
        "512",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "60",
    ]);
    let v2 = std::path::Path::new(&format!("/sys/fs/cgroup/berth/{id}/memory.max")).exists();
    if v2 {
        assert_eq!(
            cgroup_file("", &id, "memory.max").as_deref(),
            Some("67108864")
        );
        assert_eq!(
            cgroup_file("", &id, "memory.swap.max").as_deref(),
            Some("67108864")
        );
        assert_eq!(
            cgroup_file("", &id, "cpu.max").as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cgroup_file("", &id, "pids.max").as_deref(), Some("20"));
    } else {
        assert_eq!(
            cgroup_file("memory", &id, "memory.limit_in_bytes").as_deref(),
            Some("67108864")
        );
        assert_eq!(
            cgroup_file("memory", &id, "memory.soft_limit_in_bytes").as_deref(),
            Some("33554432")
        );
        if let Some(sw) = cgroup_file("memory", &id, "memory.memsw.limit_in_bytes") {
            assert_eq!(sw, "134217728");
        }
        assert_eq!(
            cgroup_file("cpu", &id, "cpu.shares").as_deref(),
            Some("512")
        );
        assert_eq!(
            cgroup_file("cpu", &id, "cpu.cfs_quota_us").as_deref(),
            Some("50000")
        );
        assert_eq!(
            cgroup_file("cpu", &id, "cpu.cfs_period_us").as_deref(),
            Some("100000")
        );
        assert_eq!(cgroup_file("pids", &id, "pids.max").as_deref(), Some("20"));
    }
    let stats = env.ok(&["stats", "--no-stream", &id]);
    assert!(stats.contains("64MiB"), "{stats}");
    env.ok(&["rm", "-f", &id]);
    assert!(!Env::cgroup_exists(&id), "cgroup left after rm -f");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let Some(env) = Env::for_root_test("pids_limit_stops_a_fork_bomb") else {
        return;
    };
    let out = env.berth(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "sh -c 'for i in $(seq 1 60); do sleep 3 & done' 2>/dev/null; echo bomb=$?; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n",
    ]);
    let text = stdout(&out);
    let n: usize = text
        .trim()
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(999);
    assert!(
        n <= 20,
        "{n} processes ran under --pids-limit 20: {text} {}",
        stderr(&out)
    );
    assert!(
        n >= 5,
        "the shell could not fork at all: {text} {}",
        stderr(&out)
    );
}
