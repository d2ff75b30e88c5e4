//! Exec routes: create (an instance kept by the service), start (hijacked, or detached),
//! resize, inspect. The process runs under a `berth exec` watcher whose pipes the service
//! bridges to the connection; its exit status is the instance's `ExitCode`.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::http::{self, ApiError, ApiResult};
use crate::router::Req;
use crate::streams::{bridge, hijack, Hijack, Pipes};
use crate::{blocking, State};

/// One exec instance.
#[derive(Debug, Clone)]
pub struct ExecSession {
    /// The container's full ID.
    pub container: String,
    /// The request.
    pub config: ExecBody,
    /// Started and not ended.
    pub running: bool,
    /// Started once (an instance starts at most once).
    pub started: bool,
    /// The exit status, once ended.
    pub exit_code: Option<i64>,
    /// The watcher's PID.
    pub pid: u32,
}

/// `POST /containers/{id}/exec`'s body.
// Docker's field names, as its Engine API reference documents them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecBody {
    pub attach_stdin: Option<bool>,
    pub attach_stdout: Option<bool>,
    pub attach_stderr: Option<bool>,
    pub tty: Option<bool>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub privileged: Option<bool>,
    pub detach_keys: Option<String>,
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: Option<bool>,
    tty: Option<bool>,
}

fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `POST /containers/{id}/exec`.
pub(crate) async fn create(r: Req, id: &str) -> ApiResult {
    let body: Option<ExecBody> = http::read_json(r.body).await?;
    let body = body.unwrap_or_default();
    if body.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let st = r.state.clone();
    let input = id.to_owned();
    let c = blocking(move || {
        st.lifecycle()?.find(&input).map_err(|e| match e.kind() {
            berth_engine::container::ErrorKind::NotFound => {
                ApiError::not_found(format!("No such container: {input}"))
            }
            _ => e.into(),
        })
    })
    .await?;
    if c.status != berth_engine::container::ContainerStatus::Running {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            c.id()
        )));
    }
    let exec_id = new_id();
    if let Ok(mut m) = r.state.execs.lock() {
        m.insert(
            exec_id.clone(),
            ExecSession {
                container: c.id().to_owned(),
                config: body,
                running: false,
                started: false,
                exit_code: None,
                pid: 0,
            },
        );
    }
    Ok(http::json(StatusCode::CREATED, &json!({"Id": exec_id})))
}

fn session(st: &State, id: &str) -> Result<ExecSession, ApiError> {
    st.execs
        .lock()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

fn update(st: &State, id: &str, f: impl FnOnce(&mut ExecSession)) {
    if let Ok(mut m) = st.execs.lock() {
        if let Some(s) = m.get_mut(id) {
            f(s);
        }
    }
}

/// `POST /exec/{id}/start`.
pub(crate) async fn start(r: Req, id: &str) -> ApiResult {
    let s = session(&r.state, id)?;
    if s.started {
        return Err(ApiError::conflict(format!(
            "Error: Exec command {id} has already run"
        )));
    }
    let st: Arc<State> = r.state.clone();
    let h = Hijack {
        state: r.state.clone(),
        wants_upgrade: http::header(&r.headers, "upgrade").is_some(),
        upgrade: r.upgrade,
    };
    let start: Option<StartBody> = http::read_json(r.body).await?;
    let start = start.unwrap_or_default();
    let detach = start.detach.unwrap_or(false);
    let cfg = s.config.clone();
    let tty = start.tty.or(cfg.tty).unwrap_or(false);
    let with_stdin = cfg.attach_stdin.unwrap_or(false) && !detach && !tty;
    let mut cmd = tokio::process::Command::from(st.berth());
    cmd.arg("exec");
    if detach {
        cmd.arg("-d");
    }
    if with_stdin {
        cmd.arg("-i");
    }
    if tty {
        cmd.arg("-t");
    }
    if cfg.privileged.unwrap_or(false) {
        cmd.arg("--privileged");
    }
    for e in cfg.env.clone().unwrap_or_default() {
        cmd.arg("-e").arg(e);
    }
    if let Some(u) = cfg.user.clone().filter(|u| !u.is_empty()) {
        cmd.arg("-u").arg(u);
    }
    if let Some(w) = cfg.working_dir.clone().filter(|w| !w.is_empty()) {
        cmd.arg("-w").arg(w);
    }
    cmd.arg(&s.container);
    cmd.args(cfg.cmd.clone().unwrap_or_default());
    cmd.stdin(if with_stdin {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .process_group(0);
    update(&st, id, |s| s.started = true);
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("starting exec: {e}")))?;
    let pid = child.id().unwrap_or(0);
    update(&st, id, |s| {
        s.running = true;
        s.pid = pid;
    });
    let exec_id = id.to_owned();
    if detach {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ApiError::internal(format!("exec: {e}")))?;
        let code = out.status.code().unwrap_or(255) as i64;
        update(&st, &exec_id, |s| {
            s.running = false;
            s.exit_code = Some(code);
        });
        if code >= 125 && !out.stderr.is_empty() {
            let msg = String::from_utf8_lossy(&out.stderr);
            let msg = msg.trim().trim_start_matches("Error: ");
            return Err(ApiError::conflict(msg.to_owned()));
        }
        return Ok(http::with_type(
            StatusCode::OK,
            "application/json",
            http::Body::Empty,
        ));
    }
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (done_tx, done_rx) = oneshot::channel();
    {
        let st = st.clone();
        let exec_id = exec_id.clone();
        tokio::spawn(async move {
            let code = child
                .wait()
                .await
                .ok()
                .and_then(|s| s.code())
                .unwrap_or(255) as i64;
            update(&st, &exec_id, |s| {
                s.running = false;
                s.exit_code = Some(code);
            });
            let _ = done_tx.send(());
        });
    }
    let pipes = Pipes {
        stdin,
        stdout: cfg
            .attach_stdout
            .unwrap_or(true)
            .then_some(stdout)
            .flatten(),
        stderr: cfg
            .attach_stderr
            .unwrap_or(true)
            .then_some(stderr)
            .flatten(),
        tty,
        done: done_rx,
    };
    hijack(h, tty, move |conn| async move {
        let (rd, wr) = tokio::io::split(conn);
        bridge(pipes, rd, wr).await;
    })
}

/// `POST /exec/{id}/resize`: accepted (the watcher holds the TTY).
pub(crate) async fn resize(r: Req, id: &str) -> ApiResult {
    session(&r.state, id)?;
    Ok(http::with_type(
        StatusCode::OK,
        "text/plain",
        http::Body::Empty,
    ))
}

/// `GET /exec/{id}/json`.
pub(crate) async fn inspect(r: Req, id: &str) -> ApiResult {
    let s = session(&r.state, id)?;
    let cmd = s.config.cmd.clone().unwrap_or_default();
    http::ok_json(&json!({
        "ID": id,
        "Running": s.running,
        "ExitCode": s.exit_code.map_or(Value::Null, |c| json!(c)),
        "ProcessConfig": {
            "tty": s.config.tty.unwrap_or(false),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": s.config.privileged.unwrap_or(false),
            "user": s.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": s.config.attach_stdin.unwrap_or(false),
        "OpenStderr": s.config.attach_stderr.unwrap_or(false),
        "OpenStdout": s.config.attach_stdout.unwrap_or(false),
        "CanRemove": false,
        "ContainerID": s.container,
        "DetachKeys": s.config.detach_keys.clone().unwrap_or_default(),
        "Pid": s.pid,
    }))
}
