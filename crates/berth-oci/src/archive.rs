//! Image archives: the Docker archive that `docker save` writes and `docker load` reads
//! (`manifest.json` + config + layer tars; berth writes it as Docker 25+ does, inside an OCI
//! layout, so one file serves both readers), and the OCI image layout as a tar
//! (`oci-layout`, `index.json`, `blobs/sha256/...`), as `skopeo copy oci-archive:` makes.
//!
//! [`ArchiveWriter`] streams images into a tar, each blob once. [`ArchiveReader`] indexes a
//! seekable tar (entry name → offset), then lists the [`ArchivedImage`]s it holds and opens
//! their blobs by path; entries are never written to disk, so hostile names cannot escape.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};
use crate::manifest::{self, Descriptor, ImageIndex, Manifest, ManifestError};
use crate::media;
use crate::reference::ImageRef;

/// The largest JSON document (manifest, config, index) read from an archive.
pub const MAX_JSON_SIZE: u64 = 16 << 20;

/// Annotation holding the full image name (containerd, Docker).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI annotation holding the reference name (a tag, or a full name as skopeo writes).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Which archive to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save`'s format: `manifest.json` and `repositories`, plus the OCI layout.
    Docker,
    /// An OCI image layout in a tar.
    Oci,
}

/// What kind of failure an [`ArchiveError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// The archive is malformed or not an image archive.
    InvalidArgument,
    /// Reading or writing failed.
    Io,
}

