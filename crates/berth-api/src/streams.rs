//! Hijacked connections and Docker's stream format.
//!
//! `attach` and `exec start` answer `101 UPGRADED` (`Upgrade: tcp`) and then use the raw
//! connection both ways: what the client writes is the process's stdin (its half-close is
//! stdin's end), what the service writes is the process's output, multiplexed as Docker
//! does without a TTY (8-byte headers: stream 1 stdout / 2 stderr, 3 zero bytes, a
//! big-endian u32 length) and raw with one. The process is a `berth` watcher of its own
//! (`start -a`, `exec`) whose pipes the service bridges, so a container outlives the
//! service; an attach to a container that already runs follows its log.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use crate::http::{ApiError, ApiResult, Body};
use crate::router::Req;
use crate::{blocking, State};

/// Stream numbers of Docker's multiplexing.
pub const STDOUT: u8 = 1;
/// Standard error's.
pub const STDERR: u8 = 2;

/// One frame of Docker's multiplexed stream.
pub fn frame(stream: u8, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    b.put_u8(stream);
    b.put_bytes(0, 3);
    b.put_u32(data.len() as u32);
    b.put_slice(data);
    b.freeze()
}

/// The pipes of a watcher process, handed to the connection that bridges them.
#[derive(Debug)]
pub struct Pipes {
    /// The process's stdin, when the client attached it.
    pub stdin: Option<ChildStdin>,
    /// Its stdout.
    pub stdout: Option<ChildStdout>,
    /// Its stderr.
    pub stderr: Option<ChildStderr>,
    /// Raw output (a TTY) instead of multiplexed frames.
    pub tty: bool,
    /// Told when the process ended (after its exit was recorded).
    pub done: oneshot::Receiver<()>,
}

/// An attach made before its container's start (`docker run`, `docker start -a`): the
/// start spawns the watcher and hands its pipes over.
#[derive(Debug)]
pub struct PendingAttach {
    /// The client attached stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr.
    pub stderr: bool,
    /// Where the start sends the pipes.
    pub tx: oneshot::Sender<Pipes>,
}

/// What a hijack needs of its request.
pub(crate) struct Hijack {
    pub state: Arc<State>,
    pub wants_upgrade: bool,
    pub upgrade: hyper::upgrade::OnUpgrade,
}

impl Hijack {
    pub fn of(r: Req) -> Hijack {
        Hijack {
            wants_upgrade: crate::http::header(&r.headers, "upgrade").is_some(),
            state: r.state,
            upgrade: r.upgrade,
        }
    }
}

