//! Container routes: list, create (Docker's `Config` + `HostConfig` + `NetworkingConfig`
//! into the engine's [`CreateRequest`]), inspect, start, stop, restart, kill, wait, resize,
//! logs, top, stats, delete, prune.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::container::list::Filter;
use berth_engine::container::{
    Container, ContainerError, ContainerStatus, CreateRequest, Lifecycle,
};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{self, json_line, ApiError, ApiResult};
use crate::router::Req;
use crate::streams::{frame, STDERR, STDOUT};
use crate::{blocking, State};

/// Finds a container, with Docker's 404 message.
fn find(lc: &Lifecycle, input: &str) -> Result<Container, ApiError> {
    lc.find(input).map_err(|e| match e.kind() {
        berth_engine::container::ErrorKind::NotFound => {
            ApiError::not_found(format!("No such container: {input}"))
        }
        _ => e.into(),
    })
}

async fn find_async(st: &Arc<State>, input: &str) -> Result<Container, ApiError> {
    let st = st.clone();
    let input = input.to_owned();
    blocking(move || find(&st.lifecycle()?, &input)).await
}

fn unix_seconds(nanos: i64) -> i64 {
    nanos / 1_000_000_000
}

/// Docker's `ContainerSummary` of one container.
fn summary_of(
    lc: &Lifecycle,
    c: &Container,
    row: &berth_engine::container::list::ContainerSummary,
) -> Value {
    let mut ports = Vec::new();
    let published = if c.status.is_active() {
        berth_engine::network::Networks::new(lc.store(), lc.root(), lc.runroot())
            .container_ports_by_id(c.id())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    for p in &published {
        ports.push(json!({
            "IP": p.host_ip.to_string(),
            "PrivatePort": p.container_port,
            "PublicPort": p.host_port,
            "Type": p.proto.to_string(),
        }));
    }
    for k in c.spec.config.exposed_ports.keys() {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let port: u16 = port.parse().unwrap_or(0);
        if !published.iter().any(|p| p.container_port == port) {
            ports.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    let mode = &c.spec.host_config.network_mode;
    let mode = if mode.is_empty() {
        "bridge"
    } else {
        mode.as_str()
    };
    let mounts: Vec<Value> = c
        .spec
        .volumes
        .iter()
        .map(|v| {
            json!({
                "Type": if v.is_bind() { "bind" } else { "volume" },
                "Source": v.source.clone().unwrap_or_default(),
                "Destination": v.destination,
                "RW": !v.read_only,
            })
        })
        .collect();
    let mut networks = serde_json::Map::new();
    networks.insert(mode.to_owned(), json!({"NetworkID": "", "IPAddress": ""}));
    json!({
        "Id": c.id(),
        "Names": [format!("/{}", c.name())],
        "Image": c.record.image_ref,
        "ImageID": c.record.image_id,
        "Command": row.command.trim_matches('"'),
        "Created": unix_seconds(c.record.created),
        "Ports": ports,
        "Labels": c.spec.config.labels,
        "State": c.status.as_str(),
        "Status": row.status,
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks},
        "Mounts": mounts,
    })
}

/// Docker's `ContainerSummary` documents of the containers passing `filters`.
pub fn summaries(
    lc: &Lifecycle,
    all: bool,
    filters: &[Filter],
    size: bool,
) -> Result<Vec<Value>, ApiError> {
    let rows = lc.list(all, filters)?;
    let mut by_id: BTreeMap<String, Container> = lc
        .all()?
        .into_iter()
        .map(|c| (c.id().to_owned(), c))
        .collect();
    let mut out = Vec::new();
    for row in &rows {
        let Some(c) = by_id.remove(&row.id).or_else(|| lc.find(&row.id).ok()) else {
            continue;
        };
        let mut v = summary_of(lc, &c, row);
        if size {
            v["SizeRw"] = json!(lc.rw_size(&c));
            v["SizeRootFs"] = json!(0);
        }
        out.push(v);
    }
    Ok(out)
}

/// `GET /containers/json?all=&limit=&size=&filters=`.
pub(crate) async fn list(r: Req) -> ApiResult {
    let all = r.query.bool("all", false)?;
    let size = r.query.bool("size", false)?;
    let limit = r.query.int("limit")?;
    let mut filters = Vec::new();
    for (k, v) in r.query.filters()? {
        filters.push(
            Filter::parse(&format!("{k}={v}")).map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    let st = r.state.clone();
    let mut list = blocking(move || {
        summaries(
            &st.lifecycle()?,
            all || limit.is_some_and(|l| l > 0),
            &filters,
            size,
        )
    })
    .await?;
    if let Some(l) = limit.filter(|l| *l > 0) {
        list.truncate(l as usize);
    }
    http::ok_json(&Value::Array(list))
}

/// `GET /containers/{id}/json`.
pub(crate) async fn inspect(r: Req, id: &str) -> ApiResult {
    let st = r.state.clone();
    let input = id.to_owned();
    let size = r.query.bool("size", false)?;
    let doc = blocking(move || {
        let lc = st.lifecycle()?;
        let c = find(&lc, &input)?;
        let mut doc = lc.inspect(&c);
        if size {
            doc["SizeRw"] = json!(lc.rw_size(&c));
            doc["SizeRootFs"] = json!(0);
        }
        Ok(doc)
    })
    .await?;
    http::ok_json(&doc)
}

/// A list that Docker accepts as a JSON string or an array (`Cmd`, `Entrypoint`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StrSlice {
    /// `"sh -c x"` (split on spaces for `Cmd`, one word for `Entrypoint`).
    One(String),
    /// `["sh", "-c", "x"]`.
    Many(Vec<String>),
}

impl StrSlice {
    fn into_vec(self) -> Vec<String> {
        match self {
            StrSlice::One(s) => s.split_whitespace().map(str::to_owned).collect(),
            StrSlice::Many(v) => v,
        }
    }
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicyBody {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: Option<String>,
    /// For `on-failure`.
    pub maximum_retry_count: Option<i64>,
}

/// One `HostConfig.PortBindings` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBindingBody {
    /// Host address.
    pub host_ip: Option<String>,
    /// Host port.
    pub host_port: Option<String>,
}

/// One `HostConfig.Mounts` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountBody {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Host path or volume name.
    pub source: Option<String>,
    /// Path in the container.
    pub target: Option<String>,
    /// Read-only.
    pub read_only: Option<bool>,
}

/// Docker's `HostConfig`, the fields berth acts on (others are accepted and reported as
/// warnings when set).
// Docker's field names, as its Engine API reference documents them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfigBody {
    pub binds: Option<Vec<String>>,
    pub network_mode: Option<String>,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBindingBody>>>>,
    pub restart_policy: Option<RestartPolicyBody>,
    pub auto_remove: Option<bool>,
    pub mounts: Option<Vec<MountBody>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub privileged: Option<bool>,
    pub publish_all_ports: Option<bool>,
    pub readonly_rootfs: Option<bool>,
    pub security_opt: Option<Vec<String>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub runtime: Option<String>,
    pub cpu_shares: Option<i64>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub pids_limit: Option<i64>,
    pub init: Option<bool>,
    pub devices: Option<Vec<Value>>,
    pub ulimits: Option<Vec<Value>>,
    pub shm_size: Option<i64>,
    pub sysctls: Option<BTreeMap<String, String>>,
    pub volumes_from: Option<Vec<String>>,
    pub links: Option<Vec<String>>,
}

/// One `NetworkingConfig.EndpointsConfig` entry.
// Docker's field names, as its Engine API reference documents them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointBody {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamBody>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: Option<String>,
}

