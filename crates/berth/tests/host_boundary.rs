//! Issue 13, sections 2 and 3: the host boundary seen from a local user and from a hostile
//! image or container.
//!
//! - The store (ROOT) and the runroot are closed to other users: as uid 65534, a setuid-root
//!   binary of an imported image cannot be run from ROOT/layers, a device node of an image
//!   cannot be opened, no file under ROOT can be read, a setuid file a container made in its
//!   rw layer cannot be run; also in a store left with an older berth's 0755 modes, once
//!   the new berth opened it (CVE-2021-41091 class).
//! - User lookups never read host files: `run -u`, a build's `USER` and `exec -u` against an
//!   image whose lower layer has `etc -> /host/dir` (under an upper `etc/`), and against a
//!   running container that keeps swapping its /etc/passwd with a symlink to a host file.
//!
//! Every test drives the binary named by `BERTH_TEST_BIN` (this build's berth when unset),
//! so that the attacks can be replayed against an older berth: each of them fails there.

mod containers_support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use containers_support::{busybox_tar, require_root, require_tool, stderr, stdout, BIN};

/// The unprivileged user the store must be closed to.
const NOBODY: &str = "65534";

/// A root and runroot of this test's own, driven by `BERTH_TEST_BIN` (or this build's berth).
struct Berth {
    dir: tempfile::TempDir,
}

impl Berth {
    /// A fresh root with busybox imported. The temp dir itself is opened to everyone (as
    /// /var/lib is), so that only the modes berth gives ROOT stand between other users and
    /// the store.
    fn new(prefix: &str) -> Berth {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let b = Berth { dir };
        b.ok(&[
            "import",
            busybox_tar().to_str().expect("utf-8"),
            "busybox:latest",
        ]);
        b
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("BERTH_TEST_BIN").unwrap_or_else(|| BIN.into());
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(Stdio::null())
            .args(args);
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out).trim().to_string()
    }

    /// `build -t TAG -` with `dockerfile` on stdin (no context).
    fn build(&self, tag: &str, dockerfile: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(&["build", "--progress=plain", "-t", tag, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth build");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dockerfile.as_bytes())
            .expect("write the Dockerfile");
        child.wait_with_output().expect("berth build")
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let out = self.berth(&["ps", "-a", "-q", "--no-trunc"]);
        for id in stdout(&out).lines().filter(|l| !l.is_empty()) {
            let _ = self.berth(&["rm", "-f", id]);
        }
    }
}

/// Runs `args` as uid/gid 65534 without supplementary groups. The command is exec'd by a
/// shell that already runs as 65534 without capabilities: setpriv's own execve still holds
/// root's capabilities (CAP_DAC_OVERRIDE walks any directory), no local user's would.
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            r#"exec "$@""#,
            "sh",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// The image tar of the store test: a copy of the host's `id` (coreutils: it keeps the
/// privileges it is given, unlike busybox) setuid root, a character device (1:3, the null
/// device) readable by all, and a world-readable file.
fn setuid_image_tar(dir: &Path) -> PathBuf {
    let path = dir.join("setuid.tar");
    let mut b = tar::Builder::new(fs::File::create(&path).expect("create the tar"));
    let add_dir = |b: &mut tar::Builder<fs::File>, name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, name, std::io::empty())
            .expect("append a dir");
    };
    add_dir(&mut b, "bin/");
    add_dir(&mut b, "dev/");
    let id = fs::read("/usr/bin/id").expect("/usr/bin/id (coreutils)");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(id.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "bin/suid-id", id.as_slice())
        .expect("append the setuid binary");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o666);
    h.set_device_major(1).expect("major");
    h.set_device_minor(3).expect("minor");
    h.set_size(0);
    h.set_cksum();
    b.append_data(&mut h, "dev/image-null", std::io::empty())
        .expect("append the device");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(7);
    h.set_cksum();
    b.append_data(&mut h, "secret", b"secret\n".as_slice())
        .expect("append the file");
    b.finish().expect("finish the tar");
    path
}

/// Every regular file, device and directory under `dir` (not following symlinks).
fn walk(dir: &Path, files: &mut Vec<PathBuf>, devices: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        use std::os::unix::fs::FileTypeExt;
        if ft.is_dir() {
            walk(&e.path(), files, devices);
        } else if ft.is_file() {
            files.push(e.path());
        } else if ft.is_char_device() || ft.is_block_device() {
            devices.push(e.path());
        }
    }
}