/// Why an archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing the tar stream failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not a tar archive (or a truncated one). The tar reader's own message is
    /// not kept: it quotes the bytes it could not parse.
    #[error("{0}")]
    NotATar(&'static str),
    /// The tar holds neither `manifest.json` nor `index.json`.
    #[error("found neither manifest.json nor index.json")]
    NotAnImageArchive,
    /// An entry the archive refers to is missing.
    #[error("archive entry {0:?} is missing")]
    MissingEntry(String),
    /// A JSON document is larger than [`MAX_JSON_SIZE`].
    #[error("archive entry {path:?} is too large ({size} bytes) for a JSON document")]
    TooLarge {
        /// The entry.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A JSON document does not parse.
    #[error("invalid {path}: {source}")]
    Json {
        /// The entry.
        path: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A manifest or index is not valid.
    #[error("{path}: {source}")]
    Manifest {
        /// The entry.
        path: String,
        /// What is wrong.
        source: ManifestError,
    },
    /// A blob's bytes do not match its digest.
    #[error("archive entry {path:?}: {source}")]
    Digest {
        /// The entry.
        path: String,
        /// The mismatch.
        source: DigestError,
    },
    /// A blob source yielded another number of bytes than its descriptor says.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Size in the descriptor.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// An image in the archive has an index but no manifest berth can use.
    #[error("{0}: no image manifest for linux/amd64 found")]
    NoImage(String),
}

impl ArchiveError {
    /// The kind of failure.
    pub fn kind(&self) -> ArchiveErrorKind {
        match self {
            ArchiveError::Io { .. } => ArchiveErrorKind::Io,
            _ => ArchiveErrorKind::InvalidArgument,
        }
    }
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> ArchiveError {
    move |source| ArchiveError::Io { op, source }
}

/// A layer blob of an image to save.
#[derive(Debug, Clone)]
pub struct BlobRef {
    /// Digest of the blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
}

/// One image to write into an archive.
#[derive(Debug, Clone)]
pub struct SaveImage {
    /// The manifest's exact bytes (kept, so digests survive the round trip).
    pub manifest: Vec<u8>,
    /// Its media type.
    pub manifest_media_type: String,
    /// The config's exact bytes.
    pub config: Vec<u8>,
    /// The layer blobs, bottom first.
    pub layers: Vec<BlobRef>,
    /// Names to record (full references with a tag).
    pub names: Vec<ImageRef>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Streams images into a tar archive.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    format: ArchiveFormat,
    written: HashSet<Digest>,
    index: Vec<serde_json::Value>,
    docker: Vec<DockerManifestEntry>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// Opens a blob by digest, for [`ArchiveWriter::add_image`].
pub type BlobOpener<'a> = dyn FnMut(&Digest) -> io::Result<Box<dyn Read + 'a>> + 'a;

impl<W: Write> ArchiveWriter<W> {
    /// A writer of `format` into `out`.
    pub fn new(out: W, format: ArchiveFormat) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        ArchiveWriter {
            tar,
            format,
            written: HashSet::new(),
            index: Vec::new(),
            docker: Vec::new(),
            repositories: BTreeMap::new(),
        }
    }

    fn header(size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h
    }

    fn add_file(&mut self, path: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        let mut h = Self::header(bytes.len() as u64, 0o644);
        self.tar
            .append_data(&mut h, path, bytes)
            .map_err(io_err("writing archive"))
    }

    fn add_dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        let mut h = Self::header(0, 0o755);
        h.set_entry_type(tar::EntryType::Directory);
        self.tar
            .append_data(&mut h, path, io::empty())
            .map_err(io_err("writing archive"))
    }

    fn add_blob(
        &mut self,
        digest: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        if self.written.is_empty() {
            self.add_dir("blobs/")?;
            self.add_dir("blobs/sha256/")?;
        }
        if !self.written.insert(digest.clone()) {
            return Ok(());
        }
        let mut h = Self::header(size, 0o644);
        let mut counted = CountingReader {
            inner: reader.take(size),
            n: 0,
        };
        self.tar
            .append_data(
                &mut h,
                format!("blobs/sha256/{}", digest.hex()),
                &mut counted,
            )
            .map_err(io_err("writing archive"))?;
        if counted.n != size {
            return Err(ArchiveError::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: counted.n,
            });
        }
        Ok(())
    }

    /// Writes the image's blobs (each once per archive) and records its names.
    pub fn add_image(
        &mut self,
        image: &SaveImage,
        open: &mut BlobOpener<'_>,
    ) -> Result<(), ArchiveError> {
        let config_digest = Digest::of(&image.config);
        let manifest_digest = Digest::of(&image.manifest);
        self.add_blob(
            &config_digest,
            image.config.len() as u64,
            &mut &image.config[..],
        )?;
        for layer in &image.layers {
            if self.written.contains(&layer.digest) {
                continue;
            }
            let mut r = open(&layer.digest).map_err(io_err("reading a layer blob"))?;
            self.add_blob(&layer.digest, layer.size, &mut r)?;
        }
        self.add_blob(
            &manifest_digest,
            image.manifest.len() as u64,
            &mut &image.manifest[..],
        )?;
        let descriptor = |name: Option<&ImageRef>| {
            let mut d = serde_json::json!({
                "mediaType": image.manifest_media_type,
                "digest": manifest_digest.to_string(),
                "size": image.manifest.len(),
            });
            if let Some(name) = name {
                let mut ann = serde_json::Map::new();
                ann.insert(ANNOTATION_IMAGE_NAME.into(), name.to_string().into());
                let ref_name = match self.format {
                    // Docker writes the tag; skopeo's oci-archive reader matches the name it
                    // is given against this value, so write the familiar name with the tag.
                    ArchiveFormat::Docker => name.tag().unwrap_or("latest").to_owned(),
                    ArchiveFormat::Oci => name.familiar_string(),
                };
                ann.insert(ANNOTATION_REF_NAME.into(), ref_name.into());
                d["annotations"] = ann.into();
            }
            d
        };
        if image.names.is_empty() {
            self.index.push(descriptor(None));
        }
        for name in &image.names {
            self.index.push(descriptor(Some(name)));
        }
        if self.format == ArchiveFormat::Docker {
            let mut entry = DockerManifestEntry {
                config: format!("blobs/sha256/{}", config_digest.hex()),
                repo_tags: Vec::new(),
                layers: image
                    .layers
                    .iter()
                    .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                    .collect(),
            };
            for name in &image.names {
                if let Some(tag) = name.tag() {
                    entry.repo_tags.push(name.familiar_string());
                    if let Some(top) = image.layers.last() {
                        self.repositories
                            .entry(name.familiar())
                            .or_default()
                            .insert(tag.to_owned(), top.digest.hex().to_owned());
                    }
                }
            }
            self.docker.push(entry);
        }
        Ok(())
    }

    /// Writes the index files and ends the tar; returns the output.
    pub fn finish(mut self) -> Result<W, ArchiveError> {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": self.index,
        });
        let index = manifest::to_json(&index);
        self.add_file("index.json", &index)?;
        if self.format == ArchiveFormat::Docker {
            let m = manifest::to_json(&self.docker);
            self.add_file("manifest.json", &m)?;
            if !self.repositories.is_empty() {
                let r = manifest::to_json(&self.repositories);
                self.add_file("repositories", &r)?;
            }
        }
        self.add_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        self.tar.into_inner().map_err(io_err("finishing archive"))
    }
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A layer of an archived image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedLayer {
    /// The entry holding it.
    pub path: String,
    /// Its digest, when the archive states one (OCI descriptors, `blobs/sha256/<hex>` paths).
    pub digest: Option<Digest>,
    /// Its media type, when stated.
    pub media_type: Option<String>,
    /// The entry's size.
    pub size: u64,
}

