//! `inspect`: a container in Docker's JSON shape.

use serde_json::{json, Value};

use super::launch::{cgroups_path, rootfs_dir, rootfs_mounts};
use super::{rfc3339, Container, ContainerStatus, Lifecycle};

impl Lifecycle {
    /// The container as `docker inspect` shows it.
    pub fn inspect(&self, c: &Container) -> Value {
        let r = &c.record;
        // Docker: a paused container is still running.
        let running = matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused);
        let lower = rootfs_mounts(self, c)
            .ok()
            .and_then(|m| m.first().cloned())
            .and_then(|m| {
                m.options
                    .iter()
                    .find_map(|o| o.strip_prefix("lowerdir=").map(str::to_string))
            })
            .unwrap_or_default();
        let dir = self.container_dir(c.id());
        let mounts: Vec<Value> = c
            .spec
            .volumes
            .iter()
            .map(|v| crate::volume::plan::inspect_mount(self.root(), v))
            .collect();
        let mut host_config = serde_json::to_value(&c.spec.host_config).unwrap_or(json!({}));
        host_config["PidsLimit"] = json!(c.spec.host_config.pids_limit);
        host_config["CgroupParent"] = json!("");
        host_config["NanoCpus"] = json!(c.spec.host_config.nano_cpus);
        host_config["CpusetCpus"] = json!(c.spec.host_config.cpuset_cpus);
        host_config["CpuShares"] = json!(c.spec.host_config.cpu_shares);
        host_config["CpuPeriod"] = json!(c.spec.host_config.cpu_period);
        host_config["CpuQuota"] = json!(c.spec.host_config.cpu_quota);
        let mut v = json!({
            "Id": r.id,
            "Created": rfc3339(r.created),
            "Path": c.spec.path,
            "Args": c.spec.args,
            "State": {
                "Status": c.status.as_str(),
                "Running": running,
                "Paused": c.status == ContainerStatus::Paused,
                "Restarting": c.status == ContainerStatus::Restarting,
                "OOMKilled": r.oom_killed,
                "Dead": c.status == ContainerStatus::Dead,
                "Pid": if running { r.pid } else { 0 },
                "ExitCode": r.exit_code,
                "Error": r.error,
                "StartedAt": rfc3339(r.started_at),
                "FinishedAt": rfc3339(r.finished_at),
            },
            "Image": r.image_id,
            "ResolvConfPath": "",
            "HostnamePath": "",
            "HostsPath": "",
            "LogPath": self.log_path(c.id()),
            "Name": format!("/{}", r.name),
            "RestartCount": r.restart_count,
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": Value::Null,
            "HostConfig": host_config,
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": lower,
                    "MergedDir": rootfs_dir(self, c.id()),
                    "UpperDir": dir.join("upper"),
                    "WorkDir": dir.join("work"),
                },
            },
            "Mounts": mounts,
            "Config": c.spec.config,
            "NetworkSettings": crate::network::Networks::new(self.store(), self.root(), self.runroot())
                .network_settings(c.id(), &c.spec.host_config.network_mode, c.status.is_active()),
            "CgroupPath": cgroups_path(c.id()),
        });
        // `State.Health` for a container with a healthcheck: the checker's record while
        // it runs (its last one once stopped, as Docker keeps it), `starting` before the first.
        if super::health::effective(c.spec.config.healthcheck.as_ref()).is_some() {
            let health = super::health::read_state(self, c.id())
                .map(|h| serde_json::to_value(h).unwrap_or(Value::Null))
                .unwrap_or_else(|| json!({"Status": "starting", "FailingStreak": 0, "Log": []}));
            v["State"]["Health"] = health;
        }
        v
    }
}
