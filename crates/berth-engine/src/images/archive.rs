//! `save` and `load`: images to and from Docker archives and OCI-layout tars.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use berth_oci::archive::{ArchiveReader, ArchiveWriter, BlobRef, SaveImage};
use berth_oci::{manifest, media, Compression, Digest, ImageRef};
use berth_store::{BlobReader, Ingester};

pub use berth_oci::archive::ArchiveFormat;

use super::{familiar, looks_like_id, ImageError, ImportSource};
use crate::{Engine, Error};

/// What `load` loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Each image with the names it was loaded under (familiar form; empty: none).
    pub images: Vec<(Digest, Vec<String>)>,
    /// Tags that moved away from another image: (familiar name, old image ID).
    pub renamed: Vec<(String, Digest)>,
}

/// Progress of `save` or `load`: how much of one layer was copied so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    /// The layer: its diff ID (load) or blob digest (save).
    pub layer: Digest,
    /// Bytes copied.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(LayerProgress) + 'a);

/// Reports every [`PROGRESS_STEP`] bytes read through it, and at the end.
struct ProgressReader<'a, R> {
    inner: R,
    layer: Digest,
    done: u64,
    total: u64,
    reported: u64,
    progress: ProgressFn<'a>,
}

/// How often (in bytes) a layer copy reports progress.
const PROGRESS_STEP: u64 = 1 << 20;

impl<'a, R> ProgressReader<'a, R> {
    fn new(inner: R, layer: Digest, total: u64, progress: ProgressFn<'a>) -> Self {
        progress(LayerProgress {
            layer: layer.clone(),
            done: 0,
            total,
        });
        ProgressReader {
            inner,
            layer,
            done: 0,
            total,
            reported: 0,
            progress,
        }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let finished = n == 0 || self.done >= self.total;
        if self.done - self.reported >= PROGRESS_STEP || (finished && self.done != self.reported) {
            self.reported = self.done;
            (self.progress)(LayerProgress {
                layer: self.layer.clone(),
                done: self.done,
                total: self.total.max(self.done),
            });
        }
        Ok(n)
    }
}

impl Engine {
    /// Writes the images `inputs` name into `out` as `format`. A name with a tag saves
    /// that tag; a repository without a tag saves each of its tags; an ID saves the image
    /// without names.
    pub fn save(
        &self,
        inputs: &[String],
        format: ArchiveFormat,
        out: impl Write,
    ) -> Result<(), Error> {
        self.save_with_progress(inputs, format, out, &|_| {})
    }

    /// [`Engine::save`], reporting each layer's copy to `progress`.
    pub fn save_with_progress(
        &self,
        inputs: &[String],
        format: ArchiveFormat,
        out: impl Write,
        progress: ProgressFn<'_>,
    ) -> Result<(), Error> {
        if inputs.is_empty() {
            return Err(ImageError::NothingToSave.into());
        }
        // Image ID -> names, in the order first named.
        let mut order: Vec<Digest> = Vec::new();
        let mut names: BTreeMap<Digest, Vec<ImageRef>> = BTreeMap::new();
        let all = self.store.list_images()?;
        for input in inputs {
            let mut found: Vec<(Digest, Option<ImageRef>)> = Vec::new();
            if !looks_like_id(input) {
                let r = ImageRef::parse_no_default(input)?;
                if r.tag().is_none() && r.digest().is_none() {
                    for rec in &all {
                        for t in &rec.tags {
                            if let Ok(tr) = ImageRef::parse_no_default(t) {
                                if tr.repository() == r.repository() {
                                    found.push((rec.id.clone(), Some(tr)));
                                }
                            }
                        }
                    }
                }
            }
            if found.is_empty() {
                let id = self.resolve_image(input)?;
                let name = if looks_like_id(input) {
                    None
                } else {
                    ImageRef::parse(input).ok().filter(|r| r.tag().is_some())
                };
                found.push((id, name));
            }
            for (id, name) in found {
                if !names.contains_key(&id) {
                    order.push(id.clone());
                }
                let list = names.entry(id).or_default();
                if let Some(n) = name {
                    if !list.contains(&n) {
                        list.push(n);
                    }
                }
            }
        }
        let mut writer = ArchiveWriter::new(out, format);
        for id in &order {
            let rec = self.image_record(id)?;
            let blobs = self.store.blobs();
            let layers = self.store.image_layers(id)?;
            let image = SaveImage {
                manifest: blobs.read_blob(&rec.manifest_digest)?,
                manifest_media_type: rec.manifest_media_type.clone(),
                config: blobs.read_blob(id)?,
                layers: layers
                    .iter()
                    .map(|l| BlobRef {
                        digest: l.blob_digest.clone(),
                        size: l.blob_size,
                        media_type: l.media_type.clone(),
                    })
                    .collect(),
                names: names.remove(id).unwrap_or_default(),
            };
            let sizes: BTreeMap<Digest, u64> = layers
                .iter()
                .map(|l| (l.blob_digest.clone(), l.blob_size))
                .collect();
            writer.add_image(&image, &mut |d: &Digest| {
                let f = blobs
                    .open_blob(d)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let f = io::BufReader::with_capacity(1 << 20, f);
                Ok(match sizes.get(d) {
                    Some(&size) => {
                        Box::new(ProgressReader::new(f, d.clone(), size, progress)) as Box<dyn Read>
                    }
                    None => Box::new(f) as Box<dyn Read>,
                })
            })?;
        }
        let mut out = writer.finish()?;
        out.flush().map_err(|source| ImageError::Io {
            op: "writing",
            path: "archive".into(),
            error: source,
        })?;
        Ok(())
    }

