//! push, pull, login, logout and `registry serve|gc` end to end through the `berth` binary,
//! against berth's own registry and Debian's distribution registry (`docker-registry`), with
//! skopeo as a third peer. Every test has its own roots, storage, ports and DOCKER_CONFIG.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "containers_support/mod.rs"]
mod support;

use support::{berth_command, require_tool, Proc, BIN};

/// Whether a root-only test may run: skips (with a message) when not root, fails under CI.
fn require_root(test: &str) -> bool {
    support::require_root_for(test, "the busybox rootfs has owners")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn berth(&self, root: &str, args: &[&str]) -> Command {
        let mut c = berth_command(&self.path(root), &self.path(&format!("{root}-run")));
        c.args(args)
            .env("DOCKER_CONFIG", self.path("docker-config"));
        c
    }

    fn run(&self, root: &str, args: &[&str]) -> Output {
        self.berth(root, args).output().expect("run berth")
    }

    fn ok(&self, root: &str, args: &[&str]) -> String {
        let out = self.run(root, args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A busybox rootfs tar, imported into `root` as `reference`.
    fn import_busybox(&self, root: &str, reference: &str) {
        let tar = support::busybox_tar();
        self.ok(root, &["import", tar.to_str().unwrap(), reference]);
    }

    /// Starts `berth registry serve` and returns it with its address.
    fn serve(&self, storage: &str, extra: &[&str]) -> (Proc, String) {
        support::serve_registry(&self.path(storage), extra)
    }

    fn image_id(&self, root: &str, reference: &str) -> String {
        self.ok(root, &["images", "-q", "--no-trunc", reference])
            .trim()
            .to_owned()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {addr}");
}

fn pushed_digest(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.contains(": digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line in {stdout}"));
    line.split_whitespace().nth(2).unwrap().to_owned()
}

#[test]
fn push_to_berth_registry_then_pull_into_a_fresh_root() {
    if !require_root("push_to_berth_registry_then_pull_into_a_fresh_root") {
        return;
    }
    let env = Env::new();
    let (_srv, addr) = env.serve("storage", &[]);
    let reference = format!("{addr}/test/busybox:1");
    env.import_busybox("r1", &reference);
    let out = env.ok("r1", &["push", &reference]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{addr}/test/busybox]"
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let digest = pushed_digest(&out);

    // A second push finds every layer there.
    let again = env.ok("r1", &["push", &reference]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert!(
        !again.contains(": Pushed"),
        "the gzip form was pushed again: {again}"
    );
    assert_eq!(pushed_digest(&again), digest);

    let out = env.ok("r2", &["pull", &reference]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert!(out.trim_end().ends_with(&reference), "{out}");
    assert_eq!(
        env.image_id("r1", &reference),
        env.image_id("r2", &reference)
    );
    let out = env.ok("r2", &["pull", &reference]);
    assert!(out.contains("Status: Image is up to date for"), "{out}");
    // Pull by digest.
    let by_digest = format!("{addr}/test/busybox@{digest}");
    env.ok("r3", &["pull", &by_digest]);

    // The pulled image runs.
    let run = env.run(
        "r2",
        &[
            "run",
            "--rm",
            &reference,
            "/bin/echo",
            "hello from the registry",
        ],
    );
    assert!(
        run.status.success(),
        "run after pull: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("hello from the registry"));

    // An unknown tag is a one-line daemon error with status 1.
    let missing = env.run("r2", &["pull", &format!("{addr}/test/busybox:nope")]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains("manifest unknown"), "{err}");
    // Pushing a name with no local image.
    let none = env.run("r2", &["push", &format!("{addr}/test/none:1")]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr)
        .contains("An image does not exist locally with the tag"));

    // gc keeps what manifests reference.
    let out = Command::new(BIN)
        .args(["registry", "gc", "--dry-run", "--storage"])
        .arg(env.path("storage"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 blobs would be deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn write_htpasswd(path: &Path, user: &str, password: &str) {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("htpasswd");
    assert!(out.status.success());
    fs::write(path, out.stdout).unwrap();
}

#[test]
fn login_push_pull_with_docker_registry_and_htpasswd() {
    let test = "login_push_pull_with_docker_registry_and_htpasswd";
    if !require_root(test)
        || !require_tool(test, "docker-registry")
        || !require_tool(test, "htpasswd")
    {
        return;
    }
    let env = Env::new();
    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "alice", "s3cret");
    let (_srv, addr) = start_docker_registry(&env, &ht);
    let reference = format!("{addr}/team/busybox:latest");
    env.import_busybox("r1", &reference);

    // Without credentials: refused.
    let denied = env.run("r1", &["push", &reference]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    // A wrong password: denied, nothing stored.
    let mut c = env.berth("r1", &["login", "-u", "alice", "--password-stdin", &addr]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"wrong\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    let stored = fs::read_to_string(env.path("docker-config/config.json")).unwrap_or_default();
    assert!(
        !stored.contains(&addr),
        "credentials stored after a failed login: {stored}"
    );

    // The right one: stored as docker login would.
    let mut c = env.berth("r1", &["login", "-u", "alice", "--password-stdin", &addr]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
    let stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(env.path("docker-config/config.json")).unwrap())
            .unwrap();
    assert!(stored["auths"][&addr]["auth"].is_string(), "{stored}");
    assert!(!stored.to_string().contains("s3cret"));

    let out = env.ok("r1", &["push", &reference]);
    let digest = pushed_digest(&out);
    let out = env.ok("r2", &["pull", &reference]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(
        env.image_id("r1", &reference),
        env.image_id("r2", &reference)
    );

    let out = env.ok("r1", &["logout", &addr]);
    assert!(
        out.contains(&format!("Removing login credentials for {addr}")),
        "{out}"
    );
    let denied = env.run("r3", &["pull", &reference]);
    assert_eq!(denied.status.code(), Some(1));
}

#[test]
fn skopeo_copies_out_of_and_into_berth_registry() {
    let test = "skopeo_copies_out_of_and_into_berth_registry";
    if !require_root(test) || !require_tool(test, "skopeo") || !require_tool(test, "umoci") {
        return;
    }
    let env = Env::new();
    let (_srv, addr) = env.serve("storage", &[]);
    let reference = format!("{addr}/src/busybox:1");
    env.import_busybox("r1", &reference);
    let pushed = pushed_digest(&env.ok("r1", &["push", &reference]));

    // Out: berth's registry -> OCI layout, by skopeo.
    let oci = env.path("oci");
    let st = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:one", oci.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(oci.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], pushed);
    // berth gzips a layer as a series of gzip members (1 MiB of input each: busybox's 2 MB
    // layer makes several); Go's reader, in umoci as in Docker and containerd, reads them all.
    let bundle = env.path("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:one", oci.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert_ok(&out, "umoci unpack");
    let out = Command::new(bundle.join("rootfs/bin/busybox"))
        .args(["echo", "whole"])
        .output()
        .unwrap();
    assert_eq!(assert_ok(&out, "unpacked busybox"), "whole\n");

    // In: a docker-archive made by berth save -> skopeo -> berth's registry -> berth pull.
    let archive = env.path("busybox-docker.tar");
    env.ok("r1", &["save", "-o", archive.to_str().unwrap(), &reference]);
    let into = format!("{addr}/from/skopeo:2");
    let st = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{into}"))
        .status()
        .unwrap();
    assert!(st.success());
    // And the OCI layout back in under another name.
    let st = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:one", oci.display()))
        .arg(format!("docker://{addr}/from/oci:3"))
        .status()
        .unwrap();
    assert!(st.success());
    let id = env.image_id("r1", &reference);
    for r in [into, format!("{addr}/from/oci:3")] {
        env.ok("r2", &["pull", &r]);
        assert_eq!(env.image_id("r2", &r), id, "{r}");
    }
}

#[test]
fn registry_auth_challenge_and_wrong_password() {
    let test = "registry_auth_challenge_and_wrong_password";
    if !require_tool(test, "htpasswd") {
        return;
    }
    let env = Env::new();
    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "bob", "pw");
    let (_srv, addr) = env.serve("storage", &["--htpasswd", ht.to_str().unwrap()]);
    // Anonymous pull of a private repository: 401 with a bearer challenge.
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(tcp, "GET /v2/private/app/manifests/latest HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let lower = answer.to_lowercase();
    assert!(
        lower.contains(&format!(
            "www-authenticate: bearer realm=\"http://{addr}/token\""
        )),
        "{answer}"
    );
    assert!(
        answer.contains("scope=\"repository:private/app:pull\""),
        "{answer}"
    );

    let out = env.run("r", &["login", "-u", "bob", "-p", "nope", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
    assert!(!env.path("docker-config/config.json").exists());
    let out = env.run("r", &["login", "-u", "bob", "-p", "pw", &addr]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("WARNING! Using --password via the CLI is insecure"));
    // Bad names are refused with NAME_INVALID (credentials given, so the name is judged).
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    // base64("bob:pw") = Ym9iOnB3
    write!(tcp, "GET /v2/UPPER/tags/list HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic Ym9iOnB3\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("NAME_INVALID"), "{answer}");
}

/// Uploads `data` to `addr` in one monolithic POST, feeding it through `gate` after the
/// first megabyte (so a test can hold uploads in flight).
fn upload(
    addr: &str,
    repo: &str,
    data: &[u8],
    gate: Option<std::sync::mpsc::Receiver<()>>,
) -> std::io::Result<u16> {
    use sha2_free::sha256_hex;
    let digest = format!("sha256:{}", sha256_hex(data));
    let mut tcp = std::net::TcpStream::connect(addr)?;
    write!(
        tcp,
        "POST /v2/{repo}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )?;
    let first = data.len().min(1 << 20);
    tcp.write_all(&data[..first])?;
    if let Some(g) = gate {
        let _ = g.recv();
    }
    tcp.write_all(&data[first..])?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    Ok(answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// sha256 through the `sha256sum` tool, so the test needs no crypto crate.
mod sha2_free {
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub fn sha256_hex(data: &[u8]) -> String {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sha256sum");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

fn blob_files(storage: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&storage.join("blobs"), &mut out);
    out
}

#[test]
fn sigkill_in_the_middle_of_uploads_leaves_no_partial_blob() {
    let env = Env::new();
    let (mut srv, addr) = env.serve("storage", &[]);
    let blobs: Vec<Vec<u8>> = (0..10u8)
        .map(|i| {
            (0..3_000_000u32)
                .map(|j| (j as u8).wrapping_mul(i + 1) ^ i)
                .collect()
        })
        .collect();
    let mut gates = Vec::new();
    let mut handles = Vec::new();
    for (i, data) in blobs.iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::channel();
        // Even uploads go through at once; odd ones stall after their first megabyte.
        let gate = if i % 2 == 0 {
            drop(tx);
            None
        } else {
            gates.push(tx);
            Some(rx)
        };
        let addr = addr.clone();
        let data = data.clone();
        handles.push(std::thread::spawn(move || {
            upload(&addr, &format!("kill/r{i}"), &data, gate)
        }));
    }
    // Wait for the five unblocked uploads.
    let mut done = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 2 == 0 {
            done.push(h.join().unwrap().unwrap());
        } else {
            done.push(0);
            drop(h);
        }
    }
    assert!(done.iter().step_by(2).all(|s| *s == 201), "{done:?}");
    // Give the stalled ones time to be mid-body, then SIGKILL the server.
    std::thread::sleep(Duration::from_millis(200));
    let _ = srv.0.kill();
    let _ = srv.0.wait();
    drop(gates);

    // Whatever is visible is whole; the completed pushes are all there.
    let files = blob_files(&env.path("storage"));
    assert_eq!(files.len(), 5, "{files:?}");
    for f in &files {
        let bytes = fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            sha2_free::sha256_hex(&bytes),
            name,
            "blob {f:?} is not whole"
        );
    }
    // After a restart the registry serves exactly those.
    let (_srv2, addr2) = env.serve("storage", &[]);
    for (i, data) in blobs.iter().enumerate() {
        let digest = format!("sha256:{}", sha2_free::sha256_hex(data));
        let mut tcp = std::net::TcpStream::connect(&addr2).unwrap();
        write!(
            tcp,
            "HEAD /v2/kill/r{i}/blobs/{digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        let want = if i % 2 == 0 {
            "HTTP/1.1 200"
        } else {
            "HTTP/1.1 404"
        };
        assert!(answer.starts_with(want), "blob {i}: {answer}");
    }
}

/// A Docker credential helper for tests (`docker-credential-berthtest`): one file per
/// server under `$BERTH_TEST_CREDS`, the verbs called logged in `calls.log` (never secrets).
const HELPER: &str = r#"#!/bin/sh
dir="$BERTH_TEST_CREDS"
input=$(cat)
echo "$1" >>"$dir/calls.log"
key=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
[ -n "$key" ] || key=$input
file="$dir/$(printf '%s' "$key" | tr '/:' '__')"
case "$1" in
store) printf '%s' "$input" >"$file" ;;
get) if [ -f "$file" ]; then cat "$file"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) if [ -f "$file" ]; then rm -f "$file"; else echo "credentials not found in native keychain"; exit 1; fi ;;
*) echo "unknown verb $1"; exit 1 ;;
esac
"#;

impl Env {
    /// Installs the test credential helper under `bin/` and returns (PATH, creds dir).
    fn install_helper(&self) -> (String, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let bin = self.path("bin");
        fs::create_dir_all(&bin).unwrap();
        let helper = bin.join("docker-credential-berthtest");
        fs::write(&helper, HELPER).unwrap();
        fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
        let creds = self.path("helper-creds");
        fs::create_dir_all(&creds).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        (path, creds)
    }

    fn write_docker_config(&self, doc: &serde_json::Value) {
        fs::create_dir_all(self.path("docker-config")).unwrap();
        fs::write(self.path("docker-config/config.json"), doc.to_string()).unwrap();
    }

    /// Runs berth with the helper on PATH, `stdin` fed.
    fn run_with_helper(
        &self,
        root: &str,
        args: &[&str],
        helper: &(String, PathBuf),
        stdin: &str,
    ) -> Output {
        let mut c = self.berth(root, args);
        c.env("PATH", &helper.0)
            .env("BERTH_TEST_CREDS", &helper.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn assert_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_docker_registry(env: &Env, htpasswd: &Path) -> (Proc, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = env.path("registry.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            env.path("distribution").display(),
            htpasswd.display()
        ),
    )
    .unwrap();
    let srv = Proc(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry"),
    );
    wait_for_port(&addr);
    (srv, addr)
}

/// `credsStore` in config.json: `login` stores through `docker-credential-NAME store` (the
/// file keeps an empty entry, as Docker's does), push and pull get the credentials from the
/// helper, `logout` erases them; with docker-registry (htpasswd) and with berth's registry.
#[test]
fn credential_helper_stores_and_supplies_credentials() {
    let test = "credential_helper_stores_and_supplies_credentials";
    if !require_root(test)
        || !require_tool(test, "docker-registry")
        || !require_tool(test, "htpasswd")
    {
        return;
    }
    let env = Env::new();
    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "alice", "s3cret");
    let (_dist, dist_addr) = start_docker_registry(&env, &ht);
    let (_berth_srv, berth_addr) = env.serve("storage", &["--htpasswd", ht.to_str().unwrap()]);
    let helper = env.install_helper();
    env.write_docker_config(
        &serde_json::json!({"credsStore": "berthtest", "experimental": "enabled"}),
    );

    for (n, addr) in [dist_addr, berth_addr].iter().enumerate() {
        let reference = format!("{addr}/team/busybox:latest");
        env.import_busybox(&format!("src{n}"), &reference);
        // A wrong password: refused, nothing handed to the helper.
        let out = env.run_with_helper(
            &format!("src{n}"),
            &["login", "-u", "alice", "--password-stdin", addr],
            &helper,
            "wrong\n",
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = env.run_with_helper(
            &format!("src{n}"),
            &["login", "-u", "alice", "--password-stdin", addr],
            &helper,
            "s3cret\n",
        );
        assert!(assert_ok(&out, "login").contains("Login Succeeded"));
        let config: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(env.path("docker-config/config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            config["auths"][addr.as_str()],
            serde_json::json!({}),
            "{config}"
        );
        assert_eq!(config["experimental"], "enabled");
        assert!(!config.to_string().contains("s3cret"));
        let stored = fs::read_to_string(helper.1.join(addr.replace(':', "_"))).unwrap();
        if n == 0 {
            // Basic auth: the password is what there is to keep.
            assert!(stored.contains("\"Secret\":\"s3cret\""), "{stored}");
            assert!(stored.contains("\"Username\":\"alice\""), "{stored}");
        } else {
            // A token service: its refresh token is kept instead, as Docker keeps it.
            assert!(!stored.contains("s3cret"), "{stored}");
            assert!(stored.contains("\"Username\":\"<token>\""), "{stored}");
        }

        let out = env.run_with_helper(&format!("src{n}"), &["push", &reference], &helper, "");
        let digest = pushed_digest(&assert_ok(&out, "push"));
        let out = env.run_with_helper(&format!("dst{n}"), &["pull", &reference], &helper, "");
        assert!(assert_ok(&out, "pull").contains(&format!("Digest: {digest}")));

        let out = env.run_with_helper(&format!("src{n}"), &["logout", addr], &helper, "");
        assert!(
            assert_ok(&out, "logout").contains(&format!("Removing login credentials for {addr}"))
        );
        assert!(!helper.1.join(addr.replace(':', "_")).exists());
        let out = env.run_with_helper(&format!("late{n}"), &["pull", &reference], &helper, "");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unauthorized"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let calls = fs::read_to_string(helper.1.join("calls.log")).unwrap();
    assert!(
        calls.lines().any(|l| l == "store")
            && calls.lines().any(|l| l == "get")
            && calls.lines().any(|l| l == "erase"),
        "{calls}"
    );

    // A helper that is not installed: one clear error line.
    env.write_docker_config(&serde_json::json!({"credHelpers": {"127.0.0.1:1": "missing"}}));
    let out = env.run_with_helper("src0", &["pull", "127.0.0.1:1/x:1"], &helper, "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error getting credentials - err: exec: \"docker-credential-missing\": executable file not found in $PATH"),
        "{err}"
    );
}

/// Login to a registry with a token service keeps the refresh token it grants (offline
/// access, as Docker's login asks for it), never the password; push and pull use it; an
/// entry as Docker writes it (`auth` with an empty password next to `identitytoken`) works.
#[test]
fn login_keeps_the_refresh_token_not_the_password() {
    let test = "login_keeps_the_refresh_token_not_the_password";
    if !require_root(test) || !require_tool(test, "htpasswd") {
        return;
    }
    let env = Env::new();
    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "carol", "hunter2");
    let (_srv, addr) = env.serve("storage", &["--htpasswd", ht.to_str().unwrap()]);
    let reference = format!("{addr}/carol/busybox:1");
    env.import_busybox("r1", &reference);
    let helper = (std::env::var("PATH").unwrap_or_default(), env.path("none"));
    let out = env.run_with_helper(
        "r1",
        &["login", "-u", "carol", "--password-stdin", &addr],
        &helper,
        "hunter2\n",
    );
    assert!(assert_ok(&out, "login").contains("Login Succeeded"));
    let text = fs::read_to_string(env.path("docker-config/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &config["auths"][addr.as_str()];
    let token = entry["identitytoken"].as_str().unwrap_or("").to_owned();
    assert!(!token.is_empty(), "{config}");
    assert!(entry.get("auth").is_none(), "{config}");
    assert!(!text.contains("hunter2"), "{text}");
    let digest = pushed_digest(&env.ok("r1", &["push", &reference]));

    // Docker's form of the same entry.
    env.write_docker_config(&serde_json::json!({"auths": {addr.as_str(): {
        "auth": "Y2Fyb2w6", // carol: (an empty password)
        "identitytoken": token,
    }}}));
    let out = env.ok("r2", &["pull", &reference]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
}

/// A token service that wants the OAuth2 form POST (its GET answers 405): login, push and
/// pull fall back from GET to `grant_type=password`; an identity token (a refresh token, as a
/// credential helper hands it with the user name `<token>`) uses `grant_type=refresh_token`.
#[test]
fn oauth2_post_token_flow_with_password_and_identity_token() {
    let test = "oauth2_post_token_flow_with_password_and_identity_token";
    if !require_root(test) || !require_tool(test, "htpasswd") {
        return;
    }
    let env = Env::new();
    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "bob", "pw");
    let cfg = env.path("registry.toml");
    fs::write(
        &cfg,
        format!(
            "[registry.auth]\nhtpasswd = \"{}\"\ntoken_get = false\n",
            ht.display()
        ),
    )
    .unwrap();
    let (_srv, addr) = env.serve("storage", &["--config", cfg.to_str().unwrap()]);

    // The token endpoint refuses GET.
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(tcp, "GET /token?service=berth-registry HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic Ym9iOnB3\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    let reference = format!("{addr}/bob/busybox:1");
    env.import_busybox("r1", &reference);
    let helper = env.install_helper();
    let out = env.run_with_helper(
        "r1",
        &["login", "-u", "bob", "--password-stdin", &addr],
        &helper,
        "nope\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let out = env.run_with_helper(
        "r1",
        &["login", "-u", "bob", "--password-stdin", &addr],
        &helper,
        "pw\n",
    );
    assert!(assert_ok(&out, "login").contains("Login Succeeded"));
    let out = env.run_with_helper("r1", &["push", &reference], &helper, "");
    let digest = pushed_digest(&assert_ok(&out, "push"));

    // A refresh token, asked for as Docker's login does (access_type=offline).
    let form = "grant_type=password&username=bob&password=pw&service=berth-registry&client_id=test&access_type=offline";
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(tcp, "POST /token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}", form.len()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let access = body["access_token"].as_str().unwrap().to_owned();

    // The identity token from a credential helper: pull works with it alone.
    env.write_docker_config(&serde_json::json!({"credHelpers": {addr.as_str(): "berthtest"}}));
    fs::write(
        helper.1.join(addr.replace(':', "_")),
        serde_json::json!({"ServerURL": addr, "Username": "<token>", "Secret": refresh})
            .to_string(),
    )
    .unwrap();
    let out = env.run_with_helper("r2", &["pull", &reference], &helper, "");
    assert!(assert_ok(&out, "pull").contains(&format!("Digest: {digest}")));
    // An access token is not a refresh token.
    fs::write(
        helper.1.join(addr.replace(':', "_")),
        serde_json::json!({"ServerURL": addr, "Username": "<token>", "Secret": access}).to_string(),
    )
    .unwrap();
    let out = env.run_with_helper("r3", &["pull", &reference], &helper, "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}

/// GET a manifest with every manifest type accepted: (content type, body).
fn get_manifest(addr: &str, repo: &str, reference: &str) -> (String, Vec<u8>) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET /v2/{repo}/manifests/{reference} HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (ctype, answer[split + 4..].to_vec())
}

fn put_manifest(addr: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "PUT /v2/{repo}/manifests/{reference} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {media_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    tcp.write_all(body).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A multi-platform image (an OCI index of two platforms) pulled with `--all-platforms` is
/// pushed as every child manifest then the index, to berth's registry and to docker-registry,
/// with the same index digest; pulled without it, only the chosen platform's image goes.
#[test]
fn multi_platform_index_pull_all_platforms_then_push() {
    let test = "multi_platform_index_pull_all_platforms_then_push";
    if !require_root(test)
        || !require_tool(test, "docker-registry")
        || !require_tool(test, "skopeo")
    {
        return;
    }
    let env = Env::new();
    let (_srv, addr) = env.serve("storage", &[]);
    let port = free_port();
    let dist = format!("127.0.0.1:{port}");
    let config = env.path("registry.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {dist}\n",
            env.path("distribution").display()
        ),
    )
    .unwrap();
    let _dist_srv = Proc(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry"),
    );
    wait_for_port(&dist);

    // Two images on berth's registry: busybox (the host's platform) and a one-file image
    // (announced as linux/arm64), joined by an index.
    env.import_busybox("src", &format!("{addr}/parts/a:1"));
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    fs::write(small.join("hello.txt"), "arm64 payload\n").unwrap();
    let small_tar = env.path("small.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&small_tar)
        .arg("-C")
        .arg(&small)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(
        "src",
        &[
            "import",
            small_tar.to_str().unwrap(),
            &format!("{addr}/parts/b:1"),
        ],
    );
    let mut entries = Vec::new();
    for (part, arch) in [("a", berth_arch()), ("b", "arm64")] {
        let out = env.ok("src", &["push", &format!("{addr}/parts/{part}:1")]);
        let digest = pushed_digest(&out);
        let (ctype, body) = get_manifest(&addr, &format!("parts/{part}"), &digest);
        entries.push(serde_json::json!({
            "mediaType": ctype, "digest": digest, "size": body.len(),
            "platform": {"os": "linux", "architecture": arch}
        }));
        // The children live in the index's repository too.
        put_manifest(&addr, "multi/app", &digest, &ctype, &body);
    }
    // Blobs of the children in multi/app: mount them by pushing the parts there as well.
    for part in ["a", "b"] {
        env.ok(
            "src",
            &[
                "tag",
                &format!("{addr}/parts/{part}:1"),
                &format!("{addr}/multi/app:{part}"),
            ],
        );
        env.ok("src", &["push", &format!("{addr}/multi/app:{part}")]);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let index_digest = format!("sha256:{}", sha256_hex(&index));
    put_manifest(
        &addr,
        "multi/app",
        "1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );

    // --all-platforms: every platform kept; push to docker-registry and to another
    // repository of berth's registry sends the same index.
    let all = format!("{addr}/multi/app:1");
    let out = env.ok("all", &["pull", "--all-platforms", &all]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    // A collection (every rmi runs one) keeps the index and the other platform's blobs,
    // which no image row names, for as long as the image is there.
    env.import_busybox("all", "scratch/gc:1");
    env.ok("all", &["rmi", "scratch/gc:1"]);
    for target in [format!("{dist}/multi/app:1"), format!("{addr}/copy/app:1")] {
        env.ok("all", &["tag", &all, &target]);
        let out = env.ok("all", &["push", &target]);
        assert_eq!(pushed_digest(&out), index_digest, "{out}");
        let (host, rest) = target.split_once('/').unwrap();
        let repo = rest.trim_end_matches(":1");
        let (ctype, body) = get_manifest(host, repo, "1");
        assert_eq!(ctype, "application/vnd.oci.image.index.v1+json");
        assert_eq!(body, index);
        // Each platform pulls from there.
        let out = env.ok(
            &format!("p-{host}"),
            &["pull", "--platform", "linux/arm64", &target],
        );
        assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
        let out = env.ok(&format!("h-{host}"), &["pull", &target]);
        assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    }

    // With the image gone, so are they.
    let index_file = |root: &str| {
        blob_files(&env.path(root))
            .iter()
            .any(|p| p.ends_with(index_digest.trim_start_matches("sha256:")))
    };
    assert!(index_file("all"));
    let id = env.image_id("all", &all);
    env.ok("all", &["rmi", "-f", &id]);
    assert!(!index_file("all"), "the index blob outlived its image");

    // Without --all-platforms only the host's image is at hand: it alone is pushed.
    env.ok("one", &["pull", &all]);
    let single = format!("{dist}/single/app:1");
    env.ok("one", &["tag", &all, &single]);
    let out = env.ok("one", &["push", &single]);
    assert_eq!(
        pushed_digest(&out),
        entries[0]["digest"].as_str().unwrap(),
        "{out}"
    );

    // An OCI archive of the whole index (skopeo copy --all), loaded: the index is kept and
    // pushed on whole.
    let archive = env.path("multi.tar");
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{all}"))
        .arg(format!("oci-archive:{}:multi/app:1", archive.display()))
        .status()
        .unwrap();
    assert!(st.success());
    env.ok("loaded", &["load", "-i", archive.to_str().unwrap()]);
    let again = format!("{addr}/loaded/app:1");
    env.ok("loaded", &["tag", "multi/app:1", &again]);
    let out = env.ok("loaded", &["push", &again]);
    assert_eq!(pushed_digest(&out), index_digest, "{out}");
    let (ctype, body) = get_manifest(&addr, "loaded/app", "1");
    assert_eq!(ctype, "application/vnd.oci.image.index.v1+json");
    assert_eq!(body, index);

    // The same archive with one byte of the other platform's layer changed: the load fails
    // in one line and records nothing.
    let mut files: Vec<(tar::Header, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(&archive).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.push((e.header().clone(), data));
    }
    let blob = |files: &[(tar::Header, Vec<u8>)], digest: &str| -> Vec<u8> {
        let want = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let (_, data) = files
            .iter()
            .find(|(h, _)| h.path().unwrap().to_string_lossy().trim_start_matches("./") == want)
            .unwrap_or_else(|| panic!("{want} not in the archive"));
        data.clone()
    };
    let arm: serde_json::Value =
        serde_json::from_slice(&blob(&files, entries[1]["digest"].as_str().unwrap())).unwrap();
    let layer = arm["layers"][0]["digest"].as_str().unwrap().to_owned();
    let bad = env.path("bad.tar");
    let mut out = tar::Builder::new(fs::File::create(&bad).unwrap());
    for (h, mut data) in files {
        if h.path()
            .unwrap()
            .ends_with(layer.trim_start_matches("sha256:"))
        {
            let last = data.len() - 1;
            data[last] ^= 0xff;
        }
        out.append(&h, &data[..]).unwrap();
    }
    out.finish().unwrap();
    let failed = env.run("badload", &["load", "-i", bad.to_str().unwrap()]);
    assert_ne!(failed.status.code(), Some(0));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "blobs/sha256/{}",
            layer.trim_start_matches("sha256:")
        )) && err.contains(&format!("not the one it is named by ({layer})")),
        "{err}"
    );
    assert_eq!(env.ok("badload", &["images", "-q"]).trim(), "");
}

/// The host's architecture in OCI terms.
fn berth_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The gzip size of the only layer of `repo:reference` on the registry at `addr`.
fn pushed_layer_size(addr: &str, repo: &str, reference: &str) -> u64 {
    let (_, body) = get_manifest(addr, repo, reference);
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert!(
        layers[0]["mediaType"].as_str().unwrap().ends_with("gzip"),
        "{manifest}"
    );
    layers[0]["size"].as_u64().unwrap()
}

#[test]
fn push_compression_level_trades_speed_for_size() {
    if !require_root("push_compression_level_trades_speed_for_size") {
        return;
    }
    let env = Env::new();
    let (_srv, addr) = env.serve("storage", &[]);
    let fast = format!("{addr}/level/fast:1");
    let small = format!("{addr}/level/small:1");
    env.import_busybox("r1", &fast);
    env.ok("r1", &["tag", &fast, &small]);
    env.ok("r1", &["push", "--compression-level", "1", &fast]);
    env.ok("r1", &["push", "--compression-level", "9", &small]);
    let fast_size = pushed_layer_size(&addr, "level/fast", "1");
    let small_size = pushed_layer_size(&addr, "level/small", "1");
    assert!(
        small_size < fast_size,
        "level 9 gave {small_size} bytes, level 1 {fast_size}"
    );
    // Either form pulls to the same image, which runs.
    env.ok("r2", &["pull", &small]);
    env.ok("r3", &["pull", &fast]);
    assert_eq!(env.image_id("r2", &small), env.image_id("r3", &fast));
    let run = env.ok("r2", &["run", "--rm", &small, "/bin/echo", "level 9"]);
    assert!(run.contains("level 9"), "{run}");

    // A level out of range is refused before anything is sent.
    let bad = env.run("r1", &["push", "--compression-level", "10", &fast]);
    assert_eq!(bad.status.code(), Some(125));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("10 is not in 1..=9"), "{err}");
}
