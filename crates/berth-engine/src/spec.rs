//! Image configuration + validated flags -> the OCI runtime spec a container runs with.
//!
//! Starts from the runtime's default spec (Docker's defaults: namespaces, mounts, masked and
//! read-only paths, capabilities, seccomp) and applies what the container asks for. Works on
//! the spec's JSON so that the same document goes to berth's runtime or to runc/crun.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::container::model::ContainerSpec;
use crate::container::options::{host_caps, NetworkMode};

/// A spec that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The base spec is not an object of the expected shape.
    #[error("runtime default spec is malformed: {0}")]
    BadBase(&'static str),
    /// A seccomp profile file could not be read or parsed.
    #[error("opening seccomp profile ({path}) failed: {reason}")]
    SeccompProfile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// What kind of failure a [`SpecError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// Bad input (a profile file).
    InvalidArgument,
    /// A bug or a broken runtime default.
    Internal,
}

impl SpecError {
    /// The kind of failure.
    pub fn kind(&self) -> SpecErrorKind {
        match self {
            SpecError::BadBase(_) => SpecErrorKind::Internal,
            SpecError::SeccompProfile { .. } => SpecErrorKind::InvalidArgument,
        }
    }
}

/// One mount of the container's own (a volume, a bind, a `--mount` tmpfs) as it goes into
/// the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the container.
    pub destination: String,
    /// `bind` or `tmpfs`.
    pub typ: String,
    /// Host path (or `tmpfs`).
    pub source: PathBuf,
    /// Mount options (`rbind`, `rprivate`, `ro`, `size=...`).
    pub options: Vec<String>,
}

/// What the spec needs beyond the container's configuration.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// The container.
    pub spec: &'a ContainerSpec,
    /// Host path of the root filesystem (the overlay mount point).
    pub rootfs: &'a Path,
    /// Final environment.
    pub env: Vec<String>,
    /// Final argv (with the init in front when `--init`).
    pub args: Vec<String>,
    /// Working directory inside.
    pub cwd: String,
    /// cgroup path (relative, e.g. `/berth/<id>`).
    pub cgroups_path: String,
    /// Host path of berth's init, bind-mounted at `/dev/init` for `--init`.
    pub init_binary: Option<PathBuf>,
    /// Read-only or read-write binds of berth's own (its init): (host source, container
    /// destination, read-only).
    pub binds: Vec<(PathBuf, String, bool)>,
    /// The container's volumes, binds and `--mount` tmpfs mounts.
    pub mounts: Vec<Mount>,
    /// Network namespace to join (bridge networks), if any.
    pub netns_path: Option<PathBuf>,
    /// Files written for the container: (host path, container path), e.g. /etc/hosts.
    pub etc_files: Vec<(PathBuf, String)>,
}

fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut serde_json::Map<String, Value> {
    let map = v.as_object_mut().expect("spec nodes are objects");
    let e = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut().expect("just made an object")
}

