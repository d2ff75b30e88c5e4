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
