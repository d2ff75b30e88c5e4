//! Nothing left behind when berth processes die (issue 18, "Debris that accumulates"):
//! each test kills a berth process (SIGKILL) at a chosen moment, or recreates the state such
//! a death leaves, then checks what the next command leaves: a killed build's step
//! processes, scratch directories, runtime state and cgroups; a foreground `run --rm` whose
//! CLI died; a removal whose remover died; logs bounded by rotation; a bad `--runroot`
//! reported in one line.

#[path = "containers_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{eventually, stderr, stdout, Env, Proc};

/// Entries of `dir` (names), empty when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file and directory under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// The build steps' container IDs (`berth-build-*`) under RUNROOT/build.
fn step_ids(runroot: &Path) -> Vec<String> {
    tree(&runroot.join("build"))
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("berth-build-"))
        .collect()
}

/// Whether any cgroup directory named `berth/ID` exists (any hierarchy).
fn cgroup_exists(id: &str) -> bool {
    Env::cgroup_exists(id)
        || std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .any(|h| h.path().join("berth").join(id).exists())
}

/// PIDs of processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

fn sigkill(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A build context with `dockerfile`.
fn context(env: &Env, name: &str, dockerfile: &str) -> PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("context");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    dir
}

/// What a killed build may not leave once the next command ran: step processes (found by
/// their unique `marker`), RUNROOT/build state, build scratch under ROOT/tmp, cgroups.
fn assert_no_build_debris(env: &Env, marker: &str, ids: &[String]) {
    assert!(
        eventually(5, || pids_with(marker).is_empty()),
        "the step's processes still run: {:?}",
        pids_with(marker)
    );
    let left: Vec<String> = entries(&env.root().join("tmp"))
        .into_iter()
        .filter(|n| n.starts_with("build"))
        .collect();
    assert!(left.is_empty(), "ROOT/tmp keeps {left:?}");
    assert!(
        entries(&env.runroot().join("build")).is_empty(),
        "RUNROOT/build keeps {:?}",
        tree(&env.runroot().join("build"))
    );
    for id in ids {
        assert!(!cgroup_exists(id), "the cgroup of step {id} is left");
    }
}

