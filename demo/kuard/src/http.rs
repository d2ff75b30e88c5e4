//! A small HTTP/1.1 server: request parsing, response writing, keep-alive, on std threads.
//!
//! One thread per connection keeps the code plain and the latency low for the few dozen
//! connections a demo sees; a cap on open connections keeps a flood from exhausting threads.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Most connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long an idle keep-alive connection is kept open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong while reading a request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The peer closed the connection between requests (not an error to report).
    #[error("connection closed")]
    Closed,
    /// The request line or a header could not be parsed.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The request head exceeds [`MAX_HEAD`].
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The declared body exceeds [`MAX_BODY`].
    #[error("request body of {0} bytes exceeds the limit of {MAX_BODY} bytes")]
    BodyTooLarge(u64),
    /// Transfer encodings other than identity are not supported.
    #[error("transfer-encoding is not supported; send Content-Length")]
    UnsupportedEncoding,
    /// Reading from or writing to the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Broad classes of [`HttpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The peer went away.
    Closed,
    /// The peer sent something we refuse.
    InvalidArgument,
    /// The socket failed.
    Io,
}

impl HttpError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HttpError::Closed => ErrorKind::Closed,
            HttpError::Io(_) => ErrorKind::Io,
            _ => ErrorKind::InvalidArgument,
        }
    }

    /// The status to answer with, for errors that deserve an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Malformed(_) => Some(400),
            HttpError::HeadTooLarge => Some(431),
            HttpError::BodyTooLarge(_) => Some(413),
            HttpError::UnsupportedEncoding => Some(501),
            HttpError::Closed | HttpError::Io(_) => None,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path part of the target, still percent-encoded.
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty when none).
    pub body: Vec<u8>,
    /// The peer's address.
    pub remote: Option<SocketAddr>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter named `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).as_deref() == Some(name))
                .then(|| percent_decode(v).unwrap_or_default())
        })
    }

    /// Whether the connection stays open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// A file streamed with a known length.
    File(std::fs::File, u64),
}

/// A response to write.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The Content-Type.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

impl Response {
    /// A response with an in-memory body.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }

    /// A JSON response.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The body's bytes when in memory (for tests).
    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(b) => b,
            Body::File(..) => &[],
        }
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Decodes `%XX` escapes (and `+` as space in queries is not applied: paths keep `+`).
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One connection's read buffer; keeps bytes of a pipelined next request.
pub struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<S: Read> Conn<S> {
    /// Wraps a stream.
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: vec![0; 8192],
            start: 0,
            end: 0,
        }
    }

    /// The wrapped stream.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    fn fill(&mut self) -> Result<usize, HttpError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_HEAD + MAX_BODY {
                return Err(HttpError::HeadTooLarge);
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Reads the next request; [`HttpError::Closed`] at a clean end of stream.
    pub fn read_request(&mut self) -> Result<Request, HttpError> {
        let head_end = loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(pos) = find(pending, b"\r\n\r\n") {
                break pos;
            }
            if pending.len() > MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            let had = pending.len();
            if self.fill()? == 0 {
                return Err(if had == 0 {
                    HttpError::Closed
                } else {
                    HttpError::Malformed("truncated request")
                });
            }
        };
        if head_end > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let head = std::str::from_utf8(&self.buf[self.start..self.start + head_end])
            .map_err(|_| HttpError::Malformed("request head is not UTF-8"))?;
        let mut req = parse_head(head)?;
        self.start += head_end + 4;
        if req.header("transfer-encoding").is_some() {
            return Err(HttpError::UnsupportedEncoding);
        }
        let len = match req.header("content-length") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| HttpError::Malformed("bad Content-Length"))?,
        };
        if len > MAX_BODY as u64 {
            return Err(HttpError::BodyTooLarge(len));
        }
        let len = len as usize;
        while self.end - self.start < len {
            if self.fill()? == 0 {
                return Err(HttpError::Malformed("truncated body"));
            }
        }
        req.body = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(req)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a request line and headers (without the final blank line).
pub fn parse_head(head: &str) -> Result<Request, HttpError> {
    let mut lines = head.split("\r\n");
    let line = lines.next().ok_or(HttpError::Malformed("empty request"))?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => {
            return Err(HttpError::Malformed(
                "request line is not METHOD TARGET VERSION",
            ))
        }
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed("bad method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Malformed("unsupported HTTP version"));
    }
    // Absolute-form targets (proxies) are reduced to their path.
    let target = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map(|j| &target[i + 3 + j..])
            .unwrap_or("/"),
        None => target,
    };
    if !target.starts_with('/') {
        return Err(HttpError::Malformed("target must start with /"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or(HttpError::Malformed("header without colon"))?;
        if k.is_empty() || k.contains(' ') {
            return Err(HttpError::Malformed("bad header name"));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        version: version.to_string(),
        headers,
        body: Vec::new(),
        remote: None,
    })
}

/// Writes `resp` to `w`; `head_only` for HEAD requests.
pub fn write_response(
    w: &mut impl Write,
    resp: Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let len = match &resp.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, n) => *n,
    };
    let mut out = Vec::with_capacity(
        256 + if head_only {
            0
        } else {
            len.min(1 << 20) as usize
        },
    );
    write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: kuard\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        len
    )?;
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    for (k, v) in &resp.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    out.extend_from_slice(b"\r\n");
    match resp.body {
        Body::Bytes(b) => {
            if !head_only {
                out.extend_from_slice(&b);
            }
            w.write_all(&out)?;
        }
        Body::File(f, n) => {
            w.write_all(&out)?;
            if !head_only {
                let copied = io::copy(&mut f.take(n), w)?;
                if copied < n {
                    // The file shrank: the framing is broken, so the connection must end.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while sent",
                    ));
                }
            }
        }
    }
    w.flush()
}

/// Anything that answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Request) -> Response;
}

/// Serves `handler` on `listener` until the process ends.
pub fn serve(listener: TcpListener, handler: Arc<dyn Handler>) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            // Out of descriptors or an aborted handshake: keep accepting.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let mut s = stream;
            let _ = write_response(
                &mut s,
                Response::text(503, "too many connections\n"),
                false,
                false,
            );
            continue;
        }
        let handler = handler.clone();
        let active2 = active.clone();
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                serve_conn(stream, &*handler);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// Serves one connection until it closes or errs.
pub fn serve_conn(stream: TcpStream, handler: &dyn Handler) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let remote = stream.peer_addr().ok();
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut conn = Conn::new(stream);
    loop {
        match conn.read_request() {
            Ok(mut req) => {
                req.remote = remote;
                let keep = req.keep_alive();
                let head_only = req.method == "HEAD";
                let resp = handler.handle(&req);
                if write_response(&mut writer, resp, keep, head_only).is_err() || !keep {
                    return;
                }
            }
            Err(e) => {
                if let Some(status) = e.status() {
                    let _ = write_response(
                        &mut writer,
                        Response::text(status, format!("{e}\n")),
                        false,
                        false,
                    );
                }
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Vec<Result<Request, HttpError>> {
        let mut conn = Conn::new(input);
        let mut out = Vec::new();
        loop {
            match conn.read_request() {
                Err(HttpError::Closed) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
                Ok(r) => out.push(Ok(r)),
            }
        }
    }

    #[test]
    fn parses_pipelined_requests_with_bodies() {
        let input = b"GET /a?x=1&y=%41 HTTP/1.1\r\nHost: h\r\n\r\nPUT /ready/api HTTP/1.1\r\nContent-Length: 14\r\n\r\n{\"failNext\":3}";
        let reqs = read_all(input);
        assert_eq!(reqs.len(), 2);
        let a = reqs[0].as_ref().unwrap();
        assert_eq!(
            (a.method.as_str(), a.path.as_str(), a.query.as_str()),
            ("GET", "/a", "x=1&y=%41")
        );
        assert_eq!(a.query_param("y").as_deref(), Some("A"));
        assert_eq!(a.header("HOST"), Some("h"));
        let b = reqs[1].as_ref().unwrap();
        assert_eq!(b.body, b"{\"failNext\":3}");
    }

    #[test]
    fn rejects_bad_requests() {
        for (input, status) in [
            (&b"GARBAGE\r\n\r\n"[..], 400),
            (b"GET / HTTP/2.0\r\n\r\n", 400),
            (b"GET noslash HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 400),
            (b"GET / HTTP/1.1\r\nHost: x", 400),
        ] {
            let res = read_all(input);
            let err = res
                .last()
                .unwrap()
                .as_ref()
                .err()
                .unwrap_or_else(|| panic!("accepted {input:?}"));
            assert_eq!(err.status(), Some(status), "{input:?}: {err}");
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD + 10));
        let res = read_all(huge.as_bytes());
        assert_eq!(res[0].as_ref().err().unwrap().status(), Some(431));
    }

    #[test]
    fn keep_alive_rules() {
        let r = parse_head("GET / HTTP/1.0").unwrap();
        assert!(!r.keep_alive());
        let r = parse_head("GET / HTTP/1.0\r\nConnection: keep-alive").unwrap();
        assert!(r.keep_alive());
        let r = parse_head("GET / HTTP/1.1\r\nConnection: close").unwrap();
        assert!(!r.keep_alive());
        let r = parse_head("GET http://x:1/p?q HTTP/1.1").unwrap();
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/p", "q"));
    }

    #[test]
    fn writes_framing() {
        let mut out = Vec::new();
        write_response(&mut out, Response::text(200, "ok"), true, false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.ends_with("\r\n\r\nok"));
        let mut out = Vec::new();
        write_response(&mut out, Response::text(200, "ok"), false, true).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Connection: close") && s.ends_with("\r\n\r\n"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
