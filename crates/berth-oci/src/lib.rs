//! berth-oci: the image format. Image references, digests, media types, manifest / index /
//! config models, and layer tar streams (read, apply securely, diff), plus docker-archive and
//! OCI-layout archives.
//!
//! It touches no file outside the paths it is handed, and knows nothing of databases or
//! networks.
//!
//! Main types: [`ImageRef`] (a normalized image reference), [`Digest`] (sha256),
//! [`manifest::Manifest`] (an image manifest or index, OCI or Docker schema 2), and the
//! [`media`] type constants.
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
pub mod layer;
pub mod manifest;
pub mod media;
pub mod reference;

pub use digest::{Digest, DigestError, DigestReader, DigestWriter, Hasher};
pub use layer::{
    apply_layer, diff_upper, remove_snapshot, write_dir_tar, AppliedLayer, ApplyOptions,
    DiffOptions, DiffStats, LayerError, LayerErrorKind,
};
pub use manifest::{chain_id, chain_ids, Manifest, ManifestError, PlatformSpec};
pub use media::Compression;
pub use reference::{ImageRef, ReferenceError};
