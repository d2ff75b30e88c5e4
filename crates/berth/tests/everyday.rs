//! The verbs a Docker user types every week (issue 14): `events` from another process,
//! `pause`/`unpause` (freezer v1 and v2), `rename`, `update`, `restart -s`, `info`,
//! `system prune`, `container prune --filter`, `version --format`.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

#[path = "containers_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{stderr, stdout, Env};

/// A `berth events` running in the background; its lines arrive on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(env: &Env, args: &[&str]) -> Watch {
        let mut all = vec!["events"];
        all.extend_from_slice(args);
        let mut child = env
            .cmd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("berth events");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // The follower watches the journal once it has opened it.
        std::thread::sleep(Duration::from_millis(300));
        Watch { child, lines: rx }
    }

    /// Lines until one contains every `needle`, up to `secs`; panics with what came.
    fn until(&self, needles: &[&str], secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = needles.iter().all(|n| l.contains(n));
                    seen.push(l);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no event with {needles:?} within {secs}s; got {seen:#?}");
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_of_one_process_reach_a_watcher_in_another() {
    let Some(env) = Env::for_root_test("events_of_one_process_reach_a_watcher_in_another") else {
        return;
    };
    let w = Watch::start(&env, &["--filter", "type=container"]);
    let id = env.ok(&[
        "run", "-d", "--name", "ev1", "--label", "tier=web", "busybox", "sleep", "60",
    ]);
    let got = w.until(&["container start", &id], 10);
    assert!(
        got.iter()
            .any(|l| l.contains("container create") && l.contains(&id)),
        "{got:#?}"
    );
    let start = got.last().unwrap();
    assert!(
        start.contains("image=busybox") && start.contains("name=ev1") && start.contains("tier=web"),
        "{start}"
    );
    // Docker's line: RFC 3339 nanoseconds, type, action, ID, sorted attributes.
    assert!(
        start.starts_with("20") && start.contains("Z container start"),
        "{start}"
    );
    // `sleep` as PID 1 ignores SIGTERM: Docker's SIGKILL after the timeout, exit 137.
    env.ok(&["stop", "-t", "1", "ev1"]);
    w.until(&["container kill", "signal=15"], 10);
    w.until(&["container kill", "signal=9"], 10);
    w.until(&["container die", "exitCode=137"], 10);
    w.until(&["container stop", &id], 10);
    env.ok(&["rm", "ev1"]);
    w.until(&["container destroy", &id], 10);

    // Replayed from the journal: --since/--until bound the past, --filter picks, json.
    let out = env.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--filter",
        "container=ev1",
        "--format",
        "{{json .}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let ev: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(ev["Type"], "container");
    assert_eq!(ev["Action"], "die");
    assert_eq!(ev["Actor"]["Attributes"]["exitCode"], "137");
    assert_eq!(ev["id"], id.as_str());
    let out = env.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=ev1",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let actions: Vec<&str> = out.lines().collect();
    assert_eq!(
        actions,
        [
            "create ev1",
            "start ev1",
            "kill ev1",
            "kill ev1",
            "die ev1",
            "stop ev1",
            "destroy ev1"
        ]
    );

    // Bad input: Docker's words, status 125, nothing printed on stdout.
    let out = env.berth(&["events", "--filter", "colour=red"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Invalid filter 'colour'"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["events", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("failed to parse value as time or duration"),
        "{}",
        stderr(&out)
    );
    // The journal is private and holds whole JSON lines.
    let journal = env.root().join("events/journal");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "journal mode {mode:o}");
    for l in std::fs::read_to_string(&journal).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}

/// The freezer file of container `id`: v1's `freezer.state`, or v2's `cgroup.freeze`
/// (on a hybrid host, in the unified hierarchy).
fn freezer_file(id: &str, v2: bool) -> std::path::PathBuf {
    if v2 {
        for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
            let p = std::path::PathBuf::from(format!("{base}/berth/{id}/cgroup.freeze"));
            if p.exists() {
                return p;
            }
        }
        panic!("no v2 cgroup.freeze for {id}");
    }
    std::path::PathBuf::from(format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state"))
}

fn pause_unpause(test: &str, v2: bool) {
    let Some(env) = Env::for_root_test(test) else {
        return;
    };
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        if v2 {
            c.env("BERTH_CGROUP_FREEZER", "v2");
        }
        c.output().unwrap()
    };
    let out = run(&[
        "run",
        "-d",
        "--name",
        "p1",
        "busybox",
        "sh",
        "-c",
        "while true; do date +%s%N > /tmp/t; usleep 20000; done",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    if v2
        && !std::path::Path::new(&format!("/sys/fs/cgroup/unified/berth/{id}")).exists()
        && !std::path::Path::new(&format!("/sys/fs/cgroup/berth/{id}")).exists()
    {
        eprintln!("skipping {test}: no cgroup v2 hierarchy here");
        return;
    }
    let out = run(&["pause", "p1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "p1");
    let f = freezer_file(&id, v2);
    let state = std::fs::read_to_string(&f).unwrap();
    assert_eq!(state.trim(), if v2 { "1" } else { "FROZEN" });
    assert_eq!(
        env.inspect(
            "p1",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"
        ),
        "paused true true"
    );
    let ps = env.ok(&["ps", "--format", "{{.Status}}", "--filter", "name=p1"]);
    assert!(ps.ends_with("(Paused)"), "{ps}");
    // Frozen: the loop writes nothing.
    let t1 = env.ok(&["logs", "p1"]);
    std::thread::sleep(Duration::from_millis(200));
    let a = std::fs::metadata(env.root().join("containers").join(&id)).is_ok();
    assert!(a);
    let _ = t1;
    // Docker's refusals, status 1.
    let out = run(&["pause", "p1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is already paused"),
        "{}",
        stderr(&out)
    );
    let out = run(&["exec", "p1", "true"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("is paused, unpause the container before exec"),
        "{}",
        stderr(&out)
    );
    let out = run(&["start", "p1"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("cannot start a paused container, try unpause instead"),
        "{}",
        stderr(&out)
    );
    let out = run(&["unpause", "p1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = std::fs::read_to_string(&f).unwrap();
    assert_eq!(state.trim(), if v2 { "0" } else { "THAWED" });
    assert_eq!(env.inspect("p1", "{{.State.Status}}"), "running");
    let out = run(&["unpause", "p1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not paused"), "{}", stderr(&out));
    // A paused container is stopped as Docker does: signalled, then resumed to take it.
    assert!(run(&["pause", "p1"]).status.success());
    let t = Instant::now();
    let out = run(&["stop", "-t", "1", "p1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        env.inspect("p1", "{{.State.Status}} {{.State.Paused}}"),
        "exited false"
    );
    // kill of a paused one, and rm -f of a paused one.
    assert!(run(&["start", "p1"]).status.success());
    assert!(run(&["pause", "p1"]).status.success());
    let out = run(&["kill", "p1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(support::eventually(5, || env
        .inspect("p1", "{{.State.Status}}")
        == "exited"));
    assert!(run(&["start", "p1"]).status.success());
    assert!(run(&["pause", "p1"]).status.success());
    let out = run(&["rm", "-f", "p1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!Env::cgroup_exists(&id), "cgroup of {id} left behind");
    let out = run(&["pause", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such container: nosuch"));
}

#[test]
fn pause_and_unpause_freeze_with_cgroup_v1() {
    pause_unpause("pause_and_unpause_freeze_with_cgroup_v1", false);
}

#[test]
fn pause_and_unpause_freeze_with_cgroup_v2() {
    pause_unpause("pause_and_unpause_freeze_with_cgroup_v2", true);
}

#[test]
fn rename_takes_a_free_valid_name_only() {
    let Some(env) = Env::for_root_test("rename_takes_a_free_valid_name_only") else {
        return;
    };
    let w = Watch::start(&env, &["--filter", "event=rename"]);
    let id = env.ok(&["create", "--name", "old", "busybox", "true"]);
    env.ok(&["create", "--name", "taken", "busybox", "true"]);
    assert_eq!(env.ok(&["rename", "old", "new"]), "");
    assert_eq!(env.inspect(&id, "{{.Name}}"), "/new");
    let got = w.until(&["container rename", "oldName=/old", "name=new"], 10);
    assert!(got.last().unwrap().contains(&id));
    let out = env.berth(&["rename", "new", "new"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Renaming a container with the same name as its current name"));
    let out = env.berth(&["rename", "new", "taken"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("The container name \"/taken\" is already in use"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["rename", "new", "bad!"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Invalid container name (bad!)"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["rename", "nosuch", "x1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such container: nosuch"));
    assert_eq!(env.inspect(&id, "{{.Name}}"), "/new");
    // The old name is free again.
    env.ok(&["create", "--name", "old", "busybox", "true"]);
}

fn cgroup_file(ctrl: &str, id: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/berth/{id}/{file}"))
        .unwrap_or_else(|e| panic!("{ctrl}/{file}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn update_changes_a_running_container_and_its_next_start() {
    let Some(env) = Env::for_root_test("update_changes_a_running_container_and_its_next_start")
    else {
        return;
    };
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "u1",
        "--memory",
        "64m",
        "--tmpfs",
        "/big:size=100m",
        "busybox",
        "sleep",
        "600",
    ]);
    if !std::path::Path::new("/sys/fs/cgroup/memory/berth").exists() {
        eprintln!("skipping: not a cgroup v1 memory host");
        return;
    }
    assert_eq!(
        env.ok(&[
            "update",
            "--memory",
            "128m",
            "--memory-swap",
            "256m",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "--restart",
            "on-failure:3",
            "u1"
        ]),
        "u1"
    );
    assert_eq!(
        cgroup_file("memory", &id, "memory.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(cgroup_file("cpu", &id, "cpu.shares"), "512");
    assert_eq!(cgroup_file("cpu", &id, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "50");
    assert_eq!(
        env.inspect("u1", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"),
        "134217728 268435456 512 500000000 50 on-failure:3"
    );
    // Docker's refusals leave everything as it was.
    let out = env.berth(&["update", "--memory-swap", "64m", "u1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Minimum memoryswap limit should be larger than memory limit"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["update", "--memory", "1m", "u1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["update", "--memory", "300m", "u1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Memory limit should be smaller than already set memoryswap limit"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["update", "--cpus", "abc", "u1"]);
    assert_ne!(out.status.code(), Some(0));
    let out = env.berth(&["update", "u1"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("you must provide one or more flags"),
        "{}",
        stderr(&out)
    );
    // Below what the container uses: the kernel refuses, Docker's words, nothing changes.
    env.ok(&[
        "exec",
        "u1",
        "dd",
        "if=/dev/zero",
        "of=/big/f",
        "bs=1M",
        "count=40",
    ]);
    let out = env.berth(&["update", "--memory", "16m", "--memory-swap", "16m", "u1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Cannot update container"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.inspect("u1", "{{.HostConfig.Memory}}"), "134217728");
    // A stopped container keeps the update for its next start.
    env.ok(&["stop", "-t", "1", "u1"]);
    env.ok(&["update", "--pids-limit", "33", "u1"]);
    env.ok(&["start", "u1"]);
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "33");
    assert_eq!(
        cgroup_file("memory", &id, "memory.limit_in_bytes"),
        "134217728"
    );
    // --rm containers keep "no".
    env.ok(&[
        "run", "-d", "--rm", "--name", "u2", "busybox", "sleep", "60",
    ]);
    let out = env.berth(&["update", "--restart", "always", "u2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Restart policy cannot be updated because AutoRemove is enabled"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn restart_sends_the_signal_asked_and_comes_back() {
    let Some(env) = Env::for_root_test("restart_sends_the_signal_asked_and_comes_back") else {
        return;
    };
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "r1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; while true; do usleep 20000; done",
    ]);
    let w = Watch::start(&env, &["--filter", "container=r1"]);
    let before = env.inspect("r1", "{{.State.Pid}}");
    let t = Instant::now();
    assert_eq!(env.ok(&["restart", "-s", "USR1", "-t", "20", "r1"]), "r1");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    w.until(&["container kill", "signal=10"], 10);
    w.until(&["container die", "exitCode=7"], 10);
    w.until(&["container start", &id], 10);
    w.until(&["container restart", &id], 10);
    assert_eq!(env.inspect("r1", "{{.State.Status}}"), "running");
    assert_ne!(env.inspect("r1", "{{.State.Pid}}"), before);
    let out = env.berth(&["restart", "--signal", "NOPE", "r1"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Invalid signal: NOPE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_reports_the_host_and_counts_and_formats() {
    let Some(env) = Env::for_root_test("info_reports_the_host_and_counts_and_formats") else {
        return;
    };
    env.ok(&["run", "-d", "--name", "i1", "busybox", "sleep", "60"]);
    env.ok(&["create", "--name", "i2", "busybox", "true"]);
    let out = env.berth(&["info"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        " Containers: 2\n",
        "  Running: 1\n",
        "  Paused: 0\n",
        "  Stopped: 1\n",
        " Images: 1\n",
        " Storage Driver: overlay2\n",
        " Logging Driver: json-file\n",
        " Cgroup Driver: cgroupfs\n",
        "  seccomp\n   Profile: builtin\n",
        " OSType: linux\n",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert!(
        text.contains(&format!(" Cgroup Version: {}\n", if v2 { 2 } else { 1 })),
        "{text}"
    );
    assert!(
        text.contains(&format!(" Docker Root Dir: {}\n", env.root().display())),
        "{text}"
    );
    // Docker's warnings on stderr, when this host lacks what they name.
    if !v2 && !std::path::Path::new("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device").exists()
    {
        assert!(stderr(&out).contains("WARNING: No blkio throttle.read_bps_device support"));
    }
    assert_eq!(
        env.ok(&[
            "info",
            "--format",
            "{{.ContainersRunning}}/{{.Containers}} {{.Driver}}"
        ]),
        "1/2 overlay2"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(json["ContainersStopped"], 1);
    assert!(json["NCPU"].as_u64().unwrap() >= 1);
    let id1 = json["ID"].as_str().unwrap().to_string();
    assert_eq!(env.ok(&["info", "-f", "{{.ID}}"]), id1, "the ID is stable");
    let out = env.berth(&["info", "--format", "{{.Nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("template parsing error"));
    assert!(env
        .ok(&["version", "--format", "{{.Client.Version}}"])
        .starts_with(char::is_numeric));
    assert_eq!(env.ok(&["version", "--format", "{{.Server.Os}}"]), "linux");
}

#[test]
fn system_prune_removes_the_unused_after_confirmation() {
    let Some(env) = Env::for_root_test("system_prune_removes_the_unused_after_confirmation") else {
        return;
    };
    let stopped = env.ok(&[
        "run",
        "--name",
        "s1",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /f",
    ]);
    let _ = stopped;
    let stopped = env.ok(&["inspect", "-f", "{{.Id}}", "s1"]);
    let running = env.ok(&["run", "-d", "--name", "s2", "busybox", "sleep", "60"]);
    let kept = env.ok(&[
        "create", "--name", "s3", "--label", "keep=yes", "busybox", "true",
    ]);
    // Answering no removes nothing, after Docker's prompt.
    let mut c = env.cmd(&["system", "prune"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(env.all_ids().len(), 3);
    // container prune --filter: only what passes.
    let out = env.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.contains(&stopped) && !out.contains(&kept), "{out}");
    assert!(
        out.contains("Total reclaimed space: 100kB") || out.contains("Total reclaimed space: 1"),
        "{out}"
    );
    let out = env.berth(&["container", "prune", "-f", "--filter", "colour=red"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Invalid filter 'colour'"),
        "{}",
        stderr(&out)
    );
    let out = env.ok(&["system", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&kept), "{out}");
    assert!(
        out.ends_with("Total reclaimed space: 0B") || out.contains("Total reclaimed space:"),
        "{out}"
    );
    assert_eq!(env.all_ids(), vec![running.clone()]);
    let out = env.ok(&["system", "prune", "-f", "-a"]);
    assert!(
        !out.contains("Deleted Images"),
        "busybox is used by s2: {out}"
    );
    env.ok(&["rm", "-f", "s2"]);
    let out = env.ok(&["system", "prune", "-f", "-a"]);
    assert!(
        out.contains("Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:"),
        "{out}"
    );
    assert_eq!(env.ok(&["images", "-q"]), "");
}

#[test]
fn attach_leaves_at_the_detach_keys_in_a_pty_and_the_container_runs_on() {
    let test = "attach_leaves_at_the_detach_keys_in_a_pty_and_the_container_runs_on";
    let Some(env) = Env::for_root_test(test) else {
        return;
    };
    if !support::require_tool(test, "script") {
        return;
    }
    env.ok(&["run", "-d", "-it", "--name", "a1", "busybox", "sh"]);
    let attach = |keys: Option<&str>, input: &[u8]| {
        let mut cmd = format!(
            "{} --root {} --runroot {} attach",
            support::BIN,
            env.root().display(),
            env.runroot().display()
        );
        if let Some(k) = keys {
            cmd.push_str(&format!(" --detach-keys {k}"));
        }
        cmd.push_str(" a1");
        let mut child = std::process::Command::new("script")
            .args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(700));
        use std::io::Write;
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Ctrl-P Ctrl-Q by default, another sequence when asked.
    assert_eq!(attach(None, b"\x10\x11"), Some(0));
    assert_eq!(attach(Some("ctrl-x,e"), b"\x18e"), Some(0));
    assert_eq!(env.inspect("a1", "{{.State.Status}}"), "running");
    let out = env.berth(&["attach", "--detach-keys", "ctrl-1", "a1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Invalid detach keys (ctrl-1) provided"));
    let out = env.berth(&["exec", "--detach-keys", "nope", "a1", "true"]);
    assert_eq!(out.status.code(), Some(1));
    env.ok(&["stop", "-t", "1", "a1"]);
    let out = env.berth(&["attach", "a1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("You cannot attach to a stopped container, start it first"));
    // exec --env-file: the file first, then -e wins.
    env.ok(&["start", "a1"]);
    let f = env.dir.path().join("env");
    std::fs::write(&f, "# comment\nA=1\nB=2\n").unwrap();
    let out = env.ok(&[
        "exec",
        "--env-file",
        f.to_str().unwrap(),
        "-e",
        "B=3",
        "a1",
        "sh",
        "-c",
        "echo $A$B",
    ]);
    assert_eq!(out, "13");
    let out = env.berth(&["exec", "--env-file", "/nonexistent-env", "a1", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent-env"),
        "{}",
        stderr(&out)
    );
}
