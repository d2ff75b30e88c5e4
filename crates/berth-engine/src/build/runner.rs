//! RUN steps in containers of berth's own runtime: an overlay of the step's layers under a
//! fresh upper directory (mounted inside the container's mount namespace, so it never
//! outlives it), the command's output through a pipe, and the upper directory diffed into
//! the step's layer. Mount points made only for the step's mounts (secrets, caches) are
//! removed before the diff, so they leave no trace in the layer.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_build::exec::{BackendError, LayerRef, RunNetwork, RunSpec, StepRunner};
use berth_runtime::{ContainerConfig, RootfsMount, Stdio};
use serde_json::{json, Value};

use super::backend::chain_ids;

/// Held while a step's container is forked, and by progress printers while they write:
/// a child forked while another thread holds the stderr lock could deadlock on it.
static FORK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the lock that keeps writes to stderr and the forking of step containers apart.
/// Progress printers hold it while they write a line.
pub fn output_lock() -> std::sync::MutexGuard<'static, ()> {
    FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set by [`cancel`]: no further step container starts.
static CANCELLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The step containers running now (pidfds of their first process, keyed by container ID),
/// so that [`cancel`] can kill them; a pidfd cannot hit a reused pid.
static RUNNING: std::sync::Mutex<Vec<(String, std::os::fd::OwnedFd)>> =
    std::sync::Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<(String, std::os::fd::OwnedFd)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cancels the builds of this process (Ctrl-C): kills the running step containers, whose
/// runners then remove them (state, cgroup, scratch directories) and fail with
/// "canceled", and refuses to start new ones. Safe to call from a signal-watching thread.
pub fn cancel() {
    use std::os::fd::AsFd;
    CANCELLED.store(true, std::sync::atomic::Ordering::SeqCst);
    for (_, pidfd) in running().iter() {
        let _ = berth_runtime::sys::pidfd_send_signal(
            pidfd.as_fd(),
            nix::sys::signal::Signal::SIGKILL as i32,
        );
    }
}

/// Makes Ctrl-C (SIGINT) and SIGTERM cancel the builds of this process (see [`cancel`])
/// instead of killing it while step containers run. Call from the main thread before any
/// other thread starts (they inherit the blocked signals). Should the build not end within
/// `grace` after the signal, the process exits with 128 + the signal's number.
pub fn cancel_on_interrupt(grace: std::time::Duration) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("build-interrupt".into())
        .spawn(move || {
            let _ = set.thread_block();
            if let Ok(sig) = set.wait() {
                cancel();
                std::thread::sleep(grace);
                std::process::exit(128 + sig as i32);
            }
        });
}

/// Whether [`cancel`] was called.
pub fn cancelled() -> bool {
    CANCELLED.load(std::sync::atomic::Ordering::SeqCst)
}

fn canceled_error() -> BackendError {
    failed(
        "the build",
        std::io::Error::new(std::io::ErrorKind::Interrupted, "canceled"),
    )
}

/// Runs RUN steps with `berth-runtime`.
pub struct RuntimeStepRunner {
    root: PathBuf,
    runroot: PathBuf,
}

fn failed(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::failed(what, e)
}

impl RuntimeStepRunner {
    /// A runner keeping its scratch directories under `root/tmp` and container state under
    /// `runroot/build`.
    pub fn new(root: &Path, runroot: &Path) -> Self {
        RuntimeStepRunner {
            root: root.to_owned(),
            runroot: runroot.to_owned(),
        }
    }

    fn lowerdirs(&self, layers: &[LayerRef]) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = chain_ids(layers)
            .iter()
            .map(|c| self.root.join("layers").join(c.hex()))
            .collect();
        v.reverse();
        v
    }
}

/// Whether `rel` exists in any of the lower directories (whiteouts not considered).
/// Looked up inside each layer (a symlink of the image, `app -> /root`, must not tell
/// whether a host path exists).
fn in_lowers(lowers: &[PathBuf], rel: &str) -> bool {
    use berth_oci::in_root;
    lowers.iter().any(|l| {
        in_root::open_root(l)
            .and_then(|root| in_root::open_in_root_nofollow(&root, Path::new(rel)))
            .is_ok()
    })
}

