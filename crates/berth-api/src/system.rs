//! System routes: `/_ping`, `/version`, `/info`, `/auth`, `/events`, `/system/df`.

use hyper::header::HeaderValue;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{self, ApiError, ApiResult, Body};
use crate::router::Req;
use crate::{blocking, API_VERSION, MIN_API_VERSION};

/// berth's version, reported as the server's.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `GET|HEAD /_ping`: `OK`, with the headers clients negotiate with. `Builder-Version: 1`
/// says the legacy builder: the `docker` CLI then builds through `POST /build`.
pub(crate) fn ping(r: Req) -> ApiResult {
    let body = if r.method == hyper::Method::HEAD {
        Body::Empty
    } else {
        Body::Full(Some("OK".into()))
    };
    let mut resp = http::with_type(StatusCode::OK, "text/plain; charset=utf-8", body);
    let h = resp.headers_mut();
    h.insert("builder-version", HeaderValue::from_static("1"));
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    h.insert("swarm", HeaderValue::from_static("inactive"));
    Ok(resp)
}

/// `GET /version`.
pub(crate) async fn version(_r: Req) -> ApiResult {
    let kernel = kernel_version();
    http::ok_json(&json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": SERVER_VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Arch": arch(),
                "Os": "linux",
                "KernelVersion": kernel,
                "Experimental": "false",
                "GitCommit": "",
                "GoVersion": "",
                "BuildTime": "",
            },
        }],
        "Version": SERVER_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "linux".into())
}

/// `GET /info`.
pub(crate) async fn info(r: Req) -> ApiResult {
    let st = r.state.clone();
    let (containers, images) = blocking(move || {
        let lc = st.lifecycle()?;
        let all = lc.all()?;
        let images = st.engine()?.list_images(&Default::default())?.len();
        Ok((all, images))
    })
    .await?;
    let running = containers
        .iter()
        .filter(|c| c.status == berth_engine::container::ContainerStatus::Running)
        .count();
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let root = r.state.config.root.display().to_string();
    http::ok_json(&json!({
        "ID": "berth",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Authorization": Value::Null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": berth_engine::container::create::swap_accounting_available(),
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": berth_engine::container::rfc3339(berth_engine::container::now_nanos()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "GenericResources": Value::Null,
        "DockerRootDir": root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": SERVER_VERSION,
        "Runtimes": {"berth": {"path": "berth"}, "runc": {"path": "runc"}, "crun": {"path": "crun"}},
        "DefaultRuntime": "berth",
        "Swarm": {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
            "ControlAvailable": false, "Error": "", "RemoteManagers": Value::Null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "berth",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": [],
    }))
}

/// `POST /auth`'s body.
#[derive(Debug, Default, Deserialize)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "serveraddress")]
    server_address: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
}

/// Credentials of `X-Registry-Auth` (base64url JSON) or `/auth`'s body.
#[derive(Debug, Clone, Default)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// The registry.
    pub server: String,
}

/// Decodes `X-Registry-Auth`; `None` when absent, empty or without a user.
pub fn registry_auth(headers: &hyper::HeaderMap) -> Option<RegistryAuth> {
    use base64::Engine as _;
    let raw = http::header(headers, "x-registry-auth")?.trim();
    if raw.is_empty() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    let a: AuthConfig = serde_json::from_slice(&bytes).ok()?;
    let password = if a.password.is_empty() {
        a.identity_token
    } else {
        a.password
    };
    if a.username.is_empty() || password.is_empty() {
        return None;
    }
    Some(RegistryAuth {
        username: a.username,
        password,
        server: a.server_address,
    })
}

/// Hands `auth` to the engine's credential store for `host` (checked against the
/// registry): the engine's pulls and pushes read their credentials there.
pub(crate) fn use_registry_auth(
    engine: &berth_engine::Engine,
    host: &str,
    auth: &RegistryAuth,
) -> Result<(), ApiError> {
    engine
        .login(&berth_engine::registry::LoginRequest {
            server: Some(host.to_owned()),
            username: auth.username.clone(),
            password: auth.password.clone(),
            tls_verify: None,
        })
        .map(|_| ())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// `POST /auth`: checks credentials against a registry.
pub(crate) async fn auth(r: Req) -> ApiResult {
    let a: Option<AuthConfig> = http::read_json(r.body).await?;
    let a = a.unwrap_or_default();
    let server = a
        .server_address
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2")
        .to_owned();
    let password = if a.password.is_empty() {
        a.identity_token.clone()
    } else {
        a.password.clone()
    };
    if a.username.is_empty() || password.is_empty() {
        return Err(ApiError::bad_request("Username and password are required"));
    }
    let st = r.state.clone();
    blocking(move || {
        let engine = st.engine()?;
        let host = if server.is_empty() || server.contains("index.docker.io") {
            "docker.io".to_owned()
        } else {
            server
        };
        use_registry_auth(
            &engine,
            &host,
            &RegistryAuth {
                username: a.username,
                password,
                server: host.clone(),
            },
        )
    })
    .await?;
    http::ok_json(&json!({"Status": "Login Succeeded", "IdentityToken": ""}))
}

/// `GET /events?since=&until=&filters=`: the engine's event journal (replayed from `since`,
/// followed until `until` or until the client goes away), one JSON message a line.
pub(crate) async fn events(r: Req) -> ApiResult {
    use berth_engine::events::{self, EventFilter, EventsRequest};
    let now = berth_engine::container::now_nanos();
    let time = |key: &str| -> Result<Option<i64>, ApiError> {
        match r.query.non_empty(key) {
            None => Ok(None),
            Some(v) => events::time::parse_timestamp(v, now)
                .map(Some)
                .map_err(|e| ApiError::bad_request(e.to_string())),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let mut filter = EventFilter::default();
    for (k, v) in r.query.filters()? {
        filter
            .add(&k, &v)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let req = EventsRequest {
        since,
        until,
        filter,
    };
    let root = r.state.config.root.clone();
    let (tx, resp) = http::stream("application/json");
    tokio::task::spawn_blocking(move || {
        let r = events::stream(&root, &req, |ev| {
            let line = serde_json::to_value(ev).unwrap_or(Value::Null);
            tx.blocking_send(http::json_line(&line)).is_ok()
        });
        if let Err(e) = r {
            log::warn!("events: {e}");
        }
    });
    Ok(resp)
}

/// `GET /system/df`.
pub(crate) async fn df(r: Req) -> ApiResult {
    let st = r.state.clone();
    let (images, containers, layers) = blocking(move || {
        let engine = st.engine()?;
        let du = engine.disk_usage()?;
        let images = crate::images::summaries(&engine, &[])?;
        let lc = st.lifecycle()?;
        let containers = crate::containers::summaries(&lc, true, &[], false)?;
        Ok((images, containers, du.images_size))
    })
    .await?;
    http::ok_json(&json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": [],
        "BuildCache": [],
    }))
}
