//! Secure, streaming application of a layer tar into one snapshot directory.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::fsops::{self, err, os};
use super::{LayerError, OPAQUE_USER_XATTR, OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::digest::{Digest, Hasher};
use crate::media::Compression;

/// How [`apply_layer`] treats owners, devices and whiteouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Give entries the uid/gid of the tar (default: when running as root).
    pub same_owner: bool,
    /// Create character and block device entries (default: true). When false, a device entry
    /// fails the layer. Whiteouts (0/0 character devices) are always created.
    pub allow_devices: bool,
    /// Mark opaque directories with `user.overlay.opaque` (for `userxattr` overlay mounts)
    /// instead of `trusted.overlay.opaque` (default: false).
    pub user_xattr_whiteouts: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            same_owner: rustix::process::geteuid().is_root(),
            allow_devices: true,
            user_xattr_whiteouts: false,
        }
    }
}

/// What [`apply_layer`] applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLayer {
    /// sha256 of the uncompressed tar (the layer's diff ID).
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
    /// sha256 of the stream as read (the blob digest; equal to `diff_id` for a plain tar).
    pub compressed_digest: Digest,
    /// Size of the stream as read.
    pub compressed_size: u64,
    /// The compression detected from the magic bytes.
    pub compression: Compression,
    /// Number of tar entries applied.
    pub entries: u64,
    /// Number of xattrs that the file system refused (ENOTSUP/EPERM) and that were skipped,
    /// plus overlay xattrs dropped on purpose.
    pub xattrs_skipped: u64,
}

/// Applies the layer read from `reader` into the existing directory `target`, which should be
/// empty (a fresh snapshot). The stream is decompressed (gzip or zstd, detected by magic
/// bytes), hashed and extracted in one pass; everything after the end-of-archive marker is
/// read and hashed too, so the digests cover the whole stream.
///
/// On error the target is left half-written: the caller deletes it (see the [module
/// docs](super)).
pub fn apply_layer<R: Read>(
    reader: R,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<AppliedLayer, LayerError> {
    let mut outer = HashingReader::new(reader, true);
    let applied = apply_layer_stream(&mut outer, target, opts)?;
    let (compressed_digest, compressed_size) = outer.finish();
    let compressed_digest = compressed_digest.unwrap_or_else(|| Digest::of(b""));
    let diff_id = applied.diff_id.unwrap_or_else(|| compressed_digest.clone());
    Ok(AppliedLayer {
        diff_id,
        size: applied.size,
        compressed_digest,
        compressed_size,
        compression: applied.compression,
        entries: applied.entries,
        xattrs_skipped: applied.xattrs_skipped,
    })
}

/// What [`apply_layer_stream`] applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedStream {
    /// sha256 of the uncompressed tar (the layer's diff ID) when the stream was compressed;
    /// `None` for a plain tar, whose diff ID is the digest of the stream the caller hashed.
    pub diff_id: Option<Digest>,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
    /// The compression detected from the magic bytes.
    pub compression: Compression,
    /// Number of tar entries applied.
    pub entries: u64,
    /// As [`AppliedLayer::xattrs_skipped`].
    pub xattrs_skipped: u64,
}