/// Looks up `name` in the image's `/etc/<file>` (`passwd` or `group`) of the layers `lowers`.
/// The file is read through the layers as the step's overlay will show them, every symlink
/// resolved inside them (never `layer/etc/passwd` by host path: `etc` or `passwd` may be a
/// symlink to a host file).
fn lookup_id(lowers: &[PathBuf], file: &str, name: &str) -> Option<(u32, u32)> {
    let tree = crate::container::layered::LayeredTree::new(lowers.to_vec());
    let text = tree.read(&format!("/etc/{file}"))?;
    // passwd: name:x:uid:gid:...; group: name:x:gid:members.
    String::from_utf8_lossy(&text).lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() != Some(&name) || f.len() < 3 {
            return None;
        }
        let id: u32 = f[2].parse().ok()?;
        let second = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
        Some((id, second))
    })
}

fn resolve_user(lowers: &[PathBuf], user: &str) -> Result<(u32, u32), BackendError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_id(lowers, "passwd", u).map(|x| x.1).unwrap_or(n)),
        Err(_) => lookup_id(lowers, "passwd", u).ok_or_else(|| BackendError::NotFound {
            what: format!("user {u:?} in the image's /etc/passwd"),
        })?,
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_id(lowers, "group", g).map(|x| x.0).ok_or_else(|| {
                BackendError::NotFound {
                    what: format!("group {g:?} in the image's /etc/group"),
                }
            })?,
        },
    };
    Ok((uid, gid))
}

/// Removes `rel` from `upper` when the lowers do not have it and it is an empty stub
/// (a mount point), then its parents likewise.
///
/// The step's processes may have left symlinks in `upper` (`mv /etc /x; ln -s /host/dir
/// /etc` keeps the mount at /x/hostname): it is walked by handles, one component at a
/// time, never following a symlink, so nothing outside `upper` is removed.
fn remove_stub(upper: &Path, lowers: &[PathBuf], rel: &str) {
    use berth_oci::in_root;
    use rustix::fs::AtFlags;
    use std::os::fd::OwnedFd;
    let Ok(root) = File::open(upper).map(OwnedFd::from) else {
        return;
    };
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for n in (1..=comps.len()).rev() {
        if in_lowers(lowers, &comps[..n].join("/")) {
            return;
        }
        let mut dir = match root.try_clone() {
            Ok(d) => d,
            Err(_) => return,
        };
        for c in &comps[..n - 1] {
            dir = match in_root::open_subdir(&dir, c.as_bytes()) {
                Ok(d) => d,
                Err(_) => return,
            };
        }
        let name = comps[n - 1];
        let Ok(md) =
            in_root::open_entry(&dir, name.as_bytes()).and_then(|f| File::from(f).metadata())
        else {
            return;
        };
        let flags = if md.is_dir() {
            AtFlags::REMOVEDIR
        } else if md.is_file() && md.len() == 0 {
            AtFlags::empty()
        } else {
            return;
        };
        if rustix::fs::unlinkat(&dir, name, flags).is_err() {
            return;
        }
    }
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    rand::Rng::fill(&mut rand::thread_rng(), &mut b[..]);
    format!("berth-build-{}", hex::encode(b))
}

