//! The crash harness (issue 18, "Done when"): each long-running verb (import, pull, push,
//! load, save, build during RUN and during the layer commit, run, rm, prune, registry serve)
//! is killed with SIGKILL at several moments (after a few delays, and when its first
//! staging entry appears), then the next command runs and the harness asserts:
//!
//! - `PRAGMA integrity_check` of ROOT/berth.db says ok;
//! - every blob under ROOT/blobs/sha256 hashes to its name;
//! - every image `images -q` lists runs (`run --rm --network none IMG true`);
//! - nothing the user did not ask for is left under ROOT/tmp, ROOT/containers, RUNROOT,
//!   the `save` output directory, or the cgroup tree (`berth/<id>` of the test's containers
//!   and build steps).
//!
//! Each test has its own root, runroot, names and registry port (127.0.0.1:0), so nextest
//! runs them in parallel; together they take about a minute on two cores.

#[path = "containers_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{berth_command, eventually, require_root, stderr, stdout};

/// One test's store: root, runroot, scratch, and the IDs of containers and build steps it
/// has seen (whose cgroups must not outlive them).
struct Crash {
    dir: tempfile::TempDir,
    seen: std::cell::RefCell<BTreeSet<String>>,
}

/// When to kill.
#[derive(Debug, Clone)]
enum Moment {
    /// This long after the start.
    After(u64),
    /// As soon as ROOT/tmp (or RUNROOT/build) holds an entry: mid-staging.
    Staging,
    /// As soon as a build step's layer tar is being written.
    LayerCommit,
    /// As soon as a build step runs.
    StepRunning,
    /// As soon as this directory holds an entry (`save -o`'s staging beside its output).
    EntryIn(PathBuf),
}

const DELAYS: [Moment; 4] = [
    Moment::After(5),
    Moment::After(40),
    Moment::After(150),
    Moment::Staging,
];

impl Crash {
    fn new(test: &str) -> Option<Crash> {
        if !require_root(test) {
            return None;
        }
        let c = Crash {
            dir: tempfile::Builder::new()
                .prefix("berth-crash-")
                .tempdir()
                .expect("temp dir"),
            seen: Default::default(),
        };
        support::import_busybox(&c.root(), &c.runroot());
        Some(c)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = berth_command(&self.root(), &self.runroot());
        c.args(args);
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        support::ok_stdout(args, self.berth(args))
    }

    /// Spawns `args`, kills it (SIGKILL) at `moment` (or lets it finish first), reaps it.
    /// Returns whether it was still running when killed.
    fn kill_at(&self, args: &[&str], moment: &Moment) -> bool {
        let child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth");
        let killed = self.kill_child_at(child, moment);
        // Which kills hit the verb in flight (the others found it done): see --no-capture.
        eprintln!(
            "crash: {} at {moment:?}: {}",
            args.join(" "),
            if killed { "killed" } else { "had finished" }
        );
        killed
    }

    fn kill_child_at(&self, mut child: Child, moment: &Moment) -> bool {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(60);
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            let now = match moment {
                Moment::After(ms) => start.elapsed() >= Duration::from_millis(*ms),
                Moment::Staging => {
                    !entries(&self.root().join("tmp")).is_empty()
                        || !entries(&self.runroot().join("build")).is_empty()
                }
                Moment::LayerCommit => tree(&self.root().join("tmp")).iter().any(|p| {
                    name_of(p).starts_with("build-layer-")
                        && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
                }),
                Moment::StepRunning => !self.step_ids().is_empty(),
                Moment::EntryIn(dir) => !entries(dir).is_empty(),
            };
            if now || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.note_ids();
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    /// Build step IDs under RUNROOT/build.
    fn step_ids(&self) -> Vec<String> {
        tree(&self.runroot().join("build"))
            .iter()
            .map(|p| name_of(p))
            .filter(|n| n.starts_with("berth-build-"))
            .collect()
    }

    /// Remembers the containers and build steps that exist now.
    fn note_ids(&self) {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.step_ids());
        seen.extend(entries(&self.runroot().join("runtime")));
        seen.extend(entries(&self.root().join("containers")));
    }

