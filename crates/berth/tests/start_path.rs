//! The fast start path of `run --rm` (issue 3 and 4 performance targets) keeps Docker's
//! semantics: `--network none` still gets a namespace of its own with only `lo` up and
//! the /etc files, and a removed container's directory leaves `containers/` at once and
//! the trash at the next run or `container prune` (the runtime's state directory likewise,
//! through RUNROOT/trash).
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

#[path = "containers_support/mod.rs"]
mod support;

use support::{require_root, stderr, stdout, Env};

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn network_none_has_its_own_namespace_with_lo_and_etc_files() {
    if !require_root("network_none_has_its_own_namespace_with_lo_and_etc_files") {
        return;
    }
    let env = Env::new();
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--add-host",
        "db:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | wc -l; ip addr show lo | grep -c 'inet 127.0.0.1'; \
         grep db /etc/hosts; grep -c localhost /etc/hosts; cat /etc/hostname",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_ne!(
        lines[0],
        host_ns.to_string_lossy(),
        "joined the host's namespace"
    );
    assert_eq!(lines[1], "1", "only lo: {text}");
    assert_eq!(lines[2], "1", "lo has 127.0.0.1: {text}");
    assert_eq!(lines[3], "10.1.2.3\tdb");
    assert_eq!(lines[5].len(), 12, "hostname is the short ID: {text}");
    // No namespace was pinned for it.
    assert!(entries(&env.runroot().join("netns")).is_empty());
}

#[test]
fn rm_moves_the_directory_out_at_once_and_the_trash_is_swept() {
    if !require_root("rm_moves_the_directory_out_at_once_and_the_trash_is_swept") {
        return;
    }
    let env = Env::new();
    for _ in 0..2 {
        let out = env.berth(&["run", "--rm", "--network", "none", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(entries(&env.root().join("containers")).is_empty());
        assert!(entries(&env.runroot().join("runtime")).is_empty());
        assert!(env.all_ids().is_empty());
        assert!(env.mounts_here().is_empty(), "{:?}", env.mounts_here());
    }
    // What is left in the trash (the last run's directory, and the first one's if the
    // second run exited before its sweeper was done) goes with the next sweep.
    assert!(entries(&env.root().join("trash")).len() <= 2);
    assert!(entries(&env.runroot().join("trash")).len() <= 2);
    env.ok(&["container", "prune", "-f"]);
    assert!(entries(&env.root().join("trash")).is_empty());
    assert!(entries(&env.runroot().join("trash")).is_empty());
}
