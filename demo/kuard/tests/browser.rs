//! The page in a real browser: headless Chromium opens kuard, the hostname shows, the
//! readiness button turns /ready to failing, and a screenshot lands under target/.

#![allow(clippy::unwrap_used)]

mod common;

use common::browser::{chromium_or_skip, target_dir, Browser};
use common::Kuard;

#[test]
fn page_in_headless_chromium_fails_readiness_on_click() {
    if !chromium_or_skip("page_in_headless_chromium_fails_readiness_on_click") {
        return;
    }
    let k = Kuard::start(&[]);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let mut b = Browser::launch();
    let tab = b.open(&k.url("/"));
    b.wait_for(
        &tab,
        "location.protocol === 'http:' && document.readyState === 'complete' && !!document.getElementById('hostname')",
        "the page to load",
    );
    let shown = b.eval(&tab, "document.getElementById('hostname').textContent");
    assert_eq!(shown.as_str(), Some(hostname.as_str()), "hostname shown");
    b.wait_for(
        &tab,
        "document.getElementById('ready-status').textContent.includes('passing')",
        "readiness status",
    );
    assert_eq!(k.get("/ready/api").json()["failNext"], 0);

    b.click(&tab, "ready-fail");
    let status = b.wait_for(
        &tab,
        "(() => { const t = document.getElementById('ready-status').textContent; return t.includes('failing') && t; })()",
        "the page to show readiness failing",
    );
    assert!(status.as_str().unwrap().contains("failNext 3"), "{status}");
    let r = k.get("/ready");
    assert_eq!(r.status, 500, "/ready after the click: {}", r.text());

    // The memory chart has samples, and the screenshot shows the failing probe.
    b.click(&tab, "mem-alloc-50");
    b.wait_for(
        &tab,
        "samples.length >= 4 && samples[samples.length - 1].allocated > 0",
        "memory samples",
    );
    assert_eq!(k.get("/mem/api").json()["allocated"], 50u64 << 20);
    let out = target_dir().join("kuard-browser.png");
    b.screenshot(&tab, &out);
    let png = std::fs::read(&out).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", out.display());
}

/// The same page served by the container through `berth run -d -p`: the host name shown is the
/// container's (its short ID), and the readiness button works through the published port.
#[test]
fn page_through_berth_published_port() {
    let name = "page_through_berth_published_port";
    if !common::berth::root_or_skip(name) || !chromium_or_skip(name) {
        return;
    }
    let Some(bin) = common::berth::berth_bin(name) else {
        return;
    };
    let kuard = common::berth::static_kuard();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&kuard, ctx.join("kuard")).unwrap();
    std::fs::copy(
        common::berth::repo().join("demo/kuard/Dockerfile"),
        ctx.join("Dockerfile"),
    )
    .unwrap();
    let b = |args: &[&str]| common::berth::berth(&bin, tmp.path(), args);

    let (code, _, err) = b(&[
        "build",
        "-q",
        "-t",
        "kuard-browser:1",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "berth build: {err}");
    // A free port: bind :0, note it, release it for berth.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cname = format!("kuard-browser-{}", std::process::id());
    let publish = format!("127.0.0.1:{port}:8080");
    let (code, out, err) = b(&[
        "run",
        "-d",
        "--name",
        &cname,
        "-p",
        &publish,
        "kuard-browser:1",
    ]);
    assert_eq!(code, 0, "berth run: {err}");
    struct Remove<'a>(&'a dyn Fn());
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let rm = || {
        let _ = b(&["rm", "-f", &cname]);
    };
    let _guard = Remove(&rm);
    let short_id = out.trim().chars().take(12).collect::<String>();
    let url = format!("http://127.0.0.1:{port}/");
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || http_status(port, "/healthy") != Some(200)
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(15),
            "kuard did not answer on {url}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let mut br = Browser::launch();
    let tab = br.open(&url);
    br.wait_for(
        &tab,
        "location.protocol === 'http:' && document.readyState === 'complete' && !!document.getElementById('hostname')",
        "the page to load",
    );
    let shown = br.eval(&tab, "document.getElementById('hostname').textContent");
    assert_eq!(
        shown.as_str(),
        Some(short_id.as_str()),
        "the page shows the container's host name"
    );
    br.wait_for(
        &tab,
        "document.getElementById('ready-status').textContent.includes('passing')",
        "readiness status",
    );
    br.click(&tab, "ready-fail");
    br.wait_for(
        &tab,
        "document.getElementById('ready-status').textContent.includes('failing')",
        "readiness failing",
    );
    assert_eq!(
        http_status(port, "/ready"),
        Some(500),
        "/ready through the published port"
    );
    br.wait_for(&tab, "samples.length >= 3 && document.getElementById('mem-stats').textContent.includes('cgroup')", "memory");
    let out = target_dir().join("kuard-browser-berth.png");
    br.screenshot(&tab, &out);
    eprintln!("screenshot: {}", out.display());
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
