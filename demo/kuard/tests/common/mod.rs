//! Shared helpers: start the kuard binary on a free loopback port, speak HTTP to it.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

pub mod berth;
pub mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running kuard, killed on drop.
pub struct Kuard {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Kuard {
    pub fn start(extra: &[&str]) -> Kuard {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuard"))
            .args(["--address", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kuard");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr
            .read_line(&mut line)
            .expect("read kuard's first line");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        // Keep draining stderr so kuard never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stderr.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Kuard { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        s
    }

    /// One request on a new connection: (status, headers, body).
    pub fn req(&self, method: &str, path: &str, body: &str) -> Reply {
        let mut s = self.connect();
        send(&mut s, method, path, body, true);
        read_reply(&mut s, method == "HEAD")
    }

    pub fn get(&self, path: &str) -> Reply {
        self.req("GET", path, "")
    }

    pub fn alive(&self) -> bool {
        self.get("/healthy/api").status == 200
    }
}

impl Drop for Kuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn send(s: &mut TcpStream, method: &str, path: &str, body: &str, close: bool) {
    let conn = if close { "close" } else { "keep-alive" };
    let msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: kuard.test\r\nConnection: {conn}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).expect("send");
}

/// Reads one response framed by Content-Length.
pub fn read_reply(s: &mut TcpStream, head_only: bool) -> Reply {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(
            n == 1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("utf8 head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("content-length");
    let mut body = vec![0; if head_only { 0 } else { len }];
    s.read_exact(&mut body).expect("read body");
    Reply {
        status,
        headers,
        body,
    }
}
