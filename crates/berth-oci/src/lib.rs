//! berth-oci: the image format. Image references, digests, media types, manifest / index /
//! config models, and layer tar streams (read, apply securely, diff), plus docker-archive and
//! OCI-layout archives.
//!
//! It touches no file outside the paths it is handed, and knows nothing of databases or
//! networks.
//!
//! ```
//! use berth_oci::Digest;
//! let d = Digest::of(b"hello");
//! assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
//! ```

pub mod digest;

pub use digest::{Digest, DigestError, DigestReader, DigestWriter, Hasher};