    /// [`Engine::save`] into the file `path`, written whole or not at all (a temp file in
    /// the same directory, renamed at the end).
    pub fn save_to_file(
        &self,
        inputs: &[String],
        format: ArchiveFormat,
        path: &Path,
    ) -> Result<(), Error> {
        self.save_to_file_with_progress(inputs, format, path, &|_| {})
    }

    /// [`Engine::save_to_file`], reporting each layer's copy to `progress`.
    pub fn save_to_file_with_progress(
        &self,
        inputs: &[String],
        format: ArchiveFormat,
        path: &Path,
        progress: ProgressFn<'_>,
    ) -> Result<(), Error> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let io_err = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| ImageError::Io {
                op,
                path,
                error: source,
            }
        };
        // Nameless until whole: a killed save leaves nothing beside the output.
        let mut out = berth_store::OutputFile::create_in(dir)?;
        let mut buf = BufWriter::with_capacity(1 << 20, out.file());
        self.save_with_progress(inputs, format, &mut buf, progress)?;
        buf.flush().map_err(io_err("writing"))?;
        drop(buf);
        out.publish(path)?;
        Ok(())
    }

    /// Loads every image of a Docker archive or OCI-layout tar (plain, gzip or zstd).
    pub fn load(&self, source: &ImportSource) -> Result<LoadReport, Error> {
        self.load_with_progress(source, &|_| {})
    }

    /// [`Engine::load`], reporting each layer's copy to `progress`.
    pub fn load_with_progress(
        &self,
        source: &ImportSource,
        progress: ProgressFn<'_>,
    ) -> Result<LoadReport, Error> {
        let r = self.load_inner(source, progress);
        let report = self.collect_after_failure(r)?;
        for (id, names) in &report.images {
            let name = names.first().cloned().unwrap_or_else(|| id.to_string());
            crate::events::emit_image(&self.config.root, "load", &id.to_string(), &name);
        }
        Ok(report)
    }

    fn load_inner(
        &self,
        source: &ImportSource,
        progress: ProgressFn<'_>,
    ) -> Result<LoadReport, Error> {
        let what = match source {
            ImportSource::Path(p) => p.display().to_string(),
            ImportSource::Stdin => "-".to_owned(),
        };
        let tmp_dir = self.store.blobs().tmp_dir().to_path_buf();
        let spool = |r: &mut dyn Read| -> Result<File, Error> {
            let mut f = tempfile::tempfile_in(&tmp_dir).map_err(|source| ImageError::Io {
                op: "creating a temp file in",
                path: tmp_dir.clone(),
                error: source,
            })?;
            io::copy(r, &mut f).map_err(ImageError::Stdin)?;
            f.seek(SeekFrom::Start(0)).map_err(ImageError::Stdin)?;
            Ok(f)
        };
        let mut file = match source {
            ImportSource::Stdin => spool(&mut io::stdin().lock())?,
            ImportSource::Path(p) => File::open(p).map_err(|source| ImageError::Io {
                op: "open",
                path: p.clone(),
                error: source,
            })?,
        };
        let mut head = [0u8; 4];
        let n = read_head(&mut file, &mut head).map_err(ImageError::Stdin)?;
        file = match Compression::detect(&head[..n]) {
            Compression::None => file,
            Compression::Gzip => spool(&mut flate2::read::MultiGzDecoder::new(
                io::BufReader::new(file),
            ))?,
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::new(file).map_err(ImageError::Stdin)?;
                let mut dec = dec;
                spool(&mut dec)?
            }
        };
        let invalid = |source: berth_oci::archive::ArchiveError| -> Error {
            match source.kind() {
                berth_oci::archive::ArchiveErrorKind::Io => source.into(),
                _ => ImageError::InvalidArchive {
                    path: what.clone(),
                    source: Box::new(source),
                }
                .into(),
            }
        };
        let mut reader =
            ArchiveReader::new(io::BufReader::with_capacity(1 << 20, file)).map_err(invalid)?;
        let images = reader.images().map_err(invalid)?;
        if images.is_empty() {
            return Err(ImageError::EmptyArchive(what).into());
        }
        let _lease = self.store.content_lease()?;
        let mut report = LoadReport::default();
        for image in images {
            let id = Digest::of(&image.config);
            let config = manifest::parse_config(&image.config)?;
            let diff_ids = manifest::config_diff_ids(&config)?;
            if diff_ids.len() != image.layers.len() {
                return Err(ImageError::LayerCount {
                    config: diff_ids.len(),
                    archive: image.layers.len(),
                }
                .into());
            }
            let chains = manifest::chain_ids(&diff_ids);
            let mut records = Vec::new();
            for (i, layer) in image.layers.iter().enumerate() {
                if let Some(rec) = self.store.layer(&chains[i])? {
                    if self.store.blobs().contains(&rec.blob_digest) {
                        records.push(rec);
                        continue;
                    }
                }
                let parent = i.checked_sub(1).map(|p| &chains[p]);
                let total = reader.size(&layer.path).unwrap_or(0);
                let entry = reader.open(&layer.path)?;
                let entry = ProgressReader::new(entry, diff_ids[i].clone(), total, progress);
                let (rec, _) = self.ingest_layer_checked(
                    entry,
                    parent,
                    &format!("{what}: layer {}", layer.path),
                    layer.digest.as_ref(),
                    Some((i, &layer.path, &diff_ids[i])),
                )?;
                records.push(rec);
            }
            let created = config.created().clone().unwrap_or_default();
            let mut full_names = Vec::new();
            for n in &image.names {
                let r = ImageRef::parse(n)?;
                full_names.push(r.to_string());
            }
            let blobs = self.store.blobs();
            blobs.put_bytes(&image.config)?;
            // The index it came from, stored before the image is recorded: a bad blob fails
            // the load with nothing recorded (what was stored is collected).
            let index_blobs = match (&image.index, full_names.is_empty()) {
                (Some(index), false) => {
                    Some(self.store_archived_index(&mut reader, index, &what)?)
                }
                _ => None,
            };
            // Keep the archive's manifest when it describes exactly the stored blobs.
            let kept = image
                .manifest
                .as_ref()
                .filter(|(bytes, _)| match manifest::parse_manifest(bytes, None) {
                    Ok(manifest::Manifest::Image(m)) => {
                        m.layers().len() == records.len()
                            && m.layers().iter().zip(&records).all(|(d, r)| {
                                manifest::descriptor_digest(d).ok().as_ref() == Some(&r.blob_digest)
                            })
                    }
                    _ => false,
                });
            let moves = match kept {
                Some((bytes, mt)) => {
                    let info = blobs.put_bytes(bytes)?;
                    self.add_image_record(&id, &info.digest, mt, &created, &records, &full_names)?
                }
                None => {
                    self.store_image(&image.config, &records, &created, &[])?;
                    let rec = self.image_record(&id)?;
                    self.add_image_record(
                        &id,
                        &rec.manifest_digest,
                        &rec.manifest_media_type,
                        &created,
                        &records,
                        &full_names,
                    )?
                }
            };
            for m in moves {
                if let Some(prev) = m.previous {
                    report.renamed.push((familiar(&m.reference), prev));
                }
            }
            if let Some((index_digest, kept)) = index_blobs {
                // Named by a repo digest NAME@<index> per name, as Docker's containerd store
                // shows a loaded index, and kept for the image, as a pull keeps the index it
                // pulled: push sends the whole index on when every platform is there.
                for n in &full_names {
                    let r = ImageRef::parse(n)?;
                    self.store
                        .add_repo_digest(&format!("{}@{index_digest}", r.repository()), &id)?;
                }
                self.store.keep_blobs_for_image(&id, &kept)?;
            }
            report
                .images
                .push((id, full_names.iter().map(|n| familiar(n)).collect()));
        }
        let _ = media::OCI_MANIFEST;
        Ok(report)
    }
}