/// Applies `input` to `base` (the runtime's default spec as JSON).
pub fn build(mut base: Value, input: &SpecInput<'_>) -> Result<Value, SpecError> {
    if !base.is_object() {
        return Err(SpecError::BadBase("not an object"));
    }
    let cs = input.spec;
    let hc = &cs.host_config;
    base["ociVersion"] = base
        .get("ociVersion")
        .cloned()
        .unwrap_or_else(|| json!("1.0.2"));
    base["hostname"] = json!(cs.config.hostname);
    base["root"] = json!({"path": input.rootfs, "readonly": hc.readonly_rootfs});

    // The process.
    {
        let p = obj(&mut base, "process");
        p.insert("terminal".into(), json!(cs.config.tty));
        p.insert("args".into(), json!(input.args));
        p.insert("env".into(), json!(input.env));
        p.insert("cwd".into(), json!(input.cwd));
        let mut user = json!({"uid": cs.uid, "gid": cs.gid});
        if !cs.additional_gids.is_empty() {
            user["additionalGids"] = json!(cs.additional_gids);
        }
        p.insert("user".into(), user);
        let host = host_caps();
        let caps: Vec<&str> = if hc.privileged {
            host.iter().map(String::as_str).collect()
        } else {
            cs.capabilities.iter().map(String::as_str).collect()
        };
        p.insert(
            "capabilities".into(),
            json!({"bounding": caps, "effective": caps, "permitted": caps}),
        );
        if cs.security.no_new_privileges {
            p.insert("noNewPrivileges".into(), json!(true));
        } else {
            p.remove("noNewPrivileges");
        }
        if cs.config.tty {
            // The caller's window when it has one (`run -it`), else Docker's 24x80.
            let (rows, cols) = crate::container::tty::caller_size().unwrap_or((24, 80));
            p.insert("consoleSize".into(), json!({"height": rows, "width": cols}));
        }
    }

    // Mounts: defaults, then the container's own ordered by the depth of their destination
    // (as Docker: `/a` before `/a/b`, whatever the flags' order), so that a mount inside
    // another is not hidden by it; at the same depth the flags' order (a later mount over
    // the same path wins).
    let mut mounts: Vec<Value> = base
        .get("mounts")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    let user_dests: Vec<&str> = hc
        .tmpfs
        .keys()
        .map(String::as_str)
        .chain(input.binds.iter().map(|b| b.1.as_str()))
        .chain(input.mounts.iter().map(|m| m.destination.as_str()))
        .chain(input.etc_files.iter().map(|f| f.1.as_str()))
        .collect();
    mounts.retain(|m| {
        let d = m.get("destination").and_then(|d| d.as_str()).unwrap_or("");
        !user_dests.contains(&d)
    });
    if hc.privileged {
        // /sys read-write, as Docker does for privileged containers.
        for m in &mut mounts {
            if m.get("destination").and_then(|d| d.as_str()) == Some("/sys") {
                if let Some(opts) = m.get_mut("options").and_then(|o| o.as_array_mut()) {
                    opts.retain(|o| o != "ro");
                }
            }
        }
    }
    let defaults = mounts.len();
    for (path, opts) in &hc.tmpfs {
        let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        for extra in opts.split(',').filter(|s| !s.is_empty()) {
            match extra {
                "exec" => o.retain(|x| x != "noexec"),
                "suid" => o.retain(|x| x != "nosuid"),
                "dev" => o.retain(|x| x != "nodev"),
                _ => o.push(extra.to_string()),
            }
        }
        mounts.push(json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }
    for (src, dest, ro) in &input.binds {
        let mut o = vec!["rbind", "rprivate"];
        if *ro {
            o.push("ro");
        }
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": o}));
    }
    for m in &input.mounts {
        mounts.push(json!({"destination": m.destination, "type": m.typ, "source": m.source, "options": m.options}));
    }
    for (src, dest) in &input.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    if let Some(init) = &input.init_binary {
        mounts.push(json!({"destination": "/dev/init", "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    mounts[defaults..].sort_by_key(|m| {
        m.get("destination")
            .and_then(|d| d.as_str())
            .map_or(0, |d| d.split('/').filter(|c| !c.is_empty()).count())
    });
    base["mounts"] = Value::Array(mounts);

    // Linux: namespaces, resources, cgroup path, seccomp, masked paths.
    let net = cs.network.clone().unwrap_or(NetworkMode::None);
    {
        let linux = obj(&mut base, "linux");
        let mut ns: Vec<Value> = linux
            .get("namespaces")
            .and_then(|n| n.as_array().cloned())
            .unwrap_or_else(|| {
                ["pid", "network", "ipc", "uts", "mount", "cgroup"]
                    .iter()
                    .map(|t| json!({"type": t}))
                    .collect()
            });
        ns.retain(|n| n.get("type").and_then(|t| t.as_str()) != Some("network"));
        match (&net, &input.netns_path) {
            (NetworkMode::Host, _) => {}
            (_, Some(path)) => ns.push(json!({"type": "network", "path": path})),
            _ => ns.push(json!({"type": "network"})),
        }
        if net == NetworkMode::Host {
            // A host-network container shares the host's UTS name only if asked; Docker keeps
            // its own UTS namespace with the host's name.
        }
        linux.insert("namespaces".into(), Value::Array(ns));
        linux.insert("cgroupsPath".into(), json!(input.cgroups_path));

        let res = linux
            .entry("resources".to_string())
            .or_insert_with(|| json!({}));
        if !res.is_object() {
            *res = json!({});
        }
        let mut memory = serde_json::Map::new();
        if hc.memory > 0 {
            memory.insert("limit".into(), json!(hc.memory));
            let swap = match hc.memory_swap {
                0 => hc.memory * 2,
                s => s,
            };
            memory.insert("swap".into(), json!(swap));
        } else if hc.memory_swap == -1 {
            memory.insert("swap".into(), json!(-1));
        }
        if hc.memory_reservation > 0 {
            memory.insert("reservation".into(), json!(hc.memory_reservation));
        }
        if !memory.is_empty() {
            res["memory"] = Value::Object(memory);
        }
        let mut cpu = serde_json::Map::new();
        if hc.cpu_shares > 0 {
            cpu.insert("shares".into(), json!(hc.cpu_shares));
        }
        if hc.nano_cpus > 0 {
            cpu.insert("period".into(), json!(100_000));
            cpu.insert("quota".into(), json!(hc.nano_cpus / 10_000));
        }
        if hc.cpu_period > 0 {
            cpu.insert("period".into(), json!(hc.cpu_period));
        }
        if hc.cpu_quota != 0 {
            cpu.insert("quota".into(), json!(hc.cpu_quota));
        }
        if !hc.cpuset_cpus.is_empty() {
            cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
        }
        if !cpu.is_empty() {
            res["cpu"] = Value::Object(cpu);
        }
        if let Some(p) = hc.pids_limit {
            res["pids"] = json!({"limit": p});
        }

        if hc.privileged {
            linux.remove("maskedPaths");
            linux.remove("readonlyPaths");
            linux.remove("seccomp");
            if let Some(r) = linux.get_mut("resources") {
                r["devices"] = json!([{"allow": true, "access": "rwm"}]);
            }
        } else if cs.security.seccomp_unconfined {
            linux.remove("seccomp");
        } else if let Some(path) = &cs.security.seccomp_profile {
            linux.insert("seccomp".into(), load_seccomp_profile(path)?);
        }
    }
    Ok(base)
}

/// Reads a seccomp profile in Docker's JSON format (a superset of the OCI one) and keeps the
/// fields the OCI spec knows.
pub fn load_seccomp_profile(path: &Path) -> Result<Value, SpecError> {
    let bad = |reason: String| SpecError::SeccompProfile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let default_action = v
        .get("defaultAction")
        .cloned()
        .ok_or_else(|| bad("no defaultAction".into()))?;
    let mut out = json!({"defaultAction": default_action});
    if let Some(e) = v.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = e.clone();
    }
    let arches: Vec<Value> = match v.get("architectures") {
        Some(a) => a.as_array().cloned().unwrap_or_default(),
        None => v
            .get("archMap")
            .and_then(|m| m.as_array())
            .map(|m| {
                m.iter()
                    .filter(|a| {
                        a.get("architecture").and_then(|x| x.as_str()) == Some("SCMP_ARCH_X86_64")
                    })
                    .flat_map(|a| {
                        let mut list = vec![a["architecture"].clone()];
                        if let Some(s) = a.get("subArchitectures").and_then(|s| s.as_array()) {
                            list.extend(s.iter().cloned());
                        }
                        list
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    if !arches.is_empty() {
        out["architectures"] = Value::Array(arches);
    }
    let mut syscalls = Vec::new();
    for s in v
        .get("syscalls")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        let mut names: Vec<Value> = s
            .get("names")
            .and_then(|n| n.as_array().cloned())
            .unwrap_or_default();
        if let Some(n) = s.get("name") {
            names.push(n.clone());
        }
        if names.is_empty() {
            continue;
        }
        let mut rule = json!({"names": names, "action": s.get("action").cloned().unwrap_or(json!("SCMP_ACT_ALLOW"))});
        if let Some(a) = s.get("args").filter(|a| !a.is_null()) {
            rule["args"] = a.clone();
        }
        if let Some(e) = s.get("errnoRet") {
            rule["errnoRet"] = e.clone();
        }
        syscalls.push(rule);
    }
    out["syscalls"] = Value::Array(syscalls);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::container::model::HostConfig;

    #[test]
    fn resources_and_namespaces() {
        let mut cs = ContainerSpec::default();
        cs.config.hostname = "abc".into();
        cs.host_config = HostConfig {
            memory: 64 << 20,
            memory_swap: 0,
            cpu_shares: 512,
            nano_cpus: 1_500_000_000,
            pids_limit: Some(20),
            ..Default::default()
        };
        cs.capabilities = vec!["CAP_CHOWN".into()];
        cs.network = Some(NetworkMode::Host);
        let input = SpecInput {
            spec: &cs,
            rootfs: Path::new("/r"),
            env: vec!["A=1".into()],
            args: vec!["true".into()],
            cwd: "/".into(),
            cgroups_path: "/berth/abc".into(),
            init_binary: None,
            binds: vec![(PathBuf::from("/h"), "/c".into(), true)],
            mounts: vec![],
            netns_path: None,
            etc_files: vec![],
        };
        let base = json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}, "mounts": [{"destination": "/proc", "type": "proc"}]});
        let s = build(base, &input).unwrap();
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 67108864);
        assert_eq!(s["linux"]["resources"]["memory"]["swap"], 134217728);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 150000);
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 20);
        let ns = s["linux"]["namespaces"].as_array().unwrap();
        assert!(!ns.iter().any(|n| n["type"] == "network"));
        assert_eq!(s["process"]["capabilities"]["effective"][0], "CAP_CHOWN");
        assert_eq!(s["mounts"].as_array().unwrap().len(), 2);
        assert_eq!(s["hostname"], "abc");
    }

    #[test]
    fn mounts_go_in_by_the_depth_of_their_destination() {
        let mut cs = ContainerSpec::default();
        cs.host_config.tmpfs.insert("/a/b/c".into(), String::new());
        let m = |d: &str| Mount {
            destination: d.into(),
            typ: "bind".into(),
            source: PathBuf::from("/h"),
            options: vec!["rbind".into()],
        };
        let input = SpecInput {
            spec: &cs,
            rootfs: Path::new("/r"),
            env: vec![],
            args: vec!["true".into()],
            cwd: "/".into(),
            cgroups_path: "/berth/abc".into(),
            init_binary: None,
            binds: vec![],
            mounts: vec![m("/a/b"), m("/a"), m("/x")],
            netns_path: None,
            etc_files: vec![],
        };
        let base = json!({"mounts": [{"destination": "/proc", "type": "proc"}]});
        let s = build(base, &input).unwrap();
        let dests: Vec<&str> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(dests, ["/proc", "/a", "/x", "/a/b", "/a/b/c"]);
    }
}
