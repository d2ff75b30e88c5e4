//! Media types of the OCI image spec and of Docker's image manifest v2 schema 2, and what each
//! one is for.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed (deprecated, still read).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip (deprecated, still read).
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd (deprecated, still read).
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// OCI empty JSON descriptor (`{}`).
pub const OCI_EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// OCI image layout `oci-layout` file.
pub const OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";

/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed tar (rare, but valid).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker layer, zstd tar.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) layer, gzip.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 signed manifest (recognized only to be refused).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 manifest (recognized only to be refused).
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// The `Accept` list a registry client sends for manifests, most preferred first.
pub const MANIFEST_ACCEPT: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Whether `mt` is a single-image manifest (OCI or Docker).
pub fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// Whether `mt` is a multi-platform index / manifest list (OCI or Docker).
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

/// Whether `mt` is an image config (OCI or Docker).
pub fn is_config(mt: &str) -> bool {
    mt == OCI_CONFIG || mt == DOCKER_CONFIG
}

/// Whether `mt` is a layer tar of any compression (OCI or Docker).
pub fn is_layer(mt: &str) -> bool {
    layer_compression(mt).is_some()
}

/// The compression a layer media type announces (`None` if `mt` is not a layer type).
/// Readers still detect compression by magic bytes; this is for writers and checks.
pub fn layer_compression(mt: &str) -> Option<Compression> {
    match mt {
        OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR => Some(Compression::None),
        OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP => {
            Some(Compression::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD | DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// The layer media type for `compression` in the OCI (`docker == false`) or Docker family.
pub fn layer_media_type(compression: Compression, docker: bool) -> &'static str {
    match (compression, docker) {
        (Compression::None, false) => OCI_LAYER_TAR,
        (Compression::Gzip, false) => OCI_LAYER_GZIP,
        (Compression::Zstd, false) => OCI_LAYER_ZSTD,
        (Compression::None, true) => DOCKER_LAYER_TAR,
        (Compression::Gzip, true) => DOCKER_LAYER_GZIP,
        (Compression::Zstd, true) => DOCKER_LAYER_ZSTD,
    }
}

/// The same kind of content in the other family: `docker == true` maps OCI media types to
/// Docker's, `false` maps Docker's to OCI. Types without a counterpart (and types already in
/// the wanted family) come back unchanged.
pub fn convert(mt: &str, docker: bool) -> &str {
    if docker {
        match mt {
            OCI_MANIFEST => DOCKER_MANIFEST,
            OCI_INDEX => DOCKER_MANIFEST_LIST,
            OCI_CONFIG => DOCKER_CONFIG,
            OCI_LAYER_TAR => DOCKER_LAYER_TAR,
            OCI_LAYER_GZIP => DOCKER_LAYER_GZIP,
            OCI_LAYER_ZSTD => DOCKER_LAYER_ZSTD,
            OCI_LAYER_NONDIST_GZIP => DOCKER_LAYER_FOREIGN_GZIP,
            other => other,
        }
    } else {
        match mt {
            DOCKER_MANIFEST => OCI_MANIFEST,
            DOCKER_MANIFEST_LIST => OCI_INDEX,
            DOCKER_CONFIG => OCI_CONFIG,
            DOCKER_LAYER_TAR => OCI_LAYER_TAR,
            DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
            DOCKER_LAYER_ZSTD => OCI_LAYER_ZSTD,
            DOCKER_LAYER_FOREIGN_GZIP => OCI_LAYER_NONDIST_GZIP,
            other => other,
        }
    }
}

/// Whether `mt` belongs to the Docker family (as opposed to OCI).
pub fn is_docker(mt: &str) -> bool {
    mt.starts_with("application/vnd.docker.")
}

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a stream (at least 4 are needed to
    /// recognize zstd; fewer bytes mean "no compression").
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert!(is_manifest(DOCKER_MANIFEST) && is_manifest(OCI_MANIFEST));
        assert!(is_index(DOCKER_MANIFEST_LIST) && is_index(OCI_INDEX));
        assert!(is_config(DOCKER_CONFIG) && !is_config(OCI_MANIFEST));
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(layer_compression(OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert_eq!(layer_compression(OCI_CONFIG), None);
        assert_eq!(layer_media_type(Compression::Gzip, true), DOCKER_LAYER_GZIP);
        assert!(is_docker(DOCKER_CONFIG) && !is_docker(OCI_CONFIG));
        assert_eq!(convert(OCI_LAYER_GZIP, true), DOCKER_LAYER_GZIP);
        assert_eq!(convert(DOCKER_MANIFEST_LIST, false), OCI_INDEX);
        assert_eq!(convert(DOCKER_CONFIG, true), DOCKER_CONFIG);
        assert_eq!(convert("text/plain", false), "text/plain");
    }

    #[test]
    fn detects_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }
}
