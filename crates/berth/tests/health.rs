//! Health checks without a daemon: `--health-*` flags, the status in `ps` and `inspect`,
//! `health_status` events, and a checker that leaves with its container.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

mod containers_support;

use containers_support::{eventually, require_root, stderr, Env};

fn checkers_of(id: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| {
            let text = String::from_utf8_lossy(c);
            text.contains("_health") && text.contains(id)
        })
        .count()
}

#[test]
fn a_passing_probe_makes_the_container_healthy_and_its_checker_leaves_with_it() {
    if !require_root("a_passing_probe_makes_the_container_healthy_and_its_checker_leaves_with_it") {
        return;
    }
    let env = Env::new();
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "hc-ok",
        "--network",
        "none",
        "--health-cmd",
        "echo probing; true",
        "--health-interval",
        "300ms",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        eventually(10, || env.inspect("hc-ok", "{{.State.Health.Status}}")
            == "healthy"),
        "{}",
        env.inspect("hc-ok", "{{json .State.Health}}")
    );
    let ps = env.ok(&["ps", "--filter", "name=hc-ok", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Up ") && ps.ends_with(" (healthy)"), "{ps}");
    assert_eq!(env.inspect("hc-ok", "{{.State.Health.FailingStreak}}"), "0");
    let outputs = env.inspect("hc-ok", "{{range .State.Health.Log}}{{.Output}}{{end}}");
    assert!(outputs.starts_with("probing"), "{outputs}");
    assert_eq!(
        env.inspect("hc-ok", "{{json .Config.Healthcheck.Test}}"),
        "[\"CMD-SHELL\",\"echo probing; true\"]"
    );
    assert_eq!(checkers_of(&id), 1);
    let events = env.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "container=hc-ok",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        events.lines().any(|l| l == "health_status: healthy"),
        "{events}"
    );
    env.ok(&["stop", "-t", "1", "hc-ok"]);
    assert!(
        eventually(5, || checkers_of(&id) == 0),
        "the checker outlived its container"
    );
    env.ok(&["rm", "hc-ok"]);
}

#[test]
fn a_failing_probe_makes_it_unhealthy_after_the_retries() {
    if !require_root("a_failing_probe_makes_it_unhealthy_after_the_retries") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hc-bad",
        "--network",
        "none",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        eventually(10, || env.inspect("hc-bad", "{{.State.Health.Status}}")
            == "unhealthy"),
        "{}",
        env.inspect("hc-bad", "{{json .State.Health}}")
    );
    let streak: u32 = env
        .inspect("hc-bad", "{{.State.Health.FailingStreak}}")
        .parse()
        .unwrap();
    assert!(streak >= 2);
    let ps = env.ok(&["ps", "--filter", "name=hc-bad", "--format", "{{.Status}}"]);
    assert!(ps.ends_with(" (unhealthy)"), "{ps}");
    env.ok(&["rm", "-f", "hc-bad"]);
}

#[test]
fn health_flags_are_checked_and_no_healthcheck_turns_it_off() {
    if !require_root("health_flags_are_checked_and_no_healthcheck_turns_it_off") {
        return;
    }
    let env = Env::new();
    let out = env.berth(&[
        "create",
        "--no-healthcheck",
        "--health-cmd",
        "true",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "Error: --no-healthcheck conflicts with --health-* options\n"
    );
    let out = env.berth(&[
        "create",
        "--health-cmd",
        "true",
        "--health-interval",
        "soon",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(env.all_ids(), Vec::<String>::new());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hc-none",
        "--network",
        "none",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "30",
    ]);
    let ps = env.ok(&["ps", "--filter", "name=hc-none", "--format", "{{.Status}}"]);
    assert!(!ps.contains("health"), "{ps}");
    assert!(!env.inspect("hc-none", "{{json .State}}").contains("Health"));
    env.ok(&["rm", "-f", "hc-none"]);
}