/// An image found in an archive.
#[derive(Debug, Clone)]
pub struct ArchivedImage {
    /// The config's exact bytes (its digest is the image ID).
    pub config: Vec<u8>,
    /// The manifest's exact bytes and media type, when the archive holds one.
    pub manifest: Option<(Vec<u8>, String)>,
    /// Layers, bottom first.
    pub layers: Vec<ArchivedLayer>,
    /// Names, as written (`busybox:latest`, `docker.io/library/busybox:latest`).
    pub names: Vec<String>,
    /// The index the image was chosen from, when the archive names one.
    pub index: Option<ArchivedIndex>,
}

/// A multi-platform index of an archive: kept with the image chosen from it, so that a push
/// can send the whole index on.
#[derive(Debug, Clone)]
pub struct ArchivedIndex {
    /// The index's exact bytes.
    pub bytes: Vec<u8>,
    /// The other platforms' manifests, configs and layers that the archive holds: (digest,
    /// entry path).
    pub blobs: Vec<(Digest, String)>,
}

#[derive(Debug, Clone, Copy)]
struct EntryPos {
    offset: u64,
    size: u64,
}

/// Reads an image archive from a seekable tar.
pub struct ArchiveReader<R: Read + Seek> {
    inner: R,
    entries: HashMap<String, EntryPos>,
}

/// `a/./b/` → `a/b`; `None` when the name climbs out (`..`) or is empty.
fn clean_path(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A tar reader's failure: a malformed or truncated archive, or a failed read.
fn not_a_tar(e: io::Error) -> ArchiveError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::NotATar("unexpected end of archive"),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
            ArchiveError::NotATar("invalid tar header")
        }
        _ => ArchiveError::Io {
            op: "reading archive",
            source: e,
        },
    }
}

