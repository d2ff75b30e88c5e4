//! Writing layer tars for COPY and ADD: deterministic (entries in the order given, which
//! callers keep sorted; owner, mode and clamped mtime only; no user or group names), and
//! reading local archives for ADD's auto-extraction (plain, gzip or zstd, by magic bytes).

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

/// Writes a layer tar.
pub struct LayerWriter<W: Write> {
    builder: tar::Builder<W>,
    clamp: Option<u64>,
    dirs: BTreeSet<String>,
}

/// Metadata of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

impl<W: Write> LayerWriter<W> {
    /// A writer; `clamp` caps every mtime (SOURCE_DATE_EPOCH).
    pub fn new(out: W, clamp: Option<u64>) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        builder.follow_symlinks(false);
        LayerWriter {
            builder,
            clamp,
            dirs: BTreeSet::new(),
        }
    }

    fn header(&self, kind: tar::EntryType, meta: EntryMeta, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode & 0o7777);
        h.set_uid(meta.uid.into());
        h.set_gid(meta.gid.into());
        let mtime = match self.clamp {
            Some(c) => meta.mtime.min(c),
            None => meta.mtime,
        };
        h.set_mtime(mtime);
        h.set_size(size);
        h
    }

    /// Adds a directory once; later calls for the same path are ignored.
    pub fn dir(&mut self, path: &str, meta: EntryMeta) -> io::Result<()> {
        let p = path.trim_matches('/');
        if p.is_empty() || !self.dirs.insert(p.to_owned()) {
            return Ok(());
        }
        let mut h = self.header(tar::EntryType::Directory, meta, 0);
        self.builder
            .append_data(&mut h, format!("{p}/"), io::empty())
    }

    /// Adds every missing parent directory of `path` with `meta`.
    pub fn parents(&mut self, path: &str, meta: EntryMeta) -> io::Result<()> {
        let p = path.trim_matches('/');
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            let a = acc.clone();
            self.dir(&a, meta)?;
        }
        Ok(())
    }

    /// Adds a regular file of `size` bytes read from `data`.
    pub fn file(
        &mut self,
        path: &str,
        meta: EntryMeta,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, meta, size);
        self.builder
            .append_data(&mut h, path.trim_start_matches('/'), data.take(size))
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str, meta: EntryMeta) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, meta, 0);
        self.builder
            .append_link(&mut h, path.trim_start_matches('/'), target)
    }

    /// Adds a hard link to an earlier entry.
    pub fn hardlink(&mut self, path: &str, target: &str, meta: EntryMeta) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Link, meta, 0);
        self.builder.append_link(
            &mut h,
            path.trim_start_matches('/'),
            target.trim_start_matches('/'),
        )
    }

    /// Finishes the archive and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// The compression of an archive, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An uncompressed tar.
    Tar,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2 or xz: recognised, not supported.
    Unsupported(&'static str),
    /// Not an archive: ADD copies it as a file.
    NotArchive,
}

/// Detects an archive from its first 512+ bytes.
pub fn detect(head: &[u8]) -> ArchiveKind {
    if head.starts_with(&[0x1f, 0x8b]) {
        ArchiveKind::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveKind::Zstd
    } else if head.starts_with(b"BZh") {
        ArchiveKind::Unsupported("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArchiveKind::Unsupported("xz")
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        ArchiveKind::Tar
    } else {
        ArchiveKind::NotArchive
    }
}

/// Opens `data` as a decompressed tar stream of kind `kind`.
pub fn open_archive<'a>(kind: ArchiveKind, data: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        ArchiveKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        ArchiveKind::Zstd => Box::new(zstd::stream::read::Decoder::new(data)?),
        _ => Box::new(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_clamped() {
        let meta = EntryMeta {
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime: 2_000_000_000,
        };
        let make = || {
            let mut w = LayerWriter::new(Vec::new(), Some(100));
            w.parents(
                "a/b/c.txt",
                EntryMeta {
                    mode: 0o755,
                    ..meta
                },
            )
            .expect("dirs");
            w.file("a/b/c.txt", meta, 3, &b"abc"[..]).expect("file");
            w.symlink("a/l", "b/c.txt", meta).expect("link");
            w.finish().expect("finish")
        };
        let one = make();
        assert_eq!(one, make());
        let mut ar = tar::Archive::new(&one[..]);
        let names: Vec<(String, u64)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    e.header().mtime().expect("mtime"),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("a/".to_owned(), 100),
                ("a/b/".to_owned(), 100),
                ("a/b/c.txt".to_owned(), 100),
                ("a/l".to_owned(), 100)
            ]
        );
    }

    #[test]
    fn detects_archives() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]), ArchiveKind::Gzip);
        assert_eq!(detect(b"hello"), ArchiveKind::NotArchive);
        let mut w = LayerWriter::new(Vec::new(), None);
        w.file(
            "x",
            EntryMeta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
            1,
            &b"x"[..],
        )
        .expect("file");
        let t = w.finish().expect("finish");
        assert_eq!(detect(&t), ArchiveKind::Tar);
    }
}
