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
    /// Creation time, RFC 3339 (the CLI shows Docker's `2024-01-02 03:04:05 +0000 UTC`).
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
    /// Networks by name, sorted, `,`-joined.
    pub networks: String,
    /// Mounts: volume names and bind sources, `,`-joined (the caller may cut each).
    pub mounts: String,
    /// How many volumes (not binds) it mounts.
    pub local_volumes: String,
    /// `SIZE`: `2B (virtual 1.99MB)` when sizes were asked for (the caller fills it).
    pub size: String,
    /// Creation time, unix nanoseconds.
    #[serde(skip)]
    pub created: i64,
    /// The labels as a map (for `{{.Label "k"}}`).
    #[serde(skip)]
    pub label_map: std::collections::BTreeMap<String, String>,
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
        ContainerStatus::Paused => {
            format!("Up {} (Paused)", human_duration(now - c.record.started_at))
        }
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
    /// `name=web`: a regular expression, matched against `/NAME` and `NAME` (as Docker).
    Name(String),
    /// `id=abc` (prefix).
    Id(String),
    /// `ancestor=busybox`.
    Ancestor(String),
    /// `exited=0`.
    Exited(i64),
    /// `label=k` or `label=k=v`.
    Label(String),
    /// `before=CONTAINER`: created before that one.
    Before(String),
    /// `since=CONTAINER`: created after that one.
    Since(String),
    /// `network=NAME|ID`.
    Network(String),
    /// `volume=NAME|DESTINATION`.
    Volume(String),
    /// `publish=PORT[/PROTO]` (or a range): a container port with a host binding.
    Publish(Vec<String>),
    /// `expose=PORT[/PROTO]` (or a range): a port the container exposes.
    Expose(Vec<String>),
    /// `health=starting|healthy|unhealthy|none` (berth runs no health checks: all `none`).
    Health(String),
    /// `is-task=true|false` (no swarm: no container is a task).
    IsTask(bool),
}

/// `80`, `80/udp`, `8000-8002/tcp` as Docker's port keys (`80/tcp`, ...).
fn port_keys(v: &str) -> Option<Vec<String>> {
    let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    if !["tcp", "udp", "sctp"].contains(&proto) {
        return None;
    }
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let p = ports.parse::<u16>().ok()?;
            (p, p)
        }
    };
    if lo > hi {
        return None;
    }
    Some((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
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
            "before" => Filter::Before(v.into()),
            "since" => Filter::Since(v.into()),
            "network" => Filter::Network(v.into()),
            "volume" => Filter::Volume(v.into()),
            "publish" | "expose" => {
                let keys = port_keys(v)
                    .ok_or_else(|| OptionError::Conflict(format!("invalid filter '{k}={v}'")))?;
                if k == "publish" {
                    Filter::Publish(keys)
                } else {
                    Filter::Expose(keys)
                }
            }
            "health" => {
                if !["starting", "healthy", "unhealthy", "none"].contains(&v) {
                    return Err(OptionError::Conflict(format!(
                        "Unrecognised filter value for health: {v}"
                    )));
                }
                Filter::Health(v.into())
            }
            "is-task" => Filter::IsTask(match v {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(OptionError::Conflict(format!(
                        "Invalid filter 'is-task={v}'"
                    )))
                }
            }),
            _ => return Err(OptionError::Conflict(format!("invalid filter '{k}'"))),
        })
    }
}