    /// Full IDs of the containers `ps -a` lists.
    fn container_ids(&self) -> Vec<String> {
        let ids: Vec<String> = self
            .ok(&["ps", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        self.seen.borrow_mut().extend(ids.iter().cloned());
        ids
    }

    /// The checks after the next command (see the module docs). `outputs`: directories the
    /// user named for output, with the names they asked for there.
    fn assert_consistent(&self, what: &str, outputs: &[(&Path, &[&str])]) {
        let images = self.ok(&["images", "-q", "--no-trunc"]);
        let db = rusqlite::Connection::open_with_flags(
            self.root().join("berth.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open berth.db");
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok", "{what}: berth.db integrity");
        drop(db);
        for blob in entries(&self.root().join("blobs/sha256")) {
            let bytes =
                std::fs::read(self.root().join("blobs/sha256").join(&blob)).expect("read blob");
            assert_eq!(
                berth_oci::Digest::of(&bytes).hex(),
                blob,
                "{what}: blob {blob} does not hash to its name"
            );
        }
        let mut ids: BTreeSet<&str> = images.lines().filter(|l| !l.is_empty()).collect();
        ids.retain(|i| !i.is_empty());
        for id in ids {
            let out = self.berth(&["run", "--rm", "--network", "none", id, "true"]);
            assert!(
                out.status.success(),
                "{what}: image {id} does not run: {}",
                stderr(&out)
            );
        }
        let tmp = entries(&self.root().join("tmp"));
        assert!(tmp.is_empty(), "{what}: ROOT/tmp keeps {tmp:?}");
        let containers = self.container_ids();
        let allowed = |p: &Path| {
            let s = p.to_string_lossy();
            containers.iter().any(|id| s.contains(id.as_str()))
        };
        for dir in entries(&self.root().join("containers")) {
            assert!(
                containers.contains(&dir),
                "{what}: ROOT/containers/{dir} belongs to no container"
            );
        }
        let trash: Vec<String> = entries(&self.root().join("trash"));
        let _ = trash; // swept in the background by the next `run --rm`; not counted
        let left: Vec<PathBuf> = tree(&self.runroot())
            .into_iter()
            // Files (and sockets, fifos...): a directory is judged by what it holds.
            .filter(|p| !p.is_dir())
            .filter(|p| !allowed(p))
            .filter(|p| !p.starts_with(self.runroot().join("trash")))
            .filter(|p| !is_ok_in_runroot(&self.runroot(), p))
            .collect();
        assert!(left.is_empty(), "{what}: RUNROOT keeps {left:#?}");
        for (dir, wanted) in outputs {
            for e in entries(dir) {
                assert!(
                    wanted.contains(&e.as_str()),
                    "{what}: the output directory keeps {e}"
                );
            }
        }
        let running: Vec<String> = containers
            .iter()
            .filter(|id| {
                stdout(&self.berth(&["inspect", "-f", "{{.State.Running}}", id])).trim() == "true"
            })
            .cloned()
            .collect();
        for id in self.seen.borrow().iter() {
            if running.contains(id) {
                continue;
            }
            assert!(
                !cgroup_exists(id),
                "{what}: the cgroup berth/{id} outlives its container or step"
            );
        }
    }
}

impl Drop for Crash {
    fn drop(&mut self) {
        let out = self.berth(&["ps", "-a", "-q", "--no-trunc"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.berth(&["rm", "-f", id]);
        }
    }
}

/// Files a runroot holds for no container: the locks berth keeps there.
fn is_ok_in_runroot(runroot: &Path, p: &Path) -> bool {
    let rel = p.strip_prefix(runroot).unwrap_or(p);
    let s = rel.to_string_lossy();
    s.ends_with(".lock") && !s.starts_with("build")
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| name_of(&e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

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

/// Whether a cgroup `berth/ID` exists in any hierarchy.
fn cgroup_exists(id: &str) -> bool {
    Path::new("/sys/fs/cgroup/berth").join(id).exists()
        || std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .any(|h| h.path().join("berth").join(id).exists())
}

/// A rootfs tar: busybox plus `mb` MB of random data (so that verbs take long enough to be
/// killed in the middle), made once per test.
fn big_tar(c: &Crash, mb: usize) -> PathBuf {
    let out = c.path("big.tar");
    let mut bytes = Vec::new();
    std::fs::File::open(support::busybox_tar())
        .expect("busybox tar")
        .read_to_end(&mut bytes)
        .expect("read");
    let mut ar = tar::Builder::new(std::fs::File::create(&out).expect("create"));
    let mut base = tar::Archive::new(bytes.as_slice());
    for e in base.entries().expect("entries") {
        let mut e = e.expect("entry");
        let h = e.header().clone();
        let path = e.path().expect("path").into_owned();
        if h.entry_type().is_symlink() || h.entry_type().is_hard_link() {
            let link = e.link_name().expect("link").expect("target").into_owned();
            let mut h = h.clone();
            ar.append_link(&mut h, &path, &link).expect("link");
        } else {
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("data");
            let mut h = h.clone();
            ar.append_data(&mut h, &path, data.as_slice())
                .expect("append");
        }
    }
    let mut data = vec![0u8; mb << 20];
    let mut urandom = std::fs::File::open("/dev/urandom").expect("urandom");
    urandom.read_exact(&mut data).expect("random");
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    ar.append_data(&mut h, "data/blob.bin", data.as_slice())
        .expect("append data");
    ar.finish().expect("finish");
    out
}

/// `registry serve` on 127.0.0.1:0 with `storage`, as a killable child.
fn registry(storage: &Path) -> (support::Proc, String) {
    support::serve_registry(storage, &[])
}

#[test]
fn crash_import() {
    let Some(c) = Crash::new("crash_import") else {
        return;
    };
    let tar = big_tar(&c, 48);
    let tar = tar.to_str().expect("utf-8");
    for (i, m) in DELAYS.iter().enumerate() {
        c.kill_at(&["import", tar, &format!("imp:{i}")], m);
        c.assert_consistent(&format!("import killed at {m:?}"), &[]);
    }
    // And it imports after all that.
    c.ok(&["import", tar, "imp:ok"]);
    c.assert_consistent("import after the kills", &[]);
}

#[test]
fn crash_pull_and_push() {
    let Some(c) = Crash::new("crash_pull_and_push") else {
        return;
    };
    let tar = big_tar(&c, 48);
    c.ok(&["import", tar.to_str().expect("utf-8"), "big:1"]);
    let (_server, addr) = registry(&c.path("registry"));
    let image = format!("{addr}/crash/big:1");
    c.ok(&["tag", "big:1", &image]);
    for m in DELAYS {
        c.kill_at(&["push", &image], &m);
        c.assert_consistent(&format!("push killed at {m:?}"), &[]);
    }
    c.ok(&["push", &image]);
    c.ok(&["rmi", &image, "big:1"]);
    for m in DELAYS {
        c.kill_at(&["pull", &image], &m);
        c.assert_consistent(&format!("pull killed at {m:?}"), &[]);
        // A pull that finished before the kill: removed, so the next one pulls again.
        let _ = c.berth(&["rmi", &image]);
    }
    c.ok(&["pull", &image]);
    c.assert_consistent("pull after the kills", &[]);
}

#[test]
fn crash_save_and_load() {
    let Some(c) = Crash::new("crash_save_and_load") else {
        return;
    };
    let tar = big_tar(&c, 48);
    c.ok(&["import", tar.to_str().expect("utf-8"), "big:1"]);
    let out_dir = c.path("out");
    std::fs::create_dir_all(&out_dir).expect("out");
    let archive = out_dir.join("big.tar");
    let archive_s = archive.to_str().expect("utf-8");
    let mut moments = DELAYS.to_vec();
    moments.push(Moment::EntryIn(out_dir.clone()));
    for m in moments {
        let _ = std::fs::remove_file(&archive);
        c.kill_at(&["save", "-o", archive_s, "big:1"], &m);
        // The next save into the same directory, then the checks: the directory holds the
        // archive asked for and nothing else.
        let _ = std::fs::remove_file(&archive);
        c.ok(&["save", "-o", archive_s, "big:1"]);
        c.assert_consistent(
            &format!("save killed at {m:?}"),
            &[(&out_dir, &["big.tar"])],
        );
    }
    c.ok(&["rmi", "big:1"]);
    for m in DELAYS {
        c.kill_at(&["load", "-i", archive_s], &m);
        c.assert_consistent(
            &format!("load killed at {m:?}"),
            &[(&out_dir, &["big.tar"])],
        );
        let _ = c.berth(&["rmi", "big:1"]);
    }
    c.ok(&["load", "-i", archive_s]);
    c.assert_consistent("load after the kills", &[(&out_dir, &["big.tar"])]);
}

#[test]
fn crash_build() {
    let Some(c) = Crash::new("crash_build") else {
        return;
    };
    let ctx = c.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    // A step that runs a while, then a big layer to commit.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN sleep 0.3; for i in $(seq 48); do head -c 1048576 /dev/urandom > /f$i; done\n",
    )
    .expect("Dockerfile");
    let ctx_s = ctx.to_str().expect("utf-8");
    let ok = c.path("ok");
    std::fs::create_dir_all(&ok).expect("ctx");
    std::fs::write(ok.join("Dockerfile"), "FROM busybox\nRUN echo ok > /ok\n").expect("Dockerfile");
    for m in [
        Moment::StepRunning,
        Moment::LayerCommit,
        Moment::After(100),
        Moment::After(600),
    ] {
        c.kill_at(&["build", "--no-cache", "-t", "crash:b", ctx_s], &m);
        // The next build runs, and cleans up after the dead one.
        c.ok(&["build", "-t", "crash:ok", ok.to_str().expect("utf-8")]);
        c.assert_consistent(&format!("build killed at {m:?}"), &[]);
    }
}

#[test]
fn crash_run() {
    let Some(c) = Crash::new("crash_run") else {
        return;
    };
    for (i, m) in DELAYS.iter().enumerate() {
        let before = c.container_ids();
        c.kill_at(
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "sleep 0.5",
            ],
            m,
        );
        // The --rm container goes when its process ends, whoever waits for it.
        assert!(
            eventually(15, || c.container_ids() == before),
            "run --rm killed at {m:?}: left {:?} (before: {before:?})",
            c.container_ids()
        );
        c.assert_consistent(&format!("run --rm killed at {m:?}"), &[]);
        c.kill_at(
            &[
                "run",
                "-d",
                "--name",
                &format!("d{i}"),
                "--network",
                "none",
                "busybox",
                "sleep",
                "600",
            ],
            m,
        );
        c.assert_consistent(&format!("run -d killed at {m:?}"), &[]);
        c.kill_at(
            &[
                "run",
                "--name",
                &format!("f{i}"),
                "--network",
                "none",
                "busybox",
                "true",
            ],
            m,
        );
        c.assert_consistent(&format!("run killed at {m:?}"), &[]);
    }
}

#[test]
fn crash_rm_and_prune() {
    let Some(c) = Crash::new("crash_rm_and_prune") else {
        return;
    };
    for m in DELAYS {
        let names: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
        for n in &names {
            c.ok(&[
                "run",
                "-d",
                "--name",
                n,
                "--network",
                "none",
                "busybox",
                "sleep",
                "600",
            ]);
        }
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        c.kill_at(&args, &m);
        // The next rm finishes what the dead one began.
        let _ = c.berth(&args);
        c.assert_consistent(&format!("rm killed at {m:?}"), &[]);
        assert!(
            c.container_ids().is_empty(),
            "rm killed at {m:?}: left containers"
        );
        for n in &names {
            c.ok(&[
                "create",
                "--name",
                n,
                "--network",
                "none",
                "busybox",
                "true",
            ]);
        }
        c.kill_at(&["container", "prune", "-f"], &m);
        c.ok(&["container", "prune", "-f"]);
        assert!(
            c.container_ids().is_empty(),
            "prune killed at {m:?}: left containers"
        );
        c.assert_consistent(&format!("prune killed at {m:?}"), &[]);
    }
}

#[test]
fn crash_registry_serve() {
    let Some(c) = Crash::new("crash_registry_serve") else {
        return;
    };
    let tar = big_tar(&c, 48);
    c.ok(&["import", tar.to_str().expect("utf-8"), "big:1"]);
    let storage = c.path("registry");
    for (i, delay) in [20u64, 80, 250].iter().enumerate() {
        let (mut server, addr) = registry(&storage);
        let image = format!("{addr}/crash/big:{i}");
        c.ok(&["tag", "big:1", &image]);
        let push = c
            .cmd(&["push", &image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("push");
        std::thread::sleep(Duration::from_millis(*delay));
        let _ = server.0.kill();
        let _ = server.0.wait();
        let mut push = support::Proc(push);
        let _ = push.0.wait();
        // The registry's own collection (no server runs now) leaves no temp file behind.
        let gc = c.berth(&[
            "registry",
            "gc",
            "--storage",
            storage.to_str().expect("utf-8"),
            "--upload-max-age",
            "0",
        ]);
        assert!(gc.status.success(), "registry gc: {}", stderr(&gc));
        let tmp: Vec<PathBuf> = tree(&storage)
            .into_iter()
            .filter(|p| name_of(p).starts_with(".tmp-"))
            .collect();
        assert!(
            tmp.is_empty(),
            "registry killed after {delay} ms: registry gc keeps {tmp:?}"
        );
        // The restarted server takes the push, and the image pulls back whole elsewhere.
        let (_server, addr) = registry(&storage);
        let image = format!("{addr}/crash/big:{i}");
        c.ok(&["tag", "big:1", &image]);
        c.ok(&["push", &image]);
        let fresh = c.path(&format!("fresh{i}"));
        let out = berth_command(&fresh.join("root"), &fresh.join("run"))
            .args(["pull", &image])
            .output()
            .expect("pull");
        assert!(
            out.status.success(),
            "pull after a killed registry: {}",
            stderr(&out)
        );
        let out = berth_command(&fresh.join("root"), &fresh.join("run"))
            .args(["run", "--rm", "--network", "none", &image, "true"])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
        c.ok(&["rmi", &image]);
        c.assert_consistent(&format!("registry killed after {delay} ms of a push"), &[]);
    }
}
