//! HTTP tests of every route of the kuard binary, including bad input.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{read_reply, send, Kuard};

#[test]
fn index_page_shows_host_version_and_request() {
    let k = Kuard::start(&[]);
    for prefix in ["", "/a", "/b", "/c"] {
        let r = k.get(&format!("{prefix}/?q=1"));
        assert_eq!(r.status, 200, "{prefix}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        let html = r.text();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert!(
            html.contains(&format!("<b id=\"hostname\">{}</b>", host.trim())),
            "hostname missing"
        );
        assert!(html.contains(&format!("version {}", kuard::VERSION)));
        assert!(html.contains("kuard.test"), "request headers missing");
        assert!(
            html.contains(&format!("{prefix}/?q=1")),
            "request path missing"
        );
        assert!(html.contains("127.0.0.1:"), "remote address missing");
        assert!(html.contains("127.0.0.1"), "addresses missing");
    }
    let r = k.req("HEAD", "/", "");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(k.req("POST", "/", "").status, 405);
    assert_eq!(k.get("/nope").status, 404);
    assert_eq!(k.get("/version").text().trim(), kuard::VERSION);
}

#[test]
fn probes_fail_on_demand_and_keep_history() {
    let k = Kuard::start(&["--liveness-fail-next", "1", "--readiness-fail-next", "-1"]);
    let r = k.get("/healthy");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("0 more"), "{}", r.text());
    assert_eq!(k.get("/healthy").status, 200);
    assert_eq!(k.get("/healthy").text(), "ok\n");
    for _ in 0..25 {
        assert_eq!(k.get("/b/ready").status, 500);
    }
    let h = k.get("/ready/api").json();
    assert_eq!(h["failNext"], -1);
    assert_eq!(h["history"].as_array().unwrap().len(), 20);
    assert!(h["history"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["code"] == 500));

    let r = k.req("PUT", "/ready/api", r#"{"failNext": 2}"#);
    assert_eq!((r.status, r.json()["failNext"].as_i64()), (200, Some(2)));
    assert!(k.get("/ready").text().contains("1 more"));
    assert_eq!(k.get("/ready").status, 500);
    assert_eq!(k.get("/ready").status, 200);
    let r = k.req("PUT", "/a/healthy/api", r#"{"failNext": -1}"#);
    assert_eq!(r.status, 200);
    assert!(k.get("/healthy").text().contains("for good"));

    for bad in [
        "",
        "not json",
        r#"{"failNext": 1.5}"#,
        r#"{"failNext": "2"}"#,
        r#"{"fail": 2}"#,
    ] {
        let r = k.req("PUT", "/healthy/api", bad);
        assert_eq!(r.status, 400, "{bad:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("invalid JSON"));
    }
    let r = k.req("DELETE", "/ready/api", "");
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("PUT"));
    assert_eq!(k.req("POST", "/healthy", "").status, 405);
    for bad in ["--liveness-fail-next", "--readiness-fail-next"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuard"))
            .args([bad, "x"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("expected an integer"));
    }
}

#[test]
fn env_api_lists_argv_and_environment() {
    let k = Kuard::start(&["--readiness-fail-next", "0"]);
    let e = k.get("/env/api").json();
    assert_eq!(e["commandLine"][1], "--address");
    assert_eq!(e["commandLine"][3], "--readiness-fail-next");
    assert!(e["env"]["PATH"].is_string());
}

#[test]
fn mem_api_allocates_frees_and_refuses_bad_sizes() {
    let k = Kuard::start(&[]);
    let m = k.get("/mem/api").json();
    let rss0 = m["rss"].as_u64().unwrap();
    assert!(rss0 > 0 && rss0 < 64 << 20, "rss {rss0}");
    assert!(m["cgroup"].is_object());

    let m = k.req("POST", "/mem/api/alloc?size=64M", "").json();
    assert_eq!(m["allocated"], 64u64 << 20);
    assert!(
        m["rss"].as_u64().unwrap() >= rss0 + (60 << 20),
        "memory not touched: {m}"
    );
    let m = k.req("POST", "/c/mem/api/alloc?size=1048576", "").json();
    assert_eq!(m["allocations"], 2);
    let m = k.req("POST", "/mem/api/clear", "").json();
    assert_eq!(m["allocated"], 0);
    assert!(
        m["rss"].as_u64().unwrap() < rss0 + (16 << 20),
        "not freed: {m}"
    );

    for q in [
        "",
        "?size=",
        "?size=-1",
        "?size=abc",
        "?size=0",
        "?size=1.5G",
        "?size=99999999999999999999999",
        "?size=1000000000G",
        "?size=100000T",
    ] {
        let r = k.req("POST", &format!("/mem/api/alloc{q}"), "");
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains("size"), "{q}: {msg}");
        assert!(k.alive(), "kuard died after {q}");
    }
    assert_eq!(k.get("/mem/api/alloc?size=1").status, 405);
    assert_eq!(k.get("/mem/api/clear").status, 405);
}

#[test]
fn keygen_starts_reports_and_stops() {
    let k = Kuard::start(&[]);
    let s = k.get("/keygen/api").json();
    assert_eq!(s["running"], false);
    let s = k
        .req("PUT", "/keygen/api", r#"{"enable": true, "workers": 1}"#)
        .json();
    assert_eq!(s["running"], true);
    let t = Instant::now();
    while k.get("/keygen/api").json()["generated"].as_u64().unwrap() < 10 {
        assert!(t.elapsed() < Duration::from_secs(20), "no keys generated");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = k.req("POST", "/keygen/api/stop", "").json();
    assert_eq!(s["config"]["enable"], false);
    let t = Instant::now();
    while k.get("/keygen").json()["running"] == true {
        assert!(t.elapsed() < Duration::from_secs(5), "did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = k
        .req("POST", "/keygen/api/start?numToGen=3&workers=2", "")
        .json();
    assert_eq!(s["config"]["numToGen"], 3);
    let metrics = k.get("/metrics").text();
    assert!(metrics.contains("kuard_keygen_keys_total "));
    for (m, p, b) in [
        ("PUT", "/keygen/api", "{}"),
        ("PUT", "/keygen/api", r#"{"enable": true, "workers": 1000}"#),
        ("PUT", "/keygen/api", r#"{"enable": true, "bogus": 1}"#),
        ("POST", "/keygen/api/start?workers=-1", ""),
        ("POST", "/keygen/api/start?timeToRun=soon", ""),
    ] {
        assert_eq!(k.req(m, p, b).status, 400, "{m} {p} {b}");
    }
    assert_eq!(k.get("/keygen/api/stop").status, 405);
    k.req("POST", "/keygen/api/stop", "");
}

#[test]
fn fs_browser_is_read_only_and_stays_inside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "NAME=kuard-test\n").unwrap();
    std::fs::write(dir.path().join("outside.txt"), "SECRET").unwrap();
    std::os::unix::fs::symlink("../../outside.txt", root.join("etc/link")).unwrap();
    let k = Kuard::start(&["--fs-root", root.to_str().unwrap()]);

    let r = k.get("/fs/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("etc/"));
    assert_eq!(k.get("/a/fs/etc/os-release").text(), "NAME=kuard-test\n");
    let r = k.get("/fs/etc");
    assert_eq!((r.status, r.header("location")), (301, Some("/fs/etc/")));
    assert_eq!(k.get("/fs").status, 301);
    for (p, code) in [
        ("/fs/../outside.txt", 400),
        ("/fs/etc/%2e%2e/%2e%2e/outside.txt", 400),
        ("/fs/etc/link", 403),
        ("/fs/missing", 404),
        ("/fs/%ff%fe", 400),
    ] {
        let r = k.get(p);
        assert_eq!(r.status, code, "{p}: {}", r.text());
        assert!(!r.text().contains("SECRET"));
    }
    for m in ["PUT", "DELETE", "POST"] {
        assert_eq!(k.req(m, "/fs/etc/os-release", "x").status, 405);
    }
    assert!(root.join("etc/os-release").exists());
}

#[test]
fn fs_browser_reads_proc_files_and_refuses_devices() {
    let k = Kuard::start(&[]);
    let r = k.get("/fs/proc/self/status");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("VmRSS"));
    assert_eq!(k.get("/fs/dev/null").status, 403);
    assert_eq!(k.get("/fs/dev/zero").status, 403);
    assert!(k.get("/fs/etc/").text().contains("passwd"));
}

#[test]
fn metrics_count_requests_in_prometheus_text() {
    let k = Kuard::start(&[]);
    for _ in 0..3 {
        k.get("/");
    }
    k.get("/missing");
    let r = k.get("/c/metrics");
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let t = r.text();
    assert!(
        t.contains("kuard_http_requests_total{route=\"index\",code=\"200\"} 3\n"),
        "{t}"
    );
    assert!(
        t.contains("kuard_http_requests_total{route=\"not_found\",code=\"404\"} 1\n"),
        "{t}"
    );
    assert!(t.contains("process_resident_memory_bytes "));
    for line in t.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(name.chars().next().unwrap().is_ascii_alphabetic(), "{line}");
    }
}

#[test]
fn keep_alive_and_pipelining() {
    let k = Kuard::start(&[]);
    let mut s = k.connect();
    for _ in 0..50 {
        send(&mut s, "GET", "/healthy", "", false);
        let r = read_reply(&mut s, false);
        assert_eq!(r.status, 200);
        assert!(r.header("connection").is_none());
    }
    // Three requests in one write; three responses in order.
    s.write_all(
        b"GET /version HTTP/1.1\r\n\r\nGET /healthy HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_reply(&mut s, false).text().trim(), kuard::VERSION);
    assert_eq!(read_reply(&mut s, false).text(), "ok\n");
    assert_eq!(read_reply(&mut s, false).status, 404);
    // HTTP/1.0 closes after the response.
    let mut s = k.connect();
    s.write_all(b"GET /healthy HTTP/1.0\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200")
            && all.contains("Connection: close")
            && all.ends_with("ok\n")
    );
}

#[test]
fn malformed_requests_get_clear_errors_and_server_lives() {
    let k = Kuard::start(&[]);
    let huge_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"NONSENSE\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/3\r\n\r\n".to_vec(), 400),
        (b"get / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n".to_vec(), 400),
        (
            b"POST /ready/api HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /ready/api HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            501,
        ),
        (huge_header.into_bytes(), 431),
    ];
    for (raw, code) in cases {
        let mut s = k.connect();
        s.write_all(&raw).unwrap();
        let r = read_reply(&mut s, false);
        assert_eq!(
            r.status,
            code,
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(40)])
        );
        assert!(!r.text().is_empty());
    }
    // A client that goes away mid-request does no harm.
    let mut s = k.connect();
    s.write_all(b"POST /ready/api HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    drop(s);
    assert!(k.alive());
}

#[test]
fn sigterm_exits_promptly() {
    let mut k = Kuard::start(&[]);
    let pid = k.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    loop {
        if let Some(st) = k.child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "kuard ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_flags_and_busy_port_fail_with_one_line() {
    let k = Kuard::start(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuard"))
        .args(["--address", &k.addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("cannot listen on") && err.lines().count() == 1,
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuard"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown flag"));
}
