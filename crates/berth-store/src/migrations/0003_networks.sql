-- Networks (issue 4): user-defined and predefined networks, container endpoints with their
-- allocated addresses, and published ports.
CREATE TABLE networks (
    id        TEXT PRIMARY KEY,        -- 64 hex digits
    name      TEXT NOT NULL UNIQUE,
    driver    TEXT NOT NULL,           -- bridge, host, null
    bridge    TEXT NOT NULL,           -- interface name ('' for host and none)
    subnet    TEXT NOT NULL,           -- IPv4 CIDR ('' for host and none)
    gateway   TEXT NOT NULL,
    internal  INTEGER NOT NULL DEFAULT 0,
    labels    TEXT NOT NULL DEFAULT '{}',  -- JSON object
    created   INTEGER NOT NULL         -- unix nanoseconds
);
CREATE TABLE network_endpoints (
    network_id       TEXT NOT NULL REFERENCES networks(id),
    container_id     TEXT NOT NULL,
    address          TEXT NOT NULL,    -- IPv4, unique per network: the IPAM allocation
    host_ifname      TEXT NOT NULL,
    container_ifname TEXT NOT NULL,
    aliases          TEXT NOT NULL DEFAULT '[]',  -- JSON list of names
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, address)
);
CREATE INDEX network_endpoints_container ON network_endpoints(container_id);
CREATE TABLE published_ports (
    container_id   TEXT NOT NULL,
    proto          TEXT NOT NULL,      -- tcp, udp
    host_ip        TEXT NOT NULL,
    host_port      INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    PRIMARY KEY (container_id, proto, host_ip, host_port)
);
