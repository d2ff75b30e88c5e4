//! A headless Chromium driven through its DevTools protocol (CDP) over a WebSocket.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether Chromium is installed; when not: skip, or fail under CI.
pub fn chromium_or_skip(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {CHROMIUM} missing (scripts/install-test-deps.sh installs chromium)");
    }
    eprintln!("skipping {test}: {CHROMIUM} missing (apt-get install chromium)");
    false
}

/// A Chromium process with its own profile directory, killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

/// One attached page.
pub struct Tab {
    pub session: String,
}

impl Browser {
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes "PORT\n/devtools/browser/UUID" here once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let t = Instant::now();
        let text = loop {
            if let Ok(s) = std::fs::read_to_string(&active) {
                if s.lines().count() >= 2 {
                    break s;
                }
            }
            // Chromium's start alone, not what the tests check: under the whole suite on
            // 2 cores it once took over 30 s (its first start warms a cold profile).
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "chromium did not open its DevTools port within 90 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut lines = text.lines();
        let port = lines.next().unwrap().trim().to_string();
        let path = lines.next().unwrap().trim().to_string();
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect devtools");
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let (ws, _) = tungstenite::client::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("websocket handshake");
        Browser {
            child,
            _profile: profile,
            ws,
            next_id: 1,
        }
    }

    /// Sends one CDP command and waits for its answer (events in between are dropped).
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("send CDP");
        loop {
            let m = self.ws.read().expect("read CDP");
            let tungstenite::Message::Text(t) = m else {
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str()).expect("CDP JSON");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    pub fn open(&mut self, url: &str) -> Tab {
        let r = self.call(None, "Target.createTarget", json!({ "url": url }));
        let target = r["targetId"].as_str().expect("targetId").to_string();
        let r = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        Tab {
            session: r["sessionId"].as_str().expect("sessionId").to_string(),
        }
    }

    /// Evaluates `expr` in the page; returns its value.
    pub fn eval(&mut self, tab: &Tab, expr: &str) -> Value {
        let r = self.call(
            Some(&tab.session),
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy; returns its value.
    pub fn wait_for(&mut self, tab: &Tab, expr: &str, what: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.eval(tab, expr);
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the centre of the element `id` with real mouse events.
    pub fn click(&mut self, tab: &Tab, id: &str) {
        let rect = self.eval(
            tab,
            &format!(
                "(() => {{ const e = document.getElementById({id:?}); e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
            ),
        );
        let (x, y) = (
            rect["x"].as_f64().expect("x"),
            rect["y"].as_f64().expect("y"),
        );
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                Some(&tab.session),
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&mut self, tab: &Tab, out: &Path) {
        use base64::Engine;
        let r = self.call(
            Some(&tab.session),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("data"))
            .expect("base64");
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(out, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call(None, "Browser.close", json!({}));
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace's target directory (screenshots go there).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}
