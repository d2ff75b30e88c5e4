//! Issue 13 §1, the CVE-2019-5736 class: no process that berth starts in a container may
//! reach a writable host executable. A container's command that is a script with
//! `#!/proc/self/exe` makes the kernel run whatever `/proc/self/exe` is in the process
//! that execs it; berth forks (no exec) from its own binary, so before the fix that was
//! the host's berth, running inside the container, where a watcher could open it through
//! `/proc/PID/exe` and write it once berth exited. Now berth execs a sealed memfd stub.
//!
//! Every test runs a COPY of berth (and of berth-monitor, so that nothing else keeps the
//! copy busy), so a successful attack damages only the copy, and checks its sha256 after.
//! `BERTH_TEST_BIN` names the binary to copy (default: this build's), so the tests can be
//! pointed at an older berth to see them fail. The images carry the host's C library (the
//! attacker's image would carry its own), so that berth's binary could start in them.
//!
//! Root only (namespaces, overlayfs); without root they skip, or fail when CI is set.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "containers_support/mod.rs"]
mod support;

/// What berth's own command line says when it runs with a script path as its verb: seen
/// in a container's output, it means the host's berth ran in there.
/// (clap names the program after argv[0], `/proc/self/exe`).
const BERTH_USAGE: &[&str] = &["unrecognized subcommand", "Usage: exe [OPTIONS] <COMMAND>"];

/// The stub's own line when it is run as an interpreter (the trap) instead of berth.
const STUB_LINE: &str = "berth-exec: berth's exec stub, not a command of its own";

/// A root and runroot of their own, run by a copy of berth in the same temp dir.
struct SealEnv {
    dir: tempfile::TempDir,
    bin: PathBuf,
    digest: String,
}

fn sha256(path: &Path) -> String {
    let bytes = fs::read(path).expect("read the berth copy");
    berth_oci::Digest::of(&bytes).hex().to_string()
}

impl SealEnv {
    fn new(test: &str) -> Option<SealEnv> {
        if !support::require_root(test) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-seal-")
            .tempdir()
            .expect("temp dir");
        let source = std::env::var_os("BERTH_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(support::BIN));
        let bin_dir = dir.path().join("bin");
        fs::create_dir(&bin_dir).expect("bin dir");
        let bin = bin_dir.join("berth");
        fs::copy(&source, &bin).expect("copy berth");
        // The lean monitor next to berth takes over the watching (as installed): without
        // it the monitor is berth itself, running, and the copy could not be written.
        let monitor = source.with_file_name("berth-monitor");
        if monitor.is_file() {
            fs::copy(&monitor, bin_dir.join("berth-monitor")).expect("copy berth-monitor");
        }
        let digest = sha256(&bin);
        let env = SealEnv { dir, bin, digest };
        env.ok(&[
            "import",
            support::busybox_tar().to_str().expect("utf-8"),
            "busybox:latest",
        ]);
        Some(env)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(args)
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(std::process::Stdio::null());
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run the berth copy")
    }

    fn ok(&self, args: &[&str]) -> String {
        support::ok_stdout(args, self.berth(args))
    }

    /// A build context whose Dockerfile starts `FROM busybox` and copies in the host's
    /// dynamic loader and the libraries berth needs, at their paths; `rest` follows.
    fn context_with_libc(&self, name: &str, rest: &str) -> PathBuf {
        let ctx = self.dir.path().join(name);
        for lib in libraries_of(&self.bin) {
            let to = ctx
                .join("libc")
                .join(lib.strip_prefix("/").expect("absolute"));
            fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            fs::copy(&lib, &to).expect("copy a library");
        }
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM busybox\nCOPY libc/ /\n{rest}"),
        )
        .expect("Dockerfile");
        ctx
    }

    /// Builds `trapbox`: busybox with the C library and `/trap`, a script whose
    /// interpreter is `/proc/self/exe`.
    fn build_trapbox(&self) {
        let ctx = self.context_with_libc(
            "trapbox",
            "RUN printf '#!/proc/self/exe\\n' > /trap && chmod 755 /trap\n",
        );
        self.ok(&[
            "build",
            "--progress=plain",
            "-t",
            "trapbox",
            ctx.to_str().expect("utf-8"),
        ]);
    }

