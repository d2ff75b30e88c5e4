//! `berth registry serve --storage s3://...` replicas (the CLI, `BERTH_TEST_BIN`): one is
//! SIGKILLed in the middle of a 30 MB upload. Nothing partial is visible through the other
//! replica, a retry through it succeeds, and `registry gc` plus the debris sweep leave no
//! session and no multipart upload behind. One replica is configured through the AWS
//! environment variables, the other through `[registry.s3]` in a berth.toml.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod s3_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_oci::Digest;
use berth_registry::server::{S3Storage, Storage};
use s3_support::S3Server;

fn berth() -> Option<PathBuf> {
    match std::env::var_os("BERTH_TEST_BIN") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => panic!("BERTH_TEST_BIN is not set"),
        None => {
            eprintln!("skipped: BERTH_TEST_BIN is not set");
            None
        }
    }
}

struct Replica {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A replica through the environment (`via_file` false) or a berth.toml.
fn replica(bin: &PathBuf, srv: &S3Server, bucket: &str, via_file: bool) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("--root")
        .arg(dir.path().join("root"))
        .arg("--runroot")
        .arg(dir.path().join("run"))
        .args(["registry", "serve", "--addr", "127.0.0.1:0"]);
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(k);
    }
    if via_file {
        let conf = dir.path().join("berth.toml");
        std::fs::write(
            &conf,
            format!(
                "[registry]\nstorage = \"s3://{bucket}/reg\"\n\n[registry.s3]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                srv.endpoint,
                s3_support::ACCESS_KEY,
                s3_support::SECRET_KEY
            ),
        )
        .unwrap();
        cmd.arg("--config").arg(&conf);
    } else {
        cmd.args(["--storage", &format!("s3://{bucket}/reg")])
            .env("AWS_ENDPOINT_URL", &srv.endpoint)
            .env("AWS_ACCESS_KEY_ID", s3_support::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3_support::SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("replica said {line:?}"))
        .to_owned();
    Replica {
        child,
        base,
        _dir: dir,
    }
}

fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = (seed << 1) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn start_upload(base: &str, repo: &str) -> String {
    let r = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/"))
        .send_bytes(b"")
        .unwrap();
    assert_eq!(r.status(), 202);
    r.header("location").unwrap().to_owned()
}

fn killed_mid_upload(bin: &PathBuf, srv: &S3Server) {
    let bucket = s3_support::bucket("kill");
    let mut a = replica(bin, srv, &bucket, false);
    let b = replica(bin, srv, &bucket, true);
    let data = noise(11, 30_000_000);
    let d = Digest::of(&data);

    // A PATCH of 30 MB through A, killed after 20 MB (two parts stored, more in flight).
    let path = start_upload(&a.base, "kill/app");
    let host = a.base.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&host).unwrap();
    write!(
        conn,
        "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .unwrap();
    conn.write_all(&data[..20_000_000]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    drop(conn);

    // Nothing partial is visible through B: no blob, and the session claims no bytes.
    let blob = format!("{}/v2/kill/app/blobs/{d}", b.base);
    match ureq::head(&blob).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("{:?}", other.map(|r| r.status())),
    }
    let status = ureq::get(&format!("{}{path}", b.base)).call().unwrap();
    assert_eq!(status.status(), 204);
    let range = status.header("range").unwrap_or("0-0").to_owned();
    assert!(range == "0-0" || range == "0--1", "{range}");

    // The retry through B succeeds and pulls back whole.
    let loc = start_upload(&b.base, "kill/app");
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = ureq::put(&format!("{}{loc}{sep}digest={d}", b.base))
        .send_bytes(&data)
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut got = Vec::new();
    ureq::get(&blob)
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == data);

    // `registry gc` drops the killed session; the debris sweep aborts the multipart upload
    // the killed replica never recorded.
    let gc = Command::new(bin)
        .args(["registry", "gc", "--upload-max-age", "0", "--storage"])
        .arg(format!("s3://{bucket}/reg"))
        .env("AWS_ENDPOINT_URL", &srv.endpoint)
        .env("AWS_ACCESS_KEY_ID", s3_support::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3_support::SECRET_KEY)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&gc.stdout);
    assert!(
        gc.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert!(out.contains("1 stale uploads deleted"), "{out}");
    let st = S3Storage::open(srv.config(&bucket, "reg")).unwrap();
    st.clean_debris(Duration::ZERO).unwrap();
    assert!(st.list_uploads().unwrap().is_empty());
    if let Some(list) = st.multipart_uploads().unwrap() {
        assert!(list.is_empty(), "{list:?}");
    }
    assert_eq!(st.list_blobs().unwrap(), vec![d]);
}

#[test]
fn a_replica_killed_mid_upload_leaves_nothing_partial() {
    let Some(bin) = berth() else {
        return;
    };
    for srv in s3_support::moto().into_iter().chain(s3_support::s3s_fs()) {
        eprintln!("== {}", srv.name);
        killed_mid_upload(&bin, &srv);
    }
}