#[test]
fn a_build_killed_during_run_leaves_nothing_after_the_next_command() {
    let Some(env) =
        Env::for_root_test("a_build_killed_during_run_leaves_nothing_after_the_next_command")
    else {
        return;
    };
    let marker = "4471.5";
    let ctx = context(
        &env,
        "ctx",
        &format!("FROM busybox\nRUN echo data > /f && sleep {marker}\n"),
    );
    let mut build = env
        .cmd(&["build", "-t", "killed:1", ctx.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("build");
    assert!(
        eventually(30, || !pids_with(&format!("sleep {marker}")).is_empty()),
        "the RUN step never started"
    );
    let ids = step_ids(&env.runroot());
    assert!(!ids.is_empty(), "no step state under RUNROOT/build");
    sigkill(&mut build);
    // The step outlives its build until the next command.
    assert!(!pids_with(&format!("sleep {marker}")).is_empty());
    // Any next command: an image command here (the container commands sweep too).
    let out = env.berth(&["images"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_build_debris(&env, &format!("sleep {marker}"), &ids);
    // And the store builds again.
    let ctx2 = context(&env, "ctx2", "FROM busybox\nRUN echo ok > /ok\n");
    env.ok(&["build", "-t", "after:1", ctx2.to_str().expect("utf-8")]);
    assert_no_build_debris(&env, &format!("sleep {marker}"), &ids);
}

#[test]
fn a_build_killed_during_the_layer_commit_leaves_nothing_after_the_next_build() {
    let Some(env) = Env::for_root_test(
        "a_build_killed_during_the_layer_commit_leaves_nothing_after_the_next_build",
    ) else {
        return;
    };
    // 64 files of 1 MB: the diff into the layer tar takes a while.
    let ctx = context(
        &env,
        "ctx",
        "FROM busybox\nRUN for i in $(seq 64); do head -c 1048576 /dev/urandom > /f$i; done\n",
    );
    let mut build = env
        .cmd(&["build", "-t", "commit:1", ctx.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("build");
    // The commit: a layer tar being written in the build's scratch directory.
    let tmp = env.root().join("tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        seen = tree(&tmp).iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("build-layer-"))
                && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
        });
        if !seen {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert!(seen, "no layer commit seen");
    sigkill(&mut build);
    let ctx2 = context(&env, "ctx2", "FROM busybox\nRUN echo ok > /ok\n");
    env.ok(&["build", "-t", "after:1", ctx2.to_str().expect("utf-8")]);
    assert_no_build_debris(&env, "no-such-process-marker", &[]);
}

#[test]
fn a_killed_foreground_run_rm_is_removed_by_its_monitor() {
    let Some(env) = Env::for_root_test("a_killed_foreground_run_rm_is_removed_by_its_monitor")
    else {
        return;
    };
    let mut cli = Proc(
        env.cmd(&[
            "run",
            "--rm",
            "--name",
            "fg-rm",
            "--network",
            "none",
            "busybox",
            "sleep",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run"),
    );
    assert!(
        eventually(20, || env.inspect_quiet("fg-rm") == "running"),
        "the container never ran"
    );
    let id = env.inspect("fg-rm", "{{.Id}}");
    let _ = cli.0.kill();
    let _ = cli.0.wait();
    // The container outlives its CLI (as with Docker) ...
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.inspect_quiet("fg-rm"), "running", "killed with its CLI");
    // ... and is gone with everything it had once its process ends.
    assert!(
        eventually(20, || env.all_ids().is_empty()),
        "--rm container left after its CLI died: {}",
        stdout(&env.berth(&["ps", "-a"]))
    );
    assert!(!env.root().join("containers").join(&id).exists());
    assert!(env.mounts_here().is_empty(), "{:?}", env.mounts_here());
    assert!(!cgroup_exists(&id));
}

#[test]
fn a_killed_foreground_run_rm_is_removed_after_berth_kill() {
    let Some(env) = Env::for_root_test("a_killed_foreground_run_rm_is_removed_after_berth_kill")
    else {
        return;
    };
    let mut cli = Proc(
        env.cmd(&[
            "run",
            "--rm",
            "--name",
            "fg-rm2",
            "--network",
            "none",
            "busybox",
            "sleep",
            "600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run"),
    );
    assert!(eventually(20, || env.inspect_quiet("fg-rm2") == "running"));
    let _ = cli.0.kill();
    let _ = cli.0.wait();
    std::thread::sleep(Duration::from_millis(200));
    env.ok(&["kill", "fg-rm2"]);
    assert!(
        eventually(20, || env.all_ids().is_empty()),
        "--rm container left: {}",
        stdout(&env.berth(&["ps", "-a"]))
    );
    assert!(entries(&env.root().join("containers")).is_empty());
}

impl Env {
    /// `{{.State.Status}}` of `name`, or "" when it does not exist.
    fn inspect_quiet(&self, name: &str) -> String {
        stdout(&self.berth(&["inspect", "-f", "{{.State.Status}}", name]))
            .trim()
            .to_string()
    }
}

/// Marks container `name` as a remover that died half-way leaves it: "removing", its
/// remover a process that is gone.
fn abandon_removal(env: &Env, name: &str) {
    let dead = {
        let mut c = Command::new("true").spawn().expect("true");
        let pid = c.id();
        c.wait().expect("wait");
        pid
    };
    let st = Command::new("sqlite3")
        .arg(env.root().join("berth.db"))
        .arg(format!(
            "UPDATE containers SET status='removing', monitor_pid={dead}, monitor_start=1 WHERE name='{name}';"
        ))
        .status()
        .expect("sqlite3");
    assert!(st.success());
    assert_eq!(env.inspect_quiet(name), "removing");
}

#[test]
fn removals_whose_remover_died_are_finished_by_prune_and_rm() {
    let Some(env) = Env::for_root_test("removals_whose_remover_died_are_finished_by_prune_and_rm")
    else {
        return;
    };
    if !support::require_tool("removals_whose_remover_died", "sqlite3") {
        return;
    }
    for n in ["half-1", "half-2"] {
        env.ok(&[
            "create",
            "--name",
            n,
            "--network",
            "none",
            "busybox",
            "true",
        ]);
        abandon_removal(&env, n);
    }
    let out = env.berth(&["ps", "-a"]);
    assert!(
        stdout(&out).contains("Removal In Progress"),
        "{}",
        stdout(&out)
    );
    env.ok(&["rm", "half-1"]);
    assert_eq!(env.all_ids().len(), 1, "rm did not finish the removal");
    env.ok(&["container", "prune", "-f"]);
    assert!(
        env.all_ids().is_empty(),
        "{}",
        stdout(&env.berth(&["ps", "-a"]))
    );
    assert!(entries(&env.root().join("containers")).is_empty());
}

#[test]
fn a_killed_prune_is_finished_by_the_next_prune() {
    let Some(env) = Env::for_root_test("a_killed_prune_is_finished_by_the_next_prune") else {
        return;
    };
    for i in 0..6 {
        env.ok(&[
            "create",
            "--name",
            &format!("p{i}"),
            "--network",
            "none",
            "busybox",
            "true",
        ]);
    }
    for delay in [5u64, 15, 30] {
        let mut prune = env
            .cmd(&["container", "prune", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prune");
        std::thread::sleep(Duration::from_millis(delay));
        sigkill(&mut prune);
    }
    env.ok(&["container", "prune", "-f"]);
    assert!(
        env.all_ids().is_empty(),
        "{}",
        stdout(&env.berth(&["ps", "-a"]))
    );
    assert!(entries(&env.root().join("containers")).is_empty());
}

/// Total size of a container's json-file logs (the live one and the rotated ones).
fn log_bytes(env: &Env, id: &str) -> (u64, usize) {
    let dir = env.root().join("containers").join(id);
    let logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("container dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("-json.log"))
        .collect();
    let total = logs
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    (total, logs.len())
}

#[test]
fn logs_are_bounded_by_rotation_and_read_across_files() {
    let Some(env) = Env::for_root_test("logs_are_bounded_by_rotation_and_read_across_files") else {
        return;
    };
    std::fs::write(
        env.root().join("berth.toml"),
        "[log]\nmax-size = \"64k\"\nmax-file = 3\n",
    )
    .expect("berth.toml");
    // ~40k lines of ~60 bytes in the log each: 2.4 MB unbounded.
    let script = "seq 1 40000";
    // Detached (the monitor and the lean watcher write) and in the foreground (the CLI).
    env.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let fg = env.berth(&[
        "run",
        "--name",
        "fg",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(fg.status.success(), "{}", stderr(&fg));
    assert!(eventually(30, || env.inspect_quiet("bg") == "exited"));
    for name in ["bg", "fg"] {
        let id = env.inspect(name, "{{.Id}}");
        let (total, files) = log_bytes(&env, &id);
        assert!(
            total <= 3 * 64 * 1024,
            "{name}: {total} bytes of logs in {files} files"
        );
        assert_eq!(files, 3, "{name}: rotated files");
        let tail = env.ok(&["logs", "--tail", "3", name]);
        assert_eq!(tail, "39998\n39999\n40000", "{name}");
        // Every line the files still hold comes in order across them.
        let all = env.ok(&["logs", name]);
        let nums: Vec<u64> = all.lines().map(|l| l.parse().expect("number")).collect();
        assert!(nums.len() > 1000, "{name}: {} lines kept", nums.len());
        assert!(
            nums.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: out of order"
        );
        assert_eq!(nums.last(), Some(&40000));
    }
}

#[test]
fn logs_follow_across_a_rotation() {
    let Some(env) = Env::for_root_test("logs_follow_across_a_rotation") else {
        return;
    };
    std::fs::write(
        env.root().join("berth.toml"),
        "[log]\nmax-size = \"32k\"\nmax-file = 2\n",
    )
    .expect("berth.toml");
    env.ok(&[
        "run", "-d", "--name", "slow", "--network", "none", "busybox", "sh", "-c",
        "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i; [ $((i % 100)) = 0 ] && sleep 0.1; done",
    ]);
    let out = env.berth(&["logs", "-f", "slow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let nums: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| l.parse().expect("number"))
        .collect();
    let gaps: Vec<&[u64]> = nums.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(gaps.is_empty(), "gap or repeat while following: {gaps:?}");
    assert_eq!(nums.last(), Some(&3000));
}

#[test]
fn a_bad_runroot_with_network_none_is_one_error_line() {
    let Some(env) = Env::for_root_test("a_bad_runroot_with_network_none_is_one_error_line") else {
        return;
    };
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "").expect("file");
    let runroot = file.join("run");
    for rm in [true, false] {
        let mut args = vec!["run"];
        if rm {
            args.push("--rm");
        }
        args.extend(["--network", "none", "busybox", "true"]);
        let out = support::berth_command(&env.root(), &runroot)
            .args(&args)
            .output()
            .expect("berth");
        assert_eq!(out.status.code(), Some(125));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("a-file"), "the error names the path: {err}");
    }
    assert!(env.all_ids().is_empty(), "a container was left");
}