/// [`apply_layer`] for a caller that hashes the stream as read itself (e.g. while storing it
/// as a blob), so that it is not hashed twice: the stream as read is not hashed here, only
/// its decompressed content when it is compressed. The stream is still read to its end.
pub fn apply_layer_stream<R: Read>(
    reader: R,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<AppliedStream, LayerError> {
    let root = rfs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Target {
        path: target.to_owned(),
        source: err(e),
    })?;

    let mut outer = reader;
    let mut head = [0u8; 4];
    let n = read_fill(&mut outer, &mut head).map_err(|source| LayerError::Tar {
        after: None,
        source,
    })?;
    let compression = Compression::detect(&head[..n]);
    let chained = io::Cursor::new(head[..n].to_vec()).chain(&mut outer);
    let decode_failed = Rc::new(Cell::new(false));
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(chained),
        Compression::Gzip => Box::new(Tagged(
            flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(256 * 1024, chained)),
            decode_failed.clone(),
        )),
        Compression::Zstd => Box::new(Tagged(
            zstd::stream::read::Decoder::new(chained).map_err(|source| LayerError::Decompress {
                compression,
                source,
            })?,
            decode_failed.clone(),
        )),
    };
    // A plain tar is hashed once, by `outer`.
    let mut inner = HashingReader::new(decoder, compression != Compression::None);

    // Two threads: this one reads, decompresses and hashes; a worker parses the tar and does
    // the file-system work. Chunks are handed over in a bounded channel and recycled, so the
    // stream is still read once and never stored.
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let (ret_tx, ret_rx) = mpsc::channel::<Vec<u8>>();
    let root_fd = root.as_fd();
    let (read_err, worker_result) = std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let mut applier = Applier {
                root: root_fd,
                opts,
                parent: None,
                dir_times: Vec::new(),
                buf: vec![0u8; CHUNK],
                entries: 0,
                xattrs_skipped: 0,
            };
            let reader = ChunkReader {
                rx,
                ret: ret_tx,
                cur: Vec::new(),
                pos: 0,
            };
            apply_entries(&mut applier, reader, compression)?;
            applier.set_dir_times()?;
            Ok::<_, LayerError>((applier.entries, applier.xattrs_skipped))
        });
        let mut read_err = None;
        loop {
            let mut buf = ret_rx.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            match read_fill(&mut inner, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    // A closed channel means the worker is done: finished the archive, or
                    // failed (then the rest of the stream is not worth reading).
                    if tx.send(buf).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    read_err = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let result = match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (read_err, result)
    });
    // A stream error is the real cause of whatever the worker saw (it just ran out of data).
    if let Some(source) = read_err {
        return Err(stream_error(source, compression, &None, &decode_failed));
    }
    let (entries, xattrs_skipped) = worker_result?;
    // The diff ID covers the whole uncompressed stream, padding included.
    io::copy(&mut inner, &mut io::sink())
        .map_err(|source| stream_error(source, compression, &None, &decode_failed))?;
    let (diff_id, size) = inner.finish();
    io::copy(&mut outer, &mut io::sink()).map_err(|source| LayerError::Tar {
        after: None,
        source,
    })?;
    Ok(AppliedStream {
        diff_id,
        size,
        compression,
        entries,
        xattrs_skipped,
    })
}

/// Parses the tar from `reader` and applies each entry.
fn apply_entries<R: Read>(
    applier: &mut Applier<'_>,
    reader: R,
    compression: Compression,
) -> Result<(), LayerError> {
    // Decoder failures are seen (and reported) by the reading thread.
    let no_decode = Cell::new(false);
    let mut archive = tar::Archive::new(reader);
    let mut last: Option<String> = None;
    // Raw entries: long names, PAX records and sparse maps are read here, because the
    // tar crate's PAX parser splits records at newlines, which binary xattr values contain.
    let entries = archive
        .entries()
        .map_err(|source| stream_error(source, compression, &last, &no_decode))?
        .raw(true);
    let mut ext = Extended::default();
    for entry in entries {
        let mut entry =
            entry.map_err(|source| stream_error(source, compression, &last, &no_decode))?;
        let kind = entry.header().entry_type();
        let ext_err = |source| stream_error(source, compression, &last, &no_decode);
        match kind {
            tar::EntryType::GNULongName => {
                ext.long_name = Some(trim_nul(read_extended(&mut entry).map_err(ext_err)?));
                continue;
            }
            tar::EntryType::GNULongLink => {
                ext.long_link = Some(trim_nul(read_extended(&mut entry).map_err(ext_err)?));
                continue;
            }
            tar::EntryType::XHeader => {
                let data = read_extended(&mut entry).map_err(ext_err)?;
                ext.pax = parse_pax(&data).map_err(|reason| LayerError::Tar {
                    after: last.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, reason),
                })?;
                continue;
            }
            tar::EntryType::XGlobalHeader => {
                read_extended(&mut entry).map_err(ext_err)?;
                continue;
            }
            _ => {}
        }
        let ext = std::mem::take(&mut ext);
        // PAX sparse files (GNU tar --format=pax -S) carry their real name separately.
        let raw_name = ext
            .pax_value(b"GNU.sparse.name")
            .or_else(|| ext.pax_value(b"path"))
            .map(<[u8]>::to_vec)
            .or(ext.long_name.clone())
            .unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let name = display_name(&raw_name);
        applier.apply_entry(&mut entry, &raw_name, &ext, &name, compression)?;
        last = Some(name);
    }
    Ok(())
}

/// The size of the chunks handed from the reading thread to the applying one.
const CHUNK: usize = 256 * 1024;
/// How many chunks may wait in the channel.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Reads as much as fits in `buf`, stopping early only at the end of the stream.
fn read_fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The applying thread's view of the stream: chunks from the channel, returned for reuse.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    ret: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    let done = std::mem::replace(&mut self.cur, next);
                    // The reader may be gone already; then the buffer is simply dropped.
                    let _ = self.ret.send(done);
                    self.pos = 0;
                }
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A decoder error, told apart from tar errors by this marker.
#[derive(Debug)]
struct DecodeFailure(io::Error);

