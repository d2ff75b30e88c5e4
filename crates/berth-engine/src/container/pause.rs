//! `pause` and `unpause`: the cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`).

use berth_runtime::cgroups::{cgroup_relative_path, Cgroup, CgroupLayout};
use berth_store::containers::ContainerUpdate;

use super::{Container, ContainerError, ContainerStatus, Lifecycle, Result};

/// The cgroup of container `id`, wherever the host mounts its hierarchies.
pub fn container_cgroup(id: &str) -> Result<Cgroup> {
    let layout = CgroupLayout::detect().map_err(cgroup_error)?;
    Ok(Cgroup::at(&layout, &cgroup_relative_path(None, id)))
}

/// A cgroup failure as a container error.
pub(crate) fn cgroup_error(e: berth_runtime::cgroups::CgroupError) -> ContainerError {
    ContainerError::Runtime(super::runtime::RuntimeError::Berth(e.into()))
}

impl Lifecycle {
    /// Freezes every process of `c`; its status becomes `paused`.
    pub fn pause_container(&self, c: &Container) -> Result<()> {
        if let Some(msg) = c.status.refuses("pause", c.id()) {
            return Err(ContainerError::BadStatus(msg));
        }
        let cg = container_cgroup(c.id())?;
        cg.set_frozen(true).map_err(cgroup_error)?;
        let moved = self.store().update_container(
            c.id(),
            &ContainerUpdate {
                status: Some(ContainerStatus::Paused.as_str().into()),
                only_if_status: ContainerStatus::sources_of(ContainerStatus::Paused),
                ..Default::default()
            },
        )?;
        if !moved {
            // It ended (or was paused by another process) meanwhile: leave it thawed.
            let _ = cg.set_frozen(false);
            let now = self.find(c.id())?;
            return Err(ContainerError::BadStatus(
                now.status
                    .refuses("pause", c.id())
                    .unwrap_or_else(|| format!("Container {} is not running", c.id())),
            ));
        }
        crate::events::emit_container(self.root(), c, "pause", &[]);
        Ok(())
    }

    /// Thaws the processes of `c`; its status becomes `running` again.
    pub fn unpause_container(&self, c: &Container) -> Result<()> {
        if let Some(msg) = c.status.refuses("unpause", c.id()) {
            return Err(ContainerError::BadStatus(msg));
        }
        self.thaw(c)?;
        self.store().update_container(
            c.id(),
            &ContainerUpdate {
                status: Some(ContainerStatus::Running.as_str().into()),
                only_if_status: vec![ContainerStatus::Paused.as_str().into()],
                ..Default::default()
            },
        )?;
        crate::events::emit_container(self.root(), c, "unpause", &[]);
        Ok(())
    }

    /// Thaws the cgroup of `c` without touching its row: after a signal sent to a paused
    /// container (Docker's kill and stop resume it so that the signal is delivered).
    pub(crate) fn thaw(&self, c: &Container) -> Result<()> {
        container_cgroup(c.id())?
            .set_frozen(false)
            .map_err(cgroup_error)
    }

    /// After a kill of a paused container: thaw it so that the signal is delivered, and
    /// record it as running again while it handles the signal (Docker's order).
    pub(crate) fn resume_after_signal(&self, c: &Container) {
        if c.status != ContainerStatus::Paused {
            return;
        }
        if let Err(e) = self.thaw(c) {
            log::warn!("cannot unpause container {}: {e}", c.id());
            return;
        }
        let _ = self.store().update_container(
            c.id(),
            &ContainerUpdate {
                status: Some(ContainerStatus::Running.as_str().into()),
                only_if_status: vec![ContainerStatus::Paused.as_str().into()],
                ..Default::default()
            },
        );
        crate::events::emit_container(self.root(), c, "unpause", &[]);
    }
}
