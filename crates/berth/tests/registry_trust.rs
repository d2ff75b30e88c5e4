//! The trust a user puts in `berth registry serve` (issue 13 §2 and §5), end to end through
//! the `berth` binary: a login outlives restarts and access tokens, and dies with the
//! password; the storage is closed to other users. Every test has its own roots, storage,
//! port and DOCKER_CONFIG.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::fs;
use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[path = "containers_support/mod.rs"]
mod support;

use support::{berth_command, require_root_for, require_tool, Proc, BIN};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn berth(&self, root: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = berth_command(&self.path(root), &self.path(&format!("{root}-run")));
        c.args(args)
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, root: &str, args: &[&str]) -> String {
        let out = self.berth(root, args, None);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn import_busybox(&self, root: &str, reference: &str) {
        let tar = support::busybox_tar();
        self.ok(root, &["import", tar.to_str().unwrap(), reference]);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// `berth registry serve` on `addr` (a fixed port: the stored login is keyed by it).
fn serve_on(storage: &Path, addr: &str, extra: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(["registry", "serve", "--addr", addr, "--storage"])
        .arg(storage)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Proc(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("listening on http://{addr}"));
    server
}

fn write_htpasswd(path: &Path, user: &str, password: &str) {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap();
    assert!(out.status.success());
    fs::write(path, out.stdout).unwrap();
}

fn pushed_digest(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.contains(": digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line in {stdout}"));
    line.split_whitespace().nth(2).unwrap().to_owned()
}

/// `berth login` keeps a refresh token; the registry restarted and its access tokens expired
/// (a 2-second life here), push and pull still work with it; a new password in the htpasswd
/// file revokes it (a one-line auth error), and a login with the new one works again.
#[test]
fn login_outlives_restarts_and_access_tokens_until_the_password_changes() {
    let test = "login_outlives_restarts_and_access_tokens_until_the_password_changes";
    if !require_root_for(test, "the busybox rootfs has owners") || !require_tool(test, "htpasswd") {
        return;
    }
    let env = Env::new();
    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "carol", "first-pw");
    let config = env.path("berth.toml");
    fs::write(&config, "[registry.auth]\ntoken_ttl = 2\n").unwrap();
    let storage = env.path("storage");
    let addr = format!("127.0.0.1:{}", free_port());
    let flags = [
        "--config",
        config.to_str().unwrap(),
        "--htpasswd",
        ht.to_str().unwrap(),
    ];
    let srv = serve_on(&storage, &addr, &flags);
    let reference = format!("{addr}/carol/busybox:1");
    env.import_busybox("r1", &reference);
    let out = env.berth(
        "r1",
        &["login", "-u", "carol", "--password-stdin", &addr],
        Some("first-pw\n"),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = fs::read_to_string(env.path("docker-config/config.json")).unwrap();
    assert!(stored.contains("identitytoken"), "{stored}");
    assert!(!stored.contains("first-pw"), "{stored}");

    // Restarted, and every access token issued before is dead.
    drop(srv);
    let srv = serve_on(&storage, &addr, &flags);
    std::thread::sleep(Duration::from_millis(3100));
    let digest = pushed_digest(&env.ok("r1", &["push", &reference]));
    let out = env.ok("r2", &["pull", &reference]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let key = storage.join("signing-key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A new password: the stored login no longer works, for pull or push.
    write_htpasswd(&ht, "carol", "second-pw");
    for (root, args) in [
        ("r3", vec!["pull", reference.as_str()]),
        ("r1", vec!["push", reference.as_str()]),
    ] {
        let out = env.berth(root, &args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} worked: {err}");
        assert!(
            err.to_lowercase().contains("unauthorized"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // The old password neither.
    let out = env.berth(
        "r1",
        &["login", "-u", "carol", "--password-stdin", &addr],
        Some("first-pw\n"),
    );
    assert!(!out.status.success());
    let out = env.berth(
        "r1",
        &["login", "-u", "carol", "--password-stdin", &addr],
        Some("second-pw\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok("r3", &["pull", &reference]);
    drop(srv);
}

/// As another user (uid 65534), nothing of the storage can be listed or read: not the
/// blobs, not the signing key; a storage left open by an older berth is closed at start.
#[test]
fn registry_storage_is_closed_to_other_users() {
    let test = "registry_storage_is_closed_to_other_users";
    if !require_root_for(
        test,
        "setpriv to another user; the busybox rootfs has owners",
    ) || !require_tool(test, "htpasswd")
    {
        return;
    }
    let env = Env::new();
    // The way to the storage is open to everyone (as /var/lib is).
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let storage = env.path("storage");
    // An existing storage, made open (0755 directories, a 0644 file).
    let leftover = storage.join("repositories/old/_layers");
    fs::create_dir_all(&leftover).unwrap();
    fs::write(leftover.join("note"), b"secret").unwrap();
    for p in [
        storage.clone(),
        storage.join("repositories"),
        storage.join("repositories/old"),
        leftover.clone(),
    ] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(leftover.join("note"), fs::Permissions::from_mode(0o644)).unwrap();

    let ht = env.path("htpasswd");
    write_htpasswd(&ht, "dave", "pw");
    let addr = format!("127.0.0.1:{}", free_port());
    let _srv = serve_on(&storage, &addr, &["--htpasswd", ht.to_str().unwrap()]);
    let reference = format!("{addr}/dave/busybox:1");
    env.import_busybox("r1", &reference);
    env.berth(
        "r1",
        &["login", "-u", "dave", "--password-stdin", &addr],
        Some("pw\n"),
    );
    env.ok("r1", &["push", &reference]);

    let mode = fs::metadata(&storage).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "storage is {mode:o}");
    let mut blobs = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(p).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    walk(&storage.join("blobs"), &mut blobs);
    assert!(blobs.len() >= 3, "{blobs:?}");
    let nobody = |args: &[&str]| -> Output {
        Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    // The test means something: uid 65534 reaches the storage's parent.
    let parent = nobody(&["ls", env.dir.path().to_str().unwrap()]);
    assert!(
        parent.status.success(),
        "{}",
        String::from_utf8_lossy(&parent.stderr)
    );
    let mut targets: Vec<PathBuf> = blobs;
    targets.push(storage.join("signing-key"));
    targets.push(leftover.join("note"));
    for t in &targets {
        let out = nobody(&["cat", t.to_str().unwrap()]);
        assert!(!out.status.success(), "uid 65534 read {}", t.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}: {}",
            t.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = nobody(&["ls", storage.to_str().unwrap()]);
    assert!(!out.status.success(), "uid 65534 listed the storage");
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

/// `registry gc` spares a blob uploaded a moment ago (a push's manifest may be on its way)
/// unless `--min-age` says otherwise (issue 18: the default was 0).
#[test]
fn registry_gc_spares_young_blobs_by_default() {
    use std::io::Read;
    let env = Env::new();
    let storage = env.path("storage");
    let addr = format!("127.0.0.1:{}", free_port());
    let srv = serve_on(&storage, &addr, &[]);
    let data = b"a layer whose manifest is on its way";
    let digest = format!("sha256:{}", sha256_hex(data));
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        tcp,
        "POST /v2/app/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )
    .unwrap();
    tcp.write_all(data).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    drop(srv);
    let gc = |extra: &[&str]| -> String {
        let out = Command::new(BIN)
            .args(["registry", "gc", "--storage"])
            .arg(&storage)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = gc(&[]);
    assert!(out.contains("0 blobs deleted"), "{out}");
    let out = gc(&["--min-age", "0"]);
    assert!(out.contains(&format!("blob {digest} deleted")), "{out}");
    assert!(out.contains("1 blobs deleted"), "{out}");
}
