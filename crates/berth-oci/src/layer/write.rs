//! Deterministic layer tars from an overlay upper directory or a plain directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use super::fsops::{self, err, os};
use super::{LayerError, OPAQUE_USER_XATTR, OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::digest::{Digest, DigestWriter};

/// How [`diff_upper`] and [`write_dir_tar`] write entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Clamp every mtime to at most this many seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub mtime_clamp: Option<i64>,
}

/// What a layer tar written by [`diff_upper`] or [`write_dir_tar`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// sha256 of the tar as written (the diff ID).
    pub diff_id: Digest,
    /// Size of the tar in bytes.
    pub size: u64,
    /// Number of entries written (PAX headers not counted).
    pub entries: u64,
}

/// Writes the overlay upper directory `upper` as an OCI layer tar to `writer`: whiteout
/// devices (0/0 character devices) become `.wh.NAME` entries, directories marked opaque
/// (`trusted.overlay.opaque` or `user.overlay.opaque` = `y`) are followed by a
/// `.wh..wh..opq` entry. Entries are sorted by name, owners are numeric, long names and
/// xattrs use PAX records; the same tree always gives the same bytes. Sockets are skipped;
/// xattrs are kept for files and directories (overlay's own are dropped).
pub fn diff_upper<W: Write>(
    upper: &Path,
    writer: W,
    opts: &DiffOptions,
) -> Result<DiffStats, LayerError> {
    write_tree(upper, writer, opts, true)
}

/// Writes the whole directory `dir` as a layer tar to `writer`, like [`diff_upper`] but with
/// no whiteout conversion (a 0/0 character device is written as a device).
pub fn write_dir_tar<W: Write>(
    dir: &Path,
    writer: W,
    opts: &DiffOptions,
) -> Result<DiffStats, LayerError> {
    write_tree(dir, writer, opts, false)
}

fn write_tree<W: Write>(
    dir: &Path,
    writer: W,
    opts: &DiffOptions,
    whiteouts: bool,
) -> Result<DiffStats, LayerError> {
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Target {
        path: dir.to_owned(),
        source: err(e),
    })?;
    let mut w = TreeWriter {
        builder: tar::Builder::new(DigestWriter::new(writer)),
        opts,
        whiteouts,
        links: HashMap::new(),
        entries: 0,
    };
    if whiteouts {
        // An opaque upper root hides everything below it.
        let (_, opaque) = w.xattrs(root.as_fd(), b".")?;
        if opaque {
            let st = rfs::fstat(&root).map_err(|e| LayerError::Read {
                path: ".".into(),
                source: err(e),
            })?;
            let mtime = match opts.mtime_clamp {
                Some(c) => st.st_mtime.min(c),
                None => st.st_mtime,
            };
            w.append_whiteout(WHITEOUT_OPAQUE.as_bytes(), mtime)?;
        }
    }
    w.walk(root.as_fd(), &mut Vec::new())?;
    let out = w
        .builder
        .into_inner()
        .map_err(|source| LayerError::Write { source })?;
    let entries = w.entries;
    let (_, diff_id, size) = out.finish();
    Ok(DiffStats {
        diff_id,
        size,
        entries,
    })
}

struct TreeWriter<'o, W: Write> {
    builder: tar::Builder<DigestWriter<W>>,
    opts: &'o DiffOptions,
    whiteouts: bool,
    /// First path seen of each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
}