impl Lifecycle {
    /// Bytes the container wrote in its rw layer (Docker's `SizeRw`): regular files and
    /// symlinks of its upper directory.
    ///
    /// A running container changes its upper directory while this walks it: the walk goes
    /// by handles and never follows a symlink, so a directory swapped for a link to a host
    /// directory is not counted (nor a host tree walked).
    pub fn rw_size(&self, c: &Container) -> u64 {
        use rustix::fs::{statat, AtFlags, Dir, FileType};
        use std::os::fd::OwnedFd;
        fn walk(dir: &OwnedFd) -> u64 {
            let Ok(mut entries) = Dir::read_from(dir) else {
                return 0;
            };
            let mut total = 0;
            while let Some(Ok(e)) = entries.read() {
                let name = e.file_name();
                if matches!(name.to_bytes(), b"." | b"..") {
                    continue;
                }
                let Ok(st) = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => {
                        if let Ok(sub) = berth_oci::in_root::open_subdir(dir, name.to_bytes()) {
                            total += walk(&sub);
                        }
                    }
                    FileType::RegularFile | FileType::Symlink => total += st.st_size as u64,
                    _ => {}
                }
            }
            total
        }
        let upper = self.container_dir(c.id()).join("upper");
        match std::fs::File::open(&upper) {
            Ok(f) => walk(&OwnedFd::from(f)),
            Err(_) => 0,
        }
    }

    /// The containers `ps` shows: running ones, or all with `all`; filters AND across keys
    /// and OR within one key (AND for `label`), as Docker.
    pub fn list(&self, all: bool, filters: &[Filter]) -> Result<Vec<ContainerSummary>> {
        let containers = self.all()?;
        // An ancestor is the image or any image built on it: its layers and at least one
        // more (Docker's children); an unknown image matches nothing.
        let mut ancestor_ids = Vec::new();
        let has_ancestor = filters.iter().any(|f| matches!(f, Filter::Ancestor(_)));
        let images = if has_ancestor {
            self.store.list_images().unwrap_or_default()
        } else {
            Vec::new()
        };
        for f in filters {
            if let Filter::Ancestor(a) = f {
                if let Ok((id, _)) = self.resolve_image(a) {
                    if let Some(base) = images.iter().find(|i| i.id == id) {
                        for img in &images {
                            if img.layers.len() > base.layers.len()
                                && img.layers.starts_with(&base.layers)
                            {
                                ancestor_ids.push(img.id.to_string());
                            }
                        }
                    }
                    ancestor_ids.push(id.to_string());
                }
            }
        }
        let names: Vec<Option<regex::Regex>> = filters
            .iter()
            .filter_map(|f| match f {
                Filter::Name(n) => Some(regex::Regex::new(n).ok()),
                _ => None,
            })
            .collect();
        // before= and since= name containers; an unknown one is Docker's error.
        let mut before = None;
        let mut since = None;
        for f in filters {
            match f {
                Filter::Before(c) => before = Some(self.find(c)?.record.created),
                Filter::Since(c) => since = Some(self.find(c)?.record.created),
                _ => {}
            }
        }
        let net_filters: Vec<&String> = filters
            .iter()
            .filter_map(|f| match f {
                Filter::Network(n) => Some(n),
                _ => None,
            })
            .collect();
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
            let slash_name = format!("/{}", c.name());
            let name_ok = names.is_empty()
                || names
                    .iter()
                    .flatten()
                    .any(|re| re.is_match(&slash_name) || re.is_match(c.name()));
            let created = c.record.created;
            let time_ok = before.is_none_or(|b| created < b) && since.is_none_or(|s| created > s);
            let net_ok = net_filters.is_empty() || {
                let mine = self.container_networks(&c);
                net_filters.iter().any(|want| {
                    mine.iter()
                        .any(|(id, name)| name == *want || id.starts_with(want.as_str()))
                })
            };
            let hc = &c.spec.host_config;
            let ok = name_ok
                    && time_ok
                    && net_ok
                    && group_ok(&|f| match f {
                        Filter::Status(s) => Some(c.status.as_str() == s),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::Volume(v) => Some(c.spec.volumes.iter().any(|m| {
                            m.destination == *v || m.source.as_deref() == Some(v.as_str())
                        })),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::Publish(keys) => {
                            Some(keys.iter().any(|k| hc.port_bindings.contains_key(k)))
                        }
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        // A published port is exposed too (Docker adds it to ExposedPorts).
                        Filter::Expose(keys) => Some(keys.iter().any(|k| {
                            c.spec.config.exposed_ports.contains_key(k)
                                || hc.port_bindings.contains_key(k)
                        })),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::Health(h) => Some(h == "none"),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::IsTask(t) => Some(!*t),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::Id(i) => Some(c.id().starts_with(i.as_str())),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::Ancestor(_) => Some(ancestor_ids.contains(&c.record.image_id)),
                        _ => None,
                    })
                    && group_ok(&|f| match f {
                        Filter::Exited(code) => {
                            Some(c.status == ContainerStatus::Exited && c.record.exit_code == *code)
                        }
                        _ => None,
                    })
                    // Every label= must hold (Docker ANDs labels).
                    && filters.iter().all(|f| match f {
                        Filter::Label(l) => match l.split_once('=') {
                            Some((k, v)) => c.spec.config.labels.get(k).is_some_and(|x| x == v),
                            None => c.spec.config.labels.contains_key(l),
                        },
                        _ => true,
                    });
            if !ok {
                continue;
            }
            let mut row = summary(&c);
            if c.status == ContainerStatus::Running
                && super::health::effective(c.spec.config.healthcheck.as_ref()).is_some()
            {
                row.status +=
                    &super::health::status_suffix(super::health::read_state(self, c.id()).as_ref());
            }
            let mut nets: Vec<String> = self
                .container_networks(&c)
                .into_iter()
                .map(|(_, name)| name)
                .collect();
            nets.sort();
            row.networks = nets.join(",");
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

impl Lifecycle {
    /// `(id, name)` of the networks a container is on: its endpoints, else its `--network`.
    fn container_networks(&self, c: &Container) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .store
            .container_endpoints(c.id())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|ep| self.store.resolve_network(&ep.network_id).ok())
            .map(|n| (n.id, n.name))
            .collect();
        if out.is_empty() {
            let mode = match c.spec.host_config.network_mode.as_str() {
                "" | "default" => "bridge",
                m => m,
            };
            match self.store.resolve_network(mode) {
                Ok(n) => out.push((n.id, n.name)),
                Err(_) => out.push((String::new(), mode.to_string())),
            }
        }
        out
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
        networks: String::new(),
        mounts: c
            .spec
            .volumes
            .iter()
            .map(|v| v.source.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        local_volumes: c
            .spec
            .volumes
            .iter()
            .filter(|v| v.is_volume())
            .count()
            .to_string(),
        size: "0B".into(),
        labels: c
            .spec
            .config
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        created: c.record.created,
        label_map: c.spec.config.labels.clone(),
    }
}

/// The short form of an ID.
pub fn short(id: &str) -> &str {
    names::short_id(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
        assert_eq!(
            Filter::parse("publish=80").unwrap(),
            Filter::Publish(vec!["80/tcp".into()])
        );
        assert_eq!(
            Filter::parse("expose=8000-8002/udp").unwrap(),
            Filter::Expose(vec![
                "8000/udp".into(),
                "8001/udp".into(),
                "8002/udp".into()
            ])
        );
        for bad in [
            "publish=x",
            "expose=9-8",
            "publish=80/icmp",
            "health=ok",
            "is-task=1",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
