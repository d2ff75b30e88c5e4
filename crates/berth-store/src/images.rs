//! Images and tags: records, lookups, tagging and deletion.

use std::collections::HashMap;

use berth_oci::Digest;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::{now_unix, parse_digest, Store};

/// An image as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image ID: its config digest.
    pub id: Digest,
    /// Digest of the manifest blob.
    pub manifest_digest: Digest,
    /// Media type of the manifest blob.
    pub manifest_media_type: String,
    /// `created` from the config (RFC 3339, may be empty).
    pub created: String,
    /// The same as Unix seconds (0 when unknown).
    pub created_unix: i64,
    /// Sum of the unpacked sizes of its layers.
    pub size: u64,
    /// When it entered this store (Unix seconds).
    pub added: i64,
    /// When it was last tagged (Unix seconds).
    pub last_tag_time: Option<i64>,
    /// Full normalized references that point at it, sorted.
    pub tags: Vec<String>,
    /// Full references by digest (`docker.io/library/x@sha256:...`), sorted.
    pub repo_digests: Vec<String>,
    /// Chain IDs of its layers, bottom first.
    pub layers: Vec<Digest>,
}

/// An image to add: its blobs and layers must be stored already.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// Config digest.
    pub id: Digest,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// Manifest media type.
    pub manifest_media_type: String,
    /// `created` of the config.
    pub created: String,
    /// The same as Unix seconds.
    pub created_unix: i64,
    /// Chain IDs of its layers, bottom first.
    pub layers: Vec<Digest>,
}

/// What happened to one tag when an image was added or tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMove {
    /// The full reference.
    pub reference: String,
    /// The image it pointed at before, if another one.
    pub previous: Option<Digest>,
}

impl Store {
    /// Adds an image (if new) and points `tags` (full normalized references) at it, moving
    /// them away from any other image. One transaction, durable when this returns: the
    /// last step of import, load, pull and build, after which they report success.
    pub fn add_image(&self, image: &NewImage, tags: &[String]) -> Result<Vec<TagMove>> {
        // The database commits with synchronous=NORMAL (the log is synced at checkpoints);
        // this commit syncs the log, which holds every earlier commit too (layer rows).
        self.conn
            .borrow()
            .pragma_update(None, "synchronous", "FULL")
            .map_err(Error::db("setting synchronous"))?;
        let added = self.add_image_tx(image, tags);
        let restored = self
            .conn
            .borrow()
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(Error::db("setting synchronous"));
        let moves = added?;
        restored?;
        Ok(moves)
    }

