//! Manifests, indexes and configs: OCI and Docker schema 2 (the same JSON shapes with different
//! media types), on the `oci-spec` crate's models.
//!
//! Digests are always taken over the exact bytes read or written, never over a re-serialized
//! model: [`parse_manifest`] keeps nothing but the model, so callers must keep the bytes they
//! hashed, and [`to_json`] produces the bytes to hash and store for new documents.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use oci_spec::image::{
    Arch, Descriptor, History, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
    Platform, RootFs,
};

use crate::digest::{Digest, DigestError, Hasher};
use crate::media;

/// What kind of failure a [`ManifestError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestErrorKind {
    /// The document or argument is malformed.
    InvalidArgument,
    /// The document is of a kind berth does not handle.
    Unsupported,
    /// Nothing matches what was asked for.
    NotFound,
}

/// Why a manifest, index or config could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The JSON does not parse as the document it claims to be.
    #[error("invalid {what} JSON: {source}")]
    Json {
        /// What was being parsed: "image manifest", "image index", "image config".
        what: &'static str,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The document's media type is not a manifest or index berth reads.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
    },
    /// The document is a schema 1 manifest or has another unknown `schemaVersion`.
    #[error("unsupported manifest schemaVersion {found} (only schema 2 is supported)")]
    SchemaVersion {
        /// The schema version found.
        found: u64,
    },
    /// A descriptor or diff ID has a digest berth does not accept.
    #[error("bad digest {value:?} in {what}: {source}")]
    Digest {
        /// Where the digest was found.
        what: &'static str,
        /// The digest as written.
        value: String,
        /// Why it is refused.
        source: DigestError,
    },
    /// No entry of an index matches the wanted platform.
    #[error("no image for platform {wanted} in the index (it has: {})", .available.join(", "))]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms the index offers.
        available: Vec<String>,
    },
    /// A platform string is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
    BadPlatform(String),
}

impl ManifestError {
    /// The kind of failure.
    pub fn kind(&self) -> ManifestErrorKind {
        match self {
            ManifestError::Json { .. }
            | ManifestError::Digest { .. }
            | ManifestError::BadPlatform(_) => ManifestErrorKind::InvalidArgument,
            ManifestError::UnsupportedMediaType { .. } | ManifestError::SchemaVersion { .. } => {
                ManifestErrorKind::Unsupported
            }
            ManifestError::NoMatchingPlatform { .. } => ManifestErrorKind::NotFound,
        }
    }
}

/// A parsed manifest document: one image, or an index of images.
// Both variants are big; boxing one would only add an indirection for a rare value.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// A single-platform image manifest (OCI or Docker schema 2).
    Image(ImageManifest),
    /// A multi-platform index (OCI image index or Docker manifest list).
    Index(ImageIndex),
}

impl Manifest {
    /// The document's media type (from its `mediaType` field, or inferred for OCI documents
    /// that leave it out).
    pub fn media_type(&self) -> String {
        match self {
            Manifest::Image(m) => m
                .media_type()
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| media::OCI_MANIFEST.to_owned()),
            Manifest::Index(i) => i
                .media_type()
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| media::OCI_INDEX.to_owned()),
        }
    }
}

/// Parses a manifest or index. The kind comes from the document's `mediaType`, else from
/// `content_type` (an HTTP `Content-Type`, or `None`), else from its shape (`manifests` means
/// an index). Schema 1 and unknown media types are refused.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u64>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "manifest",
        source,
    })?;
    match probe.schema_version {
        Some(2) => {}
        Some(found) => return Err(ManifestError::SchemaVersion { found }),
        None => return Err(ManifestError::SchemaVersion { found: 0 }),
    }
    let declared = probe
        .media_type
        .as_deref()
        .or(content_type.filter(|c| media::is_manifest(c) || media::is_index(c)));
    let is_index = match declared {
        Some(t) if media::is_index(t) => true,
        Some(t) if media::is_manifest(t) => false,
        Some(t) => {
            return Err(ManifestError::UnsupportedMediaType {
                media_type: t.to_owned(),
            })
        }
        None => probe.manifests.is_some(),
    };
    if is_index {
        let index = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image index",
            source,
        })?;
        Ok(Manifest::Index(index))
    } else {
        let m = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image manifest",
            source,
        })?;
        Ok(Manifest::Image(m))
    }
}

/// Parses an image config (OCI or Docker; Docker's extra fields are ignored, so keep the
/// original bytes: the image ID is their digest).
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ManifestError> {
    serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "image config",
        source,
    })
}

/// The compact JSON bytes of a document, to hash and store.
pub fn to_json<T: Serialize>(doc: &T) -> Vec<u8> {
    // Serializing these plain data models to a Vec cannot fail (string keys only).
    serde_json::to_vec(doc).unwrap_or_default()
}

/// A descriptor of `size` bytes with digest `digest` and media type `media_type`.
pub fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(MediaType::from(media_type), size, oci_digest(digest))
}