impl std::fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DecodeFailure {}

/// Marks errors of the decoder, so they are reported as bad compression, not bad tar (the tar
/// reader does not always keep the error's source).
struct Tagged<R>(R, Rc<Cell<bool>>);

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                self.1.set(true);
                io::Error::other(DecodeFailure(e))
            }
        })
    }
}

fn stream_error(
    source: io::Error,
    compression: Compression,
    last: &Option<String>,
    decode_failed: &Cell<bool>,
) -> LayerError {
    if decode_failed.get() {
        return LayerError::Decompress {
            compression,
            source,
        };
    }
    // The tar crate wraps reader errors in its own; look through the chain for a decode failure.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    while let Some(e) = cur {
        if let Some(DecodeFailure(inner)) = e.downcast_ref::<DecodeFailure>() {
            return LayerError::Decompress {
                compression,
                source: io::Error::new(inner.kind(), inner.to_string()),
            };
        }
        cur = e.source();
    }
    // The tar reader quotes the header bytes it could not parse ("... was not a number:
    // <bytes> when getting cksum for <bytes>"): say what is wrong without them.
    let source = if source.to_string().contains(" when getting ") {
        io::Error::new(io::ErrorKind::InvalidData, "invalid tar header")
    } else {
        source
    };
    LayerError::Tar {
        after: last.clone(),
        source,
    }
}

/// Hashes (optionally) and counts what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R, hash: bool) -> Self {
        HashingReader {
            inner,
            hasher: hash.then(Hasher::new),
            len: 0,
        }
    }

    fn finish(self) -> (Option<Digest>, u64) {
        (self.hasher.map(Hasher::finish), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
}

fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Splits a tar name into normal components: leading `/` and `.` components dropped, `..`
/// applied lexically and refused if it would climb above the root.
fn normalize(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("'..' climbs above the snapshot root");
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            v.push(b'/');
        }
        v.extend_from_slice(c);
    }
    v
}