/// Answers 101 and runs `f` on the connection once hyper hands it over.
pub(crate) fn hijack<F, Fut>(r: Hijack, tty: bool, f: F) -> ApiResult
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Hijack {
        state,
        wants_upgrade,
        upgrade,
    } = r;
    state.active.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(u) => f(TokioIo::new(u)).await,
            Err(e) => log::debug!("hijack: {e}"),
        }
        state.active.fetch_sub(1, Ordering::SeqCst);
        state.touch();
    });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut resp = Response::new(Body::Empty);
    if wants_upgrade {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    } else {
        // Old clients hijack a 200 without asking for an upgrade; hyper hands over only
        // upgrades, so such a client gets the status and no stream.
        *resp.status_mut() = StatusCode::OK;
    }
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=`.
pub(crate) async fn attach(r: Req, id: &str) -> ApiResult {
    let stream = r.query.bool("stream", false)?;
    let logs = r.query.bool("logs", false)?;
    let stdin = r.query.bool("stdin", false)?;
    let stdout = r.query.bool("stdout", false)?;
    let stderr = r.query.bool("stderr", false)?;
    let st = r.state.clone();
    let input = id.to_owned();
    let c = blocking(move || Ok(st.lifecycle()?.find(&input)?)).await?;
    let id = c.id().to_owned();
    let tty = c.spec.config.tty;
    let state = r.state.clone();
    if c.status.is_active() || (!stream && logs) {
        // Running (or only its past output): its log, from the end (or the start).
        return hijack(Hijack::of(r), tty, move |conn| async move {
            follow_log(state, id, tty, stream, logs, stdout, stderr, conn).await;
        });
    }
    if !stream {
        return hijack(Hijack::of(r), tty, |mut conn| async move {
            let _ = conn.shutdown().await;
        });
    }
    let (tx, rx) = oneshot::channel();
    if let Ok(mut p) = state.pending.lock() {
        p.insert(
            id.clone(),
            PendingAttach {
                stdin,
                stdout,
                stderr,
                tx,
            },
        );
    }
    hijack(Hijack::of(r), tty, move |conn| async move {
        let (rd, mut wr) = tokio::io::split(conn);
        // Until the start, what the client sends (stdin: `docker run -i` writes at once)
        // is kept for the process, up to MAX_EARLY_STDIN; then it waits. A client without
        // stdin half-closes at once: that is no reason to give up.
        let mut rd = rd;
        let mut rx = rx;
        let mut early = Vec::new();
        let mut eof = false;
        let mut buf = vec![0u8; 16 * 1024];
        let pipes = loop {
            if eof || early.len() >= MAX_EARLY_STDIN {
                break (&mut rx).await.ok();
            }
            tokio::select! {
                p = &mut rx => break p.ok(),
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => eof = true,
                    Ok(n) => early.extend_from_slice(&buf[..n]),
                },
            }
        };
        let Some(pipes) = pipes else {
            let _ = wr.shutdown().await;
            return;
        };
        let rd = Early {
            early: std::io::Cursor::new(early),
            eof,
            inner: rd,
        };
        bridge(pipes, rd, wr).await;
    })
}

/// Bytes of stdin kept for a process that has not started yet.
const MAX_EARLY_STDIN: usize = 1 << 20;

/// The client's side: what it sent before the start, then the connection (or EOF, when it
/// half-closed already).
struct Early<R> {
    early: std::io::Cursor<Vec<u8>>,
    eof: bool,
    inner: R,
}

impl<R: AsyncRead + Unpin> AsyncRead for Early<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let pos = this.early.position() as usize;
        let data = this.early.get_ref();
        if pos < data.len() {
            let n = (data.len() - pos).min(buf.remaining());
            buf.put_slice(&data[pos..pos + n]);
            this.early.set_position((pos + n) as u64);
            return std::task::Poll::Ready(Ok(()));
        }
        if this.eof {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

/// Copies the client's bytes to the process's stdin and its output to the client until
/// the process ended, then closes the connection.
pub(crate) async fn bridge<R, W>(pipes: Pipes, mut rd: R, mut wr: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Pipes {
        stdin,
        stdout,
        stderr,
        tty,
        done,
    } = pipes;
    // stdin: until the client half-closes (or goes away); then the process sees EOF.
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let Some(mut w) = stdin else {
            // Not attached: drain what the client sends (a half-close, usually).
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = w.shutdown().await;
    });
    let (tx, mut rx) = mpsc::channel::<Bytes>(32);
    let pump = |mut src: Box<dyn AsyncRead + Unpin + Send>, stream: u8, tx: mpsc::Sender<Bytes>| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match src.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let chunk = if tty {
                            Bytes::copy_from_slice(&buf[..n])
                        } else {
                            frame(stream, &buf[..n])
                        };
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    };
    if let Some(o) = stdout {
        pump(Box::new(o), STDOUT, tx.clone());
    }
    if let Some(e) = stderr {
        pump(Box::new(e), STDERR, tx.clone());
    }
    drop(tx);
    let mut client_gone = false;
    while let Some(chunk) = rx.recv().await {
        if !client_gone && wr.write_all(&chunk).await.is_err() {
            // Keep draining: the process must not block on a full pipe.
            client_gone = true;
        }
    }
    let _ = done.await;
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    input.abort();
}

/// Streams a running container's log to the client (from now on with `stream`, the past
/// with `logs`) until it stops; stdin is not attached (the container's stdin belongs to
/// whoever started it).
#[allow(clippy::too_many_arguments)]
async fn follow_log(
    state: Arc<State>,
    id: String,
    tty: bool,
    stream: bool,
    logs: bool,
    stdout: bool,
    stderr: bool,
    conn: TokioIo<hyper::upgrade::Upgraded>,
) {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let worker = tokio::task::spawn_blocking(move || {
        let Ok(lc) = state.lifecycle() else { return };
        let Ok(c) = lc.find(&id) else { return };
        let opts = berth_engine::container::logs::LogOptions {
            follow: stream,
            tail: if logs { None } else { Some(0) },
            since: None,
        };
        let mut sink = |e: &berth_engine::container::logs::LogEntry| -> std::io::Result<()> {
            let err = e.stream == "stderr";
            if (err && !stderr) || (!err && !stdout) {
                return Ok(());
            }
            let chunk = if tty {
                Bytes::copy_from_slice(e.log.as_bytes())
            } else {
                frame(if err { STDERR } else { STDOUT }, e.log.as_bytes())
            };
            tx.blocking_send(chunk)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
        };
        let _ = lc.logs(&c, &opts, &mut sink);
    });
    let mut probe = [0u8; 512];
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(c) => if wr.write_all(&c).await.is_err() { break },
                None => break,
            },
            n = rd.read(&mut probe) => if matches!(n, Ok(0) | Err(_)) {
                // Half-closed: keep sending until the container stops (no stdin here).
                let rest = async { while let Some(c) = rx.recv().await {
                    if wr.write_all(&c).await.is_err() { break }
                } };
                rest.await;
                break;
            },
        }
    }
    drop(rx);
    let _ = worker.await;
    let _ = wr.shutdown().await;
}

/// Spawns the attached watcher of a container that a pending attach waits for:
/// `berth start -a [-i] ID`, its pipes handed to the attach. Returns once the container
/// runs or the watcher ended, with the watcher's error when the start failed.
pub(crate) async fn start_attached(
    state: &Arc<State>,
    c: &berth_engine::container::Container,
    pending: PendingAttach,
) -> Result<(), ApiError> {
    let id = c.id().to_owned();
    let tty = c.spec.config.tty;
    let with_stdin = pending.stdin && c.spec.config.open_stdin;
    let mut cmd = tokio::process::Command::from(state.berth());
    cmd.arg("start").arg("-a");
    if with_stdin {
        cmd.arg("-i");
    }
    cmd.arg(&id)
        .stdin(if with_stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group: a signal to the service is not the container's.
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("starting the watcher of {id}: {e}")))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (done_tx, done_rx) = oneshot::channel();
    let (exited_tx, mut exited_rx) = tokio::sync::watch::channel(None::<i32>);
    {
        let state = state.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let code = child
                .wait()
                .await
                .ok()
                .and_then(|s| s.code())
                .unwrap_or(255);
            if let Ok(mut e) = state.exits.lock() {
                e.insert(id, code as i64);
            }
            state.changed.notify_waiters();
            let _ = exited_tx.send(Some(code));
            let _ = done_tx.send(());
        });
    }
    let _ = pending.tx.send(Pipes {
        stdin,
        stdout: pending.stdout.then_some(stdout).flatten(),
        stderr: pending.stderr.then_some(stderr).flatten(),
        tty,
        done: done_rx,
    });
    // The start's answer: once the container runs, or the watcher ended.
    let started_before = c.record.started_at;
    loop {
        let st = state.clone();
        let id2 = id.clone();
        let now = blocking(move || Ok(st.lifecycle()?.store().container(&id2).ok())).await?;
        match now {
            Some(rec) if rec.started_at != started_before && rec.started_at > 0 => return Ok(()),
            None => return Ok(()),
            _ => {}
        }
        let exited = *exited_rx.borrow();
        if let Some(code) = exited {
            let st = state.clone();
            let id2 = id.clone();
            let rec = blocking(move || Ok(st.lifecycle()?.store().container(&id2).ok())).await?;
            return match rec {
                Some(r) if r.started_at == started_before && !r.error.is_empty() => {
                    Err(start_error(code, &r.error))
                }
                Some(r) if r.started_at == started_before && code >= 125 => Err(start_error(
                    code,
                    "the container's watcher failed to start it",
                )),
                _ => Ok(()),
            };
        }
        tokio::select! {
            _ = exited_rx.changed() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
        }
    }
}

fn start_error(code: i32, message: &str) -> ApiError {
    let status = if code == 126 || code == 127 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    ApiError::new(
        status,
        format!("failed to create task for container: {message}"),
    )
}