/// Finds `name` under ROOT/layers/*/ or ROOT/containers/*/upper/.
fn find_under(base: &Path, rel: &str) -> Option<PathBuf> {
    fs::read_dir(base)
        .ok()?
        .flatten()
        .map(|e| e.path().join(rel))
        .find(|p| fs::symlink_metadata(p).is_ok())
}

/// What uid 65534 can do with the store of `b`: the attacks of the CVE-2021-41091 class,
/// each as a line of what succeeded (empty: nothing did).
fn attacks_as_nobody(b: &Berth) -> Vec<String> {
    let root = b.root();
    let mut won = Vec::new();
    let suid = find_under(&root.join("layers"), "bin/suid-id").expect("the setuid binary");
    let out = as_nobody(&[suid.to_str().expect("utf-8")]);
    if out.status.success() {
        won.push(format!("ran {}: {}", suid.display(), stdout(&out).trim()));
    }
    let made = find_under(&root.join("containers"), "upper/id")
        .expect("the setuid file the container made");
    let out = as_nobody(&[made.to_str().expect("utf-8"), "-u"]);
    if out.status.success() {
        won.push(format!("ran {}: {}", made.display(), stdout(&out).trim()));
    }
    let (mut files, mut devices) = (Vec::new(), Vec::new());
    walk(&root, &mut files, &mut devices);
    assert!(
        devices.iter().any(|d| d.ends_with("dev/image-null")),
        "the image's device node is in the store: {devices:?}"
    );
    assert!(files.len() > 10, "files under ROOT: {files:?}");
    // One shell for all the reads: print what could be opened.
    let script = r#"for f in "$@"; do if : < "$f"; then echo "$f"; fi 2>/dev/null; done"#;
    let mut args: Vec<&str> = vec!["/bin/busybox", "sh", "-c", script, "sh"];
    // (The inner shell is exec'd by the wrapper's shell: no capabilities either.)
    let paths: Vec<String> = files
        .iter()
        .chain(devices.iter())
        .map(|p| p.display().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let out = as_nobody(&args);
    for l in stdout(&out).lines().filter(|l| !l.is_empty()) {
        won.push(format!("opened {l}"));
    }
    won
}

#[test]
fn store_and_runroot_are_closed_to_other_users() {
    if !require_root("store_and_runroot_are_closed_to_other_users")
        || !require_tool("store_and_runroot_are_closed_to_other_users", "setpriv")
    {
        return;
    }
    let b = Berth::new("berth-boundary-store-");
    let tar = setuid_image_tar(b.dir.path());
    b.ok(&["import", tar.to_str().expect("utf-8"), "setuid:1"]);
    // A setuid file made at run time, in the container's rw layer.
    b.ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /id && chmod 4755 /id",
    ]);
    b.ok(&["run", "--rm", "busybox", "true"]);
    let won = attacks_as_nobody(&b);
    assert!(
        won.is_empty(),
        "uid {NOBODY} got into the store:\n{}",
        won.join("\n")
    );

    for d in [b.root(), b.runroot()] {
        let mode = fs::metadata(&d).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", d.display());
    }
    // A store with an older berth's modes (0755 everywhere): open to all...
    let root = b.root();
    for d in [
        root.clone(),
        root.join("blobs"),
        root.join("blobs/sha256"),
        root.join("layers"),
        root.join("locks"),
        root.join("tmp"),
        root.join("containers"),
        b.runroot(),
    ] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    }
    for d in fs::read_dir(root.join("containers"))
        .expect("containers")
        .flatten()
    {
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let won = attacks_as_nobody(&b);
    assert!(
        won.iter().any(|w| w.starts_with("opened")),
        "with the old modes the store's files are readable: {won:?}"
    );
    let nosuid = rustix::fs::statvfs(b.dir.path())
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID));
    assert!(
        nosuid || won.iter().any(|w| w.contains("euid=0")),
        "with the old modes the setuid binary runs as root: {won:?}"
    );
    // ...until the new berth opens it.
    b.ok(&["images"]);
    let won = attacks_as_nobody(&b);
    assert!(
        won.is_empty(),
        "uid {NOBODY} got into a store opened by this berth:\n{}",
        won.join("\n")
    );
    let mode = fs::metadata(b.runroot())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "runroot mode {mode:o}");
}

