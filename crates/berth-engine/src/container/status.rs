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
    /// Its processes are frozen (`pause`); they still exist.
    Paused,
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
            ContainerStatus::Paused => "paused",
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
            "paused" => ContainerStatus::Paused,
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
                | (Running, Paused)
                | (Paused, Running)
                | (Paused, Exited)
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

    /// True when a process may be alive (running, paused or between restarts).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
        )
    }

    /// Every status.
    pub const ALL: [ContainerStatus; 7] = [
        ContainerStatus::Created,
        ContainerStatus::Running,
        ContainerStatus::Paused,
        ContainerStatus::Restarting,
        ContainerStatus::Exited,
        ContainerStatus::Removing,
        ContainerStatus::Dead,
    ];

    /// The stored names of the statuses that may become `next`: the condition of the
    /// store's update that moves a container to `next` (`only_if_status`), so that the
    /// database applies [`ContainerStatus::can_become`] atomically, whatever another
    /// process did since the caller read the row.
    pub fn sources_of(next: ContainerStatus) -> Vec<String> {
        Self::ALL
            .iter()
            .filter(|s| s.can_become(next))
            .map(|s| s.as_str().to_string())
            .collect()
    }

    /// Docker's error when `self` forbids `verb` on container `name` (`None`: allowed).
    pub fn refuses(self, verb: &str, name: &str) -> Option<String> {
        use ContainerStatus::*;
        Some(match (verb, self) {
            ("pause", Paused) => format!("Container {name} is already paused"),
            ("pause" | "unpause" | "exec" | "kill", Created | Exited | Dead | Removing) => {
                format!("Container {name} is not running")
            }
            ("pause", Restarting) => {
                format!("Container {name} is restarting, wait until the container is running")
            }
            ("unpause", Running | Restarting) => format!("Container {name} is not paused"),
            ("exec", Paused) => {
                format!("Container {name} is paused, unpause the container before exec")
            }
            ("exec", Restarting) => {
                format!("Container {name} is restarting, wait until the container is running")
            }
            ("start", Paused) => "cannot start a paused container, try unpause instead".to_string(),
            ("start", Removing | Dead) => format!(
                "cannot start container {name}: container is marked for removal or dead ({self})"
            ),
            _ => return None,
        })
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
        for s in ContainerStatus::ALL {
            assert_eq!(ContainerStatus::parse(s.as_str()), Some(s));
        }
        assert!(Running.can_become(Paused) && Paused.can_become(Exited));
        assert!(!Exited.can_become(Paused) && !Paused.can_become(Removing));
        assert_eq!(ContainerStatus::sources_of(Paused), ["running"]);
        assert_eq!(
            ContainerStatus::sources_of(Exited),
            ["created", "running", "paused", "restarting"]
        );
        assert!(Paused.refuses("exec", "web").is_some());
        assert!(Running.refuses("exec", "web").is_none());
        assert_eq!(
            Running.refuses("unpause", "web").as_deref(),
            Some("Container web is not paused")
        );
    }
}