impl StepRunner for RuntimeStepRunner {
    fn run(
        &self,
        spec: &RunSpec,
        output: &mut dyn Write,
        layer: &mut dyn Write,
    ) -> Result<i32, BackendError> {
        if cancelled() {
            return Err(canceled_error());
        }
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| failed("creating the scratch directory", e))?;
        // Owned by this process's lock (see berth_store::staging): a killed build's step
        // directory is swept by the next command.
        let work = berth_store::Staging::new_dir_in(&tmp, "build-run")
            .map_err(|e| failed("creating the step's directory", e))?;
        let upper = work.path().join("upper");
        let ovl_work = work.path().join("work");
        let rootfs = work.path().join("rootfs");
        let empty = work.path().join("empty");
        for d in [&upper, &ovl_work, &rootfs, &empty] {
            fs::create_dir_all(d).map_err(|e| failed(format!("creating {}", d.display()), e))?;
        }
        let lowers = self.lowerdirs(&spec.layers);
        let lower_opt = crate::container::launch::lowerdir_option(&lowers)
            .unwrap_or_else(|| empty.display().to_string());
        // The working directory is created in the layer when the image lacks it, as Docker does.
        let wd = spec.workdir.trim_matches('/');
        if !wd.is_empty() && !in_lowers(&lowers, wd) {
            let _ = fs::create_dir_all(upper.join(wd));
        }
        let (uid, gid) = resolve_user(&lowers, &spec.user)?;
        let argv: Vec<&str> = spec.argv.iter().map(String::as_str).collect();
        let base = berth_runtime::spec::default_spec(&argv);
        let mut v: Value =
            serde_json::to_value(&base).map_err(|e| failed("building the runtime spec", e))?;
        v["process"]["env"] = json!(spec.env);
        v["process"]["cwd"] = json!(if spec.workdir.is_empty() {
            "/"
        } else {
            spec.workdir.as_str()
        });
        v["process"]["user"] = json!({"uid": uid, "gid": gid});
        v["root"] = json!({"path": rootfs.display().to_string(), "readonly": false});
        v["hostname"] = json!("buildkitsandbox");
        if spec.network == RunNetwork::Host {
            if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
        }
        let mounts = v["mounts"].as_array_mut();
        if let Some(mounts) = mounts {
            if spec.network == RunNetwork::Host {
                // Name resolution as the host has it, without writing into the layer.
                for f in ["/etc/resolv.conf", "/etc/hosts"] {
                    if Path::new(f).exists() && in_lowers(&lowers, f.trim_start_matches('/')) {
                        mounts.push(json!({"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]}));
                    }
                }
            }
            for m in &spec.mounts {
                match &m.source {
                    Some(src) => mounts.push(json!({
                        "destination": m.target,
                        "type": "bind",
                        "source": src.display().to_string(),
                        "options": ["rbind", if m.readonly { "ro" } else { "rw" }],
                    })),
                    None => mounts.push(json!({
                        "destination": m.target,
                        "type": "tmpfs",
                        "source": "tmpfs",
                        "options": ["nosuid", "nodev", "mode=1777"],
                    })),
                }
            }
        }
        let oci: berth_runtime::oci::Spec =
            serde_json::from_value(v).map_err(|e| failed("building the runtime spec", e))?;
        let id = new_id();
        // The step's runtime state lives in a staging entry of RUNROOT/build owned by this
        // process: should it die, the next command finds the entry's lock free and kills
        // the step, removes its cgroup and state ([`sweep_dead_steps`]).
        let steps = self.runroot.join("build");
        fs::create_dir_all(&steps)
            .map_err(|e| failed("creating the runtime state directory", e))?;
        let owner = berth_store::Staging::new_dir_in(&steps, "step")
            .map_err(|e| failed("creating the runtime state directory", e))?;
        let state_dir = owner.path().join(&id);
        let (rd, wr) = nix::unistd::pipe().map_err(|e| failed("creating a pipe", e))?;
        let wr2 = wr
            .try_clone()
            .map_err(|e| failed("duplicating a pipe", e))?;
        let devnull = File::open("/dev/null").map_err(|e| failed("opening /dev/null", e))?;
        let mut cfg = ContainerConfig::new(id.clone(), &state_dir, work.path(), oci);
        cfg.rootfs_mounts = vec![RootfsMount {
            typ: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={lower_opt}"),
                format!("upperdir={}", upper.display()),
                format!("workdir={}", ovl_work.display()),
            ],
        }];
        cfg.stdio = Stdio {
            stdin: Some(devnull.into()),
            stdout: Some(wr),
            stderr: Some(wr2),
        };
        let started = {
            let _guard = output_lock();
            berth_runtime::run(cfg)
        };
        let mut container = match started {
            Ok(c) => c,
            Err(e) => {
                drop(owner);
                return Err(failed(format!("starting the step's container {id}"), e));
            }
        };
        if let Ok(pidfd) = berth_runtime::sys::pidfd_open(container.pid()) {
            running().push((id.clone(), pidfd));
        }
        // A cancel between the start and the registration above must still stop it.
        if cancelled() {
            let _ = nix::sys::signal::kill(container.pid(), nix::sys::signal::Signal::SIGKILL);
        }
        let mut reader = File::from(rd);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _ = output.write_all(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let status = container.wait();
        running().retain(|(rid, _)| *rid != id);
        let deleted = container.delete(true);
        drop(owner);
        if cancelled() {
            return Err(canceled_error());
        }
        let status =
            status.map_err(|e| failed(format!("waiting for the step's container {id}"), e))?;
        deleted.map_err(|e| failed(format!("removing the step's container {id}"), e))?;
        let code = status.map(|s| s.code).unwrap_or(0);
        if code != 0 {
            return Ok(code);
        }
        let mut stubs: Vec<String> = spec.mounts.iter().map(|m| m.target.clone()).collect();
        for p in [
            "proc",
            "sys/fs/cgroup",
            "sys",
            "dev/pts",
            "dev/shm",
            "dev/mqueue",
            "dev",
            "etc/resolv.conf",
            "etc/hosts",
            "etc/hostname",
        ] {
            stubs.push(p.into());
        }
        for s in &stubs {
            remove_stub(&upper, &lowers, s);
        }
        let opts = berth_oci::DiffOptions {
            mtime_clamp: spec.mtime_clamp.map(|c| c as i64),
        };
        berth_oci::diff_upper(&upper, layer, &opts)
            .map_err(|e| failed("writing the step's layer", e))?;
        Ok(code)
    }
}

/// Kills and removes the RUN steps of builds that died (SIGKILL, crash): every staging
/// entry of `RUNROOT/build` whose owner lock is free holds the runtime state of one step
/// (`ENTRY/<id>`); its processes are killed, its cgroup (`berth/<id>` in every hierarchy)
/// and its state removed, then the entry and its lock. Entries of live builds are left
/// alone. Returns how many steps were removed. Called whenever the engine or the container
/// lifecycle is opened, i.e. by every command that touches the store (one failed `opendir`
/// when there is nothing).
pub fn sweep_dead_steps(runroot: &Path) -> usize {
    let removed = std::cell::Cell::new(0);
    // Each dead build's entry holds one state directory per RUN step (named by the step's
    // container id): its processes and cgroup go before the staging sweep removes it.
    let kill_steps = |entry: &Path| {
        for step in fs::read_dir(entry).into_iter().flatten().flatten() {
            let id = step.file_name().to_string_lossy().into_owned();
            remove_dead_step(&step.path(), &id);
            removed.set(removed.get() + 1);
        }
    };
    if let Err(e) =
        berth_store::staging::sweep_with(&runroot.join("build"), &|_| false, &kill_steps)
    {
        log::warn!("sweeping the steps of dead builds: {e}");
    }
    removed.get()
}

/// Kills step `id` (state in `state_dir`) and removes its cgroup and state. A state
/// directory without state (the build died while creating the step) still names the
/// cgroup, which is destroyed by its name.
fn remove_dead_step(state_dir: &Path, id: &str) {
    match berth_runtime::Container::load(state_dir) {
        Ok(c) => {
            if let Err(e) = c.delete(true) {
                log::warn!("removing the dead build step {id}: {e}");
            }
        }
        Err(_) => {
            if let Some(cg) = cgroup_named(id) {
                if let Err(e) = cg.destroy() {
                    log::warn!("removing the cgroup of the dead build step {id}: {e}");
                }
            }
        }
    }
    let _ = fs::remove_dir_all(state_dir);
}

/// The cgroup berth's runtime makes for container `id` (`berth/<id>`), in every hierarchy
/// of this host.
pub(crate) fn cgroup_named(id: &str) -> Option<berth_runtime::cgroups::Cgroup> {
    use berth_runtime::cgroups::{cgroup_relative_path, Cgroup, CgroupLayout};
    let layout = CgroupLayout::detect().ok()?;
    Some(Cgroup::at(&layout, &cgroup_relative_path(None, id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_the_top_layer() {
        let t = tempfile::tempdir().expect("tmp");
        let (top, base) = (t.path().join("top"), t.path().join("base"));
        fs::create_dir_all(top.join("etc")).expect("mkdir");
        fs::create_dir_all(base.join("etc")).expect("mkdir");
        fs::write(
            base.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:5:5::/:/bin/sh\n",
        )
        .expect("write");
        fs::write(
            top.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .expect("write");
        fs::write(base.join("etc/group"), "staff:x:50:\n").expect("write");
        let lowers = vec![top, base];
        assert_eq!(resolve_user(&lowers, "").expect("root"), (0, 0));
        assert_eq!(resolve_user(&lowers, "app").expect("app"), (1000, 1001));
        assert_eq!(
            resolve_user(&lowers, "app:staff").expect("group"),
            (1000, 50)
        );
        assert_eq!(resolve_user(&lowers, "42:7").expect("numeric"), (42, 7));
        assert!(resolve_user(&lowers, "ghost").is_err());
    }

    #[test]
    fn lower_lookups_stay_in_the_layer() {
        let t = tempfile::tempdir().expect("tmp");
        let host = t.path().join("host");
        fs::create_dir_all(host.join("x")).expect("mkdir");
        let lower = t.path().join("lower");
        fs::create_dir_all(lower.join("usr/lib")).expect("mkdir");
        std::os::unix::fs::symlink(&host, lower.join("app")).expect("link");
        std::os::unix::fs::symlink("usr/lib", lower.join("lib")).expect("link");
        let lowers = vec![lower];
        assert!(
            !in_lowers(&lowers, "app/x"),
            "a host path is not the image's"
        );
        assert!(in_lowers(&lowers, "app"), "the link itself is");
        assert!(
            in_lowers(&lowers, "lib/"),
            "links inside the layer are followed"
        );
        assert!(!in_lowers(&lowers, "lib/nothing"));
    }

    #[test]
    fn mount_stubs_are_removed_inside_the_upper_dir_only() {
        let t = tempfile::tempdir().expect("tmp");
        let host = t.path().join("host");
        fs::create_dir_all(host.join("pts")).expect("mkdir");
        fs::write(host.join("hostname"), "").expect("an empty host file");
        let upper = t.path().join("upper");
        fs::create_dir_all(&upper).expect("mkdir");
        // What a RUN step can leave: its /etc and /dev replaced by symlinks to host dirs.
        std::os::unix::fs::symlink(&host, upper.join("etc")).expect("link");
        std::os::unix::fs::symlink(&host, upper.join("dev")).expect("link");
        remove_stub(&upper, &[], "etc/hostname");
        remove_stub(&upper, &[], "/dev/pts");
        assert!(
            host.join("hostname").exists(),
            "the host's file is left alone"
        );
        assert!(
            host.join("pts").exists(),
            "the host's directory is left alone"
        );
        assert!(fs::symlink_metadata(upper.join("etc")).is_ok());
    }

    #[test]
    fn mount_stubs_leave_the_upper_dir() {
        let t = tempfile::tempdir().expect("tmp");
        let (upper, lower) = (t.path().join("upper"), t.path().join("lower"));
        fs::create_dir_all(upper.join("run/secrets")).expect("mkdir");
        fs::write(upper.join("run/secrets/tok"), "").expect("stub");
        fs::create_dir_all(lower.join("run")).expect("mkdir");
        fs::create_dir_all(upper.join("data")).expect("mkdir");
        fs::write(upper.join("data/real"), "kept").expect("write");
        let lowers = vec![lower];
        remove_stub(&upper, &lowers, "/run/secrets/tok");
        remove_stub(&upper, &lowers, "/data/real");
        assert!(
            !upper.join("run/secrets").exists(),
            "the stub and its new parent are gone"
        );
        assert!(
            upper.join("run").exists(),
            "a directory the image has stays"
        );
        assert!(upper.join("data/real").exists(), "content is never removed");
    }
}