struct Applier<'a> {
    root: BorrowedFd<'a>,
    opts: &'a ApplyOptions,
    /// The last parent directory resolved, kept because tar entries come grouped by directory.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories' times (and modes that would lock us out) to set once all entries are in.
    dir_times: Vec<(Vec<u8>, Timestamps, Option<u32>)>,
    buf: Vec<u8>,
    entries: u64,
    xattrs_skipped: u64,
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    times: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'a> Applier<'a> {
    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        ext: &Extended,
        name: &str,
        compression: Compression,
    ) -> Result<(), LayerError> {
        let invalid = |reason| LayerError::InvalidEntry {
            entry: name.to_owned(),
            reason,
        };
        let escape = |reason| LayerError::Escape {
            entry: name.to_owned(),
            reason,
        };
        let kind = entry.header().entry_type();
        let comps = normalize(raw).map_err(escape)?;
        if comps
            .iter()
            .rev()
            .skip(1)
            .any(|c| c.starts_with(WHITEOUT_PREFIX.as_bytes()))
        {
            return Err(invalid("a whiteout cannot contain entries"));
        }
        let full = join(&comps);
        // Any cached parent at or under this path may be replaced by this entry.
        if let Some((p, _)) = &self.parent {
            if p.starts_with(&full)
                && (p.len() == full.len() || p[full.len()] == b'/' || full.is_empty())
            {
                self.parent = None;
            }
        }
        let meta = self.meta(entry, ext, name)?;
        self.entries += 1;

        let Some((last, parents)) = comps.split_last() else {
            // The snapshot root itself ("./"): only a directory may describe it.
            if kind.is_dir() {
                let fd = fsops::open_dir_beneath_nofollow(self.root, b"")
                    .map_err(|e| op_err(name, "open root", e))?;
                self.set_meta(fd.as_fd(), &meta, meta.mode | 0o700, name)?;
                self.dir_times
                    .push((Vec::new(), meta.times, locked_mode(meta.mode)));
                return Ok(());
            }
            return Err(invalid("only a directory may name the snapshot root"));
        };
        let last: &[u8] = last;
        let parent_path = join(parents);

        if let Some(target) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let pfd = parent_fd(&mut self.parent, self.root, &parent_path, name)?;
            if last == WHITEOUT_OPAQUE.as_bytes() {
                let dir = rfs::openat(
                    pfd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| op_err(name, "open opaque dir", e))?;
                let xattr = if self.opts.user_xattr_whiteouts {
                    OPAQUE_USER_XATTR
                } else {
                    OPAQUE_XATTR
                };
                rfs::fsetxattr(&dir, xattr, b"y", rfs::XattrFlags::empty())
                    .map_err(|e| op_err(name, "set opaque xattr", e))?;
                return Ok(());
            }
            if target.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other `.wh..wh.` names are aufs metadata (hardlink dirs...): nothing to do.
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(invalid("whiteout of an empty, '.' or '..' name"));
            }
            fsops::remove_at(pfd, target).map_err(|e| op_err(name, "remove whited-out path", e))?;
            rfs::mknodat(
                pfd,
                os(target),
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(|e| op_err(name, "create whiteout device", e))?;
            rfs::utimensat(pfd, os(target), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| op_err(name, "set times", e))?;
            // The whited-out path may have been a directory the cached parent lies in.
            self.parent = None;
            return Ok(());
        }

        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                let sparse = kind == T::GNUSparse || ext.is_pax_sparse();
                let pfd = parent_fd(&mut self.parent, self.root, &parent_path, name)?;
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let mode = Mode::from_raw_mode(0o600);
                let fd = match rfs::openat(pfd, os(last), flags, mode) {
                    Err(Errno::EXIST) => {
                        fsops::remove_at(pfd, last)
                            .map_err(|e| op_err(name, "replace existing path", e))?;
                        rfs::openat(pfd, os(last), flags, mode)
                    }
                    other => other,
                }
                .map_err(|e| op_err(name, "create file", e))?;
                let mut file = File::from(fd);
                self.copy_data(entry, ext, &mut file, sparse, name, compression)?;
                self.set_meta(file.as_fd(), &meta, meta.mode, name)?;
                rfs::futimens(&file, &meta.times).map_err(|e| op_err(name, "set times", e))?;
            }
            T::Directory => {
                let pfd = parent_fd(&mut self.parent, self.root, &parent_path, name)?;
                match rfs::mkdirat(pfd, os(last), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let ty =
                            fsops::file_type_at(pfd, last).map_err(|e| op_err(name, "stat", e))?;
                        if ty != Some(FileType::Directory) {
                            fsops::remove_at(pfd, last)
                                .map_err(|e| op_err(name, "replace existing path", e))?;
                            rfs::mkdirat(pfd, os(last), Mode::from_raw_mode(0o700))
                                .map_err(|e| op_err(name, "mkdir", e))?;
                        }
                    }
                    Err(e) => return Err(op_err(name, "mkdir", e)),
                }
                let fd = fsops::open_subdir(pfd, last).map_err(|e| op_err(name, "open dir", e))?;
                // A directory stays open to us (u+rwx) until the end, so that its entries can
                // be created even when running without root.
                self.set_meta(fd.as_fd(), &meta, meta.mode | 0o700, name)?;
                self.dir_times
                    .push((full, meta.times, locked_mode(meta.mode)));
            }
            T::Symlink => {
                let target = ext
                    .link_name(entry.header())
                    .ok_or_else(|| invalid("symlink without a target"))?;
                if target.is_empty() {
                    return Err(invalid("symlink without a target"));
                }
                let pfd = parent_fd(&mut self.parent, self.root, &parent_path, name)?;
                replace(pfd, last, name, |pfd| {
                    rfs::symlinkat(os(&target), pfd, os(last))
                })
                .map_err(|e| op_err(name, "create symlink", e))?;
                if self.opts.same_owner {
                    chown_nofollow(pfd, last, &meta, name)?;
                }
                rfs::utimensat(pfd, os(last), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| op_err(name, "set times", e))?;
            }
            T::Link => {
                let target = ext
                    .link_name(entry.header())
                    .ok_or_else(|| invalid("hardlink without a target"))?;
                let tcomps = normalize(&target)
                    .map_err(|_| escape("hardlink target climbs above the snapshot root"))?;
                let Some((tlast, tparents)) = tcomps.split_last() else {
                    return Err(invalid("hardlink to the snapshot root"));
                };
                let tpfd = fsops::open_dir_path_beneath(self.root, &join(tparents)).map_err(
                    |e| match e {
                        Errno::XDEV | Errno::LOOP => {
                            escape("hardlink target resolves outside the snapshot")
                        }
                        e => op_err(name, "resolve hardlink target", e),
                    },
                )?;
                let pfd = parent_fd(&mut self.parent, self.root, &parent_path, name)?;
                let tlast: &[u8] = tlast;
                replace(pfd, last, name, |pfd| {
                    rfs::linkat(&tpfd, os(tlast), pfd, os(last), AtFlags::empty())
                })
                .map_err(|e| op_err(name, "create hardlink", e))?;
            }
            T::Char | T::Block | T::Fifo => {
                let (ft, dev) = match kind {
                    T::Fifo => (FileType::Fifo, 0),
                    _ => {
                        if !self.opts.allow_devices {
                            return Err(LayerError::DeviceRefused {
                                entry: name.to_owned(),
                                reason: "device nodes are not allowed by the apply options",
                            });
                        }
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == T::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                let pfd = parent_fd(&mut self.parent, self.root, &parent_path, name)?;
                let made = replace(pfd, last, name, |pfd| {
                    rfs::mknodat(pfd, os(last), ft, Mode::from_raw_mode(0o600), dev)
                });
                match made {
                    Ok(()) => {}
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        return Err(LayerError::DeviceRefused {
                            entry: name.to_owned(),
                            reason: "creating device nodes needs CAP_MKNOD",
                        })
                    }
                    Err(e) => return Err(op_err(name, "mknod", e)),
                }
                if self.opts.same_owner {
                    chown_nofollow(pfd, last, &meta, name)?;
                }
                // The node was just created by us and is no symlink, so chmodat cannot follow
                // anything; it is needed because mknod applies the umask.
                rfs::chmodat(
                    pfd,
                    os(last),
                    Mode::from_raw_mode(meta.mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(|e| op_err(name, "chmod", e))?;
                rfs::utimensat(pfd, os(last), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| op_err(name, "set times", e))?;
            }
            T::GNULongName | T::GNULongLink | T::XHeader | T::XGlobalHeader => {}
            _ => return Err(invalid("unsupported tar entry type")),
        }
        Ok(())
    }

    fn meta<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        ext: &Extended,
        name: &str,
    ) -> Result<Meta, LayerError> {
        let bad = |reason| LayerError::InvalidEntry {
            entry: name.to_owned(),
            reason,
        };
        let h = entry.header();
        let old = h.as_old();
        // An empty numeric field reads as 0, as Go's archive/tar (Docker) reads it.
        let num = |r: io::Result<u64>, raw: &[u8], what| match r {
            Ok(v) => Ok(v),
            Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
            Err(_) => Err(bad(what)),
        };
        let pax_num = |key: &[u8], what| -> Result<Option<u64>, LayerError> {
            match ext.pax_value(key) {
                None => Ok(None),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .map(Some)
                    .ok_or_else(|| bad(what)),
            }
        };
        let mode = num(h.mode().map(u64::from), &old.mode, "bad mode field")? as u32;
        let uid = match pax_num(b"uid", "bad PAX uid")? {
            Some(v) => v,
            None => num(h.uid(), &old.uid, "bad uid field")?,
        };
        let gid = match pax_num(b"gid", "bad PAX gid")? {
            Some(v) => v,
            None => num(h.gid(), &old.gid, "bad gid field")?,
        };
        if let Some(size) = pax_num(b"size", "bad PAX size")? {
            if size != entry.size() {
                return Err(bad(
                    "a PAX size override (files over 8 GiB) is not supported",
                ));
            }
        }
        let mtime = num(h.mtime(), &old.mtime, "bad mtime field")?;
        let (uid, gid) = (
            u32::try_from(uid).map_err(|_| bad("uid out of range"))?,
            u32::try_from(gid).map_err(|_| bad("gid out of range"))?,
        );
        let mut mtime = Timespec {
            tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        if let Some(t) = ext.pax_value(b"mtime") {
            mtime = parse_pax_time(t).ok_or_else(|| bad("bad PAX mtime"))?;
        }
        let atime = match ext.pax_value(b"atime") {
            Some(t) => Some(parse_pax_time(t).ok_or_else(|| bad("bad PAX atime"))?),
            None => None,
        };
        let mut xattrs = Vec::new();
        for (key, value) in &ext.pax {
            if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                if x.starts_with(b"trusted.overlay.") || x.starts_with(b"user.overlay.") {
                    self.xattrs_skipped += 1;
                    continue;
                }
                xattrs.push((x.to_vec(), value.clone()));
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            times: Timestamps {
                last_access: atime.unwrap_or(mtime),
                last_modification: mtime,
            },
            xattrs,
        })
    }

    /// Owner, then mode (chown clears setuid bits), then xattrs, on an open file or directory.
    fn set_meta(
        &mut self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        mode: u32,
        name: &str,
    ) -> Result<(), LayerError> {
        if self.opts.same_owner {
            rfs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .map_err(|e| op_err(name, "chown", e))?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| op_err(name, "chmod", e))?;
        for (k, v) in &meta.xattrs {
            match rfs::fsetxattr(fd, os(k), v, rfs::XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOTSUP) | Err(Errno::PERM) => self.xattrs_skipped += 1,
                Err(e) => return Err(op_err(name, "set xattr", e)),
            }
        }
        Ok(())
    }

    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        ext: &Extended,
        file: &mut File,
        sparse: bool,
        name: &str,
        compression: Compression,
    ) -> Result<(), LayerError> {
        let invalid = |reason| LayerError::InvalidEntry {
            entry: name.to_owned(),
            reason,
        };
        // Segments (offset in the file, length) in the order their data is stored.
        let mut segments: Vec<(u64, u64)> = Vec::new();
        let mut real_size = entry.size();
        let mut data_size = entry.size();
        if sparse {
            if ext.is_pax_sparse() {
                real_size = ext
                    .pax_value(b"GNU.sparse.realsize")
                    .or_else(|| ext.pax_value(b"GNU.sparse.size"))
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .ok_or_else(|| invalid("PAX sparse file without a valid real size"))?;
                if ext.pax_value(b"GNU.sparse.major") == Some(b"1") {
                    // Format 1.0: the map is text at the start of the data, in whole blocks.
                    let (map, used) = read_sparse_map(entry).map_err(|e| match e {
                        Ok(reason) => invalid(reason),
                        Err(source) => LayerError::Tar {
                            after: None,
                            source,
                        },
                    })?;
                    segments = map;
                    data_size = entry.size().saturating_sub(used);
                } else if let Some(map) = ext.pax_value(b"GNU.sparse.map") {
                    // Format 0.1: "offset,length,offset,length...".
                    let nums: Option<Vec<u64>> = std::str::from_utf8(map)
                        .ok()
                        .map(|m| m.split(',').map(|n| n.trim().parse().ok()).collect())
                        .and_then(|v: Vec<Option<u64>>| v.into_iter().collect());
                    let nums = nums
                        .filter(|n| n.len() % 2 == 0)
                        .ok_or_else(|| invalid("bad GNU.sparse.map"))?;
                    segments = nums.chunks(2).map(|c| (c[0], c[1])).collect();
                } else {
                    return Err(invalid("PAX sparse format 0.0 is not supported"));
                }
            } else {
                let gnu = entry
                    .header()
                    .as_gnu()
                    .ok_or_else(|| invalid("sparse entry without a GNU header"))?;
                if gnu.is_extended() {
                    return Err(invalid(
                        "GNU sparse entries with more than 4 segments are not supported",
                    ));
                }
                real_size = gnu
                    .real_size()
                    .map_err(|_| invalid("bad sparse real size"))?;
                for sp in gnu.sparse.iter().filter(|sp| !sp.is_empty()) {
                    let off = sp.offset().map_err(|_| invalid("bad sparse map"))?;
                    let len = sp.length().map_err(|_| invalid("bad sparse map"))?;
                    segments.push((off, len));
                }
            }
            let mut total = 0u64;
            for &(off, len) in &segments {
                if off.checked_add(len).is_none_or(|end| end > real_size) {
                    return Err(invalid("sparse map beyond the file size"));
                }
                total += len;
            }
            if total != data_size {
                return Err(invalid("sparse map does not match the entry size"));
            }
        } else {
            segments.push((0, entry.size()));
        }
        for (off, len) in segments {
            if sparse {
                file.seek(SeekFrom::Start(off))
                    .map_err(|source| io_err(name, "seek", source))?;
            }
            let mut left = len;
            while left > 0 {
                let want = self
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = match entry.read(&mut self.buf[..want]) {
                    Ok(0) => {
                        return Err(LayerError::Tar {
                            after: None,
                            source: io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("stream ends inside the data of entry {name:?}"),
                            ),
                        })
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(
                            match stream_error(source, compression, &None, &Cell::new(false)) {
                                LayerError::Tar { source, .. } => LayerError::Tar {
                                    after: None,
                                    source: io::Error::new(
                                        source.kind(),
                                        format!("reading data of entry {name:?}: {source}"),
                                    ),
                                },
                                other => other,
                            },
                        )
                    }
                };
                file.write_all(&self.buf[..n])
                    .map_err(|source| io_err(name, "write file", source))?;
                left -= n as u64;
            }
        }
        if sparse {
            file.set_len(real_size)
                .map_err(|source| io_err(name, "truncate", source))?;
        }
        Ok(())
    }

    /// Directory times last, since creating their content changed them; and the modes that
    /// lack u+rwx, deepest first, so no directory is locked before its children are done.
    fn set_dir_times(&mut self) -> Result<(), LayerError> {
        self.parent = None;
        let mut dirs = std::mem::take(&mut self.dir_times);
        // The last entry for a directory wins.
        let mut seen = std::collections::HashSet::new();
        dirs.reverse();
        dirs.retain(|(p, _, _)| seen.insert(p.clone()));
        dirs.sort_by_key(|(p, _, _)| {
            std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count() + usize::from(!p.is_empty()))
        });
        for (path, times, mode) in dirs {
            let err = |op, e| op_err(&display_name(&path), op, e);
            let (parent, last): (&[u8], &[u8]) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None if path.is_empty() => (b"", b"."),
                None => (b"", &path),
            };
            // A later entry may have replaced or removed the directory: then there is nothing
            // to stamp.
            let pfd = match fsops::open_dir_path_beneath(self.root, parent) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) | Err(Errno::XDEV) => {
                    continue
                }
                Err(e) => return Err(err("open parent dir", e)),
            };
            if fsops::file_type_at(pfd.as_fd(), last).map_err(|e| err("stat", e))?
                != Some(FileType::Directory)
            {
                continue;
            }
            if let Some(mode) = mode {
                // `last` is a directory (checked just above), so chmodat follows nothing.
                rfs::chmodat(&pfd, os(last), Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|e| err("chmod", e))?;
            }
            rfs::utimensat(&pfd, os(last), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| err("set times", e))?;
        }
        Ok(())
    }
}

