//! The HTTP plumbing every route shares: the response body, Docker's error document, query
//! strings, JSON request bodies with a size limit, and streamed responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

/// The largest JSON request body accepted (a container create is a few KiB).
pub const MAX_JSON_BODY: usize = 8 << 20;

/// A response body: nothing, one buffer, or chunks from a channel (streams: logs,
/// progress, stats, events).
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// One buffer (taken when sent).
    Full(Option<Bytes>),
    /// Chunks as they come; the stream ends when every sender is gone.
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Empty | Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty | Body::Full(None) => SizeHint::with_exact(0),
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

/// A failed request as Docker reports it: a status and `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: a parameter is not valid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500: the engine or the system failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The response.
    pub fn response(&self) -> Response<Body> {
        json(self.status, &serde_json::json!({ "message": self.message }))
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> ApiError {
        use berth_engine::ErrorKind as K;
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            K::AlreadyExists | K::Conflict => StatusCode::CONFLICT,
            K::InvalidArgument => StatusCode::BAD_REQUEST,
            K::Unsupported => StatusCode::NOT_IMPLEMENTED,
            K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            log::warn!("engine: {e}");
        }
        ApiError::new(status, e.to_string())
    }
}

impl From<berth_engine::container::ContainerError> for ApiError {
    fn from(e: berth_engine::container::ContainerError) -> ApiError {
        berth_engine::Error::from(e).into()
    }
}

impl From<berth_engine::network::NetworkError> for ApiError {
    fn from(e: berth_engine::network::NetworkError) -> ApiError {
        berth_engine::Error::from(e).into()
    }
}

/// What a handler returns.
pub type ApiResult = Result<Response<Body>, ApiError>;

/// A JSON response.
pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    with_type(status, "application/json", Body::Full(Some(bytes.into())))
}

/// 200 with a JSON document.
pub fn ok_json(v: &Value) -> ApiResult {
    Ok(json(StatusCode::OK, v))
}

/// 204 No Content.
pub fn no_content() -> ApiResult {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// A response with a content type.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A streamed 200 response and the sender that feeds it.
pub fn stream(content_type: &'static str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel(64);
    (
        tx,
        with_type(StatusCode::OK, content_type, Body::Stream(rx)),
    )
}

/// A query string, decoded.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x%20y`.
    pub fn parse(q: Option<&str>) -> Query {
        let mut out = Vec::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.push((percent_decode(k), percent_decode(v)));
        }
        Query(out)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key` when not empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean as Docker reads it (`1`, `true`, `True`; absent or empty: `default`).
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some("1" | "true" | "True" | "TRUE" | "t" | "yes") => Ok(true),
            Some("0" | "false" | "False" | "FALSE" | "f" | "no") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid value for {key}: {v:?}: expected a boolean"
            ))),
        }
    }

    /// An integer, when given.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for {key}: {v:?}: expected an integer"
                ))
            }),
        }
    }

    /// `filters`: `{"key":["v",...]}` or the older `{"key":{"v":true}}`, as `key=v` pairs.
    pub fn filters(&self) -> Result<Vec<(String, String)>, ApiError> {
        let Some(raw) = self.non_empty("filters") else {
            return Ok(Vec::new());
        };
        let doc: Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let Some(map) = doc.as_object() else {
            return Err(ApiError::bad_request("invalid filter: expected an object"));
        };
        let mut out = Vec::new();
        for (k, v) in map {
            match v {
                Value::Array(items) => {
                    for i in items {
                        out.push((k.clone(), i.as_str().unwrap_or_default().to_owned()));
                    }
                }
                Value::Object(items) => {
                    for (i, on) in items {
                        if on.as_bool().unwrap_or(true) {
                            out.push((k.clone(), i.clone()));
                        }
                    }
                }
                Value::String(s) => out.push((k.clone(), s.clone())),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter {k:?}: expected a list of strings"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// `%XX` and `+` decoding of a query component.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') && !s.contains('+') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {limit} bytes"),
            ))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// Reads a JSON request body into `T`; an empty body is `T::default()`-like `null`.
pub async fn read_json<T: DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    let bytes = read_body(body, MAX_JSON_BODY).await?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        &bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// A header's value as text.
pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// One JSON document followed by a newline, as Docker's progress streams send them.
pub fn json_line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_filters_take_both_shapes() {
        let q = Query::parse(Some(
            "all=1&filters=%7B%22status%22%3A%5B%22running%22%5D%7D&t=a&t=b+c",
        ));
        assert!(q.bool("all", false).expect("bool"));
        assert_eq!(q.all("t"), vec!["a", "b c"]);
        assert_eq!(
            q.filters().expect("filters"),
            vec![("status".to_owned(), "running".to_owned())]
        );
        let old = Query::parse(Some("filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D"));
        assert_eq!(
            old.filters().expect("filters"),
            vec![("label".to_owned(), "a=b".to_owned())]
        );
        assert!(Query::parse(Some("all=maybe")).bool("all", false).is_err());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
