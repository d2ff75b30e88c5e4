//! `import`: a rootfs tar (plain, gzip or zstd) becomes a one-layer image, in one pass: the
//! stream is stored as a blob and unpacked into the layer snapshot at the same time.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use berth_oci::{manifest, media, Digest, ImageRef};
use berth_store::{BlobWriter, Ingester, NewImage, NewLayer};
use serde_json::{json, Map, Value};

use super::{config::apply_changes, now_rfc3339, parse_rfc3339, ImageError};
use crate::{Engine, Error};

/// Where the tar comes from.
#[derive(Debug, Clone)]
pub enum ImportSource {
    /// A file.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

/// What `import` is asked to do.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The tar.
    pub source: ImportSource,
    /// A reference to tag the image with.
    pub reference: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// `--message`: the history comment.
    pub message: Option<String>,
}

/// Size of the chunks handed to the blob thread.
const CHUNK: usize = 1 << 20;

/// Passes what it reads on, in chunks, to the blob thread.
struct Tee<R> {
    inner: R,
    pending: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
}

impl<R: Read> Tee<R> {
    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        match &self.tx {
            Some(tx) => tx
                .send(chunk)
                .map_err(|_| io::Error::other("the blob writer stopped")),
            None => Ok(()),
        }
    }

    /// Reads the rest of the input (after the tar's end marker) and hands over the last chunk.
    fn finish(mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.read(&mut buf)? > 0 {}
        self.send_pending()
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() >= CHUNK || n == 0 {
            self.send_pending()?;
        }
        Ok(n)
    }
}

/// Writes (and hashes) chunks into `blob` until the channel closes; starts their writeback
/// to the disk as it goes, without waiting for it.
fn blob_thread(mut blob: BlobWriter, rx: Receiver<Vec<u8>>) -> io::Result<BlobWriter> {
    let mut since_writeback = 0u64;
    for chunk in rx {
        blob.write_all(&chunk)?;
        since_writeback += chunk.len() as u64;
        if since_writeback >= berth_oci::writeback::KICK_EVERY {
            blob.start_writeback()?;
            since_writeback = 0;
        }
    }
    Ok(blob)
}

impl Engine {
    /// Imports a rootfs tar as a new image; returns its ID. The reference and the changes
    /// are checked before anything is read; on any error nothing is left behind.
    pub fn import(&self, req: &ImportRequest) -> Result<Digest, Error> {
        let r = self.import_inner(req);
        let id = self.collect_after_failure(r)?;
        let name = req.reference.clone().unwrap_or_else(|| id.to_string());
        crate::events::emit_image(&self.config.root, "import", &id.to_string(), &name);
        Ok(id)
    }