impl Engine {
    /// Stores the index an image was loaded from and the other platforms' blobs the archive
    /// holds, each checked against its digest; returns the index's digest and every digest
    /// stored (the index's too).
    fn store_archived_index<R: Read + io::Seek>(
        &self,
        reader: &mut ArchiveReader<R>,
        index: &berth_oci::archive::ArchivedIndex,
        what: &str,
    ) -> Result<(Digest, Vec<Digest>), Error> {
        let blobs = self.store.blobs();
        let mut kept = Vec::with_capacity(index.blobs.len() + 1);
        for (digest, path) in &index.blobs {
            if !blobs.contains(digest) {
                let entry = format!("{what}: {path}");
                match blobs.ingest(&mut reader.open(path)?, Some(digest)) {
                    Ok(_) => {}
                    Err(berth_store::Error::Read(error)) => {
                        return Err(ImageError::Io {
                            op: "reading",
                            path: entry.into(),
                            error,
                        }
                        .into())
                    }
                    Err(berth_store::Error::DigestMismatch { expected, actual }) => {
                        return Err(ImageError::BlobMismatch {
                            path: entry,
                            expected,
                            actual,
                        }
                        .into())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            kept.push(digest.clone());
        }
        let info = blobs.put_bytes(&index.bytes)?;
        kept.push(info.digest.clone());
        Ok((info.digest, kept))
    }
}

fn read_head(f: &mut File, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    f.seek(SeekFrom::Start(0))?;
    Ok(n)
}
