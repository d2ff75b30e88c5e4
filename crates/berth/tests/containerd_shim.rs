//! berth as containerd's runtime: Debian's containerd 1.6 and its `io.containerd.runc.v2`
//! shim call the `berth-runc` name of the berth binary as their runc (`BinaryName`, which
//! `ctr` sets with `--runc-binary`). The same scenario runs with runc itself and both must
//! give the same observable results. Each containerd here has its own root, state dir,
//! socket, namespace and runc root; at the end it, its shims, its mounts and its cgroups are
//! gone. Root only.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "containers_support/mod.rs"]
mod support;

use support::{
    berth_command, busybox_tar, mounts_under, require_root, require_tool, serve_registry, BIN,
};

/// One containerd of this test, with the busybox image imported.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: Option<std::process::Child>,
    ns: String,
    /// The runc the shim calls (`--runc-binary`).
    runtime: PathBuf,
}

impl Containerd {
    fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn runc_root(&self) -> PathBuf {
        self.dir.path().join("runc")
    }

    fn start(runtime: &Path, tag: &str) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("berth-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.opt"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            dir,
            daemon: Some(daemon),
            ns: format!("berth-{tag}-{}", std::process::id()),
            runtime: runtime.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.import_busybox();
        c
    }

    fn ctr_command(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.sock())
            .arg("--namespace")
            .arg(&self.ns)
            .stdin(Stdio::null());
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command().args(args).output().expect("run ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr run` with this containerd's runtime: `--runc-binary` is the shim's `BinaryName`.
    fn run_args(&self) -> Vec<String> {
        vec![
            "run".into(),
            "--runc-binary".into(),
            self.runtime.display().to_string(),
            "--runc-root".into(),
            self.runc_root().display().to_string(),
        ]
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut args = self.run_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        self.ctr_command().args(&args).output().expect("run ctr")
    }

    /// Busybox as a docker archive made by berth itself (import + save), then
    /// `ctr image import`.
    fn import_busybox(&self) {
        let root = self.dir.path().join("berth-root");
        let runroot = self.dir.path().join("berth-run");
        let archive = self.dir.path().join("busybox.tar");
        let out = berth_command(&root, &runroot)
            .args(["import", busybox_tar().to_str().unwrap(), "busybox:latest"])
            .output()
            .unwrap();
        assert!(out.status.success(), "berth import: {out:?}");
        let out = berth_command(&root, &runroot)
            .args(["save", "-o", archive.to_str().unwrap(), "busybox:latest"])
            .output()
            .unwrap();
        assert!(out.status.success(), "berth save: {out:?}");
        self.ctr_ok(&["image", "import", archive.to_str().unwrap()]);
    }

    /// Pids of processes (shims) whose command line names this containerd's socket.
    fn shims(&self) -> Vec<i32> {
        let sock = self.sock().display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&sock) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Cgroup directories of this containerd's namespace (`/<ns>` in every hierarchy).
    fn ns_cgroups(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for e in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let d = e.path().join(&self.ns);
            if d.is_dir() {
                dirs.push(d);
            }
        }
        let d = Path::new("/sys/fs/cgroup").join(&self.ns);
        if d.is_dir() && !dirs.contains(&d) {
            dirs.push(d);
        }
        dirs
    }

