//! The container lifecycle through the `berth` binary (issue 3, "Lifecycle" and "Bad
//! input"): foreground and detached runs, logs after the CLI exits, stop with a timeout,
//! `--rm` cleanliness, restart keeping the rw layer, 20 parallel runs, ps/inspect/wait.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

#[path = "containers_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{eventually, require_root, stderr, stdout, Env};

#[test]
fn foreground_run_exits_with_the_container_status_and_rm_leaves_nothing() {
    let Some(env) =
        Env::for_root_test("foreground_run_exits_with_the_container_status_and_rm_leaves_nothing")
    else {
        return;
    };
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hello; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
    assert!(env.all_ids().is_empty(), "--rm left a row");
    let dirs: Vec<_> = std::fs::read_dir(env.root().join("containers"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "--rm left a container directory");
    assert!(
        env.mounts_here().is_empty(),
        "--rm left a mount: {:?}",
        env.mounts_here()
    );
}

#[test]
fn rm_leaves_no_cgroup_and_foreground_keeps_logs() {
    let Some(env) = Env::for_root_test("rm_leaves_no_cgroup_and_foreground_keeps_logs") else {
        return;
    };
    let out = env.berth(&[
        "run",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = env.inspect("fg", "{{.Id}}");
    assert_eq!(env.inspect("fg", "{{.State.Status}}"), "exited");
    assert_eq!(env.inspect("fg", "{{.State.ExitCode}}"), "0");
    let logs = env.berth(&["logs", "fg"]);
    assert_eq!(stdout(&logs), "out\n");
    assert_eq!(stderr(&logs), "err\n");
    assert!(!Env::cgroup_exists(&id), "cgroup left after exit");
    env.ok(&["rm", "fg"]);
    assert!(!env.root().join("containers").join(&id).exists());
}

#[test]
fn detached_logs_keep_flowing_after_the_cli_exits() {
    let Some(env) = Env::for_root_test("detached_logs_keep_flowing_after_the_cli_exits") else {
        return;
    };
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done",
    ]);
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
    assert!(eventually(5, || env
        .ok(&["logs", "ticker"])
        .contains("line3")));
    let before = env.ok(&["logs", "ticker"]).lines().count();
    std::thread::sleep(Duration::from_millis(600));
    let after = env.ok(&["logs", "ticker"]).lines().count();
    assert!(after > before, "logs stopped flowing: {before} -> {after}");
    assert_eq!(
        env.ok(&["logs", "--tail", "2", "ticker"]).lines().count(),
        2
    );
    let ts = env.ok(&["logs", "-t", "--tail", "1", "ticker"]);
    assert!(
        ts.starts_with("20") && ts.contains('T') && ts.contains("Z line"),
        "{ts}"
    );
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps, "ticker running");
    assert_eq!(env.ok(&["ps", "-q"]), &id[..12]);
    env.ok(&["stop", "-t", "1", "ticker"]);
    assert_eq!(env.inspect("ticker", "{{.State.Status}}"), "exited");
    assert_eq!(env.ok(&["ps", "-q"]), "");
    env.ok(&["rm", "ticker"]);
    assert!(!Env::cgroup_exists(&id));
    assert!(env.mounts_here().is_empty());
}

#[test]
fn stop_of_a_term_ignoring_process_takes_the_timeout_then_kills() {
    let Some(env) =
        Env::for_root_test("stop_of_a_term_ignoring_process_takes_the_timeout_then_kills")
    else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(eventually(5, || env
        .ok(&["logs", "stubborn"])
        .contains("ready")));
    let t = Instant::now();
    assert_eq!(env.ok(&["stop", "-t", "1", "stubborn"]), "stubborn");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "stop returned after {took:?}"
    );
    assert!(took < Duration::from_secs(6), "stop took {took:?}");
    assert_eq!(env.inspect("stubborn", "{{.State.ExitCode}}"), "137");
    assert_eq!(env.inspect("stubborn", "{{.State.Running}}"), "false");
}

