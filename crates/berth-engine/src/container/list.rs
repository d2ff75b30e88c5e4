//! `ps`: container summaries, Docker's status text, and `--filter`.

use serde::Serialize;

use super::{names, now_nanos, Container, ContainerStatus, Lifecycle, OptionError, Result};

/// One row of `ps`, with Docker's `--format` field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// Short or full ID (the caller truncates).
    #[serde(rename = "ID")]
    pub id: String,
    /// Image as named.
    pub image: String,
    /// The command, quoted.
    pub command: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// "5 seconds ago".
    pub running_for: String,
    /// "Up 5 seconds", "Exited (0) 3 seconds ago", "Created".
    pub status: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// Published ports.
    pub ports: String,
    /// Name.
    pub names: String,
    /// Labels, `k=v,...`.
    pub labels: String,
    /// Creation time, unix nanoseconds.
    #[serde(skip)]
    pub created: i64,
}

/// Docker's `HumanDuration`.
pub fn human_duration(nanos: i64) -> String {
    let secs = nanos.max(0) / 1_000_000_000;
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if secs / 60 == 1 {
        "About a minute".into()
    } else if secs / 60 < 60 {
        format!("{} minutes", secs / 60)
    } else if (secs as f64 / 3600.0).round() as i64 == 1 {
        "About an hour".into()
    } else if secs / 3600 < 48 {
        format!("{} hours", secs / 3600)
    } else if secs / 86400 < 14 {
        plural(secs / 86400, "day")
    } else if secs / 86400 < 90 {
        plural(secs / (86400 * 7), "week")
    } else if secs / 86400 < 365 * 2 {
        plural(secs / (86400 * 30), "month")
    } else {
        plural(secs / (86400 * 365), "year")
    }
}

/// The `Status` text of `ps`.
pub fn status_text(c: &Container) -> String {
    let now = now_nanos();
    match c.status {
        ContainerStatus::Running => format!("Up {}", human_duration(now - c.record.started_at)),
        ContainerStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            c.record.exit_code,
            human_duration(now - c.record.finished_at)
        ),
        ContainerStatus::Exited if c.record.finished_at > 0 => format!(
            "Exited ({}) {} ago",
            c.record.exit_code,
            human_duration(now - c.record.finished_at)
        ),
        ContainerStatus::Exited | ContainerStatus::Created => "Created".into(),
        ContainerStatus::Removing => "Removal In Progress".into(),
        ContainerStatus::Dead => "Dead".into(),
    }
}

/// One `--filter key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `status=running`.
    Status(String),
    /// `name=web` (substring).
    Name(String),
    /// `id=abc` (prefix).
    Id(String),
    /// `ancestor=busybox`.
    Ancestor(String),
    /// `exited=0`.
    Exited(i64),
    /// `label=k` or `label=k=v`.
    Label(String),
}

impl Filter {
    /// Parses `key=value`.
    pub fn parse(s: &str) -> Result<Filter, OptionError> {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            OptionError::Conflict(format!("bad format of filter (expected name=value): {s}"))
        })?;
        Ok(match k {
            "status" => {
                if ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&v)
                {
                    return Err(OptionError::Conflict(format!(
                        "invalid filter 'status={v}'"
                    )));
                }
                Filter::Status(v.into())
            }
            "name" => Filter::Name(v.into()),
            "id" => Filter::Id(v.into()),
            "ancestor" => Filter::Ancestor(v.into()),
            "exited" => Filter::Exited(
                v.parse()
                    .map_err(|_| OptionError::Conflict(format!("invalid filter 'exited={v}'")))?,
            ),
            "label" => Filter::Label(v.into()),
            _ => return Err(OptionError::Conflict(format!("invalid filter '{k}'"))),
        })
    }
}