/// The mode to set at the end for a directory whose mode lacks u+rwx (`None` if it has it).
fn locked_mode(mode: u32) -> Option<u32> {
    (mode & 0o700 != 0o700).then_some(mode & 0o7777)
}

/// Runs `make`; if the name exists, removes it (recursively) and runs `make` again.
fn replace(
    pfd: BorrowedFd<'_>,
    last: &[u8],
    _name: &str,
    make: impl Fn(BorrowedFd<'_>) -> Result<(), Errno>,
) -> Result<(), Errno> {
    match make(pfd) {
        Err(Errno::EXIST) => {
            fsops::remove_at(pfd, last)?;
            make(pfd)
        }
        other => other,
    }
}

fn op_err(name: &str, op: &'static str, e: Errno) -> LayerError {
    LayerError::Entry {
        entry: name.to_owned(),
        op,
        source: err(e),
    }
}

fn io_err(name: &str, op: &'static str, source: io::Error) -> LayerError {
    LayerError::Entry {
        entry: name.to_owned(),
        op,
        source,
    }
}

/// Sets the owner of `last` in `pfd` without following it (a symlink or a device node,
/// which are not opened).
fn chown_nofollow(
    pfd: BorrowedFd<'_>,
    last: &[u8],
    meta: &Meta,
    name: &str,
) -> Result<(), LayerError> {
    rfs::chownat(
        pfd,
        os(last),
        Some(uid(meta.uid)),
        Some(gid(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| op_err(name, "chown", e))
}

/// The parent directory of an entry, created (0755) where missing, resolved beneath the
/// root. Returns a handle kept in the one-entry `cache`.
fn parent_fd<'c>(
    cache: &'c mut Option<(Vec<u8>, OwnedFd)>,
    root: BorrowedFd<'_>,
    parent: &[u8],
    name: &str,
) -> Result<BorrowedFd<'c>, LayerError> {
    let hit = matches!(cache, Some((p, _)) if p == parent);
    if !hit {
        let fd = resolve_parent(root, parent, name)?;
        *cache = Some((parent.to_vec(), fd));
    }
    match &*cache {
        Some((_, fd)) => Ok(fd.as_fd()),
        None => unreachable!("parent cache was just filled"),
    }
}

fn resolve_parent(root: BorrowedFd<'_>, parent: &[u8], name: &str) -> Result<OwnedFd, LayerError> {
    let map = |e: Errno| match e {
        Errno::XDEV => LayerError::Escape {
            entry: name.to_owned(),
            reason: "a parent directory is a symlink leading outside the snapshot",
        },
        Errno::LOOP => LayerError::Escape {
            entry: name.to_owned(),
            reason: "a parent directory is a symlink loop",
        },
        Errno::NOTDIR => LayerError::InvalidEntry {
            entry: name.to_owned(),
            reason: "a parent path is not a directory",
        },
        e => op_err(name, "resolve parent directory", e),
    };
    match fsops::open_dir_path_beneath(root, parent) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(map(e)),
    }
    // Create the missing components one by one, each resolved from the root again.
    let comps: Vec<&[u8]> = parent.split(|&b| b == b'/').collect();
    let mut cur = fsops::open_dir_path_beneath(root, b"").map_err(map)?;
    for i in 0..comps.len() {
        let prefix = join(&comps[..=i]);
        match fsops::open_dir_path_beneath(root, &prefix) {
            Ok(fd) => cur = fd,
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&cur, os(comps[i]), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(op_err(name, "create parent directory", e)),
                }
                // mkdir applies the umask; implied parents are 0755 as in Docker.
                let fd = fsops::open_subdir(cur.as_fd(), comps[i]).map_err(map)?;
                rfs::fchmod(&fd, Mode::from_raw_mode(0o755))
                    .map_err(|e| op_err(name, "chmod parent directory", e))?;
                cur = fsops::open_dir_path_beneath(root, &prefix).map_err(map)?;
            }
            Err(e) => return Err(map(e)),
        }
    }
    Ok(cur)
}

