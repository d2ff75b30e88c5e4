//! `rm` and `container prune`: teardown that collects errors and keeps going.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_store::containers::ContainerUpdate;

use super::{procfs, Container, ContainerError, ContainerStatus, Lifecycle, Result};

impl Lifecycle {
    /// Removes a container; a running one needs `force` (then it is killed first).
    /// `volumes` also removes its anonymous volumes.
    pub fn remove_container(&self, c: &Container, force: bool, volumes: bool) -> Result<()> {
        let c = self.find(c.id()).unwrap_or_else(|_| c.clone());
        if Self::removal_in_progress(&c) {
            return Err(ContainerError::BadStatus(format!(
                "removal of container {} is already in progress",
                c.name()
            )));
        }
        if c.status.is_active() {
            if !force {
                return Err(ContainerError::BadStatus(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    c.name()
                )));
            }
            self.store().update_container(
                c.id(),
                &ContainerUpdate {
                    stopped_by_user: Some(true),
                    ..Default::default()
                },
            )?;
            if procfs::is_alive(c.record.pid, c.record.pid_start) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.record.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                // A frozen process (cgroup v1) dies only once thawed.
                self.resume_after_signal(&c);
            }
            self.wait_stopped(&c, Duration::from_secs(10));
        }
        // Let a monitor finish (it may be recording the exit or removing for --rm); a dead
        // remover's record is no monitor to wait for.
        if c.status != ContainerStatus::Removing
            && c.record.monitor_pid != 0
            && c.record.monitor_pid != std::process::id() as i64
        {
            for _ in 0..500 {
                if !procfs::is_alive(c.record.monitor_pid, c.record.monitor_start) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The remover records itself (in the monitor's columns, free once the process is
        // gone): should it die half-way, a later `rm` or `prune` sees a dead remover and
        // finishes the removal instead of leaving "Removal In Progress" for ever.
        let me = std::process::id() as i64;
        let _ = self.store().update_container(
            c.id(),
            &ContainerUpdate {
                status: Some(ContainerStatus::Removing.as_str().into()),
                monitor: Some((me, procfs::start_time(me).unwrap_or(0))),
                ..Default::default()
            },
        );
        self.teardown(&c, volumes)
    }

    /// Whether `c` is being removed by a process that is still alive (not this one).
    fn removal_in_progress(c: &Container) -> bool {
        c.status == ContainerStatus::Removing
            && c.record.monitor_pid != std::process::id() as i64
            && procfs::is_alive(c.record.monitor_pid, c.record.monitor_start)
    }

    /// Removes a container whose process ended and was reaped by the caller (the
    /// foreground `run --rm`): no status dance, one pass of teardown.
    pub(crate) fn remove_exited(&self, c: &Container) -> Result<()> {
        self.teardown_with(c, true, true)
    }

    /// Removes a `--rm` container whose watcher died (its process is gone or killed).
    pub(super) fn remove_orphan(&self, c: &Container) -> Result<()> {
        self.teardown_with(c, true, false)
    }

    /// Releases everything a stopped container holds and deletes it; collects errors and
    /// keeps going.
    fn teardown(&self, c: &Container, volumes: bool) -> Result<()> {
        self.teardown_with(c, volumes, false)
    }

    /// [`Self::teardown`]; with `defer`, the container's directory is renamed into
    /// `ROOT/trash/` and deleted by a later `run` in the background ([`Self::sweep_trash`]):
    /// on a file system that discards freed blocks at once, deleting the rw layer's few
    /// directories costs milliseconds of waiting each, after the container's work is done.
    /// `containers/<id>` is gone either way when this returns; nothing in the trash is
    /// mounted or referenced.
    fn teardown_with(&self, c: &Container, volumes: bool, defer: bool) -> Result<()> {
        let mut errors = Vec::new();
        // The runtime's state and mounts, then the network once, releasing its addresses
        // (`cleanup_after_exit` would tear the network down a first time without).
        let rt = super::runtime::for_name(&c.spec.host_config.runtime);
        let state_root = self.runroot().join("runtime");
        if let Err(e) = rt.cleanup(
            c.id(),
            &state_root,
            &super::launch::rootfs_dir(self, c.id()),
        ) {
            errors.push(e.into());
        }
        if let Err(e) = crate::network_container::detach(self, c.id(), true) {
            errors.push(e.into());
        }
        let dir = self.container_dir(c.id());
        let deferred = defer && errors.is_empty() && self.move_to_trash(&dir, c.id());
        let removed = if deferred {
            Ok(())
        } else {
            fs::remove_dir_all(&dir)
        };
        if let Err(e) = removed {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(ContainerError::Io {
                    op: "removing",
                    path: dir,
                    source: e,
                });
            }
        }
        match self.store().delete_container(c.id()) {
            Ok(()) => crate::events::emit_container(self.root(), c, "destroy", &[]),
            Err(e) => errors.push(e.into()),
        }
        // After the row: the container's claims on its volumes count no more.
        if volumes {
            let names = crate::volume::plan::anonymous_names(&c.spec);
            if let Err(e) = crate::volume::remove_anonymous(self.store(), &names) {
                errors.push(e.into());
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ContainerError::Many(errors)),
        }
    }

    fn trash_dir(&self) -> PathBuf {
        self.root().join("trash")
    }

    /// Renames a removed container's directory into the trash; false if it could not be
    /// (then the caller deletes it in place).
    fn move_to_trash(&self, dir: &Path, id: &str) -> bool {
        let trash = self.trash_dir();
        let to = trash.join(id);
        match fs::rename(dir, &to) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !trash.exists() => {
                fs::create_dir_all(&trash).is_ok() && fs::rename(dir, &to).is_ok()
            }
            Err(_) => false,
        }
    }

    /// Deletes what earlier `--rm` runs left in the trash. With `background`, in a detached
    /// `berth-monitor --sweep` that outlives the caller (or, when it cannot be started, a
    /// thread nobody waits for: a process that exits first leaves the rest to the next one;
    /// several sweepers at once only skip each other's files).
    pub fn sweep_trash(&self, background: bool) {
        // ROOT/trash (containers' directories) and RUNROOT/trash (the runtime's state).
        let runtime_trash = super::launch::runtime_trash(&self.runroot().join("runtime"));
        let trash_dirs = [self.trash_dir(), runtime_trash];
        let dirs: Vec<PathBuf> = trash_dirs
            .iter()
            .filter_map(|t| fs::read_dir(t).ok())
            .flat_map(|entries| entries.flatten().map(|e| e.path()))
            .collect();
        if dirs.is_empty() {
            return;
        }
        if background {
            // A process of its own (the small `berth-monitor`), which outlives us.
            if let Some(lean) = super::monitor::lean_binary() {
                let spawned = std::process::Command::new(lean)
                    .arg("--sweep")
                    .args(&trash_dirs)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                if spawned.is_ok() {
                    return;
                }
            }
        }
        let sweep = move || {
            for d in dirs {
                let _ = fs::remove_dir_all(d);
            }
        };
        if !background {
            // After a detached sweeper (`berth-monitor --sweep`, which holds this lock) is
            // done: what this sweep skips while racing it would be left for a moment.
            let lock = fs::File::open(&trash_dirs[0]).ok();
            if let Some(l) = &lock {
                let _ = l.lock();
            }
            sweep();
        } else if std::thread::Builder::new()
            .name("trash".into())
            .spawn(sweep)
            .is_err()
        {
            log::debug!("could not start the trash sweeper");
        }
    }

    /// Removes every stopped container, and finishes the removals whose remover died (a
    /// killed `rm` or `prune`); returns their IDs.
    pub fn prune(&self) -> Result<Vec<String>> {
        self.sweep_trash(false);
        let mut removed = Vec::new();
        for c in self.all()? {
            let abandoned = c.status == ContainerStatus::Removing && !Self::removal_in_progress(&c);
            if abandoned
                || matches!(
                    c.status,
                    ContainerStatus::Exited | ContainerStatus::Created | ContainerStatus::Dead
                )
            {
                self.remove_container(&c, false, false)?;
                removed.push(c.id().to_string());
            }
        }
        Ok(removed)
    }
}
