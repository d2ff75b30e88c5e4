//! Network routes: list, inspect, create, delete, connect, disconnect, prune.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::blocking;
use crate::http::{self, ApiError, ApiResult};
use crate::router::Req;

/// `GET /networks?filters=`: each network's inspect document (`name`, `id`, `driver` and
/// `label` filters).
pub(crate) async fn list(r: Req) -> ApiResult {
    let filters = r.query.filters()?;
    let st = r.state.clone();
    let docs = blocking(move || {
        let engine = st.engine()?;
        let nets = engine.networks();
        let mut out = Vec::new();
        for n in nets.network_list()? {
            let keep = filters.iter().all(|(k, v)| match k.as_str() {
                "name" => n.name.contains(v.as_str()),
                "id" => n.id.starts_with(v.as_str()),
                "driver" => &n.driver == v,
                "scope" => &n.scope == v,
                "type" => match v.as_str() {
                    "builtin" => ["bridge", "host", "none"].contains(&n.name.as_str()),
                    "custom" => !["bridge", "host", "none"].contains(&n.name.as_str()),
                    _ => false,
                },
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                    None => n.labels.contains_key(v.as_str()),
                },
                _ => true,
            });
            if keep {
                out.push(nets.network_inspect(&n.id)?);
            }
        }
        Ok(out)
    })
    .await?;
    http::ok_json(&Value::Array(docs))
}

/// `GET /networks/{id}`.
pub(crate) async fn inspect(r: Req, id: &str) -> ApiResult {
    let st = r.state.clone();
    let id = id.to_owned();
    let doc = blocking(move || Ok(st.engine()?.networks().network_inspect(&id)?)).await?;
    http::ok_json(&doc)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfigBody {
    subnet: Option<String>,
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamBody {
    config: Option<Vec<IpamConfigBody>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    internal: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<IpamBody>,
    labels: Option<BTreeMap<String, String>>,
    check_duplicate: Option<bool>,
}

/// `POST /networks/create`.
pub(crate) async fn create(r: Req) -> ApiResult {
    let body: Option<CreateBody> = http::read_json(r.body).await?;
    let b = body.unwrap_or_default();
    let _ = b.check_duplicate;
    let name = b
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("network name is required"))?;
    let mut subnet = None;
    let mut gateway = None;
    let mut subnet6 = None;
    for c in b.ipam.and_then(|i| i.config).unwrap_or_default() {
        match c.subnet {
            Some(s) if s.contains(':') => subnet6 = Some(s),
            Some(s) => {
                subnet = Some(s);
                gateway = c.gateway.clone();
            }
            None => {}
        }
    }
    let req = berth_engine::network::NetworkCreate {
        name,
        driver: b.driver.filter(|d| !d.is_empty()),
        subnet,
        gateway,
        ipv6: b.enable_ipv6.unwrap_or(false),
        subnet6,
        internal: b.internal.unwrap_or(false),
        labels: b.labels.unwrap_or_default(),
    };
    let st = r.state.clone();
    let id = blocking(move || Ok(st.engine()?.networks().network_create(&req)?)).await?;
    Ok(http::json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warning": ""}),
    ))
}

/// `DELETE /networks/{id}`.
pub(crate) async fn remove(r: Req, id: &str) -> ApiResult {
    let st = r.state.clone();
    let id = id.to_owned();
    blocking(move || Ok(st.engine()?.networks().network_remove(&id).map(|_| ())?)).await?;
    http::no_content()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: Option<String>,
    endpoint_config: Option<crate::containers::EndpointBody>,
    force: Option<bool>,
}

/// `POST /networks/{id}/connect`.
pub(crate) async fn connect(r: Req, id: &str) -> ApiResult {
    let body: Option<ConnectBody> = http::read_json(r.body).await?;
    let b = body.unwrap_or_default();
    let container = b
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("Container is required"))?;
    let ep = b.endpoint_config.unwrap_or_default();
    let aliases = ep.aliases.clone().unwrap_or_default();
    let ip = match ep
        .ipam_config
        .and_then(|i| i.ipv4_address)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(
            s.parse::<std::net::Ipv4Addr>()
                .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {s}")))?,
        ),
        None => None,
    };
    let st = r.state.clone();
    let id = id.to_owned();
    blocking(move || {
        Ok(st
            .engine()?
            .networks()
            .network_connect(&id, &container, &aliases, ip)?)
    })
    .await?;
    Ok(http::with_type(
        StatusCode::OK,
        "application/json",
        http::Body::Empty,
    ))
}

/// `POST /networks/{id}/disconnect`.
pub(crate) async fn disconnect(r: Req, id: &str) -> ApiResult {
    let body: Option<ConnectBody> = http::read_json(r.body).await?;
    let b = body.unwrap_or_default();
    let _ = b.force;
    let container = b
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("Container is required"))?;
    let st = r.state.clone();
    let id = id.to_owned();
    blocking(move || {
        Ok(st
            .engine()?
            .networks()
            .network_disconnect(&id, &container)?)
    })
    .await?;
    Ok(http::with_type(
        StatusCode::OK,
        "application/json",
        http::Body::Empty,
    ))
}

/// `POST /networks/prune`.
pub(crate) async fn prune(r: Req) -> ApiResult {
    let st = r.state.clone();
    let names = blocking(move || Ok(st.engine()?.networks().network_prune()?)).await?;
    http::ok_json(&json!({
        "NetworksDeleted": if names.is_empty() { Value::Null } else { json!(names) },
    }))
}
