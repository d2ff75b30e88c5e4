//! `berth runtime`: runc's command line on OCI bundles, and a differential test against runc
//! itself on the same `runc spec` bundle. Root only.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

use std::path::Path;
use std::process::{Command, Output};

#[path = "containers_support/mod.rs"]
mod support;

use support::{busybox_tar, BIN};

/// A bundle made by `berth runtime spec` with a busybox rootfs, and its own runroot.
struct Bundle {
    dir: tempfile::TempDir,
    runroot: tempfile::TempDir,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let mut ar = tar::Archive::new(std::fs::File::open(busybox_tar()).unwrap());
        ar.set_preserve_permissions(true);
        ar.unpack(&rootfs).unwrap();
        let b = Bundle {
            dir,
            runroot: tempfile::tempdir().unwrap(),
        };
        let out = b.berth(&["runtime", "spec", "-b", b.path().to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        b
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Edits config.json: no terminal, `sh -c script`, and `extra` applied.
    fn configure(&self, script: &str, extra: impl FnOnce(&mut serde_json::Value)) {
        let path = self.path().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        extra(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.berth_with(args, true)
    }

    /// `create` and `start` leave the container holding the stdio they inherit: give them
    /// /dev/null for stdout so that waiting for the CLI's output does not wait for it.
    fn berth_detached(&self, args: &[&str]) -> Output {
        self.berth_with(args, false)
    }

    fn berth_with(&self, args: &[&str], capture: bool) -> Output {
        let log = self.path().join("stderr.log");
        let mut cmd = Command::new(BIN);
        if !capture {
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
        }
        let mut out = cmd
            .arg("--runroot")
            .arg(self.runroot.path())
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        if !capture {
            out.stderr = std::fs::read(&log).unwrap_or_default();
        }
        out
    }
}

fn id(name: &str) -> String {
    format!("rt{}-{name}", std::process::id())
}

#[test]
fn spec_writes_what_runc_spec_writes() {
    let ours = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["runtime", "spec", "-b"])
        .arg(ours.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ours.path().join("config.json")).unwrap()).unwrap();
    // A second time refuses to overwrite.
    let again = Command::new(BIN)
        .args(["runtime", "spec", "-b"])
        .arg(ours.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    if Command::new("runc").arg("--version").output().is_err() {
        eprintln!("runc not installed: compared with berth's own template only");
        return;
    }
    let theirs = tempfile::tempdir().unwrap();
    let st = Command::new("runc")
        .arg("spec")
        .current_dir(theirs.path())
        .status()
        .unwrap();
    assert!(st.success());
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(theirs.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v, r);
}

#[test]
fn create_start_state_kill_delete() {
    if !support::require_root("create_start_state_kill_delete") {
        return;
    }
    let b = Bundle::new();
    b.configure(
        "trap 'exit 0' TERM; while true; do sleep 0.05; done",
        |_| {},
    );
    let id = id("life");
    let pidfile = b.path().join("pid");
    let out = b.berth_detached(&[
        "runtime",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let state = |b: &Bundle| -> serde_json::Value {
        serde_json::from_slice(&b.berth(&["runtime", "state", &id]).stdout).unwrap()
    };
    let s = state(&b);
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["id"], id.as_str());
    assert!(b
        .berth_detached(&["runtime", "start", &id])
        .status
        .success());
    assert_eq!(state(&b)["status"], "running");
    // Deleting a running container needs --force.
    let out = b.berth(&["runtime", "delete", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(err.contains("running"), "{err}");
    assert!(b.berth(&["runtime", "kill", &id, "KILL"]).status.success());
    for _ in 0..200 {
        if state(&b)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(state(&b)["status"], "stopped");
    assert!(b.berth(&["runtime", "delete", &id]).status.success());
    let out = b.berth(&["runtime", "state", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!b.runroot.path().join("runtime").join(&id).exists());
}

#[test]
fn run_exits_with_the_containers_status_and_cleans_up() {
    if !support::require_root("run_exits_with_the_containers_status_and_cleans_up") {
        return;
    }
    let b = Bundle::new();
    b.configure("echo hello from $(hostname); exit 42", |_| {});
    let id = id("run");
    let out = b.berth(&["runtime", "run", &id]);
    assert_eq!(
        out.status.code(),
        Some(42),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from runc\n");
    assert!(!b.runroot.path().join("runtime").join(&id).exists());
    assert!(!Path::new("/sys/fs/cgroup/memory/berth").join(&id).exists());
    assert!(!Path::new("/sys/fs/cgroup/berth").join(&id).exists());
    // A missing command: one error line, nothing left.
    b.configure("true", |v| {
        v["process"]["args"] = serde_json::json!(["/no/such/binary"])
    });
    let out = b.berth(&["runtime", "run", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/binary"), "{err}");
    assert!(!b.runroot.path().join("runtime").join(&id).exists());
}

/// What a container reports about itself, normalised for comparison between runtimes.
fn observe(out: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for l in out.lines() {
        if l.starts_with("Cap")
            || l.starts_with("val ")
            || l.starts_with("dev ")
            || l.starts_with("nofile ")
            || l.starts_with("Seccomp")
            || l.starts_with("NoNewPrivs")
        {
            lines.push(l.to_string());
        } else if let Some((left, right)) = l.split_once(" - ") {
            // mountinfo: mount point, per-mount options, fs type, super options.
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            // runc also shows v1 hierarchies mounted outside /sys/fs/cgroup on the host (a
            // benchmark may mount one in /tmp); berth only uses those under /sys/fs/cgroup.
            if let Some(name) = f.get(4).and_then(|m| m.strip_prefix("/sys/fs/cgroup/")) {
                if !Path::new("/sys/fs/cgroup").join(name).exists() {
                    continue;
                }
            }
            if f.len() >= 6 && r.len() >= 3 {
                lines.push(format!("mount {} {} {} {}", f[4], f[5], r[0], r[2]));
            }
        }
    }
    lines.sort();
    lines
}

#[test]
fn same_bundle_same_container_as_runc() {
    if !support::require_root("same_bundle_same_container_as_runc") {
        return;
    }
    if Command::new("runc").arg("--version").output().is_err() {
        panic!("runc is not installed (scripts/install-test-deps.sh installs it)");
    }
    let b = Bundle::new();
    let script = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; cat /proc/self/mountinfo; \
        for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us pids/pids.max memory.max cpu.max pids.max; do \
          [ -e /sys/fs/cgroup/$f ] && echo val $f $(cat /sys/fs/cgroup/$f); done; \
        for d in /dev/*; do echo dev $d; done; echo nofile $(ulimit -n) $(ulimit -Hn)";
    b.configure(script, |v| {
        v["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 50},
            "devices": [{"allow": false, "access": "rwm"}],
        });
    });
    let id_b = id("diff-berth");
    let ours = b.berth(&["runtime", "run", &id_b]);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let runc_root = tempfile::tempdir().unwrap();
    let id_r = id("diff-runc");
    let theirs = Command::new("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["run", &id_r])
        .current_dir(b.path())
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let (o, t) = (
        observe(&String::from_utf8_lossy(&ours.stdout)),
        observe(&String::from_utf8_lossy(&theirs.stdout)),
    );
    assert!(o.iter().any(|l| l.starts_with("CapEff")), "{o:#?}");
    assert!(
        o.iter()
            .any(|l| l.contains("val") && l.contains("67108864")),
        "{o:#?}"
    );
    assert!(
        o.iter().filter(|l| l.starts_with("mount ")).count() > 10,
        "{o:#?}"
    );
    assert_eq!(o, t, "berth (left) and runc (right) differ");
}

#[test]
fn foreground_run_forwards_signals_to_the_container() {
    if !support::require_root("foreground_run_forwards_signals_to_the_container") {
        return;
    }
    let b = Bundle::new();
    b.configure(
        "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.05; done",
        |_| {},
    );
    let id = id("sig");
    let mut child = Command::new(BIN)
        .arg("--runroot")
        .arg(b.runroot.path())
        .args(["runtime", "run", &id])
        .current_dir(b.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        use std::io::Read;
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "container ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    use std::io::Read;
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(5), "{rest}");
    assert!(rest.contains("got TERM"), "{rest}");
    assert!(!b.runroot.path().join("runtime").join(&id).exists());
}
