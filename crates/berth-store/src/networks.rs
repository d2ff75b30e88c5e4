//! The network tables: networks, container endpoints (the IP address allocations) and
//! published ports.
//!
//! Addresses are allocated inside one `IMMEDIATE` transaction that reads the addresses in
//! use and inserts the new one, and `(network, address)` is unique, so parallel `run`s never
//! receive the same address. The store keeps addresses as text; `berth-net` decides which
//! one is free.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::ErrorKind;

/// One network as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name (`bridge`, `host`, `none`, or the user's).
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// Bridge interface name; empty for host and none.
    pub bridge: String,
    /// IPv4 CIDR; empty for host and none.
    pub subnet: String,
    /// Gateway address; empty for host and none.
    pub gateway: String,
    /// No outbound traffic (`--internal`).
    pub internal: bool,
    /// JSON object of labels.
    pub labels: String,
    /// Unix nanoseconds.
    pub created: i64,
    /// IPv6 CIDR; empty for networks without IPv6.
    pub subnet6: String,
    /// IPv6 gateway address; empty for networks without IPv6.
    pub gateway6: String,
}

/// One container's endpoint on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// The network.
    pub network_id: String,
    /// The container.
    pub container_id: String,
    /// The allocated IPv4 address.
    pub address: String,
    /// Host end of the veth pair.
    pub host_ifname: String,
    /// Interface name inside the container.
    pub container_ifname: String,
    /// JSON list of names (`--network-alias`).
    pub aliases: String,
    /// The address asked for (`network connect --ip`, `run --ip`), '' for any: a container
    /// that starts again gets this one or fails.
    pub static_address: String,
}

/// One published port as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// The container.
    pub container_id: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Host address.
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
}

/// Errors of the network tables.
#[derive(Debug, thiserror::Error)]
pub enum NetworkStoreError {
    /// No network has this name, ID or ID prefix.
    #[error("network {0} not found")]
    NotFound(String),
    /// A prefix matches several networks.
    #[error("network {input} is ambiguous ({} matches found based on ID prefix)", .matches.len())]
    Ambiguous {
        /// What was typed.
        input: String,
        /// IDs of the matches.
        matches: Vec<String>,
    },
    /// The name belongs to another network.
    #[error("network with name {0} already exists")]
    NameInUse(String),
    /// The network still has containers.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    InUse {
        /// The network's name.
        name: String,
        /// Its ID.
        id: String,
    },
    /// Every address of the network's subnet is taken.
    #[error("no available IPv4 addresses on network {0}")]
    NoFreeAddress(String),
    /// The database failed.
    #[error("store database ({op}): {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl NetworkStoreError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetworkStoreError::NotFound(_) => ErrorKind::NotFound,
            NetworkStoreError::NameInUse(_) => ErrorKind::AlreadyExists,
            NetworkStoreError::Ambiguous { .. }
            | NetworkStoreError::InUse { .. }
            | NetworkStoreError::NoFreeAddress(_) => ErrorKind::Conflict,
            NetworkStoreError::Db { .. } => ErrorKind::Internal,
        }
    }
}

fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> NetworkStoreError {
    move |source| NetworkStoreError::Db { op, source }
}

type Result<T> = std::result::Result<T, NetworkStoreError>;

const NET_COLUMNS: &str =
    "id, name, driver, bridge, subnet, gateway, internal, labels, created, subnet6, gateway6";
const EP_COLUMNS: &str =
    "network_id, container_id, address, host_ifname, container_ifname, aliases, static_address";

fn net_row(r: &Row<'_>) -> rusqlite::Result<NetworkRecord> {
    Ok(NetworkRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        driver: r.get(2)?,
        bridge: r.get(3)?,
        subnet: r.get(4)?,
        gateway: r.get(5)?,
        internal: r.get(6)?,
        labels: r.get(7)?,
        created: r.get(8)?,
        subnet6: r.get(9)?,
        gateway6: r.get(10)?,
    })
}

