//! Shared helpers of the CLI tests (every `tests/*.rs` of this crate): the
//! root-only and tool guards, the busybox rootfs tar, the `berth` command with a root and
//! runroot of its own, and for the container tests (lifecycle, limits, isolation,
//! acceptance) a temp root with the busybox image imported.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// Whether this test process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether a root-only test may run: skips (with a message) when not root, fails under CI.
pub fn require_root(test: &str) -> bool {
    require_root_for(test, "namespaces, overlayfs, cgroups")
}

/// [`require_root`] with the reason root is needed (`why`) named in the skip message.
pub fn require_root_for(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("skipping {test}: needs root ({why})");
    false
}

/// Asserts that berth (run with `args`) succeeded; its stdout, trimmed.
pub fn ok_stdout(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "berth {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `tool` is installed; skips when not, fails under CI.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs {tool} (see scripts/install-test-deps.sh)");
        }
        eprintln!("skipping {test}: {tool} is not installed");
    }
    found
}

/// `berth --root ROOT --runroot RUNROOT`, with no stdin and the environment's
/// BERTH_ROOT/BERTH_RUNROOT removed, so the test's own directories are the only ones used.
pub fn berth_command(root: &Path, runroot: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--root")
        .arg(root)
        .arg("--runroot")
        .arg(runroot)
        .env_remove("BERTH_ROOT")
        .env_remove("BERTH_RUNROOT")
        .stdin(Stdio::null());
    // Docker Hub at a closed loopback port: tests never leave the machine.
    if std::env::var_os("BERTH_DOCKER_HUB").is_none() {
        c.env("BERTH_DOCKER_HUB", "127.0.0.1:9");
    }
    c
}

/// Imports the busybox rootfs as `busybox:latest` into `root`, asserting it worked.
pub fn import_busybox(root: &Path, runroot: &Path) {
    let out = berth_command(root, runroot)
        .args([
            "import",
            busybox_tar().to_str().expect("utf-8"),
            "busybox:latest",
        ])
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `berth registry serve` on 127.0.0.1:0 with `storage` (and `extra` flags); returns
/// it with its address, read from its first line.
pub fn serve_registry(storage: &Path, extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(["registry", "serve", "--addr", "127.0.0.1:0", "--storage"])
        .arg(storage)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn registry");
    let stdout = child.stdout.take().expect("stdout");
    let server = Proc(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, addr)
}

/// Lines of /proc/self/mountinfo naming a path under `dir` (mounts a test left behind).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let me = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&me))
        .map(str::to_string)
        .collect()
}

/// The busybox rootfs tar, shared by every test process (nextest runs each test alone): made
/// once per busybox binary in the temp dir, atomically (temp file + rename).
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let meta = std::fs::metadata("/bin/busybox").expect("/bin/busybox (busybox-static)");
        let stamp = format!(
            "{}-{}",
            meta.len(),
            meta.modified()
                .expect("mtime")
                .duration_since(std::time::UNIX_EPOCH)
                .expect("mtime after 1970")
                .as_secs()
        );
        let tar = std::env::temp_dir().join(format!("berth-busybox-{stamp}.tar"));
        if tar.exists() {
            return tar;
        }
        let tmp =
            std::env::temp_dir().join(format!("berth-busybox-{stamp}.{}.tmp", std::process::id()));
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mk-busybox-rootfs.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&tmp)
            .status()
            .expect("run mk-busybox-rootfs.sh");
        assert!(st.success(), "mk-busybox-rootfs.sh failed");
        std::fs::rename(&tmp, &tar).expect("rename the busybox tar into place");
        tar
    })
}

/// One test's berth state: its own root and runroot, busybox imported as `busybox:latest`.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// For a root-only test: a fresh [`Env`], or `None` when the test must skip (see
    /// [`require_root`]).
    pub fn for_root_test(test: &str) -> Option<Env> {
        require_root(test).then(Env::new)
    }

    /// A fresh root with busybox imported.
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::Builder::new()
                .prefix("berth-ctr-")
                .tempdir()
                .expect("temp dir"),
        };
        import_busybox(&env.root(), &env.runroot());
        env
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = berth_command(&self.root(), &self.runroot());
        c.args(args);
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    /// Runs berth, asserts success, returns stdout trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        ok_stdout(args, self.berth(args))
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
        mounts_under(self.dir.path())
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

/// A network test's state: root and runroot in a temp dir, a berth.toml naming a default
/// bridge and a /24 of its own (`10.SECOND.<reserved>.0/24`, the reservation keeps parallel
/// tests apart), busybox imported. Dropping it removes containers, networks and the bridge.
pub struct NetEnv {
    pub dir: tempfile::TempDir,
    pub bridge: String,
    /// The reserved third octet.
    pub third: u8,
    /// The second octet of this test file's range.
    pub second: u8,
    _reservation: berth_engine::network::berth_net::test_support::Reservation,
}

impl NetEnv {
    /// `tag` names the reservation pool and the temp dir, `bridge_prefix` the bridge
    /// (`PREFIX<third>x<n>`, `n` telling a test's environments apart).
    pub fn new(tag: &str, bridge_prefix: &str, second: u8, n: u8) -> NetEnv {
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-{tag}-"))
            .tempdir()
            .expect("temp dir");
        let reservation = berth_engine::network::berth_net::test_support::reserve(tag);
        let third = reservation.n;
        let bridge = format!("{bridge_prefix}{third}x{n}");
        std::fs::create_dir_all(dir.path().join("root")).expect("root");
        std::fs::write(
            dir.path().join("root/berth.toml"),
            format!("[network]\nsubnet = \"10.{second}.{third}.0/24\"\nbridge = \"{bridge}\"\n"),
        )
        .expect("berth.toml");
        let env = NetEnv {
            dir,
            bridge,
            third,
            second,
            _reservation: reservation,
        };
        import_busybox(&env.root(), &env.runroot());
        env
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The default bridge's gateway.
    pub fn gateway(&self) -> String {
        format!("10.{}.{}.1", self.second, self.third)
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        berth_command(&self.root(), &self.runroot())
            .args(args)
            .output()
            .expect("run berth")
    }

    /// Runs berth, asserts success, returns stdout trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        ok_stdout(args, self.berth(args))
    }
}

/// Removes every container and unused network of a test's root, through `berth` (a test
/// environment's runner), ignoring failures: the clean-up of a test environment's `Drop`.
pub fn remove_containers_and_networks(berth: impl Fn(&[&str]) -> Output) {
    let ids = berth(&["ps", "-aq"]);
    for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
        let _ = berth(&["rm", "-f", id]);
    }
    let _ = berth(&["network", "prune", "-f"]);
}

impl Drop for NetEnv {
    fn drop(&mut self) {
        remove_containers_and_networks(|args| self.berth(args));
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        // berth's IPv6 rule for the bridge (see berth-net's BridgeSpec::forwarding).
        let _ = Command::new("ip")
            .args([
                "-6",
                "rule",
                "del",
                "iif",
                &self.bridge,
                "priority",
                "1000",
                "prohibit",
            ])
            .output();
    }
}
