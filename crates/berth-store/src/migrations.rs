//! The database schema, as an ordered list of migrations.
//!
//! **Adding tables** (containers, networks, build cache, ...): write
//! `src/migrations/NNNN_what.sql` and append one entry to [`MIGRATIONS`] with the next
//! version number. Never edit or reorder a migration that has shipped: a store remembers the
//! last version it applied (`PRAGMA user_version`) and runs only the newer ones, each in the
//! same transaction as the version bump, so a crash leaves the old schema or the new one.

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, ... in order, no gaps.
    pub version: u32,
    /// What it adds, for logs.
    pub name: &'static str,
    /// SQL run in one transaction.
    pub sql: &'static str,
}

/// Every migration, oldest first. Append new ones at the end.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "images, tags, layers",
        sql: include_str!("migrations/0001_images.sql"),
    },
    Migration {
        version: 2,
        name: "containers",
        sql: include_str!("migrations/0002_containers.sql"),
    },
    Migration {
        version: 3,
        name: "networks, endpoints, published ports",
        sql: include_str!("migrations/0003_networks.sql"),
    },
    Migration {
        version: 4,
        name: "build cache",
        sql: include_str!("migrations/0004_build_cache.sql"),
    },
    Migration {
        version: 5,
        name: "networks: IPv6 subnet and gateway",
        sql: include_str!("migrations/0005_networks_ipv6.sql"),
    },
    Migration {
        version: 6,
        name: "endpoints: stopped containers release their addresses",
        sql: include_str!("migrations/0006_endpoints_release.sql"),
    },
    Migration {
        version: 7,
        name: "endpoints: the address asked for",
        sql: include_str!("migrations/0007_endpoints_static_address.sql"),
    },
    Migration {
        version: 8,
        name: "volumes and their users",
        sql: include_str!("migrations/0008_volumes.sql"),
    },
];