/// `IPAMConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamBody {
    /// `--ip`.
    #[serde(rename = "IPv4Address", default)]
    pub ipv4_address: Option<String>,
}

/// `NetworkingConfig`.
// Docker's field names, as its Engine API reference documents them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingBody {
    pub endpoints_config: Option<BTreeMap<String, Option<EndpointBody>>>,
}

/// `POST /containers/create`'s body: Docker's `Config` with `HostConfig` and
/// `NetworkingConfig` beside it.
// Docker's field names, as its Engine API reference documents them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub attach_stdin: Option<bool>,
    pub attach_stdout: Option<bool>,
    pub attach_stderr: Option<bool>,
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: Option<bool>,
    pub open_stdin: Option<bool>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<StrSlice>,
    pub image: Option<String>,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: Option<String>,
    pub entrypoint: Option<StrSlice>,
    pub mac_address: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub host_config: Option<HostConfigBody>,
    pub networking_config: Option<NetworkingBody>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn nonzero(v: Option<i64>) -> Option<String> {
    v.filter(|v| *v != 0).map(|v| v.to_string())
}

/// `8080/tcp` with a host side as `-p` writes it.
fn publish_spec(container_port: &str, b: &PortBindingBody) -> String {
    let ip = b.host_ip.clone().unwrap_or_default();
    let port = b.host_port.clone().unwrap_or_default();
    let ip = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    match (ip.is_empty(), port.is_empty()) {
        (true, true) => container_port.to_owned(),
        (true, false) => format!("{port}:{container_port}"),
        (false, true) => format!("{ip}::{container_port}"),
        (false, false) => format!("{ip}:{port}:{container_port}"),
    }
}