/// What the extended headers before an entry said about it.
#[derive(Default)]
pub(crate) struct Extended {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: PaxRecords,
}

/// PAX records (key, value) in the order they were written.
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

impl Extended {
    fn pax_value(&self, key: &[u8]) -> Option<&[u8]> {
        // The last record for a key wins.
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn link_name(&self, h: &tar::Header) -> Option<Vec<u8>> {
        self.pax_value(b"linkpath")
            .map(<[u8]>::to_vec)
            .or_else(|| self.long_link.clone())
            .or_else(|| h.link_name_bytes().map(|l| l.into_owned()))
    }
}

impl Extended {
    /// Whether PAX records describe a GNU sparse file (formats 0.1 and 1.0).
    fn is_pax_sparse(&self) -> bool {
        self.pax.iter().any(|(k, _)| k.starts_with(b"GNU.sparse."))
    }
}

/// The most segments a sparse map may list.
const SPARSE_SEGMENTS_MAX: u64 = 1 << 20;

/// Reads a PAX 1.0 sparse map (decimal numbers, one per line: count, then offset/length
/// pairs, padded to whole 512-byte blocks) from the start of the entry's data. Returns the
/// segments and how many bytes the map took. `Err(Ok(reason))` is a bad map,
/// `Err(Err(e))` a read error.
#[allow(clippy::type_complexity)]
fn read_sparse_map<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<(Vec<(u64, u64)>, u64), Result<&'static str, io::Error>> {
    let mut block = [0u8; 512];
    let mut used = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut nums: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    loop {
        if let Some(w) = want {
            if nums.len() as u64 == 1 + 2 * w {
                break;
            }
        }
        entry.read_exact(&mut block).map_err(Err)?;
        used += 512;
        for &b in &block {
            if b == b'\n' {
                let n = std::str::from_utf8(&pending)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(Ok("bad PAX sparse map"))?;
                pending.clear();
                if want.is_none() {
                    if n > SPARSE_SEGMENTS_MAX {
                        return Err(Ok("PAX sparse map too large"));
                    }
                    want = Some(n);
                }
                nums.push(n);
                if nums.len() as u64 == 1 + 2 * want.unwrap_or(0) {
                    break;
                }
            } else {
                pending.push(b);
                if pending.len() > 20 {
                    return Err(Ok("bad PAX sparse map"));
                }
            }
        }
    }
    let segments = nums[1..].chunks(2).map(|c| (c[0], c[1])).collect();
    Ok((segments, used))
}

