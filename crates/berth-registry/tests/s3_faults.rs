//! The registry over an S3 store that fails (issue 17): a small proxy in front of `moto`
//! answers 500 to some or all requests, or holds them unanswered. The registry retries what
//! it may, then fails the request with a clear error, and leaves nothing half-made: no blob
//! appears that was not whole, and a retry after the store heals succeeds.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod s3_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_oci::Digest;
use berth_registry::server::{self, S3Storage, ServerConfig, Storage};

const PASS: u8 = 0;
/// Every other request answers 500.
const FLAKY: u8 = 1;
/// Every request answers 500.
const DOWN: u8 = 2;
/// Requests are read and never answered.
const HANG: u8 = 3;

/// A proxy to `upstream` whose behaviour is switched through `mode`.
struct FaultyProxy {
    addr: String,
    mode: Arc<AtomicU8>,
    failed: Arc<AtomicU64>,
}

fn read_head(r: &mut BufReader<TcpStream>) -> Option<(Vec<u8>, usize, bool)> {
    let mut head = Vec::new();
    let mut len = 0usize;
    let mut is_head = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if head.is_empty() && line.starts_with("HEAD ") {
            is_head = true;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            return Some((head, len, is_head));
        }
    }
}

fn serve_conn(client: TcpStream, upstream: String, mode: Arc<AtomicU8>, n: Arc<AtomicU64>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    let mut seq = 0u64;
    while let Some((head, len, _)) = read_head(&mut reader) {
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seq += 1;
        let m = mode.load(Ordering::SeqCst);
        let fail = m == DOWN || (m == FLAKY && n.load(Ordering::SeqCst) % 2 == 0 && seq > 0);
        if m == HANG {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        if fail {
            n.fetch_add(1, Ordering::SeqCst);
            let msg = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
                msg.len()
            );
            if !head.starts_with(b"HEAD ") {
                let _ = client.write_all(msg);
            }
            continue;
        }
        if m == FLAKY {
            n.fetch_add(1, Ordering::SeqCst);
        }
        // Forward on a connection of its own that the upstream closes after answering, and
        // hand the answer back as it came (its own framing).
        let Ok(mut up) = TcpStream::connect(&upstream) else {
            return;
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut fwd = String::new();
        for line in text.split_inclusive("\r\n") {
            if line == "\r\n" {
                fwd.push_str("Connection: close\r\n\r\n");
            } else if !line.to_ascii_lowercase().starts_with("connection:") {
                fwd.push_str(line);
            }
        }
        if up
            .write_all(fwd.as_bytes())
            .and_then(|_| up.write_all(&body))
            .is_err()
        {
            return;
        }
        let mut answer = Vec::new();
        if up.read_to_end(&mut answer).is_err() || client.write_all(&answer).is_err() {
            return;
        }
    }
}

impl FaultyProxy {
    fn start(upstream: &str) -> FaultyProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(PASS));
        let failed = Arc::new(AtomicU64::new(0));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let (m, f) = (mode.clone(), failed.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let (u, m, f) = (upstream.clone(), m.clone(), f.clone());
                std::thread::spawn(move || serve_conn(c, u, m, f));
            }
        });
        FaultyProxy { addr, mode, failed }
    }
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
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

fn with_digest(loc: &str, d: &Digest) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={d}")
}

/// A monolithic push (POST with the digest), or the status the registry answered.
fn push(base: &str, repo: &str, data: &[u8]) -> Result<Digest, (u16, String)> {
    let d = Digest::of(data);
    let r = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")).send_bytes(data);
    match r {
        Ok(r) if r.status() == 201 => Ok(d),
        Ok(r) => Err((r.status(), String::new())),
        Err(ureq::Error::Status(s, r)) => Err((s, r.into_string().unwrap_or_default())),
        Err(e) => Err((0, e.to_string())),
    }
}

