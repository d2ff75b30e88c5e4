//! berth-registry: the OCI distribution protocol, both ends of it.
//!
//! The **server** ([`server`]) is `berth registry serve`: the whole distribution API on
//! tokio and hyper over a [`server::Storage`] backend (a content-addressed directory by
//! default), with htpasswd users, public/private repositories, a built-in token service, and
//! mark-and-sweep garbage collection ([`server::gc`]).
//!
//! The **client** ([`client`]) pulls and pushes images: `/v2/` ping, the bearer challenge
//! flow (token by GET, or the OAuth2 form POST with a password or an identity token), basic
//! and anonymous auth, credentials in a Docker-compatible `config.json` or its credential
//! helpers, manifest lists and OCI indexes (pulled per platform or whole, pushed whole),
//! parallel verified blob transfers with retries and resume, and parallel gzip on push.
//! Blob files go to the disk while they arrive ([`berth_oci::writeback`]), so the fsync before a blob
//! is acknowledged is short.
//! It writes pulled blobs to a [`client::BlobSink`] and reads pushed blobs from a
//! [`client::BlobSource`]; `berth-engine` implements both with the local store.
//!
//! It knows nothing of containers.
//!
//! ```
//! use berth_registry::name::RepoName;
//! assert!(RepoName::new("library/busybox").is_ok());
//! assert!(RepoName::new("../etc").is_err());
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod name;
pub mod protocol;
pub mod server;
pub mod test_support;

/// The broad kind of any error of this crate, for callers that map errors to exit codes or
/// responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Input is not valid.
    InvalidArgument,
    /// Something asked for does not exist.
    NotFound,
    /// Credentials are missing or wrong, or access is denied.
    Unauthorized,
    /// A peer or resource could not be reached.
    Unavailable,
    /// Content did not match its digest or size.
    Corrupt,
    /// A bug or an unexpected failure.
    Internal,
}