    /// The copy of berth is byte for byte what it was.
    fn assert_binary_unchanged(&self) {
        assert_eq!(
            sha256(&self.bin),
            self.digest,
            "a container wrote the host's berth binary"
        );
    }
}

impl Drop for SealEnv {
    fn drop(&mut self) {
        // Through this build's berth: the copy may be what a failed test damaged.
        let (root, run) = (self.dir.path().join("root"), self.dir.path().join("run"));
        support::remove_containers_and_networks(|args| {
            support::berth_command(&root, &run)
                .args(args)
                .output()
                .expect("run berth")
        });
    }
}

/// The dynamic loader and shared libraries of `bin`, as `ldd` lists them (resolved).
fn libraries_of(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    assert!(out.status.success(), "ldd {}", bin.display());
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
            // The loader's path in the binary may be a symlink: the target is needed too.
            if let Ok(real) = fs::canonicalize(p) {
                if real != Path::new(p) {
                    libs.push(real);
                }
            }
        }
    }
    libs
}

/// The output of berth (stdout and stderr) shows that berth's own binary ran in a
/// container: its command-line parser's complaint about the script path.
fn assert_berth_did_not_run(what: &str, out: &Output) {
    let text = format!("{}{}", support::stdout(out), support::stderr(out));
    for needle in BERTH_USAGE {
        assert!(
            !text.contains(needle),
            "{what}: the host's berth binary ran inside the container:\n{text}"
        );
    }
}

/// The watcher, the container's entrypoint: it scans the container's processes for one
/// whose `/proc/PID/exe` is not busybox, holds it open (as the CVE's exploit does, then
/// reopens it for writing once berth has exited), and reports to /out: `exe TARGET` per
/// catch, the bytes it could read in `grab.N`, `wrote N` when the write went through, and
/// `done N` when it gave up writing.
const WATCHER: &str = r#"
n=0
touch /out/ready
while :; do
  for d in /proc/[0-9]*; do
    [ "$d" = "/proc/$$" ] && continue
    [ "$d/exe" -ef /bin/busybox ] && continue
    command exec 3< "$d/exe" 2>/dev/null || continue
    n=$((n+1))
    echo "exe $(readlink /proc/$$/fd/3)" >> /out/seen
    cat <&3 > /out/grab.$n
    i=0
    while [ $i -lt 30 ]; do
      if command exec 4>> "/proc/$$/fd/3" 2>/dev/null; then
        if echo pwned >&4; then echo "wrote $n" >> /out/seen; fi
        command exec 4>&-
        break
      fi
      i=$((i+1))
      sleep 0.1
    done
    command exec 3<&-
    echo "done $n" >> /out/seen
  done
done
"#;

#[test]
fn exec_of_a_proc_self_exe_script_runs_the_sealed_stub_not_berth() {
    let Some(env) = SealEnv::new("exec_of_a_proc_self_exe_script_runs_the_sealed_stub_not_berth")
    else {
        return;
    };
    env.build_trapbox();
    let out_dir = env.dir.path().join("out");
    fs::create_dir(&out_dir).expect("out dir");
    let volume = format!("{}:/out", out_dir.display());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "seal-watch",
        "--network",
        "none",
        "-v",
        &volume,
        "trapbox",
        "sh",
        "-c",
        WATCHER,
    ]);
    assert!(
        support::eventually(10, || out_dir.join("ready").exists()),
        "the watcher did not start"
    );
    let seen = || fs::read_to_string(out_dir.join("seen")).unwrap_or_default();
    // The watcher races the exec: try until it caught one (the stub lives for microseconds,
    // berth's binary for milliseconds), then let it finish its write attempts.
    // What a user sees is checked after the watcher had its go (the write is the worst).
    let mut outputs = Vec::new();
    let mut caught = 0;
    for attempt in 0..40 {
        outputs.push((
            format!("exec /trap (attempt {attempt})"),
            env.berth(&["exec", "seal-watch", "/trap"]),
        ));
        caught = seen().lines().filter(|l| l.starts_with("exe ")).count();
        if caught > 0 {
            break;
        }
    }
    // `/proc/self/exe` as the command itself: the same thing without a script.
    outputs.push((
        "exec /proc/self/exe".to_string(),
        env.berth(&["exec", "seal-watch", "/proc/self/exe"]),
    ));
    if caught > 0 {
        assert!(
            support::eventually(10, || seen().contains(&format!("done {caught}"))),
            "the watcher did not finish: {}",
            seen()
        );
    }
    let report = seen();
    eprintln!("watcher's report:\n{report}");
    env.assert_binary_unchanged();
    assert!(
        caught > 0,
        "the watcher never saw the exec'd process in 40 tries"
    );
    for line in report.lines() {
        assert!(
            !line.starts_with("wrote"),
            "the watcher wrote the executable it caught:\n{report}"
        );
        if let Some(target) = line.strip_prefix("exe ") {
            assert_eq!(
                target, "/memfd:berth-exec (deleted)",
                "the container saw another executable than the sealed stub:\n{report}"
            );
        }
    }
    let bin_len = fs::metadata(&env.bin).expect("berth copy").len();
    for n in 1..=caught {
        let grab = fs::metadata(out_dir.join(format!("grab.{n}")))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            grab < 64 * 1024 && grab != bin_len,
            "the watcher read {grab} bytes of an executable (berth's is {bin_len})"
        );
    }
    for (what, out) in &outputs {
        assert_berth_did_not_run(what, out);
        assert_eq!(
            out.status.code(),
            Some(127),
            "{what}: {}",
            support::stderr(out)
        );
    }
    let (_, first) = &outputs[0];
    assert!(
        support::stderr(first).contains(STUB_LINE),
        "{}",
        support::stderr(first)
    );
}

