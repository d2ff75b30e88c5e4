//! The routes: every request becomes a response here, errors included.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{Handler, Request, Response};
use crate::keygen::{Keygen, KeygenConfig};
use crate::mem::{parse_size, Ballast, MemError};
use crate::metrics::{Gauges, Metrics};
use crate::page::{Page, PageInfo};
use crate::probe::{Probe, ProbeConfig};
use crate::{fsbrowse, sysinfo};

/// How the app was started.
#[derive(Debug, Clone)]
pub struct Config {
    /// The version shown (set at build time from `KUARD_VERSION`).
    pub version: String,
    /// The command line, for `/env/api`.
    pub argv: Vec<String>,
    /// Initial liveness failures (`--liveness-fail-next`).
    pub liveness_fail_next: i64,
    /// Initial readiness failures (`--readiness-fail-next`).
    pub readiness_fail_next: i64,
    /// The directory `/fs/` shows (`/` in a container).
    pub fs_root: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: crate::VERSION.to_string(),
            argv: Vec::new(),
            liveness_fail_next: 0,
            readiness_fail_next: 0,
            fs_root: PathBuf::from("/"),
        }
    }
}

/// A failure answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such route.
    #[error("not found: {0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method {method} not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path.
        path: String,
        /// The methods allowed.
        allow: &'static str,
    },
    /// A JSON body did not parse.
    #[error("invalid JSON body: {0}")]
    BadJson(#[from] serde_json::Error),
    /// A memory request was refused.
    #[error(transparent)]
    Mem(#[from] MemError),
    /// A keygen configuration was refused.
    #[error(transparent)]
    Keygen(#[from] crate::keygen::KeygenError),
    /// A file-system path was refused.
    #[error(transparent)]
    Fs(#[from] fsbrowse::FsError),
}

impl ApiError {
    /// The class of this error.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ApiError::NotFound(_) => crate::ErrorKind::NotFound,
            ApiError::MethodNotAllowed { .. } | ApiError::BadJson(_) => {
                crate::ErrorKind::InvalidArgument
            }
            ApiError::Mem(e) => e.kind(),
            ApiError::Keygen(e) => e.kind(),
            ApiError::Fs(e) => e.kind(),
        }
    }

    /// The status code for this error: the one place errors become responses.
    pub fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::BadJson(_) | ApiError::Mem(_) | ApiError::Keygen(_) => 400,
            ApiError::Fs(e) => e.status(),
        };
        let allow = match &self {
            ApiError::MethodNotAllowed { allow, .. } => Some(*allow),
            _ => None,
        };
        let resp = Response::json(status, &serde_json::json!({ "error": self.to_string() }));
        match allow {
            Some(a) => resp.with_header("Allow", a),
            None => resp,
        }
    }
}

struct Cached {
    at: Instant,
    hostname: String,
    addresses: Vec<String>,
}

/// The app: state shared by all connections.
pub struct App {
    config: Config,
    started: f64,
    page: Page,
    liveness: Probe,
    readiness: Probe,
    ballast: Ballast,
    keygen: Arc<Keygen>,
    metrics: Metrics,
    host: Mutex<Cached>,
}

/// Cached host facts are re-read after this long (addresses can change on network connect).
const HOST_TTL: Duration = Duration::from_secs(2);

/// The body of `PUT /keygen/api`, all fields optional except `enable`.
type KeygenBody = KeygenConfig;

impl App {
    /// A new app.
    pub fn new(config: Config) -> App {
        App {
            liveness: Probe::new("liveness", config.liveness_fail_next),
            readiness: Probe::new("readiness", config.readiness_fail_next),
            config,
            started: sysinfo::unix_now(),
            page: Page::default(),
            ballast: Ballast::default(),
            keygen: Arc::new(Keygen::default()),
            metrics: Metrics::default(),
            host: Mutex::new(Cached {
                at: Instant::now(),
                hostname: sysinfo::hostname(),
                addresses: sysinfo::addresses(),
            }),
        }
    }

    fn host(&self) -> (String, Vec<String>) {
        let mut c = self.host.lock().unwrap_or_else(|e| e.into_inner());
        if c.at.elapsed() > HOST_TTL {
            *c = Cached {
                at: Instant::now(),
                hostname: sysinfo::hostname(),
                addresses: sysinfo::addresses(),
            };
        }
        (c.hostname.clone(), c.addresses.clone())
    }

    /// Answers one request (also counting it in `/metrics`).
    pub fn respond(&self, req: &Request) -> Response {
        let t = Instant::now();
        let path = strip_prefix(&req.path);
        let (route, result) = self.route(req, path);
        let resp = result.unwrap_or_else(ApiError::into_response);
        self.metrics
            .record(route, resp.status, t.elapsed().as_micros() as u64);
        resp
    }

