-- The address asked for with `network connect --ip` (or `run --ip`), Docker's
-- IPAMConfig.IPv4Address: a stopped container's endpoint has none (0006), and at start it
-- must get this one back, not any free one.
ALTER TABLE network_endpoints ADD COLUMN static_address TEXT NOT NULL DEFAULT '';
