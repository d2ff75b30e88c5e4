//! The build cache's keys and entries.
//!
//! A step's key is the digest of its parent's key, the instruction after ARG/ENV expansion
//! together with the stage's config at that point (so an earlier ENV or USER counts), and,
//! for COPY/ADD, the content, mode and owner of every file it reads (not mtimes). Keys chain,
//! so a change invalidates exactly the steps from the first one it affects. Entries live in
//! the store (the backend's `cache_get`/`cache_put`); [`MemoryCache`] serves tests.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::sync::Mutex;

use berth_oci::{Digest, Hasher};
use serde::{Deserialize, Serialize};

use crate::context::{CopyItem, ItemKind};
use crate::exec::LayerRef;

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The layer the step made.
    pub layer: LayerRef,
    /// When the step first ran (RFC 3339): reused so a fully cached build gives the same image.
    pub created: String,
}

/// The key of a step: its parent's key and the step's canonical description.
pub fn step_key(parent: &Digest, parts: &[&[u8]]) -> Digest {
    let mut h = Hasher::new();
    h.update(parent.to_string().as_bytes());
    for p in parts {
        h.update(b"\x00");
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finish()
}

/// The key of a stage's starting point.
pub fn base_key(base: &str) -> Digest {
    Digest::of(format!("berth-build-v1 base {base}").as_bytes())
}

/// Digests what a COPY/ADD writes: every destination path, kind, mode, owner and content.
pub fn content_digest(items: &[CopyItem]) -> io::Result<Digest> {
    content_digest_memo(items, None)
}

/// [`content_digest`], reusing file digests from `memo` for files whose identity and
/// timestamps did not change.
pub fn content_digest_memo(items: &[CopyItem], memo: Option<&DigestMemo>) -> io::Result<Digest> {
    let mut h = Hasher::new();
    for item in items {
        h.update(item.dest.as_bytes());
        h.update(
            format!(
                "\x00{:o}\x00{}\x00{}\x00",
                item.meta.mode, item.meta.uid, item.meta.gid
            )
            .as_bytes(),
        );
        match &item.kind {
            ItemKind::Dir => h.update(b"dir"),
            ItemKind::Symlink(t) => {
                h.update(b"symlink\x00");
                h.update(t.as_bytes());
            }
            ItemKind::Inline(b) => {
                h.update(b"inline\x00");
                h.update(Digest::of(b).hex().as_bytes());
            }
            ItemKind::File(p) | ItemKind::Archive(p, _) => {
                h.update(if matches!(item.kind, ItemKind::File(_)) {
                    b"file\x00".as_slice()
                } else {
                    b"archive\x00".as_slice()
                });
                let d = match memo {
                    Some(m) => m.digest(p)?,
                    None => file_digest(p)?,
                };
                h.update(d.hex().as_bytes());
            }
        }
        h.update(b"\n");
    }
    Ok(h.finish())
}

fn file_digest(path: &std::path::Path) -> io::Result<Digest> {
    let mut f = fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Remembers file digests by path, device, inode, size, mtime and ctime (any write changes
/// the ctime), so an unchanged 20 MiB COPY source is not read again on every build. Loaded
/// from and saved to one JSON file; a damaged file is ignored.
#[derive(Debug, Default)]
pub struct DigestMemo {
    path: Option<std::path::PathBuf>,
    entries: Mutex<HashMap<String, MemoEntry>>,
    dirty: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MemoEntry {
    stat: [i64; 6],
    digest: String,
}

/// Entries beyond this many are dropped at save time.
const MEMO_MAX: usize = 50_000;

fn stat_key(md: &fs::Metadata) -> [i64; 6] {
    use std::os::unix::fs::MetadataExt;
    [
        md.dev() as i64,
        md.ino() as i64,
        md.size() as i64,
        md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        md.mode() as i64,
    ]
}

impl DigestMemo {
    /// A memo backed by `path` (loaded now when it exists).
    pub fn load(path: std::path::PathBuf) -> Self {
        let entries = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        DigestMemo {
            path: Some(path),
            entries: Mutex::new(entries),
            dirty: Default::default(),
        }
    }

    /// The digest of the file at `p`, from the memo when its stat is unchanged.
    pub fn digest(&self, p: &std::path::Path) -> io::Result<Digest> {
        let md = fs::metadata(p)?;
        let key = p.to_string_lossy().into_owned();
        let stat = stat_key(&md);
        if let Ok(m) = self.entries.lock() {
            if let Some(e) = m.get(&key) {
                if e.stat == stat {
                    if let Ok(d) = Digest::from_hex(&e.digest) {
                        return Ok(d);
                    }
                }
            }
        }
        let d = file_digest(p)?;
        // A file changed while it was read is not remembered.
        if fs::metadata(p)
            .map(|m| stat_key(&m) == stat)
            .unwrap_or(false)
        {
            if let Ok(mut m) = self.entries.lock() {
                m.insert(
                    key,
                    MemoEntry {
                        stat,
                        digest: d.hex().to_owned(),
                    },
                );
                self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(d)
    }

    /// Writes the memo back (atomically) when it changed. Errors are ignored: the memo is
    /// only an optimisation.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        if m.len() > MEMO_MAX {
            m.clear();
        }
        let Ok(bytes) = serde_json::to_vec(&*m) else {
            return;
        };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// An in-memory cache, for tests and `--no-cache` runs.
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, CacheEntry>>,
}

impl MemoryCache {
    /// Looks up `key`.
    pub fn get(&self, key: &Digest) -> Option<CacheEntry> {
        self.entries
            .lock()
            .ok()
            .and_then(|m| m.get(key.hex()).cloned())
    }

    /// Stores `entry` under `key`.
    pub fn put(&self, key: &Digest, entry: &CacheEntry) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(key.hex().to_owned(), entry.clone());
        }
    }

    /// Removes every entry; returns how many there were.
    pub fn clear(&self) -> usize {
        self.entries
            .lock()
            .map(|mut m| {
                let n = m.len();
                m.clear();
                n
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layertar::EntryMeta;

    #[test]
    fn keys_chain_and_differ() {
        let b = base_key("scratch");
        let a1 = step_key(&b, &[b"RUN", b"x"]);
        assert_eq!(a1, step_key(&b, &[b"RUN", b"x"]));
        assert_ne!(a1, step_key(&b, &[b"RUN", b"y"]));
        assert_ne!(
            a1,
            step_key(&b, &[b"RUNx", b""]),
            "parts are length-prefixed"
        );
        assert_ne!(step_key(&a1, &[b"A"]), step_key(&b, &[b"A"]));
    }

    #[test]
    fn content_not_mtime() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("f");
        fs::write(&p, "one").expect("write");
        let item = |mtime, mode| CopyItem {
            dest: "f".into(),
            kind: ItemKind::File(p.clone()),
            meta: EntryMeta {
                mode,
                uid: 0,
                gid: 0,
                mtime,
            },
            size: 3,
        };
        let a = content_digest(&[item(1, 0o644)]).expect("digest");
        assert_eq!(a, content_digest(&[item(2, 0o644)]).expect("digest"));
        assert_ne!(a, content_digest(&[item(1, 0o755)]).expect("digest"));
        fs::write(&p, "two").expect("write");
        assert_ne!(a, content_digest(&[item(1, 0o644)]).expect("digest"));
    }

    #[test]
    fn memo_reuses_and_notices_changes() {
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("f");
        let memo_path = d.path().join("memo.json");
        fs::write(&f, "one").expect("write");
        let m = DigestMemo::load(memo_path.clone());
        assert_eq!(m.digest(&f).expect("digest"), Digest::of(b"one"));
        m.save();
        let m2 = DigestMemo::load(memo_path.clone());
        assert_eq!(m2.entries.lock().expect("lock").len(), 1);
        assert_eq!(m2.digest(&f).expect("digest"), Digest::of(b"one"));
        fs::write(&f, "two").expect("write");
        assert_eq!(m2.digest(&f).expect("digest"), Digest::of(b"two"));
    }
}