impl<R: Read + Seek> ArchiveReader<R> {
    /// Indexes the tar's regular files (symlinks and hardlinks to them resolved).
    pub fn new(mut inner: R) -> Result<Self, ArchiveError> {
        inner
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seeking archive"))?;
        let mut entries = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        {
            let mut archive = tar::Archive::new(&mut inner);
            let iter = archive.entries_with_seek().map_err(not_a_tar)?;
            for entry in iter {
                let entry = entry.map_err(not_a_tar)?;
                let raw = entry.path_bytes();
                let Some(name) = std::str::from_utf8(&raw).ok().and_then(clean_path) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                if kind.is_file() {
                    entries.insert(
                        name,
                        EntryPos {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                    );
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let Some(target) = entry
                        .link_name_bytes()
                        .and_then(|t| std::str::from_utf8(&t).ok().map(str::to_owned))
                    else {
                        continue;
                    };
                    let resolved = if kind.is_symlink() && !target.starts_with('/') {
                        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                        format!("{dir}/{target}")
                    } else {
                        target
                    };
                    if let Some(t) = clean_path(&resolved) {
                        links.push((name, t));
                    }
                }
            }
        }
        // Links may point at links; resolve a few levels.
        for _ in 0..4 {
            for (name, target) in &links {
                if let Some(pos) = entries.get(target).copied() {
                    entries.entry(name.clone()).or_insert(pos);
                }
            }
        }
        if entries.is_empty() {
            return Err(ArchiveError::NotAnImageArchive);
        }
        Ok(ArchiveReader { inner, entries })
    }

    /// Whether the archive has a file at `path`.
    pub fn contains(&self, path: &str) -> bool {
        clean_path(path).is_some_and(|p| self.entries.contains_key(&p))
    }

    /// The size of the file at `path`.
    pub fn size(&self, path: &str) -> Option<u64> {
        clean_path(path).and_then(|p| self.entries.get(&p).map(|e| e.size))
    }

    /// Opens the file at `path`.
    pub fn open(&mut self, path: &str) -> Result<io::Take<&mut R>, ArchiveError> {
        let pos = clean_path(path)
            .and_then(|p| self.entries.get(&p).copied())
            .ok_or_else(|| ArchiveError::MissingEntry(path.to_owned()))?;
        self.inner
            .seek(SeekFrom::Start(pos.offset))
            .map_err(io_err("seeking archive"))?;
        Ok((&mut self.inner).take(pos.size))
    }

    fn read_json_bytes(&mut self, path: &str) -> Result<Vec<u8>, ArchiveError> {
        let size = self
            .size(path)
            .ok_or_else(|| ArchiveError::MissingEntry(path.to_owned()))?;
        if size > MAX_JSON_SIZE {
            return Err(ArchiveError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open(path)?
            .read_to_end(&mut buf)
            .map_err(io_err("reading archive"))?;
        Ok(buf)
    }

    /// Reads a blob of the OCI layout, verifying its digest.
    fn read_blob(&mut self, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
        let path = format!("blobs/sha256/{}", digest.hex());
        let bytes = self.read_json_bytes(&path)?;
        digest
            .verify(&Digest::of(&bytes))
            .map_err(|source| ArchiveError::Digest { path, source })?;
        Ok(bytes)
    }

    /// The images the archive holds: from `manifest.json` when present (Docker archives),
    /// else from `index.json` (OCI layout).
    pub fn images(&mut self) -> Result<Vec<ArchivedImage>, ArchiveError> {
        let oci = if self.contains("index.json") {
            self.oci_images()?
        } else {
            Vec::new()
        };
        if self.contains("manifest.json") {
            let bytes = self.read_json_bytes("manifest.json")?;
            let entries: Vec<DockerManifestEntry> =
                serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
                    path: "manifest.json".into(),
                    source,
                })?;
            let mut out = Vec::new();
            for e in entries {
                let config = self.read_json_bytes(&e.config)?;
                let config_digest = Digest::of(&config);
                if let Some(expected) = digest_of_path(&e.config) {
                    expected
                        .verify(&config_digest)
                        .map_err(|source| ArchiveError::Digest {
                            path: e.config.clone(),
                            source,
                        })?;
                }
                // Keep the OCI manifest when the same archive has one for this config.
                let from_oci = oci.iter().find(|i| {
                    Digest::of(&i.config) == config_digest && i.layers.len() == e.layers.len()
                });
                let mut layers = Vec::new();
                for (i, p) in e.layers.iter().enumerate() {
                    let size = self
                        .size(p)
                        .ok_or_else(|| ArchiveError::MissingEntry(p.clone()))?;
                    let oci_layer = from_oci.and_then(|o| o.layers.get(i));
                    layers.push(ArchivedLayer {
                        path: clean_path(p).unwrap_or_default(),
                        digest: digest_of_path(p)
                            .or_else(|| oci_layer.and_then(|l| l.digest.clone())),
                        media_type: oci_layer.and_then(|l| l.media_type.clone()),
                        size,
                    });
                }
                out.push(ArchivedImage {
                    config,
                    manifest: from_oci.and_then(|o| o.manifest.clone()),
                    layers,
                    names: e.repo_tags,
                    index: from_oci.and_then(|o| o.index.clone()),
                });
            }
            return Ok(out);
        }
        if self.contains("index.json") {
            return Ok(oci);
        }
        Err(ArchiveError::NotAnImageArchive)
    }

    fn oci_images(&mut self) -> Result<Vec<ArchivedImage>, ArchiveError> {
        let bytes = self.read_json_bytes("index.json")?;
        let index = parse_index(&bytes, "index.json")?;
        let mut by_manifest: Vec<(Digest, ArchivedImage)> = Vec::new();
        for d in index.manifests() {
            let names = descriptor_names(d);
            let Some((digest, image)) = self.oci_image(d, 0)? else {
                continue;
            };
            match by_manifest.iter_mut().find(|(m, _)| *m == digest) {
                Some((_, existing)) => existing.names.extend(names),
                None => {
                    let mut image = image;
                    image.names = names;
                    by_manifest.push((digest, image));
                }
            }
        }
        Ok(by_manifest.into_iter().map(|(_, i)| i).collect())
    }

    fn oci_image(
        &mut self,
        d: &Descriptor,
        depth: u32,
    ) -> Result<Option<(Digest, ArchivedImage)>, ArchiveError> {
        let digest = manifest::descriptor_digest(d).map_err(|source| ArchiveError::Manifest {
            path: "index.json".into(),
            source,
        })?;
        let path = format!("blobs/sha256/{}", digest.hex());
        let bytes = self.read_blob(&digest)?;
        let parsed =
            manifest::parse_manifest(&bytes, Some(d.media_type().as_ref())).map_err(|source| {
                ArchiveError::Manifest {
                    path: path.clone(),
                    source,
                }
            })?;
        match parsed {
            Manifest::Index(index) => {
                if depth > 2 {
                    return Ok(None);
                }
                let want = manifest::PlatformSpec {
                    os: "linux".into(),
                    architecture: "amd64".into(),
                    variant: None,
                };
                let chosen = match manifest::select_platform(&index, &want) {
                    Ok(c) => c.clone(),
                    Err(_) if index.manifests().len() == 1 => index.manifests()[0].clone(),
                    Err(_) => return Err(ArchiveError::NoImage(path)),
                };
                let Some((child, mut image)) = self.oci_image(&chosen, depth + 1)? else {
                    return Ok(None);
                };
                if image.index.is_none() {
                    let mut blobs = Vec::new();
                    for other in index.manifests() {
                        if other.digest() != chosen.digest() {
                            self.other_platform_blobs(other, &mut blobs);
                        }
                    }
                    image.index = Some(ArchivedIndex { bytes, blobs });
                }
                Ok(Some((child, image)))
            }
            Manifest::Image(m) => {
                let media_type = m
                    .media_type()
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
                let config_digest = manifest::descriptor_digest(m.config()).map_err(|source| {
                    ArchiveError::Manifest {
                        path: path.clone(),
                        source,
                    }
                })?;
                let config = self.read_blob(&config_digest)?;
                let mut layers = Vec::new();
                for l in m.layers() {
                    let ld = manifest::descriptor_digest(l).map_err(|source| {
                        ArchiveError::Manifest {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    let lp = format!("blobs/sha256/{}", ld.hex());
                    let size = self
                        .size(&lp)
                        .ok_or_else(|| ArchiveError::MissingEntry(lp.clone()))?;
                    layers.push(ArchivedLayer {
                        path: lp,
                        digest: Some(ld),
                        media_type: Some(l.media_type().to_string()),
                        size,
                    });
                }
                Ok(Some((
                    digest,
                    ArchivedImage {
                        config,
                        manifest: Some((bytes, media_type)),
                        layers,
                        names: Vec::new(),
                        index: None,
                    },
                )))
            }
        }
    }

    /// Adds what the archive holds of an index's child: its manifest, config and layers.
    fn other_platform_blobs(&mut self, child: &Descriptor, out: &mut Vec<(Digest, String)>) {
        let Ok(digest) = manifest::descriptor_digest(child) else {
            return;
        };
        let path = format!("blobs/sha256/{}", digest.hex());
        if !self.contains(&path) {
            return;
        }
        let Ok(bytes) = self.read_blob(&digest) else {
            return;
        };
        out.push((digest, path));
        if let Ok(Manifest::Image(m)) =
            manifest::parse_manifest(&bytes, Some(child.media_type().as_ref()))
        {
            for d in std::iter::once(m.config()).chain(m.layers()) {
                if let Ok(digest) = manifest::descriptor_digest(d) {
                    let path = format!("blobs/sha256/{}", digest.hex());
                    if self.contains(&path) {
                        out.push((digest, path));
                    }
                }
            }
        }
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

fn parse_index(bytes: &[u8], path: &str) -> Result<ImageIndex, ArchiveError> {
    match manifest::parse_manifest(bytes, Some(media::OCI_INDEX)) {
        Ok(Manifest::Index(i)) => Ok(i),
        Ok(Manifest::Image(_)) => Err(ArchiveError::NotAnImageArchive),
        Err(source) => Err(ArchiveError::Manifest {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Names a descriptor of `index.json` carries: the containerd name, or a ref name that is a
/// whole reference (a bare tag names no repository, so it is not a name on its own).
fn descriptor_names(d: &Descriptor) -> Vec<String> {
    let Some(ann) = d.annotations() else {
        return Vec::new();
    };
    if let Some(n) = ann.get(ANNOTATION_IMAGE_NAME) {
        return vec![n.clone()];
    }
    match ann.get(ANNOTATION_REF_NAME) {
        Some(n) if n.contains(':') || n.contains('/') => vec![n.clone()],
        _ => Vec::new(),
    }
}

/// `blobs/sha256/<hex>` or `<hex>.json` / `<hex>/layer.tar` → the digest, when the path
/// names one.
fn digest_of_path(p: &str) -> Option<Digest> {
    let p = clean_path(p)?;
    if let Some(hex) = p.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> (SaveImage, Vec<u8>) {
        let layer = b"pretend this is a tar".to_vec();
        let ld = Digest::of(&layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
        )
        .into_bytes();
        let m = manifest::new_manifest(
            manifest::descriptor(media::OCI_CONFIG, &Digest::of(&config), config.len() as u64),
            vec![manifest::descriptor(
                media::OCI_LAYER_TAR,
                &ld,
                layer.len() as u64,
            )],
            false,
        );
        (
            SaveImage {
                manifest: manifest::to_json(&m),
                manifest_media_type: media::OCI_MANIFEST.into(),
                config,
                layers: vec![BlobRef {
                    digest: ld,
                    size: layer.len() as u64,
                    media_type: media::OCI_LAYER_TAR.into(),
                }],
                names: vec![ImageRef::parse("busybox:1").unwrap()],
            },
            layer,
        )
    }

    fn round_trip(format: ArchiveFormat) {
        let (image, layer) = sample();
        let mut w = ArchiveWriter::new(io::Cursor::new(Vec::new()), format);
        let l = layer.clone();
        w.add_image(&image, &mut |_d: &Digest| {
            Ok(Box::new(io::Cursor::new(l.clone())) as Box<dyn Read>)
        })
        .unwrap();
        let out = w.finish().unwrap();
        let mut r = ArchiveReader::new(out).unwrap();
        let images = r.images().unwrap();
        assert_eq!(images.len(), 1);
        let got = &images[0];
        assert_eq!(got.config, image.config);
        assert_eq!(got.manifest.as_ref().unwrap().0, image.manifest);
        assert_eq!(got.layers[0].digest, Some(Digest::of(&layer)));
        let mut buf = Vec::new();
        r.open(&got.layers[0].path)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        assert_eq!(buf, layer);
        match format {
            ArchiveFormat::Docker => assert_eq!(got.names, vec!["busybox:1"]),
            ArchiveFormat::Oci => assert_eq!(got.names, vec!["docker.io/library/busybox:1"]),
        }
    }

    #[test]
    fn docker_round_trip() {
        round_trip(ArchiveFormat::Docker);
    }

    #[test]
    fn oci_round_trip() {
        round_trip(ArchiveFormat::Oci);
    }

    #[test]
    fn not_an_archive() {
        let r = ArchiveReader::new(io::Cursor::new(b"hello world, not a tar".repeat(40)));
        assert!(r.is_err());
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("./a//b/"), Some("a/b".into()));
        assert_eq!(clean_path("../x"), None);
        assert_eq!(clean_path("a/../b"), Some("b".into()));
    }
}