#[test]
fn run_of_a_proc_self_exe_entrypoint_runs_the_sealed_stub_not_berth() {
    let Some(env) =
        SealEnv::new("run_of_a_proc_self_exe_entrypoint_runs_the_sealed_stub_not_berth")
    else {
        return;
    };
    env.build_trapbox();
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/trap",
        "trapbox",
    ]);
    assert_berth_did_not_run("run --entrypoint /trap", &out);
    assert_eq!(out.status.code(), Some(127), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains(STUB_LINE),
        "{}",
        support::stderr(&out)
    );
    // Started again (`start -a`): the init path of a created container.
    env.ok(&[
        "create",
        "--name",
        "seal-trap",
        "--network",
        "none",
        "--entrypoint",
        "/trap",
        "trapbox",
    ]);
    let out = env.berth(&["start", "-a", "seal-trap"]);
    assert_berth_did_not_run("start -a of an entrypoint /trap", &out);
    assert_eq!(out.status.code(), Some(127), "{}", support::stderr(&out));
    env.assert_binary_unchanged();
}

#[test]
fn build_run_of_a_proc_self_exe_shell_runs_the_sealed_stub_not_berth() {
    let Some(env) =
        SealEnv::new("build_run_of_a_proc_self_exe_shell_runs_the_sealed_stub_not_berth")
    else {
        return;
    };
    // The base image's /bin/sh is the trap: every later shell-form RUN execs it.
    let ctx = env.context_with_libc(
        "trapbuild",
        "RUN rm /bin/sh && printf '#!/proc/self/exe\\n' > /bin/sh && chmod 755 /bin/sh\n\
         RUN echo this runs through the trap\n",
    );
    let out = env.berth(&[
        "build",
        "--progress=plain",
        "-t",
        "trapped",
        ctx.to_str().expect("utf-8"),
    ]);
    assert_berth_did_not_run("build RUN through a /bin/sh trap", &out);
    assert!(!out.status.success(), "the trapped RUN succeeded");
    let text = format!("{}{}", support::stdout(&out), support::stderr(&out));
    assert!(
        text.contains("127"),
        "the RUN's status (127) is not named:\n{text}"
    );
    env.assert_binary_unchanged();
}

#[test]
fn init_binaries_in_a_container_are_read_only() {
    let Some(env) = SealEnv::new("init_binaries_in_a_container_are_read_only") else {
        return;
    };
    // `--init` runs berth (through the host's loader) as PID 1 from read-only binds.
    let out = env.berth(&[
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "for f in /proc/1/exe /dev/.berth-init/*; do \
           if (: >> $f) 2>/dev/null; then echo writable $f; else echo refused $f; fi; done",
    ]);
    let text = support::stdout(&out);
    assert!(out.status.success(), "{text}{}", support::stderr(&out));
    assert!(
        text.contains("refused /proc/1/exe")
            && text.contains("refused /dev/.berth-init/berth")
            && !text.contains("writable"),
        "the init's binaries are writable from the container:\n{text}"
    );
    env.assert_binary_unchanged();
}
