//! `ps`: the host pids of a container's processes.

use super::{Container, Status};

impl Container {
    /// The host pids of every process in the container's cgroup (the init alone when it has
    /// no cgroup); none once it stopped.
    pub fn processes(&mut self) -> Vec<i32> {
        if self.refresh() == Status::Stopped {
            return Vec::new();
        }
        match &self.state.cgroup {
            Some(cg) => {
                let mut pids = cg.pids();
                pids.sort_unstable();
                pids
            }
            None => vec![self.state.pid],
        }
    }
}