/// A host directory holding a passwd and a group file that name `evil` (4242), and an image
/// `TAG` whose lower layer has `etc -> that directory` under an upper layer's own `etc/`
/// (which has no passwd): overlayfs shows an empty /etc, so `evil` does not exist in it.
fn hostile_etc_image(b: &Berth, tag: &str) -> tempfile::TempDir {
    let host = tempfile::Builder::new()
        .prefix("berth-boundary-hostetc-")
        .tempdir()
        .expect("temp dir");
    fs::write(
        host.path().join("passwd"),
        "evil:x:4242:4242::/evil:/bin/sh\n",
    )
    .expect("write passwd");
    fs::write(host.path().join("group"), "evil:x:4242:\n").expect("write group");
    let dockerfile = format!(
        "FROM busybox\nRUN rm -rf /etc && ln -s {} /etc\nRUN rm /etc && mkdir /etc\n",
        host.path().display()
    );
    let out = b.build(tag, &dockerfile);
    assert!(out.status.success(), "build {tag}: {}", stderr(&out));
    host
}

#[test]
fn run_user_lookup_never_reads_host_files() {
    if !require_root("run_user_lookup_never_reads_host_files") {
        return;
    }
    let b = Berth::new("berth-boundary-run-");
    let _host = hostile_etc_image(&b, "hostile-etc");
    for spec in ["evil", "evil:evil"] {
        let out = b.berth(&["run", "--rm", "-u", spec, "hostile-etc", "id"]);
        assert!(
            !stdout(&out).contains("4242"),
            "run -u {spec} took the host's passwd: {}",
            stdout(&out)
        );
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("unable to find user evil: no matching entries in passwd file"),
            "{}",
            stderr(&out)
        );
    }
    // The image itself still runs, as root by default.
    assert_eq!(b.ok(&["run", "--rm", "hostile-etc", "id", "-u"]), "0");
}

#[test]
fn build_user_lookup_never_reads_host_files() {
    if !require_root("build_user_lookup_never_reads_host_files") {
        return;
    }
    let b = Berth::new("berth-boundary-build-");
    let host = hostile_etc_image(&b, "hostile-etc");
    let out = b.build("hostile-user", "FROM hostile-etc\nUSER evil\nRUN id\n");
    let err = stderr(&out);
    assert!(!err.contains("4242"), "RUN ran as the host's evil: {err}");
    assert!(!out.status.success(), "the build went through: {err}");
    assert!(err.contains("\"evil\""), "the error names the user: {err}");
    assert_eq!(
        b.ok(&["images", "-q", "hostile-user"]),
        "",
        "no image is left behind"
    );
    // COPY --chown looks the user up in the stage's files too: here /etc/passwd itself is
    // a symlink to the host's file.
    let hostile = format!(
        "FROM busybox\nRUN ln -sf {}/passwd /etc/passwd\n",
        host.path().display()
    );
    let out = b.build("hostile-passwd", &hostile);
    assert!(out.status.success(), "build: {}", stderr(&out));
    let out = b.build(
        "hostile-chown",
        "FROM hostile-passwd\nCOPY --chown=evil --from=busybox /bin/busybox /x\nRUN stat -c %u /x\n",
    );
    let err = stderr(&out);
    assert!(
        !err.contains("4242"),
        "COPY --chown took the host's evil: {err}"
    );
    assert!(!out.status.success(), "the build went through: {err}");
    assert!(
        err.contains("unable to find user \"evil\""),
        "the error names the user: {err}"
    );
}

