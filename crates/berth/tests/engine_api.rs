//! `berth system service` driven by the real `docker` CLI (Docker 28's client) and by raw
//! HTTP on its unix socket (issue 15): the chapter end to end (build, tag, login, push,
//! rmi, pull, run -d --publish, curl, logs, exec, stop, rm, rmi by short ID), attached runs
//! with exit statuses and stdin, state shared with the `berth` CLI, and bad input answered
//! with Docker-shaped errors while the service keeps serving. Every test has its own roots,
//! socket, DOCKER_CONFIG, registry port and container names.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "containers_support/mod.rs"]
mod support;

use support::{berth_command, import_busybox, require_root, require_tool, Proc, BIN};

/// A service on a root of its own, and the `docker` CLI pointed at it.
struct Service {
    dir: tempfile::TempDir,
    sock: PathBuf,
    proc: Option<Proc>,
}

impl Service {
    fn new() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("berth.sock");
        let mut s = Service {
            dir,
            sock,
            proc: None,
        };
        s.start();
        s
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts (or restarts) the service and waits until its socket answers.
    fn start(&mut self) {
        self.proc = None;
        let child = berth_command(&self.root(), &self.runroot())
            .args(["system", "service", "--host"])
            .arg(format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.path("service-docker-config"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok((status, _)) = self.try_request("GET", "/_ping", &[], None) {
                if status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the service did not answer on {}", self.sock.display());
    }

    fn berth(&self, args: &[&str]) -> Output {
        berth_command(&self.root(), &self.runroot())
            .args(args)
            .output()
            .unwrap()
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.path("cli-docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .stdin(Stdio::null());
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).output().unwrap()
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One HTTP/1.1 request on the socket (`Connection: close`); status and body.
    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<(u16, String)> {
        let mut s = UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        if let Some(b) = body {
            // A server that answers early may close before the whole body went out.
            let _ = s.write_all(b);
        }
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        Ok((status, dechunk(body)))
    }

    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        self.try_request(method, path, headers, body.map(str::as_bytes))
            .unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.proc = None;
        support::remove_containers_and_networks(|args| self.berth(args));
    }
}

/// The body of a chunked response (or the body as is).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if n == 0 {
            return out;
        }
        if tail.len() < n {
            return body.to_owned();
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A build context with the static kuard binary and the book's three-line Dockerfile.
fn kuard_context(dir: &Path) -> PathBuf {
    let kuard = repo().join("demo/kuard/kuard");
    if !kuard.is_file() {
        let st = Command::new("bash")
            .arg(repo().join("demo/kuard/build.sh"))
            .arg("1")
            .env("CARGO_QUIET", "1")
            .status()
            .unwrap();
        assert!(st.success(), "demo/kuard/build.sh failed");
    }
    let ctx = dir.join("kuard-context");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&kuard, ctx.join("kuard")).unwrap();
    std::fs::copy(repo().join("demo/kuard/Dockerfile"), ctx.join("Dockerfile")).unwrap();
    ctx
}

fn guards(test: &str) -> bool {
    require_root(test) && require_tool(test, "docker") && require_tool(test, "curl")
}

#[test]
fn docker_runs_attached_containers_with_their_status_and_stdin() {
    let test = "docker_runs_attached_containers_with_their_status_and_stdin";
    if !guards(test) {
        return;
    }
    let svc = Service::new();
    import_busybox(&svc.root(), &svc.runroot());

    let v = svc.docker_ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.47 linux");
    let images = svc.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("busybox:latest"), "{images}");

    // A foreground run's exit status is the container's; --rm leaves nothing.
    let out = svc.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert_eq!(stdout, "out\n");
    assert!(stderr.contains("err"), "{stderr}");

    // The engine's journal through /events: the run's `die`, with its status.
    // The `die` is written by the process that watched the container, which may finish
    // its record a moment after the client has its status: look for a few seconds.
    let mut ev = String::new();
    for _ in 0..50 {
        ev = svc.docker_ok(&[
            "events",
            "--since",
            "5m",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--format",
            "{{.Type}} {{.Action}} {{index .Actor.Attributes \"exitCode\"}}",
        ]);
        if ev.lines().any(|l| l == "container die 3") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ev.lines().any(|l| l == "container die 3"), "{ev}");

    // stdin through the hijacked connection, its end as the client's half-close.
    let mut child = svc
        .docker_cmd(&["run", "-i", "--rm", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "abc\n");
    assert!(
        svc.berth(&["ps", "-aq"]).stdout.is_empty(),
        "a --rm container was left"
    );

    // One state: made through the API, seen by the CLI, and the other way round.
    let id = svc.docker_ok(&["create", "--name", "api-made", "busybox", "true"]);
    let ps = String::from_utf8_lossy(&svc.berth(&["ps", "-a", "--format", "{{.Names}}"]).stdout)
        .into_owned();
    assert!(ps.contains("api-made"), "{ps}");
    assert!(svc
        .berth(&["create", "--name", "cli-made", "busybox", "true"])
        .status
        .success());
    let ps = svc.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(ps.contains("cli-made") && ps.contains("api-made"), "{ps}");
    let inspected = svc.docker_ok(&[
        "inspect",
        "--format",
        "{{.Id}} {{.Name}} {{.State.Status}}",
        "api-made",
    ]);
    assert_eq!(inspected.trim(), format!("{} /api-made created", id.trim()));

    // docker start -a of a created container: attached, with its status.
    let out = svc.docker(&["start", "-a", "cli-made"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let st = svc.docker_ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "cli-made",
    ]);
    assert_eq!(st.trim(), "exited 0");

    // An attach to a dead container is refused as Docker's CLI refuses it.
    let out = svc.docker(&["attach", "cli-made"]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("You cannot attach to a stopped container"),
        "{:?}",
        text(&out)
    );

    svc.docker_ok(&["rm", "api-made", "cli-made"]);
    assert!(svc.berth(&["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn docker_cli_walks_the_chapter_through_the_api() {
    let test = "docker_cli_walks_the_chapter_through_the_api";
    if !guards(test) || !require_tool(test, "htpasswd") {
        return;
    }
    let svc = Service::new();
    import_busybox(&svc.root(), &svc.runroot());
    let ctx = kuard_context(svc.dir.path());

    // The legacy builder: with DOCKER_BUILDKIT=0, and by default (the ping's
    // Builder-Version: 1 and no buildx make the CLI fall back to it).
    let out = svc
        .docker_cmd(&["build", "-t", "kuard-amd64:1", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert!(out.status.success(), "build: {so}{se}");
    assert!(so.contains("Step 1/4 : FROM scratch"), "{so}");
    assert!(so.contains("Successfully tagged kuard-amd64:1"), "{so}");
    let out = svc.docker(&["build", "-q", "-t", "kuard-amd64:1", ctx.to_str().unwrap()]);
    let (so, se) = text(&out);
    assert!(out.status.success(), "default build: {so}{se}");
    assert!(so.trim().starts_with("sha256:"), "{so}");

    // A registry with a password, login and push through the API.
    let ht = svc.path("htpasswd");
    let h = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(&ht, h.stdout).unwrap();
    let reg_port = free_port();
    let registry = format!("localhost:{reg_port}");
    let _reg = {
        let mut child = Command::new(BIN)
            .args([
                "registry",
                "serve",
                "--addr",
                &format!("127.0.0.1:{reg_port}"),
                "--storage",
            ])
            .arg(svc.path("registry"))
            .args(["--htpasswd", ht.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Proc(child)
    };
    let remote = format!("{registry}/kuar-demo/kuard-amd64:1");
    svc.docker_ok(&["tag", "kuard-amd64:1", &remote]);
    let out = svc.docker(&["push", &remote]);
    assert!(
        !out.status.success(),
        "a push without login succeeded: {:?}",
        text(&out)
    );
    let out = svc
        .docker_cmd(&["login", "-u", "alice", "--password-stdin", &registry])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"s3cret\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "login: {:?}", text(&out));
    assert!(text(&out).0.contains("Login Succeeded"));
    let pushed = svc.docker_ok(&["push", &remote]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");

    // rmi, pull back, run it published with the chapter's limits.
    svc.docker_ok(&["rmi", &remote]);
    svc.docker_ok(&["rmi", "kuard-amd64:1"]);
    let pulled = svc.docker_ok(&["pull", &remote]);
    assert!(pulled.contains("Downloaded newer image"), "{pulled}");
    let web = free_port();
    let id = svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "kuard",
        "--publish",
        &format!("127.0.0.1:{web}:8080"),
        "--memory",
        "200m",
        "--memory-swap",
        "1G",
        "--cpu-shares",
        "1024",
        &remote,
    ]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    let mut body = String::new();
    for _ in 0..100 {
        let o = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{web}/")])
            .output()
            .unwrap();
        if o.status.success() {
            body = String::from_utf8_lossy(&o.stdout).into_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.to_lowercase().contains("kuard"), "curl got {body:?}");
    let ps = svc.docker_ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(
        ps.contains(&format!("kuard 127.0.0.1:{web}->8080/tcp")),
        "{ps}"
    );
    let mem = svc.docker_ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}}",
        "kuard",
    ]);
    assert_eq!(mem.trim(), format!("{} 1024", 200 << 20));
    let out = svc.docker(&["logs", "kuard"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (lo, le) = text(&out);
    assert!(!(lo + &le).is_empty(), "kuard logged nothing");
    let ls = svc.docker_ok(&["exec", "kuard", "/kuard", "--help"]);
    let _ = ls;
    let out = svc.docker(&["exec", "kuard", "/no-such-command"]);
    assert!(!out.status.success());

    // The service restarts; the container outlives it.
    let mut svc = svc;
    svc.start();
    let st = svc.docker_ok(&["inspect", "--format", "{{.State.Status}}", "kuard"]);
    assert_eq!(st.trim(), "running");
    svc.docker_ok(&["stop", "kuard"]);
    svc.docker_ok(&["rm", "kuard"]);
    let image_id = svc.docker_ok(&["images", "-q", &remote]);
    let short = image_id.trim().to_owned();
    assert_eq!(short.len(), 12, "{image_id}");
    svc.docker_ok(&["rmi", &short]);
    assert!(svc.docker_ok(&["images", "-q", &remote]).trim().is_empty());
}

#[test]
fn bad_input_gets_docker_errors_and_the_service_keeps_serving() {
    let test = "bad_input_gets_docker_errors_and_the_service_keeps_serving";
    if !guards(test) {
        return;
    }
    let svc = Service::new();
    import_busybox(&svc.root(), &svc.runroot());

    // Ping and version negotiation.
    let (st, body) = svc.request("GET", "/_ping", None);
    assert_eq!((st, body.as_str()), (200, "OK"));
    let (st, body) = svc.request("GET", "/v1.12/version", None);
    assert_eq!(st, 400, "{body}");
    assert!(
        body.contains("Minimum supported API version is 1.24"),
        "{body}"
    );

    // Malformed JSON.
    let (st, body) = svc.request("POST", "/v1.47/containers/create", Some("{\"Image\": "));
    assert_eq!(st, 400, "{body}");
    assert!(body.starts_with("{\"message\":"), "{body}");
    // Unknown fields are ignored, as Docker's decoder ignores them.
    let (st, body) = svc.request(
        "POST",
        "/v1.47/containers/create?name=unknown-fields",
        Some("{\"Image\":\"busybox\",\"Cmd\":[\"true\"],\"NoSuchField\":1}"),
    );
    assert_eq!(st, 201, "{body}");
    // A bad HostConfig.Memory: below Docker's minimum, and of the wrong type.
    let (st, body) = svc.request(
        "POST",
        "/containers/create?name=tiny",
        Some("{\"Image\":\"busybox\",\"HostConfig\":{\"Memory\":1024}}"),
    );
    assert_eq!(st, 400, "{body}");
    assert!(
        body.contains("Minimum memory limit allowed is 6MB"),
        "{body}"
    );
    let (st, body) = svc.request(
        "POST",
        "/containers/create?name=typed",
        Some("{\"Image\":\"busybox\",\"HostConfig\":{\"Memory\":\"lots\"}}"),
    );
    assert_eq!(st, 400, "{body}");
    // Unknown objects are 404 (what makes `docker run` pull), conflicts 409.
    let (st, body) = svc.request(
        "POST",
        "/containers/create",
        Some("{\"Image\":\"no-such-image:1\"}"),
    );
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("No such image"), "{body}");
    let (st, _) = svc.request("GET", "/containers/nope/json", None);
    assert_eq!(st, 404);
    let (st, body) = svc.request(
        "POST",
        "/containers/create?name=unknown-fields",
        Some("{\"Image\":\"busybox\",\"Cmd\":[\"true\"]}"),
    );
    assert_eq!(st, 409, "{body}");
    let (st, _) = svc.request("GET", "/swarm", None);
    assert_eq!(st, 503);

    // A 100 MB body.
    let big = vec![b' '; 100 << 20];
    let (st, body) = svc
        .try_request(
            "POST",
            "/containers/create",
            &[("Content-Type", "application/json")],
            Some(&big),
        )
        .unwrap();
    assert_eq!(st, 413, "{body}");

    // A client that goes away in the middle of a followed log.
    let (st, _) = svc.request("POST", "/containers/unknown-fields/start", None);
    assert_eq!(st, 204);
    let (st, body) = svc.request(
        "POST",
        "/containers/create?name=chatty",
        Some("{\"Image\":\"busybox\",\"Cmd\":[\"sh\",\"-c\",\"while true; do echo tick; sleep 0.1; done\"]}"),
    );
    assert_eq!(st, 201, "{body}");
    assert_eq!(svc.request("POST", "/containers/chatty/start", None).0, 204);
    {
        let mut s = UnixStream::connect(&svc.sock).unwrap();
        s.write_all(b"GET /containers/chatty/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: d\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
    }
    let (st, _) = svc.request("GET", "/_ping", None);
    assert_eq!(
        st, 200,
        "the service stopped serving after a client went away"
    );
    assert_eq!(
        svc.request("POST", "/containers/chatty/stop?t=1", None).0,
        204
    );

    // Nothing half-made: only the two containers made on purpose.
    let names = svc.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["chatty", "unknown-fields"]);
}

#[test]
fn docker_python_sdk_drives_the_service() {
    let test = "docker_python_sdk_drives_the_service";
    if !require_root(test) || !require_tool(test, "python3") {
        return;
    }
    let has_sdk = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs Docker's Python SDK (pip install docker; see scripts/install-test-deps.sh)");
        }
        eprintln!("skipping {test}: python3 -c 'import docker' failed");
        return;
    }
    let svc = Service::new();
    import_busybox(&svc.root(), &svc.runroot());
    let out = Command::new("python3")
        .arg(repo().join("tests/python/test_docker_sdk.py"))
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert!(out.status.success(), "the SDK tests failed:\n{so}\n{se}");
    assert!(!so.contains("FAIL"), "{so}");
    // Nothing left behind by the SDK's runs (--rm and removes).
    assert!(
        svc.berth(&["ps", "-aq"]).stdout.is_empty(),
        "containers left"
    );
}