/// The oci-spec form of a digest.
pub fn oci_digest(digest: &Digest) -> oci_spec::image::Digest {
    // A berth Digest is always a valid sha256 digest, which oci-spec accepts.
    oci_spec::image::Digest::from_str(&digest.to_string())
        .unwrap_or_else(|_| unreachable!("sha256 digest rejected by oci-spec"))
}

/// A descriptor's digest, refused unless it is sha256.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    let value = d.digest().to_string();
    value.parse().map_err(|source| ManifestError::Digest {
        what: "descriptor",
        value,
        source,
    })
}

/// A new image manifest for `config` and `layers`, in the Docker schema 2 family when `docker`,
/// else OCI. The descriptors' media types are taken as given.
pub fn new_manifest(config: Descriptor, layers: Vec<Descriptor>, docker: bool) -> ImageManifest {
    let mt = if docker {
        media::DOCKER_MANIFEST
    } else {
        media::OCI_MANIFEST
    };
    let mut m = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .config(config)
        .layers(layers)
        .build()
        .unwrap_or_else(|_| unreachable!("all required manifest fields are set"));
    m.set_media_type(Some(MediaType::from(mt)));
    m
}

/// A new index of `manifests` (each with its platform set), a Docker manifest list when
/// `docker`, else an OCI image index.
pub fn new_index(manifests: Vec<Descriptor>, docker: bool) -> ImageIndex {
    let mt = if docker {
        media::DOCKER_MANIFEST_LIST
    } else {
        media::OCI_INDEX
    };
    let mut i = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(manifests)
        .build()
        .unwrap_or_else(|_| unreachable!("all required index fields are set"));
    i.set_media_type(Some(MediaType::from(mt)));
    i
}

/// The manifest with its own, its config's and its layers' media types moved to the Docker
/// schema 2 family (`docker`) or to OCI. Digests are unchanged: the config and layer blobs
/// are the same bytes; only the manifest (and so its digest) changes.
pub fn convert_manifest(m: &ImageManifest, docker: bool) -> ImageManifest {
    let mut out = m.clone();
    let conv = |d: &Descriptor| {
        let mut d = d.clone();
        let mt = media::convert(d.media_type().as_ref(), docker).to_owned();
        d.set_media_type(MediaType::from(mt.as_str()));
        d
    };
    out.set_config(conv(m.config()));
    out.set_layers(m.layers().iter().map(conv).collect());
    out.set_media_type(Some(MediaType::from(if docker {
        media::DOCKER_MANIFEST
    } else {
        media::OCI_MANIFEST
    })));
    out
}

/// The diff IDs a config lists, in layer order.
pub fn config_diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>, ManifestError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| {
            s.parse().map_err(|source| ManifestError::Digest {
                what: "config rootfs.diff_ids",
                value: s.clone(),
                source,
            })
        })
        .collect()
}

/// The chain ID of a stack of layers given their diff IDs, bottom first:
/// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
/// For an empty stack it is the digest of the empty string.
pub fn chain_id(diff_ids: &[Digest]) -> Digest {
    chain_ids(diff_ids).pop().unwrap_or_else(|| Digest::of(b""))
}

/// The chain IDs of every prefix of the stack: `chain_ids(d)[i] == chain_id(&d[..=i])`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => {
                let mut h = Hasher::new();
                h.update(parent.to_string().as_bytes());
                h.update(b" ");
                h.update(d.to_string().as_bytes());
                h.finish()
            }
        };
        out.push(next);
    }
    out
}

/// This machine's architecture as OCI (GOARCH) spells it: `amd64`, `arm64`, `386`, ...
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// A platform to pick from an index: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture, GOARCH spelling (`amd64`, `arm64`).
    pub architecture: String,
    /// CPU variant (`v8`, `v7`), if one is wanted.
    pub variant: Option<String>,
}

impl Default for PlatformSpec {
    /// `linux/amd64`.
    fn default() -> Self {
        PlatformSpec {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            variant: None,
        }
    }
}