    fn route(&self, req: &Request, path: &str) -> (usize, Result<Response, ApiError>) {
        let m = req.method.as_str();
        let get = m == "GET" || m == "HEAD";
        let not_allowed = |allow: &'static str| {
            Err(ApiError::MethodNotAllowed {
                method: m.to_string(),
                path: req.path.clone(),
                allow,
            })
        };
        match path {
            "/" | "/index.html" => (
                0,
                if get {
                    Ok(self.index(req))
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/healthy" => (
                1,
                if get {
                    Ok(probe_response(self.liveness.check()))
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/ready" => (
                2,
                if get {
                    Ok(probe_response(self.readiness.check()))
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/healthy/api" => (3, self.probe_api(&self.liveness, req)),
            "/ready/api" => (4, self.probe_api(&self.readiness, req)),
            "/env/api" => (
                5,
                if get {
                    Ok(self.env())
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/mem/api" => (
                6,
                if get {
                    Ok(self.mem_status())
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/mem/api/alloc" => (
                6,
                if m == "POST" {
                    self.mem_alloc(req)
                } else {
                    not_allowed("POST")
                },
            ),
            "/mem/api/clear" => (
                6,
                if m == "POST" {
                    Ok(self.mem_clear())
                } else {
                    not_allowed("POST")
                },
            ),
            "/keygen" | "/keygen/api" => (7, self.keygen_api(req)),
            "/keygen/api/start" => (
                7,
                if m == "POST" {
                    self.keygen_start(req)
                } else {
                    not_allowed("POST")
                },
            ),
            "/keygen/api/stop" => (
                7,
                if m == "POST" {
                    self.keygen_stop()
                } else {
                    not_allowed("POST")
                },
            ),
            "/metrics" => (
                9,
                if get {
                    Ok(self.metrics_text())
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/version" => (
                10,
                if get {
                    Ok(Response::text(200, format!("{}\n", self.config.version)))
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            "/favicon.ico" => (10, Ok(Response::new(204, "image/x-icon", Vec::new()))),
            "/fs" => (
                8,
                Ok(Response::text(301, "see /fs/\n").with_header("Location", "/fs/")),
            ),
            p if p.starts_with("/fs/") => (
                8,
                if get {
                    fsbrowse::serve(&self.config.fs_root, &p[3..]).map_err(ApiError::from)
                } else {
                    not_allowed("GET, HEAD")
                },
            ),
            _ => (11, Err(ApiError::NotFound(req.path.clone()))),
        }
    }

    fn index(&self, req: &Request) -> Response {
        let (hostname, addresses) = self.host();
        let info = PageInfo {
            version: &self.config.version,
            hostname: &hostname,
            addresses: &addresses,
        };
        Response::new(
            200,
            "text/html; charset=utf-8",
            self.page.render(&info, req).into_bytes(),
        )
        .with_header("Cache-Control", "no-store")
    }

    fn probe_api(&self, probe: &Probe, req: &Request) -> Result<Response, ApiError> {
        match req.method.as_str() {
            "GET" | "HEAD" => Ok(Response::json(200, &probe.status())),
            "PUT" | "POST" => {
                let cfg: ProbeConfig = serde_json::from_slice(&req.body)?;
                probe.set_fail_next(cfg.fail_next);
                eprintln!(
                    "kuard: {} probe: failNext set to {}",
                    probe.status().probe,
                    cfg.fail_next
                );
                Ok(Response::json(200, &probe.status()))
            }
            m => Err(ApiError::MethodNotAllowed {
                method: m.to_string(),
                path: req.path.clone(),
                allow: "GET, HEAD, PUT",
            }),
        }
    }

    fn env(&self) -> Response {
        let env: std::collections::BTreeMap<String, String> = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Response::json(
            200,
            &serde_json::json!({ "commandLine": self.config.argv, "env": env }),
        )
    }

    fn mem_json(&self) -> serde_json::Value {
        let (allocated, allocations) = self.ballast.held();
        let cg = sysinfo::cgroup_memory();
        serde_json::json!({
            "rss": sysinfo::rss_bytes(),
            "peakRss": sysinfo::peak_rss_bytes(),
            "allocated": allocated,
            "allocations": allocations,
            "memTotal": sysinfo::mem_total_bytes(),
            "cgroup": {
                "version": if cg.version.is_empty() { None } else { Some(cg.version) },
                "limit": cg.limit,
                "usage": cg.usage,
            },
        })
    }

    fn mem_status(&self) -> Response {
        Response::json(200, &self.mem_json())
    }

    fn mem_alloc(&self, req: &Request) -> Result<Response, ApiError> {
        let raw = req.query_param("size").ok_or(MemError::MissingSize)?;
        let size = parse_size(&raw)?;
        // One allocation may not exceed the machine: beyond that is a typo, not a demo.
        let total = sysinfo::mem_total_bytes().unwrap_or(1 << 40);
        eprintln!("kuard: allocating {size} bytes");
        self.ballast.alloc(size, total)?;
        Ok(Response::json(200, &self.mem_json()))
    }

    fn mem_clear(&self) -> Response {
        let freed = self.ballast.clear();
        eprintln!("kuard: freed {freed} bytes");
        Response::json(200, &self.mem_json())
    }

    fn keygen_api(&self, req: &Request) -> Result<Response, ApiError> {
        match req.method.as_str() {
            "GET" | "HEAD" => Ok(Response::json(200, &self.keygen.status())),
            "PUT" | "POST" => {
                let cfg: KeygenBody = serde_json::from_slice(&req.body)?;
                self.keygen.apply(cfg)?;
                eprintln!(
                    "kuard: keygen {}",
                    if cfg.enable { "started" } else { "stopped" }
                );
                Ok(Response::json(200, &self.keygen.status()))
            }
            m => Err(ApiError::MethodNotAllowed {
                method: m.to_string(),
                path: req.path.clone(),
                allow: "GET, HEAD, PUT",
            }),
        }
    }

    fn keygen_start(&self, req: &Request) -> Result<Response, ApiError> {
        let num = |name: &str| -> Result<u64, ApiError> {
            match req.query_param(name) {
                None => Ok(0),
                Some(v) => v.parse::<u64>().map_err(|_| {
                    ApiError::BadJson(serde::de::Error::custom(format!(
                        "{name} must be a non-negative integer, got {v:?}"
                    )))
                }),
            }
        };
        let workers = match req.query_param("workers") {
            None => 1,
            Some(_) => u32::try_from(num("workers")?).unwrap_or(u32::MAX),
        };
        let cfg = KeygenConfig {
            enable: true,
            num_to_gen: num("numToGen")?,
            time_to_run: num("timeToRun")?,
            workers,
        };
        self.keygen.apply(cfg)?;
        eprintln!("kuard: keygen started with {workers} worker(s)");
        Ok(Response::json(200, &self.keygen.status()))
    }

    fn keygen_stop(&self) -> Result<Response, ApiError> {
        self.keygen.apply(KeygenConfig::default())?;
        eprintln!("kuard: keygen stopped");
        Ok(Response::json(200, &self.keygen.status()))
    }

    fn metrics_text(&self) -> Response {
        let g = Gauges {
            version: self.config.version.clone(),
            rss: sysinfo::rss_bytes(),
            allocated: self.ballast.held().0,
            cgroup_limit: sysinfo::cgroup_memory().limit,
            keys: self.keygen.total(),
            start_time: self.started,
            liveness_fail_next: self.liveness.status().fail_next,
            readiness_fail_next: self.readiness.status().fail_next,
        };
        Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            self.metrics.render(&g).into_bytes(),
        )
    }
}

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        self.respond(req)
    }
}

fn probe_response((code, body): (u16, String)) -> Response {
    Response::text(code, body).with_header("Cache-Control", "no-store")
}

/// Every route is also served under `/a`, `/b` and `/c` (for path-based routing demos).
pub fn strip_prefix(path: &str) -> &str {
    for p in ["/a", "/b", "/c"] {
        if let Some(rest) = path.strip_prefix(p) {
            if rest.is_empty() {
                return "/";
            }
            if rest.starts_with('/') {
                return rest;
            }
        }
    }
    path
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn app() -> App {
        App::new(Config {
            version: "test".into(),
            argv: vec!["kuard".into()],
            ..Config::default()
        })
    }

    fn req(method: &str, target: &str, body: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            version: "HTTP/1.1".into(),
            body: body.as_bytes().to_vec(),
            ..Request::default()
        }
    }

    fn json(r: &Response) -> serde_json::Value {
        serde_json::from_slice(r.body_bytes()).unwrap()
    }

    #[test]
    fn prefixes() {
        assert_eq!(strip_prefix("/a"), "/");
        assert_eq!(strip_prefix("/b/healthy"), "/healthy");
        assert_eq!(strip_prefix("/abc"), "/abc");
        assert_eq!(strip_prefix("/c/fs/etc"), "/fs/etc");
    }

    #[test]
    fn index_under_every_prefix() {
        let a = app();
        for p in ["/", "/a", "/b/", "/c/index.html"] {
            let r = a.respond(&req("GET", p, ""));
            assert_eq!(r.status, 200, "{p}");
            assert!(String::from_utf8_lossy(r.body_bytes()).contains("test"));
        }
        assert_eq!(a.respond(&req("POST", "/", "")).status, 405);
        assert_eq!(a.respond(&req("GET", "/nope", "")).status, 404);
        assert_eq!(a.respond(&req("GET", "/d/healthy", "")).status, 404);
    }

    #[test]
    fn probe_apis() {
        let a = app();
        assert_eq!(a.respond(&req("GET", "/ready", "")).status, 200);
        let r = a.respond(&req("PUT", "/ready/api", r#"{"failNext": 2}"#));
        assert_eq!(json(&r)["failNext"], 2);
        assert_eq!(a.respond(&req("GET", "/a/ready", "")).status, 500);
        assert_eq!(a.respond(&req("GET", "/ready", "")).status, 500);
        assert_eq!(a.respond(&req("GET", "/ready", "")).status, 200);
        let h = json(&a.respond(&req("GET", "/ready/api", "")));
        assert_eq!(h["history"].as_array().unwrap().len(), 4);
        assert_eq!(
            a.respond(&req("PUT", "/healthy/api", r#"{"failNext": -1}"#))
                .status,
            200
        );
        for _ in 0..3 {
            assert_eq!(a.respond(&req("GET", "/healthy", "")).status, 500);
        }
        for bad in ["", "{", r#"{"failNext":"x"}"#, r#"{"other":1}"#, "[]"] {
            assert_eq!(
                a.respond(&req("PUT", "/healthy/api", bad)).status,
                400,
                "{bad}"
            );
        }
        assert_eq!(a.respond(&req("DELETE", "/healthy/api", "")).status, 405);
    }

    #[test]
    fn mem_api_bad_input_is_400() {
        let a = app();
        for q in [
            "",
            "?size=-1",
            "?size=abc",
            "?size=0",
            "?size=99999999999999999999",
            "?size=1000000G",
        ] {
            let r = a.respond(&req("POST", &format!("/mem/api/alloc{q}"), ""));
            assert_eq!(
                r.status,
                400,
                "{q}: {}",
                String::from_utf8_lossy(r.body_bytes())
            );
            assert!(json(&r)["error"].as_str().unwrap().len() > 10);
        }
        let r = a.respond(&req("POST", "/mem/api/alloc?size=2M", ""));
        assert_eq!(r.status, 200);
        assert_eq!(json(&r)["allocated"], 2 << 20);
        let r = a.respond(&req("POST", "/mem/api/clear", ""));
        assert_eq!(json(&r)["allocated"], 0);
        assert_eq!(a.respond(&req("GET", "/mem/api/alloc", "")).status, 405);
        assert!(
            json(&a.respond(&req("GET", "/mem/api", "")))["rss"]
                .as_u64()
                .unwrap()
                > 0
        );
    }

    #[test]
    fn env_and_metrics() {
        let a = app();
        let e = json(&a.respond(&req("GET", "/env/api", "")));
        assert_eq!(e["commandLine"][0], "kuard");
        assert!(e["env"].is_object());
        a.respond(&req("GET", "/", ""));
        let m = a.respond(&req("GET", "/metrics", ""));
        let t = String::from_utf8_lossy(m.body_bytes()).into_owned();
        assert!(
            t.contains("kuard_http_requests_total{route=\"index\",code=\"200\"} 1"),
            "{t}"
        );
    }

    #[test]
    fn keygen_api() {
        let a = app();
        let r = a.respond(&req(
            "PUT",
            "/keygen/api",
            r#"{"enable":true,"numToGen":5}"#,
        ));
        assert_eq!(r.status, 200);
        let t = Instant::now();
        while json(&a.respond(&req("GET", "/keygen/api", "")))["running"] == true {
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(json(&a.respond(&req("GET", "/keygen", "")))["generated"], 5);
        assert_eq!(
            a.respond(&req("POST", "/keygen/api/start?workers=0", ""))
                .status,
            400
        );
        assert_eq!(
            a.respond(&req("POST", "/keygen/api/start?workers=x", ""))
                .status,
            400
        );
        assert_eq!(
            a.respond(&req("PUT", "/keygen/api", r#"{"enable":"yes"}"#))
                .status,
            400
        );
        assert_eq!(
            a.respond(&req("POST", "/keygen/api/start?timeToRun=1", ""))
                .status,
            200
        );
        assert_eq!(a.respond(&req("POST", "/keygen/api/stop", "")).status, 200);
    }
}
