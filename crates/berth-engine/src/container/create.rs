//! `create` (and the first half of `run`): validate flags, resolve the image, combine its
//! configuration with the flags, check the command exists, store the container.

use std::collections::BTreeMap;
use std::fs;

use berth_oci::{Digest, ImageRef};
use berth_store::containers::{ContainerRecord, ContainerStoreError};
use serde_json::Value;

use super::layered::{CommandLookup, LayeredTree};
use super::model::{Config, ContainerSpec};
use super::options::effective_caps;
use super::request::CreateRequest;
use super::{command, names, now_nanos, user, Container, ContainerError, Lifecycle, Result};

/// PATH when neither the image nor the flags set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image's configuration a container uses.
#[derive(Debug, Clone, Default)]
pub struct ImageRunConfig {
    /// `Env`.
    pub env: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// `StopSignal`.
    pub stop_signal: String,
    /// `ExposedPorts`.
    pub exposed_ports: BTreeMap<String, Value>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

impl ImageRunConfig {
    /// Reads the `config` object of an image configuration document.
    pub fn from_json(doc: &Value) -> ImageRunConfig {
        let c = &doc["config"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        ImageRunConfig {
            env: strings(&c["Env"]),
            cmd: strings(&c["Cmd"]),
            entrypoint: strings(&c["Entrypoint"]),
            working_dir: text(&c["WorkingDir"]),
            user: text(&c["User"]),
            stop_signal: text(&c["StopSignal"]),
            exposed_ports: c["ExposedPorts"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            labels: c["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// `--platform`: the image's `os/architecture[/variant]` must be the one asked for (Docker's
/// words when it is not; `linux/amd64` and `amd64` name the same).
fn check_platform(image: &str, doc: &Value, want: &str) -> Result<()> {
    let os = doc["os"].as_str().unwrap_or("linux");
    let arch = doc["architecture"].as_str().unwrap_or("");
    let variant = doc["variant"].as_str().unwrap_or("");
    let mut parts = want.split('/');
    let (w_os, w_arch, w_variant) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, _) => ("linux", a, None),
        (Some(o), Some(a), v) => (o, a, v),
        _ => ("", "", None),
    };
    let arch_ok =
        w_arch == arch || matches!((w_arch, arch), ("x86_64", "amd64") | ("aarch64", "arm64"));
    if w_os == os && arch_ok && !matches!(w_variant, Some(v) if v != variant) {
        return Ok(());
    }
    let have = if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    };
    Err(ContainerError::Option(super::options::OptionError::Conflict(format!(
        "image with reference {image} was found but its platform ({have}) does not match the specified platform ({want})"
    ))))
}

/// Merges `extra` into `base`: a later `KEY=` replaces an earlier one.
pub fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in extra {
        let key = e.split('=').next().unwrap_or(e);
        match out
            .iter_mut()
            .find(|o| o.split('=').next().unwrap_or(o) == key)
        {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

impl Lifecycle {
    /// Resolves an image as the user named it: its ID and the name to show.
    pub fn resolve_image(&self, input: &str) -> Result<(Digest, String)> {
        let parsed = ImageRef::parse(input);
        let normalized = parsed.as_ref().ok().map(|r| r.to_string());
        let shown = parsed
            .as_ref()
            .map(|r| r.familiar_string())
            .unwrap_or_else(|_| input.to_string());
        let looks_id = input.len() >= 4
            && input
                .trim_start_matches("sha256:")
                .bytes()
                .all(|b| b.is_ascii_hexdigit());
        if parsed.is_err() && !looks_id {
            return Err(ContainerError::BadReference(input.to_string()));
        }
        match self.store().resolve_image(input, normalized.as_deref()) {
            Ok(id) => Ok((id, input.to_string())),
            Err(e) if e.kind() == berth_store::ErrorKind::NotFound => {
                Err(ContainerError::ImageNotFound(shown))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a container from `req`; nothing is left behind when it fails.
    pub fn create(&self, req: &CreateRequest) -> Result<Container> {
        // Reading the CPU count costs cgroup file reads: only when a CPU flag needs it.
        let online = if req.cpus.is_some() || req.cpuset_cpus.is_some() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            usize::MAX / 2_000_000_000
        };
        let flags = req.validate(&|k| std::env::var(k).ok(), online)?;
        let (image_id, image_ref) = self.resolve_image(&req.image)?;
        let doc: Value = {
            let bytes = self.store().blobs().read_blob(&image_id)?;
            serde_json::from_slice(&bytes).map_err(|e| ContainerError::ImageConfig {
                image: image_id.to_string(),
                detail: e.to_string(),
            })?
        };
        let img = ImageRunConfig::from_json(&doc);
        let image_health: Option<super::health::HealthConfig> =
            serde_json::from_value(doc["config"]["Healthcheck"].clone())
                .ok()
                .flatten();
        let healthcheck = req.health.merge(image_health.as_ref())?;
        if let Some(want) = req.platform.as_deref().filter(|p| !p.is_empty()) {
            check_platform(&req.image, &doc, want)?;
        }
        let argv = command::combine(
            &img.entrypoint,
            &img.cmd,
            req.entrypoint.as_deref(),
            &req.args,
        );
        if argv.is_empty() {
            return Err(ContainerError::NoCommand);
        }
        let env = merge_env(&img.env, &flags.env);
        let env = if env.iter().any(|e| e.starts_with("PATH=")) {
            env
        } else {
            let mut v = vec![format!("PATH={DEFAULT_PATH}")];
            v.extend(env);
            v
        };
        let working_dir = req
            .workdir
            .clone()
            .unwrap_or_else(|| img.working_dir.clone());
        let user_spec = req.user.clone().unwrap_or_else(|| img.user.clone());
        let lowers = self.store().image_lowerdirs(&image_id)?;
        let tree = LayeredTree::new(lowers);
        let mut who = user::resolve_user(&tree, &user_spec)?;
        for gid in user::resolve_groups(&tree, &flags.host_config.isolation.group_add)? {
            if gid != who.gid && !who.additional_gids.contains(&gid) {
                who.additional_gids.push(gid);
            }
        }
        // The command, looked up as execve will: 127/126 before anything is made.
        let cwd = if working_dir.is_empty() {
            "/"
        } else {
            &working_dir
        };
        let image_volumes: Vec<String> = doc["config"]["Volumes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mounts = crate::volume::plan::plan(
            self.store(),
            &flags.volumes,
            &flags.volumes_from,
            &image_volumes,
        )?;
        let covered = |p: &str| {
            mounts.iter().any(|v| p.starts_with(&v.destination))
                || flags
                    .host_config
                    .tmpfs
                    .keys()
                    .any(|t| p.starts_with(t.as_str()))
        };
        let path_env = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let path = match tree.find_command(&argv[0], cwd, &path_env) {
            CommandLookup::Found(_) => argv[0].clone(),
            _ if covered(&argv[0])
                || (!argv[0].starts_with('/') && argv[0].contains('/')) && covered(cwd) =>
            {
                argv[0].clone()
            }
            CommandLookup::NotFound => {
                if argv[0].contains('/') {
                    return Err(ContainerError::CommandNotFound(argv[0].clone()));
                }
                return Err(ContainerError::CommandNotFound(argv[0].clone()));
            }
            CommandLookup::NotExecutable(_) => {
                return Err(ContainerError::CommandNotExecutable(argv[0].clone()))
            }
        };
        let id = names::new_id();
        let hostname = req
            .hostname
            .clone()
            .unwrap_or_else(|| names::short_id(&id).to_string());
        let stop_signal = flags
            .stop_signal
            .or_else(|| {
                (!img.stop_signal.is_empty())
                    .then(|| super::options::parse_signal("STOPSIGNAL", &img.stop_signal).ok())
                    .flatten()
            })
            .unwrap_or(15);
        let mut labels = img.labels.clone();
        labels.extend(flags.labels.clone());
        let config = Config {
            healthcheck,
            hostname,
            domainname: String::new(),
            user: user_spec,
            attach_stdin: req.interactive && !req.detach,
            attach_stdout: !req.detach,
            attach_stderr: !req.detach,
            tty: req.tty,
            open_stdin: req.interactive,
            stdin_once: req.interactive && !req.detach,
            env,
            cmd: Some(argv[1..].to_vec()).filter(|_| true),
            image: image_ref.clone(),
            working_dir: working_dir.clone(),
            entrypoint: None,
            labels,
            stop_signal: req
                .stop_signal
                .clone()
                .or_else(|| (!img.stop_signal.is_empty()).then(|| img.stop_signal.clone())),
            stop_timeout: req.stop_timeout,
            exposed_ports: img
                .exposed_ports
                .clone()
                .into_iter()
                .chain(
                    flags
                        .exposed
                        .iter()
                        .map(|p| (p.clone(), serde_json::json!({}))),
                )
                .collect(),
        };
        // Show Cmd and Entrypoint as Docker does: what the combination came from.
        let mut config = config;
        let ep = match req.entrypoint.as_deref() {
            Some("") => vec![],
            Some(e) => vec![e.to_string()],
            None => img.entrypoint.clone(),
        };
        config.entrypoint = (!ep.is_empty()).then(|| ep.clone());
        config.cmd = Some(argv[ep.len()..].to_vec()).filter(|c| !c.is_empty());
        let capabilities = effective_caps(
            &flags.host_config.cap_add,
            &flags.host_config.cap_drop,
            flags.host_config.privileged,
        );
        let network = flags.network.clone();
        let spec = ContainerSpec {
            config,
            host_config: flags.host_config.clone(),
            path: path.clone(),
            args: argv[1..].to_vec(),
            network: Some(network),
            volumes: mounts.clone(),
            security: flags.security.clone(),
            capabilities,
            stop_signal,
            stop_timeout: req.stop_timeout.unwrap_or(10),
            anonymous_volumes: Vec::new(),
            uid: who.uid,
            gid: who.gid,
            additional_gids: who.additional_gids,
            home: who.home,
        };
        let config_json = serde_json::to_string(&spec).expect("a container spec serializes");
        let mut record = ContainerRecord::fresh(
            id.clone(),
            String::new(),
            image_id.to_string(),
            image_ref,
            now_nanos(),
            config_json,
        );
        if !req.detach {
            // A foreground `run` watches the container from its creation on: should it die
            // before the start is recorded, the next command finds the watcher dead and
            // undoes the half-made start, or removes a `--rm` container (see
            // `Lifecycle::refresh`).
            let me = std::process::id() as i64;
            record.monitor_pid = me;
            record.monitor_start = super::procfs::start_time(me).unwrap_or(0);
        }
        let inserted = match &flags.name {
            Some(n) => {
                record.name = n.clone();
                self.store().insert_container(&record)
            }
            None => {
                let mut attempt = 0;
                loop {
                    record.name = names::random_name(attempt);
                    match self.store().insert_container(&record) {
                        Err(ContainerStoreError::NameInUse { .. }) if attempt < 10 => attempt += 1,
                        other => break other,
                    }
                }
            }
        };
        inserted?;
        // The row first, then the directories: a creator killed in between leaves a row
        // that `rm`/`prune` (or, for a foreground `run`, the next command) removes, never a
        // directory that no row names. A start makes missing directories again.
        let dir = self.container_dir(&id);
        let made = (|| -> Result<()> {
            for sub in ["upper", "work", "rootfs"] {
                let d = dir.join(sub);
                fs::create_dir_all(&d).map_err(ContainerError::io("creating", &d))?;
            }
            // Docker makes a missing working directory (`-w /new/dir`), root's, mode 0755.
            if !covered(cwd) && !tree.is_dir(cwd) {
                make_workdir(&tree, &dir.join("upper"), cwd)?;
            }
            Ok(())
        })();
        // The volumes: created when missing and claimed for the container, then filled
        // from the image (the upper layer is on top: a made working directory counts).
        let made = made.and_then(|()| {
            if !spec.volumes.iter().any(|v| v.is_volume()) {
                return Ok(());
            }
            let mut layers = vec![dir.join("upper")];
            layers.extend(self.store().image_lowerdirs(&image_id)?);
            crate::volume::plan::claim(self.store(), &id, &spec.volumes, &LayeredTree::new(layers))
                .map_err(ContainerError::from)
        });
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            let _ = self.store().delete_container(&id);
            return Err(e);
        }
        let c = Container::from_record(record)?;
        crate::events::emit_container(self.root(), &c, "create", &[]);
        Ok(c)
    }
}

/// Creates the missing part of `cwd` in the container's rw layer `upper`. Directories that
/// the image already has are recreated in `upper` with their mode and owner (an upper dir's
/// metadata wins in the overlay: `/tmp` must stay 1777). Nothing is made when a component
/// is a symlink or not a directory: the runtime's chdir then fails with a clear error.
fn make_workdir(tree: &LayeredTree, upper: &std::path::Path, cwd: &str) -> Result<()> {
    use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
    let comps: Vec<&str> = cwd.split('/').filter(|c| !c.is_empty()).collect();
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return Ok(());
    }
    let mut rel = std::path::PathBuf::new();
    let mut plan = Vec::new();
    let mut missing = false;
    for c in comps {
        rel.push(c);
        let inside = format!("/{}", rel.display());
        match (missing, tree.resolve(&inside)) {
            (false, Some((host, md))) => {
                // A symlink on the way (resolved elsewhere) or a file: leave it alone.
                if !md.is_dir() || !host.ends_with(&rel) {
                    return Ok(());
                }
                plan.push((upper.join(&rel), Some(md)));
            }
            _ => {
                missing = true;
                plan.push((upper.join(&rel), None));
            }
        }
    }
    for (path, like) in plan {
        if path.exists() {
            continue;
        }
        fs::create_dir(&path).map_err(ContainerError::io("creating", &path))?;
        let (mode, uid, gid) = match &like {
            Some(md) => (md.mode() & 0o7777, md.uid(), md.gid()),
            None => (0o755, 0, 0),
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(ContainerError::io("creating", &path))?;
        chown(&path, Some(uid), Some(gid)).map_err(ContainerError::io("creating", &path))?;
    }
    Ok(())
}

/// Whether the kernel accounts swap per cgroup (v1 `memory.memsw.*`, v2 `memory.swap.max`);
/// without it `--memory-swap` cannot be enforced.
pub fn swap_accounting_available() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || std::path::Path::new("/sys/fs/cgroup/memory.stat").exists()
            && std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
                .is_ok_and(|c| c.contains("memory"))
}

impl Container {
    /// Warnings Docker prints at create for this configuration.
    pub fn warnings(&self) -> Vec<String> {
        let hc = &self.spec.host_config;
        let mut out = Vec::new();
        if hc.memory_swap != 0 && hc.memory > 0 && !swap_accounting_available() {
            out.push(
                "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                    .to_string(),
            );
        }
        out.extend(
            hc.isolation
                .warnings(hc.memory, super::isolation::HostSupport::probe()),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_overrides_by_key() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let out = merge_env(&base, &["A=2".into(), "B=3".into()]);
        assert_eq!(out, vec!["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn image_config_fields() {
        let doc: Value = serde_json::json!({"config": {"Env": ["A=1"], "Cmd": ["sh"], "WorkingDir": "/w", "User": "app"}});
        let c = ImageRunConfig::from_json(&doc);
        assert_eq!(c.env, vec!["A=1"]);
        assert_eq!(c.cmd, vec!["sh"]);
        assert_eq!(c.working_dir, "/w");
        assert_eq!(c.user, "app");
        assert!(c.entrypoint.is_empty());
    }
}
