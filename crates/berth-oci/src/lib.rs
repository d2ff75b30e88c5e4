//! berth-oci: the image format. Image references, digests, media types, manifest / index /
//! config models, and layer tar streams (read, apply securely, diff), plus docker-archive and
//! OCI-layout archives.
//!
//! It touches no file outside the paths it is handed, and knows nothing of databases or
//! networks.
//!
//! Main types and functions:
//! - [`ImageRef`]: an image reference parsed and normalized as Docker does
//!   (`kuard-amd64:1` is `docker.io/library/kuard-amd64:1`);
//! - [`Digest`]: a sha256 digest, with hashing readers and writers;
//! - [`manifest`]: manifests, indexes and configs (OCI and Docker schema 2) on the `oci-spec`
//!   models, platform selection, [`chain_id`];
//! - [`media`]: media type constants and [`Compression`] detection by magic bytes;
//! - [`layer`]: [`apply_layer`] (secure, streaming, one snapshot per layer, whiteouts to
//!   overlayfs), [`diff_upper`] and [`write_dir_tar`] (deterministic layer tars),
//!   [`remove_snapshot`];
//! - [`archive`]: docker-archive and OCI-layout archives;
//! - [`in_root`]: host-side lookups inside a root someone else controls (a layer, a
//!   container's root file system) that no symlink or `..` leads out of;
//! - [`writeback`]: blob files sent to the disk while they grow, so their final fsync is short.
//!
//! ```
//! use berth_oci::{Digest, ImageRef};
//! let d = Digest::of(b"hello");
//! assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
//! let r = ImageRef::parse("kuard-amd64:1").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/kuard-amd64:1");
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod digest;
pub mod in_root;
pub mod layer;
pub mod manifest;
pub mod media;
pub mod reference;
pub mod writeback;

pub use digest::{Digest, DigestError, DigestReader, DigestWriter, Hasher};
pub use layer::{
    apply_layer, apply_layer_stream, diff_upper, remove_snapshot, write_dir_tar, AppliedLayer,
    AppliedStream, ApplyOptions, DiffOptions, DiffStats, LayerError, LayerErrorKind,
};
pub use manifest::{chain_id, chain_ids, Manifest, ManifestError, PlatformSpec};
pub use media::Compression;
pub use reference::{ImageRef, ReferenceError};
