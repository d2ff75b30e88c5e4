-- A stopped container keeps its endpoints (the networks it is connected to) but not their
-- addresses, as with Docker: `address` is '' while it is stopped, and `last_address`
-- remembers the address it had so that `start` can give it back when it is still free.
-- SQLite cannot change a table constraint, so the table is rebuilt with the uniqueness of
-- addresses as a partial index that leaves out the empty ones.
CREATE TABLE network_endpoints_new (
    network_id       TEXT NOT NULL REFERENCES networks(id),
    container_id     TEXT NOT NULL,
    address          TEXT NOT NULL,    -- IPv4, unique per network; '' while stopped
    host_ifname      TEXT NOT NULL,
    container_ifname TEXT NOT NULL,
    aliases          TEXT NOT NULL DEFAULT '[]',  -- JSON list of names
    last_address     TEXT NOT NULL DEFAULT '',    -- the address it last had
    PRIMARY KEY (network_id, container_id)
);
INSERT INTO network_endpoints_new
    (network_id, container_id, address, host_ifname, container_ifname, aliases, last_address)
    SELECT network_id, container_id, address, host_ifname, container_ifname, aliases, address
    FROM network_endpoints;
DROP TABLE network_endpoints;
ALTER TABLE network_endpoints_new RENAME TO network_endpoints;
CREATE UNIQUE INDEX network_endpoints_address ON network_endpoints(network_id, address)
    WHERE address != '';
CREATE INDEX network_endpoints_container ON network_endpoints(container_id);
