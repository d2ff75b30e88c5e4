-- IPv6 on user-defined networks (`network create --ipv6 --subnet fd00:..::/64`): the
-- network's IPv6 subnet and gateway; '' for networks without IPv6. A container's IPv6
-- address follows from its IPv4 allocation (same host offset), so endpoints need no column.
ALTER TABLE networks ADD COLUMN subnet6 TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN gateway6 TEXT NOT NULL DEFAULT '';
