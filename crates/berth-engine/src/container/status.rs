//! A container's status and the transitions between statuses, decided in one place.

use serde::{Deserialize, Serialize};

/// Where a container is in its life, with Docker's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Made, never started (or its start failed before the process ran).
    Created,
    /// Its process runs.
    Running,
    /// Its process exited and the restart policy is about to start it again.
    Restarting,
    /// Its process ended.
    Exited,
    /// Being removed.
    Removing,
    /// Broken beyond use (removal failed half-way).
    Dead,
}

impl ContainerStatus {
    /// Docker's lower-case name, as stored and as shown in `inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Dead => "dead",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "restarting" => ContainerStatus::Restarting,
            "exited" => ContainerStatus::Exited,
            "removing" => ContainerStatus::Removing,
            "dead" => ContainerStatus::Dead,
            _ => return None,
        })
    }

    /// Whether the container may move from `self` to `next`.
    pub fn can_become(self, next: ContainerStatus) -> bool {
        use ContainerStatus::*;
        matches!(
            (self, next),
            (Created, Running)
                | (Created, Exited)
                | (Created, Removing)
                | (Running, Exited)
                | (Running, Restarting)
                | (Restarting, Running)
                | (Restarting, Exited)
                | (Exited, Running)
                | (Exited, Restarting)
                | (Exited, Removing)
                | (Removing, Dead)
                | (Dead, Removing)
        )
    }

    /// True when a process may be alive (running or between restarts).
    pub fn is_active(self) -> bool {
        matches!(self, ContainerStatus::Running | ContainerStatus::Restarting)
    }
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ContainerStatus::*;
    use super::*;

    #[test]
    fn transitions() {
        assert!(Created.can_become(Running));
        assert!(Running.can_become(Exited));
        assert!(Exited.can_become(Running));
        assert!(!Running.can_become(Removing));
        assert!(!Removing.can_become(Running));
        assert!(!Exited.can_become(Created));
        for s in [Created, Running, Restarting, Exited, Removing, Dead] {
            assert_eq!(ContainerStatus::parse(s.as_str()), Some(s));
        }
    }
}
