//! Routing: the version prefix (`/v1.47/...` or none), then one arm per endpoint. Every
//! failure becomes `{"message": ...}` here, in one place.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::http::{ApiError, ApiResult, Body, Query};
use crate::{build, containers, exec, images, networks, system, State};

/// One request, parsed.
pub(crate) struct Req {
    pub state: Arc<State>,
    pub method: Method,
    /// The path without the version prefix.
    pub path: String,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Incoming,
    /// The connection, once a handler answered 101 (attach, exec start).
    pub upgrade: hyper::upgrade::OnUpgrade,
}

/// Splits `/v1.47/containers/json` into (`1.47`, `/containers/json`).
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        let numeric = v.split('.').count() == 2
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if numeric {
            let tail = &rest[end..];
            return (Some(v), if tail.is_empty() { "/" } else { tail });
        }
    }
    (None, path)
}

fn version_key(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Serves one request.
pub(crate) async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    state.touch();
    let upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let (version, path) = split_version(parts.uri.path());
    if let Some(v) = version {
        if version_key(v) < version_key(crate::MIN_API_VERSION) {
            return finish(Err(ApiError::bad_request(format!(
                "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                crate::MIN_API_VERSION
            ))));
        }
    }
    let r = Req {
        state,
        method: parts.method.clone(),
        path: path.to_owned(),
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
        body,
        upgrade,
    };
    log::debug!("{} {}", r.method, parts.uri);
    finish(route(r).await)
}

fn finish(r: ApiResult) -> Response<Body> {
    let mut resp = match r {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(crate::API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(
        "server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// What a daemon that is not a swarm manager answers.
fn no_swarm() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )
}

async fn route(r: Req) -> ApiResult {
    let path = r.path.clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = r.method.clone();
    let seg = |i: usize| segs.get(i).copied().unwrap_or("");
    match (m.clone(), segs.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => system::ping(r),
        (Method::GET, ["version"]) => system::version(r).await,
        (Method::GET, ["info"]) => system::info(r).await,
        (Method::POST, ["auth"]) => system::auth(r).await,
        (Method::GET, ["events"]) => system::events(r).await,
        (Method::GET, ["system", "df"]) => system::df(r).await,
        // BuildKit's endpoints: a daemon without BuildKit does not know them.
        (_, ["session"]) | (_, ["grpc"]) => Err(not_found()),
        (Method::POST, ["build"]) => build::build(r).await,
        (Method::POST, ["build", "prune"]) => build::prune(r).await,
        (Method::POST, ["build", "cancel"]) => crate::http::no_content(),

        (_, ["images", ..]) => route_images(r, &segs[1..]).await,

        (Method::GET, ["containers", "json"]) => containers::list(r).await,
        (Method::POST, ["containers", "create"]) => containers::create(r).await,
        (Method::POST, ["containers", "prune"]) => containers::prune(r).await,
        (Method::GET, ["containers", _, "json"]) => containers::inspect(r, seg(1)).await,
        (Method::DELETE, ["containers", _]) => containers::remove(r, seg(1)).await,
        (Method::POST, ["containers", _, "start"]) => containers::start(r, seg(1)).await,
        (Method::POST, ["containers", _, "stop"]) => containers::stop(r, seg(1)).await,
        (Method::POST, ["containers", _, "restart"]) => containers::restart(r, seg(1)).await,
        (Method::POST, ["containers", _, "kill"]) => containers::kill(r, seg(1)).await,
        (Method::POST, ["containers", _, "wait"]) => containers::wait(r, seg(1)).await,
        (Method::POST, ["containers", _, "attach"]) => streams::attach(r, seg(1)).await,
        (Method::POST, ["containers", _, "resize"]) => containers::resize(r, seg(1)).await,
        (Method::POST, ["containers", _, "pause"]) => containers::pause(r, seg(1)).await,
        (Method::POST, ["containers", _, "unpause"]) => containers::unpause(r, seg(1)).await,
        (Method::POST, ["containers", _, "rename"]) => containers::rename(r, seg(1)).await,
        (Method::GET, ["containers", _, "logs"]) => containers::logs(r, seg(1)).await,
        (Method::GET, ["containers", _, "top"]) => containers::top(r, seg(1)).await,
        (Method::GET, ["containers", _, "stats"]) => containers::stats(r, seg(1)).await,
        (Method::POST, ["containers", _, "exec"]) => exec::create(r, seg(1)).await,

        (Method::POST, ["exec", _, "start"]) => exec::start(r, seg(1)).await,
        (Method::POST, ["exec", _, "resize"]) => exec::resize(r, seg(1)).await,
        (Method::GET, ["exec", _, "json"]) => exec::inspect(r, seg(1)).await,

        (Method::GET, ["networks"]) => networks::list(r).await,
        (Method::POST, ["networks", "create"]) => networks::create(r).await,
        (Method::POST, ["networks", "prune"]) => networks::prune(r).await,
        (Method::GET, ["networks", _]) => networks::inspect(r, seg(1)).await,
        (Method::DELETE, ["networks", _]) => networks::remove(r, seg(1)).await,
        (Method::POST, ["networks", _, "connect"]) => networks::connect(r, seg(1)).await,
        (Method::POST, ["networks", _, "disconnect"]) => networks::disconnect(r, seg(1)).await,

        (_, ["swarm", ..])
        | (_, ["services", ..])
        | (_, ["nodes", ..])
        | (_, ["tasks", ..])
        | (_, ["secrets", ..])
        | (_, ["configs", ..]) => Err(no_swarm()),
        (Method::GET, ["plugins"]) => crate::http::ok_json(&serde_json::json!([])),
        (_, ["plugins", ..]) => Err(ApiError::not_found("plugins are not supported by berth")),
        (_, ["distribution", ..]) => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "distribution inspection is not supported by berth",
        )),
        _ => Err(not_found()),
    }
}

use crate::streams;

/// `/images/...`: image names hold slashes, so the verb is the last segment.
async fn route_images(r: Req, segs: &[&str]) -> ApiResult {
    let m = r.method.clone();
    match (m, segs) {
        (Method::GET, ["json"]) => images::list(r).await,
        (Method::POST, ["create"]) => images::create(r).await,
        (Method::POST, ["load"]) => images::load(r).await,
        (Method::GET, ["get"]) => {
            let names = r.query.all("names");
            images::get(r, names).await
        }
        (Method::GET, ["search"]) => crate::http::ok_json(&serde_json::json!([])),
        (Method::POST, ["prune"]) => images::prune(r).await,
        (Method::DELETE, name) if !name.is_empty() => {
            let name = name.join("/");
            images::remove(r, &name).await
        }
        (m, [name @ .., verb]) if !name.is_empty() => {
            let name = name.join("/");
            match (m, *verb) {
                (Method::GET, "json") => images::inspect(r, &name).await,
                (Method::GET, "history") => images::history(r, &name).await,
                (Method::POST, "push") => images::push(r, &name).await,
                (Method::POST, "tag") => images::tag(r, &name).await,
                (Method::GET, "get") => images::get(r, vec![name]).await,
                _ => Err(not_found()),
            }
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_stripped_and_compared() {
        assert_eq!(
            split_version("/v1.47/containers/json"),
            (Some("1.47"), "/containers/json")
        );
        assert_eq!(split_version("/_ping"), (None, "/_ping"));
        assert_eq!(split_version("/v1.24"), (Some("1.24"), "/"));
        assert_eq!(split_version("/volumes"), (None, "/volumes"));
        assert!(version_key("1.9") < version_key("1.24"));
        assert!(version_key("1.47") > version_key("1.24"));
    }
}