impl CreateBody {
    /// The engine's request (`name` from the query), and warnings about what berth ignores.
    pub fn into_request(
        self,
        name: Option<String>,
    ) -> Result<(CreateRequest, Vec<String>), ApiError> {
        let h = self.host_config.unwrap_or_default();
        let mut warnings = Vec::new();
        let image = non_empty(self.image)
            .ok_or_else(|| ApiError::bad_request("Config.Image is required"))?;
        let cmd = self.cmd.map(StrSlice::into_vec).unwrap_or_default();
        let (entrypoint, args) = match self.entrypoint {
            Some(StrSlice::One(s)) => (Some(s), cmd),
            Some(StrSlice::Many(v)) if v.is_empty() => (Some(String::new()), cmd),
            Some(StrSlice::Many(v)) => {
                let mut args: Vec<String> = v[1..].to_vec();
                args.extend(cmd);
                (Some(v[0].clone()), args)
            }
            None => (None, cmd),
        };
        let restart = h.restart_policy.as_ref().and_then(|p| {
            let name = p.name.clone().filter(|n| !n.is_empty())?;
            Some(match p.maximum_retry_count.filter(|n| *n > 0) {
                Some(n) if name == "on-failure" => format!("{name}:{n}"),
                _ => name,
            })
        });
        let mut volumes = h.binds.clone().unwrap_or_default();
        let mut tmpfs: Vec<String> = h
            .tmpfs
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(p, o)| if o.is_empty() { p } else { format!("{p}:{o}") })
            .collect();
        for m in h.mounts.clone().unwrap_or_default() {
            let target =
                m.target.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
                    ApiError::bad_request("invalid mount config: Target is required")
                })?;
            let ro = if m.read_only.unwrap_or(false) {
                ":ro"
            } else {
                ""
            };
            match m.kind.as_deref().unwrap_or("volume") {
                "bind" => {
                    let src = m.source.clone().unwrap_or_default();
                    if src.is_empty() {
                        return Err(ApiError::bad_request(
                            "invalid mount config for type \"bind\": field Source must not be empty",
                        ));
                    }
                    volumes.push(format!("{src}:{target}{ro}"));
                }
                "volume" => match m.source.clone().filter(|s| !s.is_empty()) {
                    Some(src) => volumes.push(format!("{src}:{target}{ro}")),
                    None => volumes.push(target),
                },
                "tmpfs" => tmpfs.push(target),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid mount config: mount type {other:?} is not supported"
                    )))
                }
            }
        }
        for v in self.volumes.unwrap_or_default().keys() {
            if !volumes
                .iter()
                .any(|b| b.split(':').nth(1) == Some(v.as_str()))
            {
                volumes.push(v.clone());
            }
        }
        let mut publish = Vec::new();
        for (port, bindings) in h.port_bindings.clone().unwrap_or_default() {
            let bindings = bindings.unwrap_or_default();
            if bindings.is_empty() {
                publish.push(port.clone());
            }
            for b in &bindings {
                publish.push(publish_spec(&port, b));
            }
        }
        let network_mode = non_empty(h.network_mode.clone()).filter(|m| m != "default");
        let endpoints = self
            .networking_config
            .and_then(|n| n.endpoints_config)
            .unwrap_or_default();
        let endpoint = network_mode
            .as_ref()
            .and_then(|m| endpoints.get(m).cloned().flatten())
            .or_else(|| endpoints.values().next().cloned().flatten())
            .unwrap_or_default();
        let network = network_mode.or_else(|| {
            (endpoints.len() == 1)
                .then(|| endpoints.keys().next().cloned())
                .flatten()
        });
        let set = |on: bool, what: &str, warnings: &mut Vec<String>| {
            if on {
                warnings.push(format!("{what} is not supported by berth and was ignored"));
            }
        };
        set(
            h.devices.as_ref().is_some_and(|d| !d.is_empty()),
            "HostConfig.Devices",
            &mut warnings,
        );
        set(
            h.ulimits.as_ref().is_some_and(|d| !d.is_empty()),
            "HostConfig.Ulimits",
            &mut warnings,
        );
        set(
            h.sysctls.as_ref().is_some_and(|d| !d.is_empty()),
            "HostConfig.Sysctls",
            &mut warnings,
        );
        set(
            h.volumes_from.as_ref().is_some_and(|d| !d.is_empty()),
            "HostConfig.VolumesFrom",
            &mut warnings,
        );
        set(
            h.links.as_ref().is_some_and(|d| !d.is_empty()),
            "HostConfig.Links",
            &mut warnings,
        );
        let attached = self.attach_stdin.unwrap_or(false)
            || self.attach_stdout.unwrap_or(false)
            || self.attach_stderr.unwrap_or(false);
        let req = CreateRequest {
            image,
            args,
            name,
            auto_remove: h.auto_remove.unwrap_or(false),
            env: self.env.unwrap_or_default(),
            env_files: Vec::new(),
            workdir: non_empty(self.working_dir),
            entrypoint,
            interactive: self.open_stdin.unwrap_or(false),
            tty: self.tty.unwrap_or(false),
            init: h.init.unwrap_or(false),
            stop_signal: non_empty(self.stop_signal),
            stop_timeout: self.stop_timeout,
            restart,
            user: non_empty(self.user),
            hostname: non_empty(self.hostname),
            read_only: h.readonly_rootfs.unwrap_or(false),
            tmpfs,
            volumes,
            cap_add: h.cap_add.clone().unwrap_or_default(),
            cap_drop: h.cap_drop.clone().unwrap_or_default(),
            security_opt: h.security_opt.clone().unwrap_or_default(),
            privileged: h.privileged.unwrap_or(false),
            memory: nonzero(h.memory),
            memory_swap: nonzero(h.memory_swap),
            memory_reservation: nonzero(h.memory_reservation),
            cpu_shares: nonzero(h.cpu_shares),
            cpus: h
                .nano_cpus
                .filter(|n| *n != 0)
                .map(|n| format!("{}", n as f64 / 1e9)),
            cpu_period: nonzero(h.cpu_period),
            cpu_quota: nonzero(h.cpu_quota),
            cpuset_cpus: non_empty(h.cpuset_cpus.clone()),
            pids_limit: nonzero(h.pids_limit),
            network,
            publish,
            publish_all: h.publish_all_ports.unwrap_or(false),
            dns: h.dns.clone().unwrap_or_default(),
            dns_search: h.dns_search.clone().unwrap_or_default(),
            add_host: h.extra_hosts.clone().unwrap_or_default(),
            network_alias: endpoint.aliases.clone().unwrap_or_default(),
            ip: endpoint
                .ipam_config
                .and_then(|i| i.ipv4_address)
                .filter(|s| !s.is_empty()),
            mac_address: non_empty(self.mac_address).or(non_empty(endpoint.mac_address)),
            runtime: non_empty(h.runtime.clone()),
            labels: self
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            detach: !attached,
            ..Default::default()
        };
        Ok((req, warnings))
    }
}