impl<W: Write> TreeWriter<'_, W> {
    /// Writes the children of `dir` (whose tar path is `prefix`, empty for the root).
    fn walk(&mut self, dir: BorrowedFd<'_>, prefix: &mut Vec<u8>) -> Result<(), LayerError> {
        let read_err = |prefix: &[u8], e| LayerError::Read {
            path: String::from_utf8_lossy(prefix).into_owned(),
            source: err(e),
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in rfs::Dir::read_from(dir).map_err(|e| read_err(prefix, e))? {
            let entry = entry.map_err(|e| read_err(prefix, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort_unstable();
        for name in names {
            let base = prefix.len();
            prefix.extend_from_slice(&name);
            let res = self.write_one(dir, &name, prefix);
            prefix.truncate(base);
            res?;
        }
        Ok(())
    }

    fn write_one(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &mut Vec<u8>,
    ) -> Result<(), LayerError> {
        let read_err = |path: &[u8], e: rustix::io::Errno| LayerError::Read {
            path: String::from_utf8_lossy(path).into_owned(),
            source: err(e),
        };
        let st =
            rfs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| read_err(path, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut h = tar::Header::new_ustar();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        let mut mtime = st.st_mtime;
        if let Some(clamp) = self.opts.mtime_clamp {
            mtime = mtime.min(clamp);
        }
        h.set_mtime(u64::try_from(mtime).unwrap_or(0));
        h.set_size(0);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if st.st_uid > 0o7777777 {
            pax.push(("uid".into(), st.st_uid.to_string().into_bytes()));
        }
        if st.st_gid > 0o7777777 {
            pax.push(("gid".into(), st.st_gid.to_string().into_bytes()));
        }
        match ft {
            FileType::Directory => {
                let fd = fsops::open_subdir(dir, name).map_err(|e| read_err(path, e))?;
                let (xattrs, opaque) = self.xattrs(fd.as_fd(), path)?;
                path.push(b'/');
                h.set_entry_type(tar::EntryType::Directory);
                self.append(h, path, None, xattrs, pax, io::empty())?;
                if opaque && self.whiteouts {
                    let base = path.len();
                    path.extend_from_slice(WHITEOUT_OPAQUE.as_bytes());
                    let res = self.append_whiteout(path, mtime);
                    path.truncate(base);
                    res?;
                }
                self.walk(fd.as_fd(), path)?;
                path.pop();
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        h.set_entry_type(tar::EntryType::Link);
                        return self.append(h, path, Some(&first), Vec::new(), pax, io::empty());
                    }
                    self.links.insert(key, path.clone());
                }
                let fd: OwnedFd = rfs::openat(
                    dir,
                    os(name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| read_err(path, e))?;
                let (xattrs, _) = self.xattrs(fd.as_fd(), path)?;
                let size = st.st_size as u64;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                let file = File::from(fd);
                let data = ExactReader {
                    inner: file.take(size),
                    left: size,
                };
                self.append(h, path, None, xattrs, pax, data)?;
            }
            FileType::Symlink => {
                let target =
                    rfs::readlinkat(dir, os(name), Vec::new()).map_err(|e| read_err(path, e))?;
                h.set_entry_type(tar::EntryType::Symlink);
                self.append(
                    h,
                    path,
                    Some(target.as_bytes()),
                    Vec::new(),
                    pax,
                    io::empty(),
                )?;
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let (major, minor) = (rfs::major(st.st_rdev), rfs::minor(st.st_rdev));
                if self.whiteouts && ft == FileType::CharacterDevice && major == 0 && minor == 0 {
                    let base = path.len() - name.len();
                    let mut wh = path[..base].to_vec();
                    wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
                    wh.extend_from_slice(name);
                    return self.append_whiteout(&wh, mtime);
                }
                h.set_entry_type(if ft == FileType::CharacterDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(major)
                    .and_then(|()| h.set_device_minor(minor))
                    .map_err(|source| LayerError::Write { source })?;
                self.append(h, path, None, Vec::new(), pax, io::empty())?;
            }
            FileType::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                self.append(h, path, None, Vec::new(), pax, io::empty())?;
            }
            // Sockets (and anything else) cannot be stored in a tar; Docker skips them too.
            _ => {}
        }
        Ok(())
    }

    fn append_whiteout(&mut self, path: &[u8], mtime: i64) -> Result<(), LayerError> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(u64::try_from(mtime).unwrap_or(0));
        self.append(h, path, None, Vec::new(), Vec::new(), io::empty())
    }

    /// The xattrs to store (sorted, overlay's own left out) and whether the dir is opaque.
    #[allow(clippy::type_complexity)]
    fn xattrs(
        &self,
        fd: BorrowedFd<'_>,
        path: &[u8],
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool), LayerError> {
        let read_err = |e| LayerError::Read {
            path: String::from_utf8_lossy(path).into_owned(),
            source: err(e),
        };
        let mut names = fsops::list_xattrs(fd).map_err(read_err)?;
        names.sort_unstable();
        let mut out = Vec::new();
        let mut opaque = false;
        for n in names {
            if n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.") {
                let feature = n.split(|&b| b == b'.').nth(2);
                if self.whiteouts && matches!(feature, Some(b"redirect") | Some(b"metacopy")) {
                    return Err(LayerError::UnsupportedOverlay {
                        path: String::from_utf8_lossy(path).into_owned(),
                        feature: if feature == Some(b"redirect") {
                            "redirect_dir"
                        } else {
                            "metacopy"
                        },
                    });
                }
                if n == OPAQUE_XATTR.as_bytes() || n == OPAQUE_USER_XATTR.as_bytes() {
                    opaque |= fsops::get_xattr(fd, &n).map_err(read_err)?.as_deref() == Some(b"y");
                }
                continue;
            }
            if let Some(v) = fsops::get_xattr(fd, &n).map_err(read_err)? {
                out.push((n, v));
            }
        }
        Ok((out, opaque))
    }

    fn append<R: Read>(
        &mut self,
        mut h: tar::Header,
        path: &[u8],
        link: Option<&[u8]>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
        mut pax: Vec<(String, Vec<u8>)>,
        data: R,
    ) -> Result<(), LayerError> {
        let werr = |source| LayerError::Write { source };
        if path.len() > 100 {
            pax.push(("path".into(), path.to_vec()));
        }
        {
            let name = &mut h.as_old_mut().name;
            let n = path.len().min(100);
            name[..n].copy_from_slice(&path[..n]);
        }
        if let Some(link) = link {
            if link.len() > 100 {
                pax.push(("linkpath".into(), link.to_vec()));
            }
            let n = link.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
        }
        for (k, v) in xattrs {
            let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(&k));
            pax.push((key, v));
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(werr)?;
        }
        h.set_cksum();
        self.builder.append(&h, data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                LayerError::Read {
                    path: String::from_utf8_lossy(path).into_owned(),
                    source: e,
                }
            } else {
                werr(e)
            }
        })?;
        self.entries += 1;
        Ok(())
    }
}

/// Reads exactly the size announced in the header; a file that shrank while being read is an
/// error rather than a corrupt tar.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