    fn add_image_tx(&self, image: &NewImage, tags: &[String]) -> Result<Vec<TagMove>> {
        let mut conn = self.conn.borrow_mut();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("adding image"))?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                [image.id.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map_err(Error::db("looking up image"))?
            .is_some();
        let now = now_unix();
        if !exists {
            let mut size: i64 = 0;
            for (pos, chain) in image.layers.iter().enumerate() {
                let layer_size: Option<i64> = tx
                    .query_row(
                        "SELECT size FROM layers WHERE chain_id = ?1",
                        [chain.to_string()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(Error::db("looking up layer"))?;
                let Some(layer_size) = layer_size else {
                    return Err(Error::LayerNotFound(chain.clone()));
                };
                size += layer_size;
                let _ = pos;
            }
            tx.execute(
                "INSERT INTO images (id, manifest_digest, manifest_media_type, created, \
                 created_unix, size, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    image.id.to_string(),
                    image.manifest_digest.to_string(),
                    image.manifest_media_type,
                    image.created,
                    image.created_unix,
                    size,
                    now
                ],
            )
            .map_err(Error::db("inserting image"))?;
            for (pos, chain) in image.layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?1, ?2, ?3)",
                    params![image.id.to_string(), pos as i64, chain.to_string()],
                )
                .map_err(Error::db("inserting image layer"))?;
                tx.execute(
                    "UPDATE layers SET refcount = refcount + 1 WHERE chain_id = ?1",
                    [chain.to_string()],
                )
                .map_err(Error::db("counting layer reference"))?;
            }
        }
        let mut moves = Vec::new();
        for tag in tags {
            moves.push(set_tag(&tx, tag, &image.id, now)?);
        }
        tx.commit().map_err(Error::db("committing image"))?;
        Ok(moves)
    }

    /// Points `reference` (full, normalized) at image `id`.
    pub fn tag_image(&self, reference: &str, id: &Digest) -> Result<TagMove> {
        let mut conn = self.conn.borrow_mut();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("tagging"))?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map_err(Error::db("looking up image"))?;
        if exists.is_none() {
            return Err(Error::ImageNotFound(id.to_string()));
        }
        let m = set_tag(&tx, reference, id, now_unix())?;
        tx.commit().map_err(Error::db("committing tag"))?;
        Ok(m)
    }

    /// Records a reference by digest (`repo@sha256:...`) for an image (pull, load).
    pub fn add_repo_digest(&self, reference: &str, id: &Digest) -> Result<()> {
        self.conn
            .borrow()
            .execute(
                "INSERT OR REPLACE INTO repo_digests (reference, image_id) VALUES (?1, ?2)",
                params![reference, id.to_string()],
            )
            .map_err(Error::db("adding repo digest"))?;
        Ok(())
    }

    /// Removes a tag; returns the image it pointed at, or `None` if there was no such tag.
    pub fn untag(&self, reference: &str) -> Result<Option<Digest>> {
        let conn = self.conn.borrow();
        let id: Option<String> = conn
            .query_row(
                "DELETE FROM tags WHERE reference = ?1 RETURNING image_id",
                [reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::db("untagging"))?;
        id.map(|s| parse_digest(&s, "tags.image_id")).transpose()
    }

    /// Removes a repo digest reference; returns the image it pointed at.
    pub fn remove_repo_digest(&self, reference: &str) -> Result<Option<Digest>> {
        let conn = self.conn.borrow();
        let id: Option<String> = conn
            .query_row(
                "DELETE FROM repo_digests WHERE reference = ?1 RETURNING image_id",
                [reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::db("removing repo digest"))?;
        id.map(|s| parse_digest(&s, "repo_digests.image_id"))
            .transpose()
    }

    /// The image a full normalized tag points at.
    pub fn image_by_tag(&self, reference: &str) -> Result<Option<Digest>> {
        let conn = self.conn.borrow();
        let id: Option<String> = conn
            .query_row(
                "SELECT image_id FROM tags WHERE reference = ?1 UNION ALL \
                 SELECT image_id FROM repo_digests WHERE reference = ?1 LIMIT 1",
                [reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::db("looking up tag"))?;
        id.map(|s| parse_digest(&s, "tags.image_id")).transpose()
    }

    /// Image IDs whose hex starts with `prefix` (hex only, no `sha256:`).
    pub fn images_by_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let conn = self.conn.borrow();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM images WHERE id >= ?1 AND id < ?2 ORDER BY id")
            .map_err(Error::db("searching images"))?;
        let lo = format!("sha256:{}", prefix.to_ascii_lowercase());
        let hi = format!("{lo}\u{7f}");
        let rows = stmt
            .query_map(params![lo, hi], |r| r.get::<_, String>(0))
            .map_err(Error::db("searching images"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parse_digest(
                &row.map_err(Error::db("searching images"))?,
                "images.id",
            )?);
        }
        Ok(out)
    }

    /// Resolves what a user typed to one image: a full ID (`sha256:<hex>` or `<hex>`), a
    /// reference (`normalized`, the full form of `input` when it parses as one), or a unique
    /// ID prefix. An ambiguous prefix is an error listing the matches.
    pub fn resolve_image(&self, input: &str, normalized: Option<&str>) -> Result<Digest> {
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        let looks_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if looks_hex && hex.len() == 64 {
            if let Ok(d) = Digest::from_hex(&hex.to_ascii_lowercase()) {
                if self.image(&d)?.is_some() {
                    return Ok(d);
                }
            }
        }
        if let Some(reference) = normalized {
            if let Some(id) = self.image_by_tag(reference)? {
                return Ok(id);
            }
        }
        if looks_hex {
            let mut found = self.images_by_prefix(hex)?;
            match found.len() {
                0 => {}
                1 => return Ok(found.remove(0)),
                _ => {
                    return Err(Error::AmbiguousImage {
                        input: input.to_owned(),
                        matches: found,
                    })
                }
            }
        }
        Err(Error::ImageNotFound(input.to_owned()))
    }

    /// One image with its tags, digests and layers.
    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        let mut list = self.query_images(Some(id))?;
        Ok(list.pop())
    }

    /// Every image, newest first (by `created`, then by when added).
    pub fn list_images(&self) -> Result<Vec<ImageRecord>> {
        self.query_images(None)
    }

    fn query_images(&self, only: Option<&Digest>) -> Result<Vec<ImageRecord>> {
        let conn = self.conn.borrow();
        let filter = only.map(|d| d.to_string());
        let where_img = if filter.is_some() {
            "WHERE id = ?1"
        } else {
            ""
        };
        let where_ref = if filter.is_some() {
            "WHERE image_id = ?1"
        } else {
            ""
        };
        let args: Vec<&dyn rusqlite::ToSql> = match &filter {
            Some(f) => vec![f as &dyn rusqlite::ToSql],
            None => vec![],
        };
        let mut images: Vec<ImageRecord> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT id, manifest_digest, manifest_media_type, created, created_unix, \
                     size, added, last_tag_time FROM images {where_img} \
                     ORDER BY created_unix DESC, added DESC, id"
                ))
                .map_err(Error::db("listing images"))?;
            let mut rows = stmt
                .query(args.as_slice())
                .map_err(Error::db("listing images"))?;
            while let Some(r) = rows.next().map_err(Error::db("listing images"))? {
                let id: String = r.get(0).map_err(Error::db("reading image"))?;
                let manifest: String = r.get(1).map_err(Error::db("reading image"))?;
                let rec = ImageRecord {
                    id: parse_digest(&id, "images.id")?,
                    manifest_digest: parse_digest(&manifest, "images.manifest_digest")?,
                    manifest_media_type: r.get(2).map_err(Error::db("reading image"))?,
                    created: r.get(3).map_err(Error::db("reading image"))?,
                    created_unix: r.get(4).map_err(Error::db("reading image"))?,
                    size: r.get::<_, i64>(5).map_err(Error::db("reading image"))? as u64,
                    added: r.get(6).map_err(Error::db("reading image"))?,
                    last_tag_time: r.get(7).map_err(Error::db("reading image"))?,
                    tags: Vec::new(),
                    repo_digests: Vec::new(),
                    layers: Vec::new(),
                };
                index.insert(id, images.len());
                images.push(rec);
            }
        }
        for (table, which) in [("tags", 0), ("repo_digests", 1)] {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT image_id, reference FROM {table} {where_ref} ORDER BY reference"
                ))
                .map_err(Error::db("listing tags"))?;
            let mut rows = stmt
                .query(args.as_slice())
                .map_err(Error::db("listing tags"))?;
            while let Some(r) = rows.next().map_err(Error::db("listing tags"))? {
                let id: String = r.get(0).map_err(Error::db("reading tag"))?;
                let reference: String = r.get(1).map_err(Error::db("reading tag"))?;
                if let Some(&i) = index.get(&id) {
                    if which == 0 {
                        images[i].tags.push(reference);
                    } else {
                        images[i].repo_digests.push(reference);
                    }
                }
            }
        }
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT image_id, chain_id FROM image_layers {where_ref} ORDER BY image_id, position"
            ))
            .map_err(Error::db("listing layers"))?;
        let mut rows = stmt
            .query(args.as_slice())
            .map_err(Error::db("listing layers"))?;
        while let Some(r) = rows.next().map_err(Error::db("listing layers"))? {
            let id: String = r.get(0).map_err(Error::db("reading layer"))?;
            let chain: String = r.get(1).map_err(Error::db("reading layer"))?;
            if let Some(&i) = index.get(&id) {
                images[i]
                    .layers
                    .push(parse_digest(&chain, "image_layers.chain_id")?);
            }
        }
        Ok(images)
    }

    /// Deletes an image's record (its tags and digests with it) and drops its references to
    /// its layers. Blobs and snapshots go at the next [`Store::gc`].
    pub fn delete_image(&self, id: &Digest) -> Result<()> {
        let mut conn = self.conn.borrow_mut();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("deleting image"))?;
        // Checked in the transaction that deletes: a container recorded meanwhile (whose
        // insert checks that the image exists) keeps the image.
        let users = {
            let mut stmt = tx
                .prepare_cached(IMAGE_USERS)
                .map_err(Error::db("listing image users"))?;
            let rows = stmt
                .query_map([id.to_string()], |r| r.get::<_, String>(0))
                .map_err(Error::db("listing image users"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(Error::db("listing image users"))?
        };
        if !users.is_empty() {
            return Err(Error::ImageInUse {
                id: id.clone(),
                users,
            });
        }
        tx.execute(
            "UPDATE layers SET refcount = refcount - 1 WHERE chain_id IN \
             (SELECT chain_id FROM image_layers WHERE image_id = ?1)",
            [id.to_string()],
        )
        .map_err(Error::db("dropping layer references"))?;
        tx.execute(
            "DELETE FROM blob_refs WHERE holder = ?1",
            [crate::gc::image_holder(id)],
        )
        .map_err(Error::db("dropping blob references"))?;
        let n = tx
            .execute("DELETE FROM images WHERE id = ?1", [id.to_string()])
            .map_err(Error::db("deleting image"))?;
        if n == 0 {
            return Err(Error::ImageNotFound(id.to_string()));
        }
        tx.commit()
            .map_err(Error::db("committing image deletion"))?;
        Ok(())
    }

    /// Records that `user` (e.g. `container:<id>`) uses image `id`.
    pub fn add_image_user(&self, id: &Digest, user: &str) -> Result<()> {
        self.conn
            .borrow()
            .execute(
                "INSERT OR IGNORE INTO image_users (image_id, user) VALUES (?1, ?2)",
                params![id.to_string(), user],
            )
            .map_err(Error::db("adding image user"))?;
        Ok(())
    }

    /// Forgets that `user` uses image `id`.
    pub fn remove_image_user(&self, id: &Digest, user: &str) -> Result<()> {
        self.conn
            .borrow()
            .execute(
                "DELETE FROM image_users WHERE image_id = ?1 AND user = ?2",
                params![id.to_string(), user],
            )
            .map_err(Error::db("removing image user"))?;
        Ok(())
    }

    /// Who uses image `id`: the rows of [`Store::add_image_user`] and every container of the
    /// `containers` table, as `running container <short id>` / `stopped container <short id>`
    /// (Docker's words in `rmi`'s conflict message).
    pub fn image_users(&self, id: &Digest) -> Result<Vec<String>> {
        let conn = self.conn.borrow();
        let mut stmt = conn
            .prepare_cached(IMAGE_USERS)
            .map_err(Error::db("listing image users"))?;
        let rows = stmt
            .query_map([id.to_string()], |r| r.get::<_, String>(0))
            .map_err(Error::db("listing image users"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Error::db("listing image users"))
    }
}

/// Who uses an image (`?1`): see [`Store::image_users`].
const IMAGE_USERS: &str = "SELECT user FROM image_users WHERE image_id = ?1 AND user NOT LIKE \
     'container:%' UNION SELECT CASE WHEN status IN ('running', 'restarting') THEN 'running' \
     ELSE 'stopped' END || ' container ' || substr(id, 1, 12) FROM containers \
     WHERE image_id = ?1 ORDER BY 1";

fn set_tag(
    tx: &rusqlite::Transaction<'_>,
    reference: &str,
    id: &Digest,
    now: i64,
) -> Result<TagMove> {
    let previous: Option<String> = tx
        .query_row(
            "SELECT image_id FROM tags WHERE reference = ?1",
            [reference],
            |r| r.get(0),
        )
        .optional()
        .map_err(Error::db("looking up tag"))?;
    tx.execute(
        "INSERT OR REPLACE INTO tags (reference, image_id, created) VALUES (?1, ?2, ?3)",
        params![reference, id.to_string(), now],
    )
    .map_err(Error::db("setting tag"))?;
    tx.execute(
        "UPDATE images SET last_tag_time = ?2 WHERE id = ?1",
        params![id.to_string(), now],
    )
    .map_err(Error::db("setting tag time"))?;
    let previous = previous
        .map(|p| parse_digest(&p, "tags.image_id"))
        .transpose()?
        .filter(|p| p != id);
    Ok(TagMove {
        reference: reference.to_owned(),
        previous,
    })
}
