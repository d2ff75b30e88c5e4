//! Shared helpers of the container tests (lifecycle, limits, isolation): a temp root with
//! the busybox image imported, a `berth` command runner, and the root-only guard.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// Whether a root-only test may run: skips (with a message) when not root, fails under CI.
pub fn require_root(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if root {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("skipping {test}: needs root (namespaces, overlayfs, cgroups)");
    false
}

/// The busybox rootfs tar, made once per test process.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = TAR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let tar = dir.path().join("busybox.tar");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mk-busybox-rootfs.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&tar)
            .status()
            .expect("run mk-busybox-rootfs.sh");
        assert!(st.success(), "mk-busybox-rootfs.sh failed");
        (dir, tar)
    });
    p
}

/// One test's berth state: its own root and runroot, busybox imported as `busybox:latest`.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh root with busybox imported.
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::Builder::new()
                .prefix("berth-ctr-")
                .tempdir()
                .expect("temp dir"),
        };
        let out = env.berth(&[
            "import",
            busybox_tar().to_str().expect("utf-8"),
            "busybox:latest",
        ]);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(args)
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    /// Runs berth, asserts success, returns stdout trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `inspect -f TEMPLATE NAME`.
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
    }

    /// IDs of every container (`ps -a -q --no-trunc`).
    pub fn all_ids(&self) -> Vec<String> {
        self.ok(&["ps", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Host mounts under this test's directory.
    pub fn mounts_here(&self) -> Vec<String> {
        let me = self.dir.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&me))
            .map(str::to_string)
            .collect()
    }

    /// Whether a cgroup of container `id` exists anywhere under /sys/fs/cgroup.
    pub fn cgroup_exists(id: &str) -> bool {
        ["memory", "pids", "cpu", "unified", "systemd", ""]
            .iter()
            .any(|c| Path::new(&format!("/sys/fs/cgroup/{c}/berth/{id}")).exists())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Leave the host clean even when a test failed half-way.
        for id in self.all_ids_quiet() {
            let _ = self.berth(&["rm", "-f", &id]);
        }
    }
}

impl Env {
    fn all_ids_quiet(&self) -> Vec<String> {
        let out = self.berth(&["ps", "-a", "-q", "--no-trunc"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// stdout of an output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// stderr of an output.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Polls `f` every 50 ms up to `secs`; true when it held.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}