/// The most an extended header (long name, PAX records) may hold: more is hostile.
const EXTENDED_MAX: u64 = 1 << 20;

fn read_extended<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<u8>> {
    if entry.size() > EXTENDED_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "extended header of {} bytes (the limit is {EXTENDED_MAX})",
                entry.size()
            ),
        ));
    }
    let mut v = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut v)?;
    Ok(v)
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Parses PAX records `"<len> <key>=<value>\n"`, where `len` counts the whole record, so
/// values may hold newlines and any byte.
fn parse_pax(mut data: &[u8]) -> Result<PaxRecords, &'static str> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("malformed PAX record: no length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or("malformed PAX record: bad length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("malformed PAX record: length does not match");
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("malformed PAX record: no '='")?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn uid(u: u32) -> rfs::Uid {
    rfs::Uid::from_raw(u)
}

fn gid(g: u32) -> rfs::Gid {
    rfs::Gid::from_raw(g)
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let tv_sec: i64 = secs.parse().ok()?;
    let mut nsec: i64 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nsec += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    if tv_sec < 0 && nsec > 0 {
        return Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - nsec,
        });
    }
    Some(Timespec {
        tv_sec,
        tv_nsec: nsec,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(
            normalize(b"/etc/passwd").unwrap(),
            vec![b"etc".as_slice(), b"passwd"]
        );
        assert_eq!(normalize(b"./a//b/").unwrap(), vec![b"a".as_slice(), b"b"]);
        assert_eq!(normalize(b"a/../b").unwrap(), vec![b"b".as_slice()]);
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"a/../../x").is_err());
        assert!(normalize(b"./").unwrap().is_empty());
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }
}
