//! `update`: change the resources of a live container (runc's `update --resources`).

use oci_spec::runtime::LinuxResources;

use super::{Container, Op};
use crate::error::{Error, Result};

impl Container {
    /// Writes `resources` into the container's cgroup; returns warnings for limits this host
    /// cannot enforce. Fields left out stay as they are.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<Vec<String>> {
        self.check(Op::Update, "update")?;
        let cg = self.state.cgroup.as_ref().ok_or_else(|| Error::Sys {
            op: format!("update container {}: it has no cgroup", self.id()),
            source: std::io::Error::from_raw_os_error(libc::ENOTSUP),
        })?;
        Ok(cg.apply(resources)?)
    }
}
