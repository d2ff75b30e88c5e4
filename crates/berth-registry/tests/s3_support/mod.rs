//! S3-compatible servers for the tests, on loopback at random ports: `moto_server` (PyPI
//! `moto[server]`) and `s3s-fs` (crates.io), both installed by `scripts/install-test-deps.sh`.
//! A server that is not installed skips its tests, except under `CI`, where it fails them.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_registry::server::S3Config;

/// Test credentials (the servers accept any, s3s-fs checks them).
pub const ACCESS_KEY: &str = "berthtestkey";
/// Test secret.
pub const SECRET_KEY: &str = "berthtestsecret0123456789";

/// A running S3 server, killed on drop.
pub struct S3Server {
    /// `moto` or `s3s-fs`.
    pub name: &'static str,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Settings for a fresh bucket (made at open) on this server.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        config_at(&self.endpoint, bucket, prefix)
    }
}

/// Settings for `bucket` behind `endpoint`.
pub fn config_at(endpoint: &str, bucket: &str, prefix: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: endpoint.into(),
        region: "us-east-1".into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

/// A bucket name no other test uses.
pub fn bucket(tag: &str) -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!("t-{tag}-{:x}-{}", n & 0xffff_ffff, std::process::id())
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(cmd))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = std::path::Path::new(&home).join(".cargo/bin").join(cmd);
            p.is_file().then_some(p)
        })
}

fn missing(name: &str) -> Option<S3Server> {
    if std::env::var_os("CI").is_some() {
        panic!("{name} is not installed (scripts/install-test-deps.sh installs it)");
    }
    eprintln!("skipped: {name} is not installed (scripts/install-test-deps.sh installs it)");
    None
}

/// Waits until `endpoint` answers HTTP.
fn wait_ready(port: u16, child: &mut Child, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{name} exited at start: {status}");
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .is_ok()
            {
                let mut b = [0u8; 12];
                if s.read(&mut b).map(|n| n > 0).unwrap_or(false) {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "{name} did not start in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `moto_server` on a random port.
pub fn moto() -> Option<S3Server> {
    let Some(bin) = which("moto_server") else {
        return missing("moto_server");
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child, "moto_server");
    Some(S3Server {
        name: "moto",
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
        _dir: dir,
    })
}

/// Starts `s3s-fs` on a random port over a temporary directory.
pub fn s3s_fs() -> Option<S3Server> {
    let Some(bin) = which("s3s-fs") else {
        return missing("s3s-fs");
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child, "s3s-fs");
    Some(S3Server {
        name: "s3s-fs",
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
        _dir: dir,
    })
}