fn pull(base: &str, repo: &str, d: &Digest) -> Result<Vec<u8>, u16> {
    match ureq::get(&format!("{base}/v2/{repo}/blobs/{d}")).call() {
        Ok(r) => {
            let mut b = Vec::new();
            r.into_reader().read_to_end(&mut b).unwrap();
            Ok(b)
        }
        Err(ureq::Error::Status(s, _)) => Err(s),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_s3_store_that_fails_and_hangs() {
    let Some(moto) = s3_support::moto() else {
        return;
    };
    let proxy = FaultyProxy::start(&moto.endpoint);
    let bucket = s3_support::bucket("faults");
    let mut s3 = s3_support::config_at(&proxy.addr, &bucket, "f");
    s3.timeout = Duration::from_secs(1);
    let direct = S3Storage::open(s3_support::config_at(&moto.endpoint, &bucket, "f")).unwrap();
    let srv = server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        s3: Some(s3.clone()),
        ..Default::default()
    })
    .unwrap();
    let base = format!("http://{}", srv.addr);

    // Half the store's answers are 500s: the retries hide them.
    proxy.set(FLAKY);
    let data = noise(1, 6 << 20);
    let d = push(&base, "f/app", &data).expect("a flaky store is retried");
    assert_eq!(pull(&base, "f/app", &d).unwrap(), data);
    assert!(
        proxy.failed.load(Ordering::SeqCst) > 3,
        "faults were injected"
    );

    // A session started while the store worked, its first part stored.
    proxy.set(PASS);
    let data2 = noise(2, 7 << 20);
    let d2 = Digest::of(&data2);
    let r = ureq::post(&format!("{base}/v2/f/app/blobs/uploads/"))
        .send_bytes(b"")
        .unwrap();
    let loc = format!("{base}{}", r.header("location").unwrap());
    let r = ureq::request("PATCH", &loc)
        .set("content-range", &format!("0-{}", (6 << 20) - 1))
        .send_bytes(&data2[..6 << 20])
        .unwrap();
    let loc = format!("{base}{}", r.header("location").unwrap());
    // The store is down: requests fail in bounded time with 500, and no blob appears.
    proxy.set(DOWN);
    let t = Instant::now();
    let failed = |r: Result<ureq::Response, ureq::Error>| match r {
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        other => panic!("{:?}", other.map(|r| r.status())),
    };
    let (status, body) = failed(ureq::put(&with_digest(&loc, &d2)).send_bytes(&data2[6 << 20..]));
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("INTERNAL_ERROR") || body.contains("UNKNOWN"),
        "{body}"
    );
    let (status, _) =
        failed(ureq::post(&format!("{base}/v2/f/app/blobs/uploads/")).send_bytes(b""));
    assert_eq!(status, 500);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // What the registry logs: the operation, the key and the last answer.
    let err = S3Storage::open(s3.clone()).unwrap_err().to_string();
    assert!(
        err.contains("object store: HeadBucket")
            && err.contains("failed 4 times")
            && err.contains("HTTP 500"),
        "{err}"
    );

    // The store hangs: each attempt times out (1 s here), then the request fails.
    proxy.set(HANG);
    let t = Instant::now();
    let (status, _) =
        failed(ureq::post(&format!("{base}/v2/f/app/blobs/uploads/")).send_bytes(b""));
    assert_eq!(status, 500);
    assert!(t.elapsed() < Duration::from_secs(25), "{:?}", t.elapsed());
    let err = S3Storage::open(s3.clone()).unwrap_err().to_string();
    assert!(
        err.contains("failed 4 times") && err.to_lowercase().contains("timed out"),
        "{err}"
    );

    // Healed: nothing half-made is visible, and the retry succeeds.
    proxy.set(PASS);
    assert_eq!(direct.blob_size(&d2).unwrap(), None);
    assert_eq!(pull(&base, "f/app", &d2).unwrap_err(), 404);
    // The session survived the outage: its first part is kept, the rest completes it.
    let st = ureq::get(&loc).call().unwrap();
    assert_eq!(st.header("range").unwrap(), format!("0-{}", (6 << 20) - 1));
    let r = ureq::put(&with_digest(&loc, &d2))
        .send_bytes(&data2[6 << 20..])
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(pull(&base, "f/app", &d2).unwrap(), data2);
    // Sessions the failures left are abandoned uploads, removed by the collector's
    // upload sweep; none of them is a blob.
    for (id, _) in direct.list_uploads().unwrap() {
        direct.cancel_upload(&id).unwrap();
    }
    direct.clean_debris(Duration::ZERO).unwrap();
    assert!(direct.list_uploads().unwrap().is_empty());
    assert_eq!(direct.multipart_uploads().unwrap(), Some(vec![]));
    let mut blobs = direct.list_blobs().unwrap();
    blobs.sort();
    let mut want = vec![d, d2];
    want.sort();
    assert_eq!(blobs, want);
}