#[test]
fn start_after_stop_keeps_the_rw_layer() {
    let Some(env) = Env::for_root_test("start_after_stop_keeps_the_rw_layer") else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "busybox",
        "sh",
        "-c",
        "cat /keep 2>/dev/null; echo data > /keep; echo started; sleep 1000",
    ]);
    assert!(eventually(5, || env
        .ok(&["logs", "keeper"])
        .contains("started")));
    env.ok(&["stop", "-t", "0", "keeper"]);
    assert_eq!(env.ok(&["start", "keeper"]), "keeper");
    assert!(eventually(5, || env
        .ok(&["logs", "keeper"])
        .contains("data")));
    assert_eq!(env.inspect("keeper", "{{.State.Status}}"), "running");
    let out = env.berth(&["rm", "keeper"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rm of a running container must fail"
    );
    assert!(
        stderr(&out).contains("container is running"),
        "{}",
        stderr(&out)
    );
    env.ok(&["rm", "-f", "keeper"]);
    assert!(env.all_ids().is_empty());
}

#[test]
fn twenty_parallel_detached_runs() {
    let Some(env) = Env::for_root_test("twenty_parallel_detached_runs") else {
        return;
    };
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.cmd(&["run", "-d", "busybox", "sleep", "60"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn berth")
        })
        .collect();
    let mut ids = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "parallel run failed: {}",
            stderr(&out)
        );
        ids.push(stdout(&out).trim().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let running = env.ok(&["ps", "-q"]);
    assert_eq!(running.lines().count(), 20, "{running}");
    let mut names: Vec<String> = env
        .ok(&["ps", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    env.ok(&args);
    assert!(env.all_ids().is_empty());
    assert!(env.mounts_here().is_empty());
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let Some(env) = Env::for_root_test("bad_input_is_one_line_and_leaves_nothing") else {
        return;
    };
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "--rm", "--pull", "never", "nosuchimage"],
            125,
            "No such image: nosuchimage:latest",
        ),
        (
            &["run", "--rm", "--memory", "200x", "busybox", "true"],
            125,
            "invalid argument \"200x\" for \"-m, --memory\" flag: invalid size: '200x'",
        ),
        (
            &["run", "--rm", "--cpu-shares", "-1", "busybox", "true"],
            125,
            "invalid CPU shares (-1)",
        ),
        (
            &["run", "--rm", "busybox", "nosuchcommand"],
            127,
            "executable file not found",
        ),
        (
            &["run", "--rm", "busybox", "/etc/passwd"],
            126,
            "permission denied",
        ),
        (
            &["run", "--rm", "--restart", "sometimes", "busybox", "true"],
            125,
            "invalid restart policy",
        ),
    ];
    for (args, code, text) in cases {
        let out = env.berth(args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
        assert!(env.all_ids().is_empty(), "{args:?} left a container");
    }
    env.ok(&["create", "--name", "taken", "busybox", "true"]);
    let out = env.berth(&["run", "--name", "taken", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("is already in use by container"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.all_ids().len(), 1);
    let dirs = std::fs::read_dir(env.root().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(dirs, 1, "a failed create left a directory");
    let out = env.berth(&["stop", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such container: nosuch"));
}

#[test]
fn ps_inspect_and_wait_show_docker_shapes() {
    let Some(env) = Env::for_root_test("ps_inspect_and_wait_show_docker_shapes") else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "quick",
        "--memory",
        "64m",
        "--pids-limit",
        "30",
        "-e",
        "A=1",
        "busybox",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(env.ok(&["wait", "quick"]), "7");
    assert_eq!(env.inspect("quick", "{{.State.ExitCode}}"), "7");
    assert_eq!(env.inspect("quick", "{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(env.inspect("quick", "{{.HostConfig.PidsLimit}}"), "30");
    assert_eq!(env.inspect("quick", "{{.Name}}"), "/quick");
    let json = env.ok(&["inspect", "quick"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect is JSON");
    assert!(v[0]["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "A=1"));
    assert_eq!(v[0]["State"]["OOMKilled"], false);
    assert!(v[0]["State"]["FinishedAt"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    assert_eq!(env.ok(&["ps", "-q"]), "");
    let all = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}|{{.Status}}",
    ]);
    assert!(all.starts_with("quick|Exited (7)"), "{all}");
    let j = env.ok(&["ps", "-a", "--format", "json"]);
    let row: serde_json::Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
    assert_eq!(row["Names"], "quick");
    assert_eq!(env.ok(&["ps", "-a", "--filter", "name=nomatch", "-q"]), "");
    assert_eq!(
        env.ok(&["ps", "-a", "-n", "1", "--format", "{{.Names}}"]),
        "quick"
    );
    let out = env.berth(&["ps", "--filter", "bogus=1"]);
    assert_eq!(out.status.code(), Some(1));
    env.ok(&["container", "prune", "-f"]);
    assert!(env.all_ids().is_empty());
}

#[test]
fn init_reaps_zombies_and_forwards_signals() {
    let Some(env) = Env::for_root_test("init_reaps_zombies_and_forwards_signals") else {
        return;
    };
    // The command's PID 1 (`sleep`) never reaps: 100 orphans stay zombies without an init.
    let script = "(sleep 0.2; for i in $(seq 1 100); do (/bin/busybox true &); done; sleep 1; \
                  echo zombies=$(ps -o stat | grep -c Z)) & exec sleep 2";
    let without = env.berth(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert!(
        stdout(&without).contains("zombies=100"),
        "{}",
        stdout(&without)
    );
    let with = env.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", script]);
    assert_eq!(with.status.code(), Some(0), "{}", stderr(&with));
    assert!(stdout(&with).contains("zombies=0"), "{}", stdout(&with));
    // The init forwards the stop signal, so stop does not wait for the timeout.
    env.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "inited",
        "busybox",
        "sh",
        "-c",
        "echo up; while true; do sleep 0.1; done",
    ]);
    assert!(eventually(5, || env.ok(&["logs", "inited"]).contains("up")));
    let t = Instant::now();
    env.ok(&["stop", "-t", "5", "inited"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(env.inspect("inited", "{{.State.ExitCode}}"), "143");
}

#[test]
fn exec_runs_in_the_container_with_user_env_and_workdir() {
    let Some(env) = Env::for_root_test("exec_runs_in_the_container_with_user_env_and_workdir")
    else {
        return;
    };
    let id = env.ok(&["run", "-d", "--name", "target", "busybox", "sleep", "60"]);
    let out = env.berth(&["exec", "target", "sh", "-c", "hostname; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(stdout(&out).trim(), &id[..12]);
    let who = env.ok(&[
        "exec",
        "-u",
        "app",
        "-w",
        "/tmp",
        "-e",
        "X=1",
        "target",
        "sh",
        "-c",
        "echo $(id -u) $(pwd) $X",
    ]);
    assert_eq!(who, "1000 /tmp 1");
    let out = env.berth(&["exec", "target", "nosuchcommand"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let top = env.ok(&["top", "target"]);
    assert!(top.contains("sleep 60"), "{top}");
    env.ok(&["rm", "-f", "target"]);
    let out = env.berth(&["exec", "target", "true"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn restart_policy_on_failure_and_stop_wins_over_always() {
    let Some(env) = Env::for_root_test("restart_policy_on_failure_and_stop_wins_over_always")
    else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    let settled = eventually(10, || {
        env.inspect("flaky", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
    });
    assert!(
        settled,
        "{}",
        env.inspect(
            "flaky",
            "{{.State.Status}} {{.RestartCount}} {{.State.Error}}"
        )
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.inspect("flaky", "{{.RestartCount}}"), "2");
    assert_eq!(
        env.ok(&["logs", "flaky"])
            .lines()
            .filter(|l| *l == "run")
            .count(),
        3
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "forever",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo tick; sleep 0.2",
    ]);
    assert!(eventually(10, || env
        .inspect("forever", "{{.RestartCount}}")
        .parse::<u32>()
        .unwrap_or(0)
        >= 1));
    env.ok(&["stop", "-t", "1", "forever"]);
    let count = env.inspect("forever", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(env.inspect("forever", "{{.State.Status}}"), "exited");
    assert_eq!(
        env.inspect("forever", "{{.RestartCount}}"),
        count,
        "restarted after stop"
    );
}

#[test]
fn a_killed_monitor_is_noticed_and_cleaned_up() {
    let Some(env) = Env::for_root_test("a_killed_monitor_is_noticed_and_cleaned_up") else {
        return;
    };
    let id = env.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "60"]);
    let pid: i32 = env.inspect("orphan", "{{.State.Pid}}").parse().unwrap();
    // The monitor is the container process's parent.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(
        cmdline.contains("_monitor"),
        "parent of the container is not its monitor: {cmdline}"
    );
    std::process::Command::new("kill")
        .args(["-9", &ppid.to_string()])
        .status()
        .unwrap();
    assert!(eventually(5, || env.inspect("orphan", "{{.State.Status}}") == "exited"));
    assert_eq!(env.ok(&["ps", "-q"]), "");
    assert!(
        eventually(5, || !std::path::Path::new(&format!("/proc/{pid}"))
            .exists()),
        "the container process outlived its monitor"
    );
    assert!(
        !Env::cgroup_exists(&id),
        "cgroup left after the monitor died"
    );
    env.ok(&["rm", "orphan"]);
    assert!(env.mounts_here().is_empty());
}

#[test]
fn external_runtime_runc_mounts_on_the_host_and_cleans_up() {
    if !require_root("external_runtime_runc_mounts_on_the_host_and_cleans_up") {
        return;
    }
    if std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "runc missing (see scripts/install-test-deps.sh)"
        );
        eprintln!("skipping: runc is not installed");
        return;
    }
    let env = Env::new();
    let out = env.berth(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo $$; grep CapEff /proc/self/status",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1\nCapEff:\t00000000a80425fb"),
        "{}",
        stdout(&out)
    );
    let id = env.ok(&[
        "run",
        "-d",
        "--runtime",
        "runc",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(
        !env.mounts_here().is_empty(),
        "runc needs the rootfs mounted on the host"
    );
    env.ok(&["stop", "-t", "0", &id]);
    assert!(
        env.mounts_here().is_empty(),
        "rootfs still mounted after stop"
    );
    env.ok(&["rm", &id]);
    assert!(env.all_ids().is_empty());
}

#[test]
fn create_start_attach_and_follow_logs() {
    let Some(env) = Env::for_root_test("create_start_attach_and_follow_logs") else {
        return;
    };
    let id = env.ok(&[
        "create",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "echo once; exit 2",
    ]);
    assert_eq!(id.len(), 64);
    assert_eq!(env.inspect("later", "{{.State.Status}}"), "created");
    let out = env.berth(&["start", "-a", "later"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "once\n");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo f$i; sleep 0.2; done",
    ]);
    let t = Instant::now();
    let followed = env.ok(&["logs", "-f", "talker"]);
    assert_eq!(followed, "f1\nf2\nf3");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "logs -f did not end with the container"
    );
    assert_eq!(
        env.ok(&["logs", "--since", "1h", "talker"]).lines().count(),
        3
    );
    assert_eq!(
        env.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "talker"]),
        ""
    );
}

#[test]
fn kill_with_a_signal_and_restart() {
    let Some(env) = Env::for_root_test("kill_with_a_signal_and_restart") else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(eventually(5, || env.ok(&["logs", "sig"]).contains("ready")));
    assert_eq!(env.ok(&["kill", "-s", "USR1", "sig"]), "sig");
    assert!(eventually(5, || env
        .ok(&["logs", "sig"])
        .contains("got-usr1")));
    let started = env.inspect("sig", "{{.State.StartedAt}}");
    assert_eq!(env.ok(&["restart", "-t", "0", "sig"]), "sig");
    assert_eq!(env.inspect("sig", "{{.State.Status}}"), "running");
    assert_ne!(env.inspect("sig", "{{.State.StartedAt}}"), started);
    let out = env.berth(&["kill", "-s", "NOPE", "sig"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Invalid signal: NOPE"),
        "{}",
        stderr(&out)
    );
    env.ok(&["kill", "sig"]);
    assert!(eventually(5, || env.inspect("sig", "{{.State.Status}}") == "exited"));
    assert_eq!(env.inspect("sig", "{{.State.ExitCode}}"), "137");
    let out = env.berth(&["kill", "sig"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
}
