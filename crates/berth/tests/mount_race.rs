//! Issue 13, section 3 (CVE-2021-30465 class): a mount whose target path goes through a
//! directory that another container shares, and keeps swapping with a symlink to a host
//! directory, lands inside the new container or fails with one clear error, never on the
//! host.
//!
//! The shared directory V holds `d` (a real directory) and `d-link` (a symlink to the host
//! directory H, outside V); the test process exchanges the two with
//! `renameat2(RENAME_EXCHANGE)` as fast as it can (what a container sharing `-v V:/shared`
//! can do from inside, only faster than a busybox loop), while containers start with
//! `-v V:/v2` and a mount below `/v2/d`: a directory bind, a file bind and a tmpfs (berth's
//! engine orders tmpfs mounts before volumes today, so that one lands in the rootfs under V's
//! mount point and does not race yet; it is kept for when the order follows Docker's). The old
//! berth resolved the target inside the rootfs, then created and mounted it by path: when the
//! swap fell in between, it made the mount point in H on the host (and mounted there).
//!
//! Drives the binary named by `BERTH_TEST_BIN` (this build's berth when unset).

mod containers_support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use containers_support::{busybox_tar, require_root, stderr, stdout, BIN};

/// Container starts per test: each mount kind gets a third. The old berth lost the race in
/// about one start of four.
const STARTS: usize = 24;

/// A root and runroot of this test's own, driven by `BERTH_TEST_BIN`.
struct Berth {
    dir: tempfile::TempDir,
}

impl Berth {
    fn new() -> Berth {
        let dir = tempfile::Builder::new()
            .prefix("berth-mrace-")
            .tempdir()
            .expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let b = Berth { dir };
        let tar = busybox_tar().to_str().expect("utf-8").to_string();
        let out = b.berth(&["import", &tar, "busybox:latest"]);
        assert!(out.status.success(), "import: {}", stderr(&out));
        b
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("BERTH_TEST_BIN").unwrap_or_else(|| BIN.into());
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(Stdio::null())
            .args(args);
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
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

/// The host's mounts (this test runs in the host's mount namespace) at or under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let me = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| m == me || m.starts_with(&format!("{me}/")))
        })
        .map(str::to_string)
        .collect()
}

/// What `dir` holds, recursively, as sorted relative paths (H's "contents").
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Unmounts (lazily) whatever got mounted under `dir` on the host, deepest first.
fn unmount_leaks(dir: &Path) {
    let mut points: Vec<String> = host_mounts_under(dir)
        .iter()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

#[test]
fn mount_targets_never_follow_a_swapped_symlink_to_the_host() {
    if !require_root("mount_targets_never_follow_a_swapped_symlink_to_the_host") {
        return;
    }
    let b = Berth::new();
    let base = tempfile::Builder::new()
        .prefix("berth-mrace-host-")
        .tempdir()
        .expect("temp dir");
    let vol = base.path().join("vol");
    let host = base.path().join("host");
    let src_dir = base.path().join("src");
    let src_file = base.path().join("src-file");
    fs::create_dir_all(vol.join("d")).expect("mkdir V/d");
    fs::create_dir_all(&host).expect("mkdir H");
    fs::write(host.join("keep"), "host\n").expect("write H/keep");
    fs::create_dir_all(&src_dir).expect("mkdir src");
    fs::write(src_dir.join("marker"), "bound\n").expect("write marker");
    fs::write(&src_file, "file\n").expect("write src-file");
    symlink(&host, vol.join("d-link")).expect("symlink V/d-link -> H");
    let before = listing(&host);

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (a, b) = (vol.join("d"), vol.join("d-link"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &a,
                    rustix::fs::CWD,
                    &b,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .is_ok()
                {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let v2 = format!("{}:/v2", vol.display());
    let bind_dir = format!("{}:/v2/d/target", src_dir.display());
    let bind_file = format!("{}:/v2/d/file", src_file.display());
    let mut failures = Vec::new();
    let (mut started, mut refused) = (0, 0);
    for i in 0..STARTS {
        let mount: [&str; 2] = match i % 3 {
            0 => ["-v", &bind_dir],
            1 => ["-v", &bind_file],
            _ => ["--tmpfs", "/v2/d/t"],
        };
        let mut args = vec!["run", "--rm", "--network", "none", "-v", &v2];
        args.extend(mount);
        args.extend(["busybox", "true"]);
        let out = b.berth(&args);
        let err = stderr(&out);
        if out.status.success() {
            started += 1;
        } else {
            refused += 1;
            // One clear error line, no panic.
            if err.trim().lines().count() != 1 || err.contains("panicked") {
                failures.push(format!("start {i} {mount:?}: unclear error: {err}"));
            }
        }
        let leaked = host_mounts_under(base.path());
        if !leaked.is_empty() {
            failures.push(format!("start {i} {mount:?}: host mounts {leaked:#?}"));
        }
        let now = listing(&host);
        if now != before {
            failures.push(format!(
                "start {i} {mount:?}: H changed on the host: {now:?} (was {before:?})"
            ));
        }
        if !failures.is_empty() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper thread");
    unmount_leaks(base.path());
    eprintln!(
        "{started} started, {refused} refused, {} swaps",
        swaps.load(Ordering::Relaxed)
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        swaps.load(Ordering::Relaxed) > 0,
        "the swapper never swapped"
    );

    // Without the race, the mounts land inside the container, in the shared directory.
    let out = b.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &v2,
        "-v",
        &bind_dir,
        "busybox",
        "cat",
        "/v2/d/target/marker",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("bound"), "{}", stdout(&out));
    assert_eq!(listing(&host), before);
}