/// The exec -u race: while `berth exec -u evil` looks the user up, the container keeps
/// exchanging its /etc/passwd with a symlink to a host passwd that names evil (4242). The
/// swaps are made from this test through the container's /etc (`/proc/PID/root/etc`), as
/// fast as a process in the container could make them (busybox has no renameat2, and a
/// loop of `ln -s` and `mv` is too slow to make the old berth lose reliably); berth sees the
/// same file system either way.
#[test]
fn exec_user_lookup_cannot_be_raced_out_of_the_container() {
    if !require_root("exec_user_lookup_cannot_be_raced_out_of_the_container") {
        return;
    }
    let b = Berth::new("berth-boundary-exec-");
    let host = tempfile::Builder::new()
        .prefix("berth-boundary-hostpw-")
        .tempdir()
        .expect("temp dir");
    let host_passwd = host.path().join("passwd");
    fs::write(&host_passwd, "evil:x:4242:4242::/evil:/bin/sh\n").expect("write passwd");
    let id = b.ok(&["run", "-d", "--name", "swapper", "busybox", "sleep", "600"]);
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let etc = PathBuf::from(format!("/proc/{pid}/root/etc"));
    // The container's /etc, held open: each swap is one renameat2(RENAME_EXCHANGE) of its
    // passwd with a symlink to the host's, as a process in the container would make it.
    let etc_fd = rustix::fs::open(
        &etc,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .expect("open the container's /etc");
    symlink(&host_passwd, etc.join(".evil")).expect("plant the symlink");
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if rustix::fs::renameat_with(
                    &etc_fd,
                    "passwd",
                    &etc_fd,
                    ".evil",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .is_ok()
                {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    const EXECS: usize = 50;
    let mut escaped = Vec::new();
    let mut refused = 0;
    for _ in 0..EXECS {
        let out = b.berth(&["exec", "-u", "evil", "swapper", "id", "-u"]);
        if stdout(&out).contains("4242") {
            escaped.push(stdout(&out));
        } else if stderr(&out).contains("unable to find user evil") {
            refused += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("the swapper thread");
    let swaps = swaps.load(Ordering::Relaxed);
    assert!(
        escaped.is_empty(),
        "exec -u evil read the host's passwd {} times of {EXECS} ({swaps} swaps)",
        escaped.len()
    );
    assert!(swaps > 1000, "the race was run: {swaps} swaps");
    assert_eq!(
        refused, EXECS,
        "every exec -u evil fails as an unknown user"
    );
}

/// `ps -s` walks a running container's rw layer: a container that keeps exchanging one of
/// its directories with a symlink to a host directory (/usr) must not get the host tree
/// walked and counted in its size.
#[test]
fn ps_size_never_walks_host_directories() {
    if !require_root("ps_size_never_walks_host_directories") {
        return;
    }
    let b = Berth::new("berth-boundary-size-");
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "sizer",
        "busybox",
        "sh",
        "-c",
        "mkdir /d && echo x > /d/f && ln -s /usr /.l && exec sleep 600",
    ]);
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    assert!(
        containers_support::eventually(10, || fs::symlink_metadata(root.join(".l")).is_ok()),
        "the container made its link"
    );
    let root_fd = rustix::fs::open(
        &root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .expect("open the container's root");
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if rustix::fs::renameat_with(
                    &root_fd,
                    "d",
                    &root_fd,
                    ".l",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .is_ok()
                {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut sizes = Vec::new();
    for _ in 0..60 {
        sizes.push(b.ok(&[
            "ps",
            "-s",
            "--filter",
            "name=sizer",
            "--format",
            "{{.Size}}",
        ]));
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("the swapper thread");
    let big: Vec<&String> = sizes
        .iter()
        .filter(|s| {
            let rw = s.split_whitespace().next().unwrap_or_default();
            rw.ends_with("MB") || rw.ends_with("GB")
        })
        .collect();
    let swaps = swaps.load(Ordering::Relaxed);
    assert!(
        big.is_empty(),
        "ps -s counted a host directory: {big:?} ({swaps} swaps)"
    );
    assert!(
        swaps > 1000,
        "the race was run: {swaps} swaps; sizes {sizes:?}"
    );
}

/// After a RUN step, berth removes the stubs it made for the step's mount points from the
/// step's rw layer. The step moved the directory holding its secret's mount point away and
/// put a symlink to a host directory in its place: the host's empty file of the same name
/// must stay.
#[test]
fn build_mount_stubs_never_remove_host_files() {
    if !require_root("build_mount_stubs_never_remove_host_files") {
        return;
    }
    let b = Berth::new("berth-boundary-stubs-");
    let host = tempfile::Builder::new()
        .prefix("berth-boundary-hoststub-")
        .tempdir()
        .expect("temp dir");
    fs::write(host.path().join("token"), "").expect("an empty host file");
    let secret = b.dir.path().join("secret.txt");
    fs::write(&secret, "s").expect("write the secret");
    let dockerfile = format!(
        "FROM busybox\nRUN --mount=type=secret,id=s,target=/x/token mv /x /y && ln -s {} /x\n",
        host.path().display()
    );
    let spec = format!("id=s,src={}", secret.display());
    let mut child = b
        .cmd(&[
            "build",
            "--progress=plain",
            "--secret",
            &spec,
            "-t",
            "stubs",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth build");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(dockerfile.as_bytes())
            .expect("write the Dockerfile");
    }
    let out = child.wait_with_output().expect("berth build");
    assert!(out.status.success(), "build: {}", stderr(&out));
    assert!(
        host.path().join("token").exists(),
        "the build removed the host's {}",
        host.path().join("token").display()
    );
}