impl Lifecycle {
    /// Bytes the container wrote in its rw layer (Docker's `SizeRw`): regular files and
    /// symlinks of its upper directory.
    pub fn rw_size(&self, c: &Container) -> u64 {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(t) if t.is_file() || t.is_symlink() => {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                    _ => 0,
                })
                .sum()
        }
        walk(&self.container_dir(c.id()).join("upper"))
    }

    /// The containers `ps` shows: running ones, or all with `all`; filters AND across keys
    /// and OR within one key, as Docker.
    pub fn list(&self, all: bool, filters: &[Filter]) -> Result<Vec<ContainerSummary>> {
        let containers = self.all()?;
        let mut ancestor_ids = Vec::new();
        for f in filters {
            if let Filter::Ancestor(a) = f {
                if let Ok((id, _)) = self.resolve_image(a) {
                    ancestor_ids.push(id.to_string());
                }
            }
        }
        // The ports as bound (a requested host port 0 becomes the one the kernel chose).
        let bound = self.store.ports(None).unwrap_or_default();
        let mut out = Vec::new();
        for c in containers {
            let has_status = filters.iter().any(|f| matches!(f, Filter::Status(_)));
            if !all && !has_status && !c.status.is_active() {
                continue;
            }
            let group_ok = |pred: &dyn Fn(&Filter) -> Option<bool>| {
                let results: Vec<bool> = filters.iter().filter_map(pred).collect();
                results.is_empty() || results.iter().any(|b| *b)
            };
            let ok = group_ok(&|f| match f {
                Filter::Status(s) => Some(c.status.as_str() == s),
                _ => None,
            }) && group_ok(&|f| match f {
                Filter::Name(n) => Some(c.name().contains(n.trim_start_matches('/'))),
                _ => None,
            }) && group_ok(&|f| match f {
                Filter::Id(i) => Some(c.id().starts_with(i.as_str())),
                _ => None,
            }) && group_ok(&|f| match f {
                Filter::Ancestor(_) => Some(ancestor_ids.contains(&c.record.image_id)),
                _ => None,
            }) && group_ok(&|f| match f {
                Filter::Exited(code) => {
                    Some(c.status == ContainerStatus::Exited && c.record.exit_code == *code)
                }
                _ => None,
            }) && group_ok(&|f| match f {
                Filter::Label(l) => Some(match l.split_once('=') {
                    Some((k, v)) => c.spec.config.labels.get(k).is_some_and(|x| x == v),
                    None => c.spec.config.labels.contains_key(l),
                }),
                _ => None,
            });
            if !ok {
                continue;
            }
            let mut row = summary(&c);
            row.ports = if c.status.is_active() {
                bound_ports(&bound, c.id())
            } else {
                String::new()
            };
            out.push(row);
        }
        Ok(out)
    }
}

/// Docker's PORTS text of a running container: `127.0.0.1:32768->80/tcp, :::8080->80/tcp`.
fn bound_ports(bound: &[berth_store::networks::PortRecord], id: &str) -> String {
    bound
        .iter()
        .filter(|p| p.container_id == id)
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.proto
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary of one container.
pub fn summary(c: &Container) -> ContainerSummary {
    let mut argv = vec![c.spec.path.clone()];
    argv.extend(c.spec.args.iter().cloned());
    let ports = c
        .spec
        .host_config
        .port_bindings
        .iter()
        .flat_map(|(ctr, hosts)| {
            hosts.iter().map(move |h| {
                let ip = if h.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &h.host_ip
                };
                format!("{ip}:{}->{ctr}", h.host_port)
            })
        })
        .collect::<Vec<_>>()
        .join(", ");
    ContainerSummary {
        id: c.id().to_string(),
        image: c.record.image_ref.clone(),
        command: format!("\"{}\"", argv.join(" ")),
        created_at: super::rfc3339(c.record.created),
        running_for: format!("{} ago", human_duration(now_nanos() - c.record.created)),
        status: status_text(c),
        state: c.status.as_str().to_string(),
        ports,
        names: c.name().to_string(),
        labels: c
            .spec
            .config
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        created: c.record.created,
    }
}

/// The short form of an ID.
pub fn short(id: &str) -> &str {
    names::short_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_filters() {
        assert_eq!(human_duration(500_000_000), "Less than a second");
        assert_eq!(human_duration(5_000_000_000), "5 seconds");
        assert_eq!(human_duration(70_000_000_000), "About a minute");
        assert_eq!(human_duration(600_000_000_000), "10 minutes");
        assert_eq!(
            Filter::parse("status=running").unwrap(),
            Filter::Status("running".into())
        );
        assert!(Filter::parse("status=bogus").is_err());
        assert!(Filter::parse("nope").is_err());
        assert!(Filter::parse("color=red").is_err());
    }
}