impl FromStr for PlatformSpec {
    type Err = ManifestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(ManifestError::BadPlatform(s.to_owned()));
        }
        Ok(PlatformSpec {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformSpec {
    /// The platform an index entry declares.
    pub fn of(p: &Platform) -> PlatformSpec {
        PlatformSpec {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
    }

    /// Whether an entry for platform `p` serves this wanted platform. A wanted variant must
    /// match (arm64's missing variant counts as `v8`); with no variant wanted, any matches.
    pub fn matches(&self, p: &PlatformSpec) -> bool {
        if self.os != p.os || self.architecture != p.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let have = p.variant.as_deref().or(match p.architecture.as_str() {
                    "arm64" => Some("v8"),
                    _ => None,
                });
                have == Some(want.as_str())
            }
        }
    }
}

/// Picks the manifest for `wanted` from an index: the first matching entry, preferring one
/// whose variant equals the wanted one (or has none, when none is wanted).
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    wanted: &PlatformSpec,
) -> Result<&'a Descriptor, ManifestError> {
    let mut best: Option<(&Descriptor, bool)> = None;
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let have = PlatformSpec::of(p);
        if !wanted.matches(&have) {
            continue;
        }
        let exact = have.variant == wanted.variant;
        match best {
            Some((_, true)) => {}
            Some((_, false)) if !exact => {}
            _ => best = Some((d, exact)),
        }
    }
    best.map(|(d, _)| d)
        .ok_or_else(|| ManifestError::NoMatchingPlatform {
            wanted: wanted.to_string(),
            available: index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| PlatformSpec::of(p).to_string())
                .collect(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn layer(n: u8) -> Descriptor {
        descriptor(media::DOCKER_LAYER_GZIP, &Digest::of(&[n]), 10 + n as u64)
    }

    #[test]
    fn docker_manifest_round_trip() {
        let config = descriptor(media::DOCKER_CONFIG, &Digest::of(b"c"), 3);
        let m = new_manifest(config, vec![layer(1), layer(2)], true);
        let bytes = to_json(&m);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(media::DOCKER_MANIFEST), "{text}");
        assert!(text.contains(media::DOCKER_LAYER_GZIP), "{text}");
        let back = parse_manifest(&bytes, None).unwrap();
        assert_eq!(back.media_type(), media::DOCKER_MANIFEST);
        let Manifest::Image(back) = back else {
            panic!("not an image")
        };
        assert_eq!(back, m);
        assert_eq!(
            descriptor_digest(&back.layers()[1]).unwrap(),
            Digest::of(&[2])
        );
    }

    #[test]
    fn converts_between_families() {
        let config = descriptor(media::DOCKER_CONFIG, &Digest::of(b"c"), 3);
        let m = new_manifest(config, vec![layer(1)], true);
        let oci = convert_manifest(&m, false);
        let json = String::from_utf8(to_json(&oci)).unwrap();
        assert!(!json.contains("vnd.docker"), "{json}");
        assert!(json.contains(media::OCI_LAYER_GZIP), "{json}");
        assert_eq!(convert_manifest(&oci, true), m);
    }

    #[test]
    fn oci_manifest_without_media_type_and_index_by_shape() {
        let d = Digest::of(b"c");
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{d}","size":3}},"layers":[]}}"#,
            media::OCI_CONFIG
        );
        let m = parse_manifest(json.as_bytes(), None).unwrap();
        assert_eq!(m.media_type(), media::OCI_MANIFEST);
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{d}","size":3,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            media::OCI_MANIFEST
        );
        let Manifest::Index(i) = parse_manifest(json.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(i.manifests().len(), 1);
    }

    #[test]
    fn refuses_schema1_and_unknown() {
        let e = parse_manifest(br#"{"schemaVersion":1,"name":"x"}"#, None).unwrap_err();
        assert!(matches!(e, ManifestError::SchemaVersion { found: 1 }));
        let e =
            parse_manifest(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None).unwrap_err();
        assert_eq!(e.kind(), ManifestErrorKind::Unsupported);
        assert!(parse_manifest(b"not json", None).is_err());
    }

    #[test]
    fn picks_platform() {
        let mk = |arch: &str, variant: Option<&str>, n: u8| {
            let mut d = descriptor(media::DOCKER_MANIFEST, &Digest::of(&[n]), 1);
            let mut p = Platform::default();
            p.set_os(Os::Linux);
            p.set_architecture(Arch::from(arch));
            p.set_variant(variant.map(str::to_owned));
            d.set_platform(Some(p));
            d
        };
        let idx = new_index(
            vec![
                mk("arm", Some("v7"), 1),
                mk("arm64", Some("v8"), 2),
                mk("amd64", None, 3),
            ],
            true,
        );
        let bytes = to_json(&idx);
        let Manifest::Index(idx) = parse_manifest(&bytes, None).unwrap() else {
            panic!()
        };
        let pick = |s: &str| {
            descriptor_digest(select_platform(&idx, &s.parse().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(
            descriptor_digest(select_platform(&idx, &PlatformSpec::default()).unwrap()).unwrap(),
            Digest::of(&[3])
        );
        assert_eq!(pick("linux/arm64"), Digest::of(&[2]));
        assert_eq!(pick("linux/arm64/v8"), Digest::of(&[2]));
        assert_eq!(pick("linux/arm/v7"), Digest::of(&[1]));
        let e = select_platform(&idx, &"linux/s390x".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("linux/arm/v7"), "{e}");
        assert!("linux".parse::<PlatformSpec>().is_err());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id(std::slice::from_ref(&a)), a);
        let expect = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id(&[a.clone(), b.clone()]), expect);
        assert_eq!(chain_ids(&[a.clone(), b]), vec![a, expect]);
    }

    #[test]
    fn reads_docker_config() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":null,"ExposedPorts":{"8080/tcp":{}}},"container_config":{"Cmd":["x"]},"docker_version":"24","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},"history":[{"created_by":"x","empty_layer":true}]}"#;
        let c = parse_config(json).unwrap();
        assert_eq!(config_diff_ids(&c).unwrap(), vec![Digest::of(b"")]);
    }
}