    fn import_inner(&self, req: &ImportRequest) -> Result<Digest, Error> {
        let reference = req.reference.as_deref().map(ImageRef::parse).transpose()?;
        if let Some(r) = &reference {
            if r.digest().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "cannot import onto a digest reference: {}",
                    req.reference.as_deref().unwrap_or_default()
                )));
            }
        }
        let mut inner = Map::new();
        apply_changes(&mut inner, &req.changes)?;
        let (reader, what): (Box<dyn Read>, String) = match &req.source {
            ImportSource::Stdin => (Box::new(io::stdin().lock()), "-".to_owned()),
            ImportSource::Path(p) => {
                let s = p.to_string_lossy();
                if s.starts_with("http://") || s.starts_with("https://") {
                    return Err(Error::InvalidArgument(format!(
                        "importing from a URL ({s}) is not supported: download it first"
                    )));
                }
                let f = File::open(p).map_err(|source| ImageError::Io {
                    op: "open",
                    path: p.clone(),
                    error: source,
                })?;
                (Box::new(f), s.into_owned())
            }
        };
        let _lease = self.store.content_lease()?;
        let (layer, _) = self.ingest_layer(reader, None, &what)?;
        let created = now_rfc3339();
        let comment = req
            .message
            .clone()
            .unwrap_or_else(|| "Imported from -".to_owned());
        let config = json!({
            "architecture": berth_oci::manifest::host_arch(),
            "os": "linux",
            "created": created,
            "config": Value::Object(inner),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
            "history": [{"created": created, "created_by": "", "comment": comment}],
        });
        let config = manifest::to_json(&config);
        let names: Vec<String> = reference.iter().map(|r| r.to_string()).collect();
        let id = self.store_image(&config, &[layer], &created, &names)?;
        Ok(id)
    }

    /// Stores one layer stream (blob + snapshot) in one pass over `parent`; returns the
    /// layer record and its compression. `what` names the input in errors.
    pub(crate) fn ingest_layer(
        &self,
        reader: impl Read,
        parent: Option<&Digest>,
        what: &str,
    ) -> Result<(berth_store::LayerRecord, berth_oci::Compression), Error> {
        self.ingest_layer_checked(reader, parent, what, None, None)
    }

    /// [`Engine::ingest_layer`], refusing (and storing nothing) when the blob's digest is
    /// not `expected_blob` or the content's diff ID not the one the config lists
    /// (`expected_diff`: layer index, archive path, diff ID).
    pub(crate) fn ingest_layer_checked(
        &self,
        reader: impl Read,
        parent: Option<&Digest>,
        what: &str,
        expected_blob: Option<&Digest>,
        expected_diff: Option<(usize, &str, &Digest)>,
    ) -> Result<(berth_store::LayerRecord, berth_oci::Compression), Error> {
        let blob = self.store.blobs().begin_blob()?;
        let staging = self.store.staging_dir()?;
        // One pass, two cores: this thread reads and decompresses, the applier's worker
        // extracts, the blob thread writes and hashes the stream as read (the only hash of
        // it: the applier hashes only decompressed content).
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let (applied, blob) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || blob_thread(blob, rx));
            let mut tee = Tee {
                inner: reader,
                pending: Vec::with_capacity(CHUNK),
                tx: Some(tx),
            };
            let applied = berth_oci::apply_layer_stream(
                &mut tee,
                staging.path(),
                &berth_oci::ApplyOptions::default(),
            );
            // Dropping the tee closes the channel, which ends the blob thread.
            let finished = match &applied {
                Ok(_) => tee.finish(),
                Err(_) => {
                    drop(tee);
                    Ok(())
                }
            };
            let blob = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("blob writer panicked")));
            (applied.map(|a| (a, finished)), blob)
        });
        let blob = blob.map_err(|source| ImageError::Io {
            op: "writing a blob for",
            path: what.into(),
            error: source,
        })?;
        let (applied, finished) = applied.map_err(|source| ImageError::Layer {
            what: what.to_owned(),
            source,
        })?;
        finished.map_err(|source| ImageError::Io {
            op: "reading",
            path: what.into(),
            error: source,
        })?;
        let blob_digest = blob.digest();
        let diff_id = applied.diff_id.unwrap_or_else(|| blob_digest.clone());
        if let Some((index, path, expected)) = expected_diff {
            if *expected != diff_id {
                return Err(ImageError::DiffIdMismatch {
                    index,
                    path: path.to_owned(),
                    expected: expected.clone(),
                    actual: diff_id,
                }
                .into());
            }
        }
        if let Some(expected) = expected_blob {
            if *expected != blob_digest {
                return Err(berth_store::Error::DigestMismatch {
                    expected: expected.clone(),
                    actual: blob_digest,
                }
                .into());
            }
        }
        let info = blob.commit(Some(&blob_digest))?;
        let media_type = media::layer_media_type(applied.compression, false).to_owned();
        let record = self.store.commit_layer(
            staging,
            parent,
            &NewLayer {
                diff_id,
                blob_digest: info.digest,
                media_type,
                blob_size: info.size,
                size: applied.size,
            },
        )?;
        Ok((record, applied.compression))
    }

    /// Stores `config` and an OCI manifest for `layers` (bottom first, all stored) and adds
    /// the image with tags `names` (full references). Returns the image ID.
    pub(crate) fn store_image(
        &self,
        config: &[u8],
        layers: &[berth_store::LayerRecord],
        created: &str,
        names: &[String],
    ) -> Result<Digest, Error> {
        let blobs = self.store.blobs();
        let config_info = blobs.put_bytes(config)?;
        let m = manifest::new_manifest(
            manifest::descriptor(media::OCI_CONFIG, &config_info.digest, config_info.size),
            layers
                .iter()
                .map(|l| manifest::descriptor(&l.media_type, &l.blob_digest, l.blob_size))
                .collect(),
            false,
        );
        let manifest_bytes = manifest::to_json(&m);
        let manifest_info = blobs.put_bytes(&manifest_bytes)?;
        self.add_image_record(
            &config_info.digest,
            &manifest_info.digest,
            media::OCI_MANIFEST,
            created,
            layers,
            names,
        )?;
        Ok(config_info.digest)
    }

    pub(crate) fn add_image_record(
        &self,
        id: &Digest,
        manifest_digest: &Digest,
        manifest_media_type: &str,
        created: &str,
        layers: &[berth_store::LayerRecord],
        names: &[String],
    ) -> Result<Vec<berth_store::TagMove>, Error> {
        Ok(self.store.add_image(
            &NewImage {
                id: id.clone(),
                manifest_digest: manifest_digest.clone(),
                manifest_media_type: manifest_media_type.to_owned(),
                created: created.to_owned(),
                created_unix: parse_rfc3339(created),
                layers: layers.iter().map(|l| l.chain_id.clone()).collect(),
            },
            names,
        )?)
    }
}