    /// Stops containerd and its shims, unmounts what it left, removes its namespace's
    /// cgroups; returns what could not be cleaned (for the test to assert on).
    fn shutdown(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(mut d) = self.daemon.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(d.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for pid in self.shims() {
            left.push(format!("shim {pid} still running"));
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let mut mounts: Vec<String> = mounts_under(self.dir.path())
            .iter()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        for d in self.ns_cgroups() {
            if std::fs::remove_dir(&d).is_err() {
                left.push(format!("cgroup {} not removable", d.display()));
            }
        }
        left
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// What a user sees of the scenario, to compare between runtimes.
#[derive(Debug, PartialEq)]
struct Observed {
    run_output: String,
    run_exit_3: Option<i32>,
    exec_output: String,
    exec_exit_5: Option<i32>,
    ps_count: usize,
    paused_status: String,
    resumed_status: String,
    exec_after_resume: String,
    memory_limit_after_update: String,
    pids_current: String,
    killed_status: String,
    tty_output: String,
    net_devices: String,
}

fn lines(s: &str) -> String {
    s.replace('\r', "").trim().to_string()
}

fn task_status(c: &Containerd, id: &str) -> String {
    let out = c.ctr_ok(&["task", "ls"]);
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("<none>")
        .to_string()
}

fn metric(c: &Containerd, id: &str, name: &str) -> String {
    let out = c.ctr_ok(&["task", "metrics", id]);
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("<none>")
        .to_string()
}

const IMAGE: &str = "docker.io/library/busybox:latest";

/// The scenario: `ctr run --rm`, exit status, a long-running task with exec, ps, pause,
/// resume, metrics, a resource update through the runtime's `update --resources -` (as the
/// shim sends it), kill, and `ctr run --tty`.
fn scenario(c: &Containerd) -> Observed {
    let out = c.run(&[
        "--rm",
        IMAGE,
        "c1",
        "sh",
        "-c",
        "echo hello; id -u; hostname; cat /proc/self/cgroup | grep -c c1",
    ]);
    assert!(out.status.success(), "ctr run: {out:?}");
    let run_output = lines(&String::from_utf8_lossy(&out.stdout));
    let out = c.run(&["--rm", IMAGE, "c2", "sh", "-c", "exit 3"]);
    let run_exit_3 = out.status.code();
    let out = c.run(&[
        "--rm",
        IMAGE,
        "cnet",
        "sh",
        "-c",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    ]);
    let net_devices = lines(&String::from_utf8_lossy(&out.stdout));

    let out = c.run(&["-d", IMAGE, "c3", "sleep", "1000"]);
    assert!(out.status.success(), "ctr run -d: {out:?}");
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c3",
        "sh",
        "-c",
        "echo in; tr '\\0' ' ' < /proc/1/cmdline",
    ]);
    assert!(out.status.success(), "ctr task exec: {out:?}");
    let exec_output = lines(&String::from_utf8_lossy(&out.stdout));
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "c3",
        "sh",
        "-c",
        "exit 5",
    ]);
    let exec_exit_5 = out.status.code();
    let ps = c.ctr_ok(&["task", "ps", "c3"]);
    let ps_count = ps.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    c.ctr_ok(&["task", "pause", "c3"]);
    let paused_status = task_status(c, "c3");
    c.ctr_ok(&["task", "resume", "c3"]);
    let resumed_status = task_status(c, "c3");
    let out = c.ctr(&["task", "exec", "--exec-id", "e3", "c3", "echo", "awake"]);
    let exec_after_resume = lines(&String::from_utf8_lossy(&out.stdout));
    let pids_current = metric(c, "c3", "pids.current");
    // What the shim's Update sends: LinuxResources as JSON on stdin.
    let mut update = Command::new(&c.runtime)
        .arg("--root")
        .arg(c.runc_root().join(&c.ns))
        .args(["update", "--resources", "-", "c3"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = update.stdin.take().unwrap();
        stdin
            .write_all(br#"{"memory":{"limit":67108864},"pids":{"limit":50}}"#)
            .unwrap();
    }
    assert!(update.wait().unwrap().success(), "update --resources -");
    let memory_limit_after_update = metric(c, "c3", "memory.limit_in_bytes");
    c.ctr_ok(&["task", "kill", "-s", "SIGKILL", "c3"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut killed_status = task_status(c, "c3");
    while killed_status != "STOPPED" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        killed_status = task_status(c, "c3");
    }
    c.ctr_ok(&["task", "rm", "c3"]);
    c.ctr_ok(&["container", "rm", "c3"]);

    // --tty needs a terminal on ctr's side: script(1) gives it one.
    let mut cmd = c.run_args().join(" ");
    cmd = format!(
        "ctr --address {} --namespace {} {cmd} --rm --tty {IMAGE} c4 sh -c 'tty; echo ok'",
        c.sock().display(),
        c.ns
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "ctr run --tty: {out:?}");
    let tty_output = lines(&String::from_utf8_lossy(&out.stdout));

    Observed {
        run_output,
        run_exit_3,
        exec_output,
        exec_exit_5,
        ps_count,
        paused_status,
        resumed_status,
        exec_after_resume,
        memory_limit_after_update,
        pids_current,
        killed_status,
        tty_output,
        net_devices,
    }
}

/// `DIR/berth-runc`, a link to the berth binary (what `berth runtime install` makes).
fn install_berth_runc(dir: &Path) -> PathBuf {
    let out = Command::new(BIN)
        .args(["runtime", "install", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "berth runtime install: {out:?}");
    let link = dir.join("berth-runc");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        link.display().to_string()
    );
    link
}

fn need(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "containerd")
        && require_tool(test, "ctr")
        && require_tool(test, "runc")
}

#[test]
fn containerd_runs_berth_as_its_runc_like_runc() {
    if !need("containerd_runs_berth_as_its_runc_like_runc") {
        return;
    }
    let bin = tempfile::tempdir().unwrap();
    let berth_runc = install_berth_runc(bin.path());

    let mut berth = Containerd::start(&berth_runc, "b");
    let seen = scenario(&berth);
    // The shim really called berth: its state lives in berth's format under the runc root.
    assert!(berth.runc_root().join(&berth.ns).is_dir());
    // The image from berth's own registry on loopback: `ctr image pull --plain-http`, then
    // run under berth-runc.
    let storage = tempfile::tempdir().unwrap();
    let (_registry, addr) = serve_registry(storage.path(), &[]);
    let (root, runroot) = (
        berth.dir.path().join("berth-root"),
        berth.dir.path().join("berth-run"),
    );
    let pushed = format!("{addr}/kuar/busybox:1");
    for args in [
        vec!["tag", "busybox:latest", pushed.as_str()],
        vec!["push", pushed.as_str()],
    ] {
        let out = berth_command(&root, &runroot).args(&args).output().unwrap();
        assert!(out.status.success(), "berth {args:?}: {out:?}");
    }
    berth.ctr_ok(&["image", "pull", "--plain-http", &pushed]);
    let out = berth.run(&["--rm", &pushed, "pulled", "echo", "from the registry"]);
    assert!(out.status.success(), "ctr run of the pulled image: {out:?}");
    assert_eq!(
        lines(&String::from_utf8_lossy(&out.stdout)),
        "from the registry"
    );

    let left = berth.shutdown();
    assert!(left.is_empty(), "left behind with berth: {left:?}");
    assert!(mounts_under(berth.dir.path()).is_empty());

    let mut runc = Containerd::start(Path::new("/usr/sbin/runc"), "r");
    let expected = scenario(&runc);
    let left = runc.shutdown();
    assert!(left.is_empty(), "left behind with runc: {left:?}");

    // ctr sets no hostname: the UTS namespace starts with the host's name. Every cgroup
    // line names the container (`/<namespace>/c1`).
    assert!(
        expected.run_output.starts_with("hello\n0\n"),
        "runc: {expected:?}"
    );
    assert_eq!(
        seen, expected,
        "berth-runc under containerd differs from runc"
    );
    assert_eq!(seen.run_exit_3, Some(3));
    assert_eq!(seen.exec_exit_5, Some(5));
    assert_eq!(seen.exec_output, "in\nsleep 1000");
    assert_eq!(seen.paused_status, "PAUSED");
    assert_eq!(seen.resumed_status, "RUNNING");
    assert_eq!(seen.exec_after_resume, "awake");
    assert_eq!(seen.memory_limit_after_update, "67108864");
    assert_eq!(seen.killed_status, "STOPPED");
    assert!(
        seen.tty_output.contains("/dev/pts/0"),
        "{:?}",
        seen.tty_output
    );
    assert!(seen.tty_output.ends_with("ok"), "{:?}", seen.tty_output);
    assert_eq!(seen.net_devices, "lo");
}