fn ep_row(r: &Row<'_>) -> rusqlite::Result<EndpointRecord> {
    Ok(EndpointRecord {
        network_id: r.get(0)?,
        container_id: r.get(1)?,
        address: r.get(2)?,
        host_ifname: r.get(3)?,
        container_ifname: r.get(4)?,
        aliases: r.get(5)?,
        static_address: r.get(6)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn immediate(conn: &Connection) -> Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting transaction"))
}

/// Adds a network; a taken name is [`NetworkStoreError::NameInUse`]. With `or_ignore`, an
/// existing row of that name is kept and no error returned (predefined networks).
pub fn insert_network(conn: &Connection, n: &NetworkRecord, or_ignore: bool) -> Result<()> {
    let verb = if or_ignore {
        "INSERT OR IGNORE"
    } else {
        "INSERT"
    };
    let r = conn.execute(
        &format!(
            "{verb} INTO networks ({NET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            n.id,
            n.name,
            n.driver,
            n.bridge,
            n.subnet,
            n.gateway,
            n.internal,
            n.labels,
            n.created,
            n.subnet6,
            n.gateway6
        ],
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(NetworkStoreError::NameInUse(n.name.clone())),
        Err(e) => Err(db("inserting network")(e)),
    }
}

/// Finds a network by full ID, exact name, or unique ID prefix (Docker's order).
pub fn resolve_network(conn: &Connection, input: &str) -> Result<NetworkRecord> {
    let q = format!("SELECT {NET_COLUMNS} FROM networks WHERE id = ?1 OR name = ?1");
    let exact: Vec<NetworkRecord> = {
        let mut st = conn.prepare_cached(&q).map_err(db("finding network"))?;
        let rows = st
            .query_map([input], net_row)
            .map_err(db("finding network"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db("finding network"))?
    };
    if let Some(n) = exact.iter().find(|n| n.id == input) {
        return Ok(n.clone());
    }
    if let Some(n) = exact.into_iter().next() {
        return Ok(n);
    }
    if input.is_empty() || !input.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(NetworkStoreError::NotFound(input.to_string()));
    }
    let q = format!("SELECT {NET_COLUMNS} FROM networks WHERE substr(id, 1, ?2) = ?1");
    let mut st = conn.prepare_cached(&q).map_err(db("finding network"))?;
    let found: Vec<NetworkRecord> = st
        .query_map(params![input, input.len() as i64], net_row)
        .map_err(db("finding network"))?
        .collect::<rusqlite::Result<_>>()
        .map_err(db("finding network"))?;
    match found.len() {
        0 => Err(NetworkStoreError::NotFound(input.to_string())),
        1 => Ok(found.into_iter().next().expect("one row")),
        _ => Err(NetworkStoreError::Ambiguous {
            input: input.to_string(),
            matches: found.into_iter().map(|n| n.id).collect(),
        }),
    }
}

/// Every network, by name.
pub fn list_networks(conn: &Connection) -> Result<Vec<NetworkRecord>> {
    let q = format!("SELECT {NET_COLUMNS} FROM networks ORDER BY name");
    let mut st = conn.prepare_cached(&q).map_err(db("listing networks"))?;
    let rows = st.query_map([], net_row).map_err(db("listing networks"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db("listing networks"))
}

/// Removes a network that has no endpoints; otherwise [`NetworkStoreError::InUse`].
pub fn delete_network(conn: &Connection, id: &str) -> Result<()> {
    let tx = immediate(conn)?;
    let n: i64 = tx
        .query_row(
            "SELECT count(*) FROM network_endpoints WHERE network_id = ?1",
            [id],
            |r| r.get(0),
        )
        .map_err(db("counting endpoints"))?;
    if n > 0 {
        let name: String = tx
            .query_row("SELECT name FROM networks WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db("finding network"))?
            .unwrap_or_default();
        return Err(NetworkStoreError::InUse {
            name,
            id: id.to_string(),
        });
    }
    tx.execute("DELETE FROM networks WHERE id = ?1", [id])
        .map_err(db("deleting network"))?;
    tx.commit().map_err(db("committing"))
}

/// Allocates an address and records an endpoint, in one transaction. `choose` gets the
/// addresses in use on the network and the address the container last had there (if it
/// has a released endpoint, see [`release_addresses`]) and returns a free one (or `None`:
/// subnet exhausted). An endpoint of the container on that network that has an address
/// is returned unchanged; a released one keeps its interface names and aliases and gets
/// the address `choose` picks.
pub fn allocate_endpoint(
    conn: &Connection,
    ep: &EndpointRecord,
    choose: impl FnOnce(&[String], Option<&str>) -> Option<String>,
) -> Result<EndpointRecord> {
    let tx = immediate(conn)?;
    let q = format!(
        "SELECT {EP_COLUMNS}, last_address FROM network_endpoints WHERE network_id = ?1 AND container_id = ?2"
    );
    let existing = tx
        .query_row(&q, params![ep.network_id, ep.container_id], |r| {
            Ok((ep_row(r)?, r.get::<_, String>(7)?))
        })
        .optional()
        .map_err(db("finding endpoint"))?;
    if let Some((existing, _)) = existing.as_ref().filter(|(e, _)| !e.address.is_empty()) {
        return Ok(existing.clone());
    }
    let used: Vec<String> = {
        let mut st = tx
            .prepare_cached(
                "SELECT address FROM network_endpoints WHERE network_id = ?1 AND address != ''",
            )
            .map_err(db("reading allocations"))?;
        let rows = st
            .query_map([&ep.network_id], |r| r.get(0))
            .map_err(db("reading allocations"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db("reading allocations"))?
    };
    let last = existing
        .as_ref()
        .map(|(_, last)| last.as_str())
        .filter(|l| !l.is_empty());
    let address = if ep.address.is_empty() {
        choose(&used, last)
            .ok_or_else(|| NetworkStoreError::NoFreeAddress(ep.network_id.clone()))?
    } else {
        ep.address.clone()
    };
    let (rec, r) = match existing {
        Some((stored, _)) => {
            let rec = EndpointRecord { address, ..stored };
            let r = tx.execute(
                "UPDATE network_endpoints SET address = ?3, last_address = ?3 \
                 WHERE network_id = ?1 AND container_id = ?2",
                params![rec.network_id, rec.container_id, rec.address],
            );
            (rec, r)
        }
        None => {
            let rec = EndpointRecord {
                address,
                ..ep.clone()
            };
            let r = tx.execute(
                &format!(
                    "INSERT INTO network_endpoints ({EP_COLUMNS}, last_address) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?3)"
                ),
                params![
                    rec.network_id,
                    rec.container_id,
                    rec.address,
                    rec.host_ifname,
                    rec.container_ifname,
                    rec.aliases,
                    rec.static_address
                ],
            );
            (rec, r)
        }
    };
    match r {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(NetworkStoreError::NoFreeAddress(format!(
                "{} (address {} in use)",
                rec.network_id, rec.address
            )))
        }
        Err(e) => return Err(db("recording endpoint")(e)),
    }
    tx.commit().map_err(db("committing"))?;
    Ok(rec)
}

/// The endpoints of a container, or of a network (`by_network`).
pub fn endpoints(conn: &Connection, id: &str, by_network: bool) -> Result<Vec<EndpointRecord>> {
    let col = if by_network {
        "network_id"
    } else {
        "container_id"
    };
    let q = format!(
        "SELECT {EP_COLUMNS} FROM network_endpoints WHERE {col} = ?1 ORDER BY container_ifname, container_id"
    );
    let mut st = conn.prepare_cached(&q).map_err(db("listing endpoints"))?;
    let rows = st
        .query_map([id], ep_row)
        .map_err(db("listing endpoints"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db("listing endpoints"))
}

/// Every endpoint of every network.
pub fn all_endpoints(conn: &Connection) -> Result<Vec<EndpointRecord>> {
    let q = format!("SELECT {EP_COLUMNS} FROM network_endpoints");
    let mut st = conn.prepare_cached(&q).map_err(db("listing endpoints"))?;
    let rows = st.query_map([], ep_row).map_err(db("listing endpoints"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db("listing endpoints"))
}

/// Frees the addresses of a container that stops: its endpoints stay (the networks it is
/// connected to), with address '' until [`allocate_endpoint`] gives them one again,
/// preferring the one each last had.
pub fn release_addresses(conn: &Connection, container_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE network_endpoints SET address = '' WHERE container_id = ?1",
        [container_id],
    )
    .map(|_| ())
    .map_err(db("releasing addresses"))
}

/// Removes a container's endpoint on one network (or all, with `network_id` `None`),
/// freeing their addresses: `rm` and `network disconnect`.
pub fn release_endpoints(
    conn: &Connection,
    container_id: &str,
    network_id: Option<&str>,
) -> Result<()> {
    match network_id {
        Some(n) => conn.execute(
            "DELETE FROM network_endpoints WHERE container_id = ?1 AND network_id = ?2",
            params![container_id, n],
        ),
        None => conn.execute(
            "DELETE FROM network_endpoints WHERE container_id = ?1",
            [container_id],
        ),
    }
    .map(|_| ())
    .map_err(db("releasing endpoints"))
}

/// Replaces a container's published ports.
pub fn set_ports(conn: &Connection, container_id: &str, ports: &[PortRecord]) -> Result<()> {
    let tx = immediate(conn)?;
    tx.execute(
        "DELETE FROM published_ports WHERE container_id = ?1",
        [container_id],
    )
    .map_err(db("clearing ports"))?;
    for p in ports {
        tx.execute(
            "INSERT OR REPLACE INTO published_ports (container_id, proto, host_ip, host_port, container_port) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![container_id, p.proto, p.host_ip, p.host_port, p.container_port],
        )
        .map_err(db("recording port"))?;
    }
    tx.commit().map_err(db("committing"))
}

/// A container's published ports (all containers with `None`).
pub fn ports(conn: &Connection, container_id: Option<&str>) -> Result<Vec<PortRecord>> {
    let base =
        "SELECT container_id, proto, host_ip, host_port, container_port FROM published_ports";
    let map = |r: &Row<'_>| {
        Ok(PortRecord {
            container_id: r.get(0)?,
            proto: r.get(1)?,
            host_ip: r.get(2)?,
            host_port: r.get(3)?,
            container_port: r.get(4)?,
        })
    };
    let order = " ORDER BY container_port, proto, host_ip";
    let v: rusqlite::Result<Vec<PortRecord>> = match container_id {
        Some(id) => {
            let mut st = conn
                .prepare_cached(&format!("{base} WHERE container_id = ?1{order}"))
                .map_err(db("listing ports"))?;
            let rows = st.query_map([id], map).map_err(db("listing ports"))?;
            rows.collect()
        }
        None => {
            let mut st = conn
                .prepare_cached(&format!("{base}{order}"))
                .map_err(db("listing ports"))?;
            let rows = st.query_map([], map).map_err(db("listing ports"))?;
            rows.collect()
        }
    };
    v.map_err(db("listing ports"))
}

impl crate::Store {
    /// Adds a network (see [`insert_network`]).
    pub fn insert_network(&self, n: &NetworkRecord, or_ignore: bool) -> Result<()> {
        insert_network(&self.conn.borrow(), n, or_ignore)
    }

    /// Finds a network by ID, name or unique ID prefix.
    pub fn resolve_network(&self, input: &str) -> Result<NetworkRecord> {
        resolve_network(&self.conn.borrow(), input)
    }

    /// Every network, by name.
    pub fn list_networks(&self) -> Result<Vec<NetworkRecord>> {
        list_networks(&self.conn.borrow())
    }

    /// Removes an unused network (see [`delete_network`]).
    pub fn delete_network(&self, id: &str) -> Result<()> {
        delete_network(&self.conn.borrow(), id)
    }

    /// Allocates an address and records an endpoint (see [`allocate_endpoint`]).
    pub fn allocate_endpoint(
        &self,
        ep: &EndpointRecord,
        choose: impl FnOnce(&[String], Option<&str>) -> Option<String>,
    ) -> Result<EndpointRecord> {
        allocate_endpoint(&self.conn.borrow(), ep, choose)
    }

    /// Frees the addresses of a stopped container (see [`release_addresses`]).
    pub fn release_addresses(&self, container_id: &str) -> Result<()> {
        release_addresses(&self.conn.borrow(), container_id)
    }

    /// A container's endpoints.
    pub fn container_endpoints(&self, container_id: &str) -> Result<Vec<EndpointRecord>> {
        endpoints(&self.conn.borrow(), container_id, false)
    }

    /// A network's endpoints.
    pub fn network_endpoints(&self, network_id: &str) -> Result<Vec<EndpointRecord>> {
        endpoints(&self.conn.borrow(), network_id, true)
    }

    /// Every endpoint.
    pub fn all_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        all_endpoints(&self.conn.borrow())
    }

    /// Frees a container's addresses (see [`release_endpoints`]).
    pub fn release_endpoints(&self, container_id: &str, network_id: Option<&str>) -> Result<()> {
        release_endpoints(&self.conn.borrow(), container_id, network_id)
    }

    /// Replaces a container's published ports.
    pub fn set_ports(&self, container_id: &str, ports: &[PortRecord]) -> Result<()> {
        set_ports(&self.conn.borrow(), container_id, ports)
    }

    /// Published ports of one container, or of all.
    pub fn ports(&self, container_id: Option<&str>) -> Result<Vec<PortRecord>> {
        ports(&self.conn.borrow(), container_id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn net(id: &str, name: &str) -> NetworkRecord {
        NetworkRecord {
            id: id.into(),
            name: name.into(),
            driver: "bridge".into(),
            bridge: format!("br-{}", &id[..12]),
            subnet: "10.89.0.0/24".into(),
            gateway: "10.89.0.1".into(),
            internal: false,
            labels: "{}".into(),
            created: 1,
            subnet6: String::new(),
            gateway6: String::new(),
        }
    }

    fn ep(net: &str, c: &str) -> EndpointRecord {
        EndpointRecord {
            network_id: net.into(),
            container_id: c.into(),
            address: String::new(),
            host_ifname: format!("vb{c}"),
            container_ifname: "eth0".into(),
            aliases: "[]".into(),
            static_address: String::new(),
        }
    }

    /// The last address if free, else the lowest free 10.89.0.x, as the engine picks.
    fn pick(used: &[String], last: Option<&str>) -> Option<String> {
        last.filter(|l| !used.iter().any(|u| u == l))
            .map(str::to_string)
            .or_else(|| {
                (2..255)
                    .map(|i| format!("10.89.0.{i}"))
                    .find(|a| !used.contains(a))
            })
    }

    #[test]
    fn networks_resolve_and_refuse_removal_while_used() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("berth.db")).unwrap();
        let a = "ab".repeat(32);
        insert_network(&conn, &net(&a, "front"), false).unwrap();
        let e = insert_network(&conn, &net(&"cd".repeat(32), "front"), false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        insert_network(&conn, &net(&"cd".repeat(32), "front"), true).unwrap();
        assert_eq!(resolve_network(&conn, "front").unwrap().id, a);
        assert_eq!(resolve_network(&conn, "abab").unwrap().id, a);
        assert_eq!(
            resolve_network(&conn, "zz").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let got = allocate_endpoint(&conn, &ep(&a, "c1"), pick).unwrap();
        assert_eq!(got.address, "10.89.0.2");
        // Idempotent for the same container.
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c1"), pick)
                .unwrap()
                .address,
            "10.89.0.2"
        );
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c2"), pick)
                .unwrap()
                .address,
            "10.89.0.3"
        );
        assert_eq!(
            delete_network(&conn, &a).unwrap_err().kind(),
            ErrorKind::Conflict
        );
        release_endpoints(&conn, "c1", None).unwrap();
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c3"), pick)
                .unwrap()
                .address,
            "10.89.0.2"
        );
        release_endpoints(&conn, "c2", Some(&a)).unwrap();
        release_endpoints(&conn, "c3", None).unwrap();
        delete_network(&conn, &a).unwrap();
        assert!(list_networks(&conn).unwrap().is_empty());
    }

    #[test]
    fn released_addresses_return_to_the_pool_and_come_back_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("berth.db")).unwrap();
        let a = "ab".repeat(32);
        insert_network(&conn, &net(&a, "small"), false).unwrap();
        let mut aliased = ep(&a, "c1");
        aliased.aliases = "[\"web\"]".into();
        assert_eq!(
            allocate_endpoint(&conn, &aliased, pick).unwrap().address,
            "10.89.0.2"
        );
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c2"), pick)
                .unwrap()
                .address,
            "10.89.0.3"
        );
        // c1 stops: still connected, no address; c3 takes the freed one.
        release_addresses(&conn, "c1").unwrap();
        let eps = endpoints(&conn, "c1", false).unwrap();
        assert_eq!((eps.len(), eps[0].address.as_str()), (1, ""));
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c3"), pick)
                .unwrap()
                .address,
            "10.89.0.2"
        );
        // c1 starts: its address is taken, so it gets another; its aliases stay.
        let back = allocate_endpoint(&conn, &ep(&a, "c1"), pick).unwrap();
        assert_eq!(
            (back.address.as_str(), back.aliases.as_str()),
            ("10.89.0.4", "[\"web\"]")
        );
        // Stopped twice with its address free in between: the same one comes back.
        release_addresses(&conn, "c1").unwrap();
        release_addresses(&conn, "c2").unwrap();
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c1"), pick)
                .unwrap()
                .address,
            "10.89.0.4"
        );
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c2"), pick)
                .unwrap()
                .address,
            "10.89.0.3"
        );
        // Two stopped containers never collide on ''.
        release_addresses(&conn, "c1").unwrap();
        release_addresses(&conn, "c2").unwrap();
        assert_eq!(endpoints(&conn, &a, true).unwrap().len(), 3);
    }

    #[test]
    fn migration_6_keeps_endpoints_and_remembers_their_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let old = crate::db::migrate(
            rusqlite::Connection::open(&path).unwrap(),
            &crate::migrations::MIGRATIONS[..5],
        )
        .unwrap();
        let a = "ab".repeat(32);
        insert_network(&old, &net(&a, "n"), false).unwrap();
        old.execute(
            "INSERT INTO network_endpoints VALUES (?1, 'c1', '10.89.0.7', 'vb1', 'eth0', '[]')",
            [&a],
        )
        .unwrap();
        let conn = crate::db::migrate(old, crate::migrations::MIGRATIONS).unwrap();
        let eps = endpoints(&conn, "c1", false).unwrap();
        assert_eq!(
            (eps[0].address.as_str(), eps[0].host_ifname.as_str()),
            ("10.89.0.7", "vb1")
        );
        // Released after the upgrade, it comes back to the same address.
        release_addresses(&conn, "c1").unwrap();
        assert_eq!(
            allocate_endpoint(&conn, &ep(&a, "c1"), pick)
                .unwrap()
                .address,
            "10.89.0.7"
        );
        // Addresses stay unique per network.
        let e = conn
            .execute(
                "INSERT INTO network_endpoints (network_id, container_id, address, host_ifname, container_ifname) \
                 VALUES (?1, 'c2', '10.89.0.7', 'vb2', 'eth0')",
                [&a],
            )
            .unwrap_err();
        assert!(is_unique_violation(&e), "{e}");
    }

    #[test]
    fn parallel_allocations_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let a = "ef".repeat(32);
        insert_network(&crate::db::open(&path).unwrap(), &net(&a, "n"), false).unwrap();
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let path = path.clone();
                let a = a.clone();
                std::thread::spawn(move || {
                    let conn = crate::db::open(&path).unwrap();
                    allocate_endpoint(&conn, &ep(&a, &format!("c{i}")), pick)
                        .unwrap()
                        .address
                })
            })
            .collect();
        let mut got: Vec<String> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 20);
    }

    #[test]
    fn ports_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("berth.db")).unwrap();
        let p = PortRecord {
            container_id: "c".into(),
            proto: "tcp".into(),
            host_ip: "0.0.0.0".into(),
            host_port: 8080,
            container_port: 80,
        };
        set_ports(&conn, "c", std::slice::from_ref(&p)).unwrap();
        assert_eq!(ports(&conn, Some("c")).unwrap(), vec![p]);
        set_ports(&conn, "c", &[]).unwrap();
        assert!(ports(&conn, None).unwrap().is_empty());
    }
}