/// `POST /containers/create?name=`.
pub(crate) async fn create(r: Req) -> ApiResult {
    let name = r.query.non_empty("name").map(str::to_owned);
    let body: Option<CreateBody> = http::read_json(r.body).await?;
    let body = body.ok_or_else(|| {
        ApiError::bad_request("config cannot be empty in order to create a container")
    })?;
    let (req, mut warnings) = body.into_request(name)?;
    let st = r.state.clone();
    let c = blocking(move || {
        let lc = st.lifecycle()?;
        lc.ensure_runroot()?;
        match lc.create(&req) {
            Ok(c) => Ok(c),
            Err(ContainerError::ImageNotFound(shown)) => {
                Err(ApiError::not_found(format!("No such image: {shown}")))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    warnings.extend(c.warnings());
    Ok(http::json(
        StatusCode::CREATED,
        &json!({"Id": c.id(), "Warnings": warnings}),
    ))
}

/// `POST /containers/{id}/start`: with an attach waiting, the attached watcher; else the
/// container's monitor (detached).
pub(crate) async fn start(r: Req, id: &str) -> ApiResult {
    let c = find_async(&r.state, id).await?;
    if c.status.is_active() {
        return Ok(not_modified());
    }
    if matches!(c.status, ContainerStatus::Dead | ContainerStatus::Removing) {
        return Err(ApiError::conflict(format!(
            "cannot start container {}: container is marked for removal or dead",
            c.id()
        )));
    }
    let pending = r
        .state
        .pending
        .lock()
        .ok()
        .and_then(|mut p| p.remove(c.id()));
    if let Some(p) = pending {
        crate::streams::start_attached(&r.state, &c, p).await?;
        return http::no_content();
    }
    let st = r.state.clone();
    blocking(move || {
        let lc = st.lifecycle()?;
        lc.start_detached(&c, &st.config.exe)?;
        // The monitor is our child until it ends: reap it then.
        if let Ok(rec) = lc.store().container(c.id()) {
            let pid = rec.monitor_pid as i32;
            if pid > 0 {
                std::thread::spawn(move || {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                });
            }
        }
        Ok(())
    })
    .await?;
    http::no_content()
}

fn not_modified() -> hyper::Response<http::Body> {
    let mut r = hyper::Response::new(http::Body::Empty);
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r
}

fn signal_of(v: Option<&str>) -> Result<Option<i32>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => berth_engine::container::options::parse_signal("signal", s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// `POST /containers/{id}/stop?t=&signal=`.
pub(crate) async fn stop(r: Req, id: &str) -> ApiResult {
    let t = match r.query.int("t")? {
        Some(t) => Some(t),
        None => r.query.int("timeout")?,
    };
    let sig = signal_of(r.query.get("signal"))?;
    let c = find_async(&r.state, id).await?;
    if !c.status.is_active() {
        return Ok(not_modified());
    }
    let st = r.state.clone();
    blocking(move || Ok(st.lifecycle()?.stop_container(&c, t, sig)?)).await?;
    http::no_content()
}

/// `POST /containers/{id}/restart?t=`.
pub(crate) async fn restart(r: Req, id: &str) -> ApiResult {
    let t = r.query.int("t")?;
    let sig = signal_of(r.query.get("signal"))?;
    let c = find_async(&r.state, id).await?;
    let st = r.state.clone();
    blocking(move || {
        let lc = st.lifecycle()?;
        if c.status.is_active() {
            lc.stop_container(&c, t, sig)?;
        }
        let c = find(&lc, c.id())?;
        lc.start_detached(&c, &st.config.exe)?;
        Ok(())
    })
    .await?;
    http::no_content()
}

/// `POST /containers/{id}/kill?signal=`.
pub(crate) async fn kill(r: Req, id: &str) -> ApiResult {
    let sig = signal_of(r.query.get("signal"))?.unwrap_or(libc_sigkill());
    let c = find_async(&r.state, id).await?;
    if !c.status.is_active() {
        return Err(ApiError::conflict(format!(
            "Cannot kill container: {}: Container {} is not running",
            c.name(),
            c.id()
        )));
    }
    let st = r.state.clone();
    blocking(move || Ok(st.lifecycle()?.kill_container(&c, sig)?)).await?;
    http::no_content()
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`. The status line
/// goes out at once (clients send the start after it), the body when the condition holds.
pub(crate) async fn wait(r: Req, id: &str) -> ApiResult {
    let condition = r.query.get("condition").unwrap_or("not-running").to_owned();
    if !["not-running", "next-exit", "removed", ""].contains(&condition.as_str()) {
        return Err(ApiError::bad_request(format!(
            "invalid condition: {condition:?}"
        )));
    }
    let c = find_async(&r.state, id).await?;
    let id = c.id().to_owned();
    let first = c.record.clone();
    let st = r.state.clone();
    let (tx, resp) = http::stream("application/json");
    tokio::spawn(async move {
        let mut last_code = first.exit_code;
        let mut seen_running = c.status.is_active();
        loop {
            let notified = st.changed.notified();
            let st2 = st.clone();
            let id2 = id.clone();
            let now = blocking(move || {
                let lc = st2.lifecycle()?;
                Ok(lc.find(&id2).ok())
            })
            .await
            .ok()
            .flatten();
            let done = match &now {
                None => Some(
                    st.exits
                        .lock()
                        .ok()
                        .and_then(|e| e.get(&id).copied())
                        .unwrap_or(last_code),
                ),
                Some(n) => {
                    last_code = n.record.exit_code;
                    let active = n.status.is_active();
                    seen_running |= active;
                    let exited = n.status == ContainerStatus::Exited;
                    match condition.as_str() {
                        "removed" => None,
                        "next-exit" => (exited
                            && (seen_running || n.record.finished_at != first.finished_at))
                            .then_some(n.record.exit_code),
                        _ => (!active).then_some(n.record.exit_code),
                    }
                }
            };
            if let Some(code) = done {
                let _ = tx
                    .send(json_line(&json!({"StatusCode": code, "Error": null})))
                    .await;
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}

/// `POST /containers/{id}/resize?h=&w=`: accepted; berth cannot resize a TTY it does not
/// hold (the watcher holds it).
pub(crate) async fn resize(r: Req, id: &str) -> ApiResult {
    let _ = r.query.int("h")?;
    let _ = r.query.int("w")?;
    find_async(&r.state, id).await?;
    Ok(http::with_type(
        StatusCode::OK,
        "text/plain",
        http::Body::Empty,
    ))
}

/// Docker's `since`/`until`: Unix seconds with optional fraction, as RFC 3339.
fn time_param(v: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(v) = v.filter(|s| !s.is_empty() && *s != "0") else {
        return Ok(None);
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let secs: i64 = secs
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid time {v:?}")))?;
    let frac = format!("{frac:0<9}");
    let nanos: i64 = frac[..9].parse().unwrap_or(0);
    Ok(Some(berth_engine::container::rfc3339(
        secs * 1_000_000_000 + nanos,
    )))
}

/// `GET /containers/{id}/logs?follow=&stdout=&stderr=&since=&until=&timestamps=&tail=`.
pub(crate) async fn logs(r: Req, id: &str) -> ApiResult {
    let follow = r.query.bool("follow", false)?;
    let stdout = r.query.bool("stdout", false)?;
    let stderr = r.query.bool("stderr", false)?;
    let timestamps = r.query.bool("timestamps", false)?;
    let since = time_param(r.query.get("since"))?;
    let until = time_param(r.query.get("until"))?;
    let tail = match r.query.get("tail") {
        None | Some("" | "all") => None,
        Some(t) => Some(
            t.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {t:?}")))?,
        ),
    };
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let c = find_async(&r.state, id).await?;
    let tty = c.spec.config.tty;
    let st = r.state.clone();
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let (tx, resp) = http::stream(content_type);
    tokio::task::spawn_blocking(move || {
        let Ok(lc) = st.lifecycle() else { return };
        let opts = berth_engine::container::logs::LogOptions {
            follow,
            tail,
            since,
        };
        let mut sink = |e: &berth_engine::container::logs::LogEntry| -> std::io::Result<()> {
            if until.as_ref().is_some_and(|u| e.time.as_str() > u.as_str()) {
                return Ok(());
            }
            let err = e.stream == "stderr";
            if (err && !stderr) || (!err && !stdout) {
                return Ok(());
            }
            let text = if timestamps {
                format!("{} {}", e.time, e.log)
            } else {
                e.log.clone()
            };
            let chunk: Bytes = if tty {
                Bytes::from(text.into_bytes())
            } else {
                frame(if err { STDERR } else { STDOUT }, text.as_bytes())
            };
            tx.blocking_send(chunk)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
        };
        if let Err(e) = lc.logs(&c, &opts, &mut sink) {
            log::debug!("logs: {e}");
        }
    });
    Ok(resp)
}

/// `GET /containers/{id}/top?ps_args=`.
pub(crate) async fn top(r: Req, id: &str) -> ApiResult {
    let c = find_async(&r.state, id).await?;
    if !c.status.is_active() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id()
        )));
    }
    let st = r.state.clone();
    let t = blocking(move || Ok(st.lifecycle()?.top(&c)?)).await?;
    http::ok_json(&json!({"Titles": t.titles, "Processes": t.processes}))
}

/// Docker's `StatsJSON` from two samples of the engine's figures.
fn stats_doc(
    c: &Container,
    now: &berth_engine::container::top::StatsRow,
    pre: Option<&berth_engine::container::top::StatsRow>,
) -> Value {
    let read = berth_engine::container::rfc3339(berth_engine::container::now_nanos());
    let cpu = |s: Option<&berth_engine::container::top::StatsRow>| match s {
        Some(s) => json!({
            "cpu_usage": {"total_usage": s.cpu_total_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": s.system_ns,
            "online_cpus": s.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": 0,
            "online_cpus": now.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
    };
    json!({
        "read": read,
        "preread": "0001-01-01T00:00:00Z",
        "id": c.id(),
        "name": format!("/{}", c.name()),
        "pids_stats": {"current": now.pids},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": now.block_read},
            {"major": 0, "minor": 0, "op": "write", "value": now.block_write},
        ]},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(Some(now)),
        "precpu_stats": cpu(pre),
        "memory_stats": {"usage": now.mem_usage, "limit": now.mem_limit, "stats": {}},
        "networks": {"eth0": {
            "rx_bytes": now.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": now.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }},
    })
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: one document, or one a second.
pub(crate) async fn stats(r: Req, id: &str) -> ApiResult {
    let stream = r.query.bool("stream", true)?;
    let one_shot = r.query.bool("one-shot", false)?;
    let c = find_async(&r.state, id).await?;
    let st = r.state.clone();
    let (tx, resp) = http::stream("application/json");
    tokio::task::spawn_blocking(move || {
        let Ok(lc) = st.lifecycle() else { return };
        let mut pre: Option<berth_engine::container::top::StatsRow> = None;
        if !stream && !one_shot {
            // Docker samples twice a second apart so that the CPU figure has a base.
            pre = Some(lc.stats(&c));
            std::thread::sleep(Duration::from_secs(1));
        }
        loop {
            let now = lc.stats(&c);
            let doc = stats_doc(&c, &now, pre.as_ref());
            if tx.blocking_send(json_line(&doc)).is_err() || !stream {
                return;
            }
            pre = Some(now);
            std::thread::sleep(Duration::from_secs(1));
            match lc.find(c.id()) {
                Ok(n) if n.status.is_active() => {}
                _ => return,
            }
        }
    });
    Ok(resp)
}

/// `DELETE /containers/{id}?force=&v=`.
pub(crate) async fn remove(r: Req, id: &str) -> ApiResult {
    let force = r.query.bool("force", false)?;
    let volumes = r.query.bool("v", false)?;
    let c = find_async(&r.state, id).await?;
    if c.status.is_active() && !force {
        return Err(ApiError::conflict(format!(
            "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
            c.name()
        )));
    }
    if let Ok(mut p) = r.state.pending.lock() {
        p.remove(c.id());
    }
    let st = r.state.clone();
    blocking(move || Ok(st.lifecycle()?.remove_container(&c, force, volumes)?)).await?;
    st_changed(&r.state);
    http::no_content()
}

fn st_changed(st: &Arc<State>) {
    st.changed.notify_waiters();
}

/// `POST /containers/prune`.
pub(crate) async fn prune(r: Req) -> ApiResult {
    let st = r.state.clone();
    let ids = blocking(move || Ok(st.lifecycle()?.prune()?)).await?;
    st_changed(&r.state);
    http::ok_json(&json!({
        "ContainersDeleted": if ids.is_empty() { Value::Null } else { json!(ids) },
        "SpaceReclaimed": 0,
    }))
}

/// `POST /containers/{id}/pause`.
pub(crate) async fn pause(r: Req, id: &str) -> ApiResult {
    let c = find_async(&r.state, id).await?;
    let st = r.state.clone();
    blocking(move || Ok(st.lifecycle()?.pause_container(&c)?)).await?;
    http::no_content()
}

/// `POST /containers/{id}/unpause`.
pub(crate) async fn unpause(r: Req, id: &str) -> ApiResult {
    let c = find_async(&r.state, id).await?;
    let st = r.state.clone();
    blocking(move || Ok(st.lifecycle()?.unpause_container(&c)?)).await?;
    http::no_content()
}

/// `POST /containers/{id}/rename?name=`.
pub(crate) async fn rename(r: Req, id: &str) -> ApiResult {
    let name = r
        .query
        .non_empty("name")
        .ok_or_else(|| ApiError::bad_request("name is required"))?
        .trim_start_matches('/')
        .to_owned();
    let c = find_async(&r.state, id).await?;
    let st = r.state.clone();
    blocking(move || Ok(st.lifecycle()?.rename_container(&c, &name)?)).await?;
    http::no_content()
}
