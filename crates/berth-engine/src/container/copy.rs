//! `cp`: files into and out of a container, running or stopped, as tar streams.
//!
//! Every path inside a container is hostile: the container chose its symlinks and can swap
//! a directory for a symlink at any moment. So no container path is ever handed to a host
//! path operation. The container's root is opened once as a handle ([`ContainerRoot`]):
//! `/proc/PID/root` of a running container (its mounts and volumes included; the PID's
//! start time is checked again once the handle is open), or a private, detached mount of
//! its overlay (`fsopen`/`fsmount`, attached nowhere, gone with its last handle) when it is
//! stopped. Paths are resolved from that handle with `openat2(RESOLVE_IN_ROOT)`, so
//! absolute symlinks and `..` stay inside; what was resolved is then read or written
//! through the handle that was checked, never looked up again by name.
//!
//! Writing into a container extracts a tar with [`berth_oci::apply_layer_stream`] into the
//! destination directory's handle: entries are created relative to it with
//! `RESOLVE_BENEATH`, so neither a `../` or absolute name in a tar given on standard input,
//! nor a symlink the container swaps in during the copy, leads a write out of it. Reading
//! walks the source by handles without following symlinks ([`TarOut`]).
//!
//! Docker's rules for the destination: an existing directory receives the source under
//! its own name (its contents for `SRC/.`); a missing path is created with the source's
//! content; an existing file is overwritten by a file and refuses a directory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use berth_oci::{in_root, ApplyOptions, LayerError};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use super::{launch, procfs, Container, ContainerError, Lifecycle};

/// Errors of `cp`, `export` and `diff`. Docker answers every one of them with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The container cannot be found or its state read.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// A path does not exist in the container.
    #[error("Could not find the file {path} in container {container}")]
    NotInContainer {
        /// The path, as given.
        path: String,
        /// The container, as named.
        container: String,
    },
    /// A path of the container cannot be opened or read.
    #[error("{op} {path} in container {container}: {}", crate::images::os_error_text(.source))]
    InContainer {
        /// What was being done.
        op: &'static str,
        /// The path, as given.
        path: String,
        /// The container, as named.
        container: String,
        /// The OS error.
        source: io::Error,
    },
    /// A host path cannot be opened or read.
    #[error("{op} {}: {}", .path.display(), crate::images::os_error_text(.source))]
    Host {
        /// What was being done (`lstat`, `open`...).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The host destination's directory does not exist (Docker's words).
    #[error("invalid output path: directory {0:?} does not exist")]
    NoOutputDir(PathBuf),
    /// The host destination is neither a directory nor a regular file.
    #[error("invalid output path: {0:?} must be a directory or a regular file")]
    BadOutputPath(PathBuf),
    /// A path that names a directory (`x/`, `x/.`) is something else.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// A directory cannot replace a file.
    #[error("cannot copy directory {src} onto the file {dst}")]
    CannotCopyDir {
        /// The source.
        src: String,
        /// The destination.
        dst: String,
    },
    /// A tar stream goes into a directory only.
    #[error("destination {0:?} must be a directory")]
    MustBeDirectory(String),
    /// `cp c1:x c2:y`.
    #[error("copying between containers is not supported")]
    BetweenContainers,
    /// `cp a b` with no container.
    #[error("must specify at least one container source")]
    NoContainer,
    /// A file name that an extraction would turn into an overlay whiteout.
    #[error("cannot copy {0}: names starting with .wh. are reserved for layer whiteouts")]
    WhiteoutName(String),
    /// The tar could not be extracted (hostile entry, full disk, ...).
    #[error("extracting into {dest}: {source}")]
    Extract {
        /// Where to.
        dest: String,
        /// Why.
        source: LayerError,
    },
    /// The tar could not be written (the reader went away, ...).
    #[error("writing the archive: {}", crate::images::os_error_text(.0))]
    Write(io::Error),
    /// The stopped container's file system could not be mounted.
    #[error("mounting the file system of container {id}: {op}: {}", crate::images::os_error_text(.source))]
    Mount {
        /// The container.
        id: String,
        /// The step that failed.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl CopyError {
    /// The kind of failure.
    pub fn kind(&self) -> super::ErrorKind {
        use super::ErrorKind as K;
        match self {
            CopyError::Container(e) => e.kind(),
            CopyError::NotInContainer { .. } | CopyError::NoOutputDir(_) => K::NotFound,
            CopyError::Host { source, .. } | CopyError::InContainer { source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                K::NotFound
            }
            CopyError::BadOutputPath(_)
            | CopyError::NotADirectory(_)
            | CopyError::CannotCopyDir { .. }
            | CopyError::MustBeDirectory(_)
            | CopyError::BetweenContainers
            | CopyError::NoContainer
            | CopyError::WhiteoutName(_) => K::InvalidArgument,
            _ => K::Internal,
        }
    }
}

type Result<T, E = CopyError> = std::result::Result<T, E>;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEndpoint {
    /// A path of the caller's own file system.
    Host(PathBuf),
    /// `-`: a tar stream read from the input (source) or written to the output (destination).
    Stream,
    /// A path inside a container (absolute; relative ones count from its root).
    Container {
        /// The container, as named.
        container: String,
        /// The path.
        path: String,
    },
}

impl CopyEndpoint {
    /// Docker's reading of a `cp` argument: `-`, an absolute path or one starting with `.`
    /// is local; `NAME:PATH` names a container's path; anything else is local.
    pub fn parse(arg: &str) -> CopyEndpoint {
        if arg == "-" {
            return CopyEndpoint::Stream;
        }
        if arg.starts_with('/') {
            return CopyEndpoint::Host(arg.into());
        }
        match arg.split_once(':') {
            Some((c, p)) if !c.is_empty() && !c.starts_with('.') => CopyEndpoint::Container {
                container: c.to_owned(),
                path: if p.starts_with('/') {
                    p.to_owned()
                } else {
                    format!("/{p}")
                },
            },
            _ => CopyEndpoint::Host(arg.into()),
        }
    }
}

/// What `cp` is asked to do.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// From.
    pub source: CopyEndpoint,
    /// To.
    pub destination: CopyEndpoint,
    /// `-a`: keep the uid/gid of the source's files.
    pub archive: bool,
    /// `-L`: follow a symlink named as the source.
    pub follow_link: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Bytes of file content copied.
    pub bytes: u64,
}

/// A handle of a container's root file system, to resolve its paths in.
#[derive(Debug)]
pub struct ContainerRoot {
    /// `O_PATH` handle of the root directory.
    pub fd: OwnedFd,
    /// True for a running container's `/proc/PID/root` (mounts included).
    pub live: bool,
}

impl Lifecycle {
    /// The root of `c` for `cp`: a running container's `/proc/PID/root`, a stopped one's
    /// overlay mounted privately (writable when `writable`).
    pub fn container_root(&self, c: &Container, writable: bool) -> Result<ContainerRoot> {
        if c.status.is_active() && procfs::is_alive(c.record.pid, c.record.pid_start) {
            let path = format!("/proc/{}/root", c.record.pid);
            let fd =
                in_root::open_root(path.as_ref()).map_err(ContainerError::io("opening", &path))?;
            // Had the process exited and its PID been reused, the handle could be another
            // process's root (the host's): check the start time once it is open.
            if procfs::is_alive(c.record.pid, c.record.pid_start) {
                return Ok(ContainerRoot { fd, live: true });
            }
        }
        Ok(ContainerRoot {
            fd: self.mount_rootfs_detached(c, writable)?,
            live: false,
        })
    }

    /// Mounts the overlay of `c` (image layers and rw layer) where no one else sees it:
    /// an `fsmount` handle attached to no mount namespace, unmounted when the last handle
    /// is closed. Read-only (the rw layer as the top lower layer) unless `writable`, so a
    /// running container's rw layer is never used by two writable overlays.
    pub fn mount_rootfs_detached(&self, c: &Container, writable: bool) -> Result<OwnedFd> {
        use rustix::mount::{
            fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
            MountAttrFlags,
        };
        let id = c.id().to_owned();
        let fail = |op: &'static str| {
            let id = id.clone();
            move |e: rustix::io::Errno| CopyError::Mount {
                id,
                op,
                source: io::Error::from_raw_os_error(e.raw_os_error()),
            }
        };
        let image: berth_oci::Digest = c
            .record
            .image_id
            .parse()
            .map_err(|_| ContainerError::ImageNotFound(c.record.image_ref.clone()))?;
        let mut lowers = self
            .store()
            .image_lowerdirs(&image)
            .map_err(ContainerError::from)?;
        // Made by create; missing when its creator died in between (as at start).
        let dir = self.container_dir(c.id());
        for sub in ["upper", "work"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(ContainerError::io("creating", &d))?;
        }
        let upper = dir.join("upper");
        if !writable {
            lowers.insert(0, upper.clone());
        }
        if lowers.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(ContainerError::io("creating", &empty))?;
            lowers.push(empty);
        }
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(fail("fsopen"))?;
        // One layer at a time (`lowerdir+`, Linux 6.8): a joined list would hit fsconfig's
        // 256-byte limit for a string with a few layers.
        let mut added = true;
        for l in &lowers {
            if let Err(e) = fsconfig_set_string(&fs, "lowerdir+", l.as_path()) {
                if e == rustix::io::Errno::INVAL && l == &lowers[0] {
                    added = false;
                    break;
                }
                return Err(fail("lowerdir+")(e));
            }
        }
        if !added {
            let joined = launch::lowerdir_option(&lowers).unwrap_or_default();
            fsconfig_set_string(&fs, "lowerdir", joined.as_str()).map_err(fail("lowerdir"))?;
        }
        if writable {
            fsconfig_set_string(&fs, "upperdir", upper.as_path()).map_err(fail("upperdir"))?;
            fsconfig_set_string(&fs, "workdir", dir.join("work").as_path())
                .map_err(fail("workdir"))?;
        }
        fsconfig_create(&fs).map_err(fail("creating the overlay"))?;
        let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(fail("fsmount"))
    }

    /// `cp`: copies between a container and the host or a tar stream (`input` for a
    /// source `-`, `output` for a destination `-`).
    pub fn copy(
        &self,
        req: &CopyRequest,
        input: &mut dyn Read,
        output: &mut dyn Write,
    ) -> Result<CopyReport> {
        use CopyEndpoint as E;
        match (&req.source, &req.destination) {
            (E::Container { .. }, E::Container { .. }) => Err(CopyError::BetweenContainers),
            (E::Container { container, path }, dst) => {
                let c = self.find(container)?;
                self.copy_out(&c, container, path, dst, req, output)
            }
            (src, E::Container { container, path }) => {
                let c = self.find(container)?;
                self.copy_in(src, &c, container, path, req, input)
            }
            _ => Err(CopyError::NoContainer),
        }
    }

    fn copy_out(
        &self,
        c: &Container,
        name: &str,
        src: &str,
        dst: &CopyEndpoint,
        req: &CopyRequest,
        output: &mut dyn Write,
    ) -> Result<CopyReport> {
        let root = self.container_root(c, false)?;
        let contents = src.ends_with("/.") || src == "/";
        let wants_dir = contents || src.ends_with('/');
        let opened = if req.follow_link || wants_dir {
            in_root::open_in_root(&root.fd, Path::new(src))
        } else {
            in_root::open_in_root_nofollow(&root.fd, Path::new(src))
        };
        let fd = opened.map_err(|e| not_found_or(e, "opening", src, name))?;
        let st = rfs::fstat(&fd).map_err(|e| in_container("stat", src, name, e))?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if wants_dir && !is_dir {
            return Err(CopyError::NotADirectory(format!("{name}:{src}")));
        }
        // The name the source has in the tar: the link's own under -L, as Docker rebases.
        let base = if contents {
            Vec::new()
        } else {
            base_name(src.as_bytes())
        };
        match dst {
            CopyEndpoint::Stream => {
                let mut w = io::BufWriter::with_capacity(CHUNK, output);
                let mut tar = TarOut::new(&mut w, name);
                tar.append(fd.as_fd(), &base)?;
                let bytes = tar.finish()?;
                w.flush().map_err(CopyError::Write)?;
                Ok(CopyReport { bytes })
            }
            CopyEndpoint::Host(p) => {
                let (target, prefix) = host_destination(p, is_dir, base)?;
                let opts = ApplyOptions {
                    same_owner: req.archive,
                    // A container's device node is not made on the host.
                    allow_devices: false,
                    user_xattr_whiteouts: false,
                };
                let dest = p.display().to_string();
                pipe_tar(name, &dest, &target, &opts, true, |tar| {
                    tar.append(fd.as_fd(), &prefix)
                })
            }
            CopyEndpoint::Container { .. } => Err(CopyError::BetweenContainers),
        }
    }

    fn copy_in(
        &self,
        src: &CopyEndpoint,
        c: &Container,
        name: &str,
        dst: &str,
        req: &CopyRequest,
        input: &mut dyn Read,
    ) -> Result<CopyReport> {
        let root = self.container_root(c, true)?;
        let opts = ApplyOptions {
            same_owner: req.archive,
            allow_devices: true,
            user_xattr_whiteouts: false,
        };
        // Docker follows a symlink named as the destination: inside the container here.
        let resolved = in_root::open_in_root(&root.fd, Path::new(dst));
        let dest_label = format!("{name}:{dst}");
        match src {
            CopyEndpoint::Stream => {
                let dir = resolved.map_err(|e| not_found_or(e, "opening", dst, name))?;
                if !is_dir_fd(&dir) {
                    return Err(CopyError::MustBeDirectory(dest_label));
                }
                let mut counted = Counted { inner: input, n: 0 };
                berth_oci::apply_layer_stream(&mut counted, &fd_path(&dir), &opts).map_err(
                    |source| CopyError::Extract {
                        dest: dest_label,
                        source,
                    },
                )?;
                Ok(CopyReport { bytes: counted.n })
            }
            CopyEndpoint::Host(p) => {
                let text = p.to_string_lossy();
                let contents = text.ends_with("/.");
                let md = if req.follow_link {
                    std::fs::metadata(p)
                } else {
                    std::fs::symlink_metadata(p)
                }
                .map_err(|source| CopyError::Host {
                    op: "lstat",
                    path: p.clone(),
                    source,
                })?;
                if (contents || text.ends_with('/')) && !md.is_dir() {
                    return Err(CopyError::NotADirectory(text.into_owned()));
                }
                // The caller's own path: opened as given (following it under -L).
                let nofollow = if req.follow_link {
                    OFlags::empty()
                } else {
                    OFlags::NOFOLLOW
                };
                let host = rfs::open(p, OFlags::PATH | OFlags::CLOEXEC | nofollow, Mode::empty())
                    .map_err(|e| CopyError::Host {
                    op: "open",
                    path: p.clone(),
                    source: e.into(),
                })?;
                let base = if contents {
                    Vec::new()
                } else {
                    base_name(p.as_os_str().as_bytes())
                };
                let (target, prefix) = match resolved {
                    Ok(d) if is_dir_fd(&d) => (d, base),
                    Ok(_) if md.is_dir() => {
                        return Err(CopyError::CannotCopyDir {
                            src: text.into_owned(),
                            dst: dest_label,
                        })
                    }
                    Ok(_) if dst.ends_with('/') => {
                        return Err(CopyError::NotADirectory(dest_label))
                    }
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(in_container("opening", dst, name, e))
                    }
                    // Missing, or a file to replace: the parent receives it under the
                    // destination's name.
                    _ => {
                        if dst.ends_with('/') && !md.is_dir() {
                            return Err(CopyError::NotInContainer {
                                path: dst.to_owned(),
                                container: name.to_owned(),
                            });
                        }
                        let parent = parent_of(dst);
                        let pfd = in_root::open_in_root(&root.fd, Path::new(&parent))
                            .map_err(|e| not_found_or(e, "opening", &parent, name))?;
                        if !is_dir_fd(&pfd) {
                            return Err(CopyError::NotADirectory(format!("{name}:{parent}")));
                        }
                        (pfd, base_name(dst.as_bytes()))
                    }
                };
                pipe_tar(name, &dest_label, &fd_path(&target), &opts, true, |tar| {
                    tar.append(host.as_fd(), &prefix)
                })
            }
            CopyEndpoint::Container { .. } => Err(CopyError::BetweenContainers),
        }
    }
}

/// Where a copy out of a container lands on the host: the directory to extract into and
/// the name the source gets there (Docker's rules; the host path is the caller's own).
fn host_destination(p: &Path, src_is_dir: bool, base: Vec<u8>) -> Result<(PathBuf, Vec<u8>)> {
    let text = p.to_string_lossy();
    match std::fs::metadata(p) {
        Ok(md) if md.is_dir() => Ok((p.to_path_buf(), base)),
        Ok(md) if md.is_file() => {
            if src_is_dir {
                return Err(CopyError::CannotCopyDir {
                    src: "the source directory".into(),
                    dst: text.into_owned(),
                });
            }
            if text.ends_with('/') {
                return Err(CopyError::NotADirectory(text.into_owned()));
            }
            Ok((host_parent(p), base_name(p.as_os_str().as_bytes())))
        }
        Ok(_) => Err(CopyError::BadOutputPath(p.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = host_parent(p);
            if !parent.is_dir() {
                return Err(CopyError::NoOutputDir(parent));
            }
            if text.ends_with('/') && !src_is_dir {
                return Err(CopyError::NoOutputDir(p.to_path_buf()));
            }
            Ok((parent, base_name(p.as_os_str().as_bytes())))
        }
        Err(source) => Err(CopyError::Host {
            op: "stat",
            path: p.to_path_buf(),
            source,
        }),
    }
}

fn host_parent(p: &Path) -> PathBuf {
    let trimmed = Path::new(OsStr::from_bytes(trim_slashes(p.as_os_str().as_bytes())));
    match trimmed.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn trim_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}

/// The last component of a path (`/a/b/` is `b`), empty for `/`.
fn base_name(p: &[u8]) -> Vec<u8> {
    p.split(|b| *b == b'/')
        .rfind(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// The parent of a container path (`/a/b` is `/a`, `/a` is `/`).
fn parent_of(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => t[..i].to_owned(),
    }
}

fn is_dir_fd(fd: &OwnedFd) -> bool {
    rfs::fstat(fd).is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
}

/// `/proc/self/fd/N`: how a handle is named to code that takes a path (the applier opens
/// it again, reaching the very directory that was checked).
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn not_found_or(e: io::Error, op: &'static str, path: &str, container: &str) -> CopyError {
    if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc_enotdir()) {
        CopyError::NotInContainer {
            path: path.to_owned(),
            container: container.to_owned(),
        }
    } else {
        in_container(op, path, container, e)
    }
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}

fn in_container(
    op: &'static str,
    path: &str,
    container: &str,
    e: impl Into<io::Error>,
) -> CopyError {
    CopyError::InContainer {
        op,
        path: path.to_owned(),
        container: container.to_owned(),
        source: e.into(),
    }
}

/// Counts what is read through it.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    n: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// The size of the chunks between the tar writer and the extractor.
pub(crate) const CHUNK: usize = 1 << 20;

/// The writing end of an in-process pipe: chunks of [`CHUNK`] bytes.
pub(crate) struct ChanWriter {
    tx: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
}

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.cur, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader stopped"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.cur.len();
        let n = buf.len().min(room);
        self.cur.extend_from_slice(&buf[..n]);
        if self.cur.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading end of an in-process pipe.
pub(crate) struct ChanReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.cur = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// An in-process pipe.
pub(crate) fn chan_pipe() -> (ChanWriter, ChanReader) {
    let (tx, rx) = sync_channel(4);
    (
        ChanWriter {
            tx,
            cur: Vec::with_capacity(CHUNK),
        },
        ChanReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        },
    )
}

/// Writes a tar with `produce` on one thread while [`berth_oci::apply_layer_stream`]
/// extracts it into `target` on this one.
fn pipe_tar<F>(
    container: &str,
    dest: &str,
    target: &Path,
    opts: &ApplyOptions,
    refuse_whiteouts: bool,
    produce: F,
) -> Result<CopyReport>
where
    F: FnOnce(&mut TarOut<'_, &mut ChanWriter>) -> Result<()> + Send,
{
    let (mut w, r) = chan_pipe();
    let (produced, applied) = std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut tar = TarOut::new(&mut w, container);
            tar.refuse_whiteouts = refuse_whiteouts;
            let r = produce(&mut tar).and_then(|()| tar.finish());
            r.and_then(|n| w.flush().map(|()| n).map_err(CopyError::Write))
        });
        let applied = berth_oci::apply_layer_stream(r, target, opts);
        let produced = h
            .join()
            .unwrap_or_else(|_| Err(CopyError::Write(io::Error::other("tar writer panicked"))));
        (produced, applied)
    });
    match (produced, applied) {
        // The writer's own failure explains a truncated tar; a broken pipe is the
        // extractor's failure, told by it.
        (Err(e), _) if !matches!(&e, CopyError::Write(w) if w.kind() == io::ErrorKind::BrokenPipe) => {
            Err(e)
        }
        (_, Err(source)) => Err(CopyError::Extract {
            dest: dest.to_owned(),
            source,
        }),
        (Err(e), Ok(_)) => Err(e),
        (Ok(bytes), Ok(_)) => Ok(CopyReport { bytes }),
    }
}

/// A tar writer that walks a tree by handles without following symlinks: each entry is
/// opened `O_PATH | O_NOFOLLOW` relative to its directory's handle, regular files are read
/// through that handle (a device node or FIFO is never opened), and each entry's header
/// comes from the handle that is read, so a swap during the walk cannot lead it outside.
pub(crate) struct TarOut<'c, W: Write> {
    out: W,
    container: &'c str,
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    bytes: u64,
    /// Refuse `.wh.` names (the tar will be applied by the layer applier).
    pub(crate) refuse_whiteouts: bool,
    /// Write overlay whiteouts (0/0 character devices) as `.wh.NAME` and opaque
    /// directories with `.wh..wh..opq` (a layer from an upper directory).
    pub(crate) layer_whiteouts: bool,
    /// Paths (relative, no leading `/`) left out with everything below them.
    pub(crate) skip: Vec<Vec<u8>>,
}

impl<'c, W: Write> TarOut<'c, W> {
    pub(crate) fn new(out: W, container: &'c str) -> Self {
        TarOut {
            out,
            container,
            links: HashMap::new(),
            buf: vec![0u8; CHUNK],
            bytes: 0,
            refuse_whiteouts: false,
            layer_whiteouts: false,
            skip: Vec::new(),
        }
    }

    /// Ends the archive; returns the bytes of file content written.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.out
            .write_all(&[0u8; 1024])
            .and_then(|()| self.out.flush())
            .map_err(CopyError::Write)?;
        Ok(self.bytes)
    }

    fn read_err(&self, name: &[u8], e: impl Into<io::Error>) -> CopyError {
        in_container(
            "reading",
            &format!("/{}", String::from_utf8_lossy(name)),
            self.container,
            e,
        )
    }

    /// Appends the entry that the `O_PATH` handle `fd` refers to, named `name` (for a
    /// directory, an empty name writes only its children, under their own names).
    pub(crate) fn append(&mut self, fd: BorrowedFd<'_>, name: &[u8]) -> Result<()> {
        let st = rfs::fstat(fd).map_err(|e| self.read_err(name, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if self.refuse_whiteouts
            && base_name(name).starts_with(berth_oci::layer::WHITEOUT_PREFIX.as_bytes())
        {
            return Err(CopyError::WhiteoutName(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        match ft {
            FileType::Directory => {
                let dir = rfs::openat(
                    fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.read_err(name, e))?;
                if !name.is_empty() {
                    h.set_entry_type(tar::EntryType::Directory);
                    let mut n = name.to_vec();
                    n.push(b'/');
                    self.header(h, &n, None)?;
                    if self.layer_whiteouts && in_root::is_opaque(&dir) {
                        let mut o = name.to_vec();
                        o.extend_from_slice(b"/.wh..wh..opq");
                        self.whiteout(&o, st.st_mtime)?;
                    }
                }
                let mut names: Vec<Vec<u8>> = Vec::new();
                for ent in rfs::Dir::read_from(&dir).map_err(|e| self.read_err(name, e))? {
                    let ent = ent.map_err(|e| self.read_err(name, e))?;
                    let n = ent.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        names.push(n.to_vec());
                    }
                }
                names.sort();
                for n in names {
                    let mut child = name.to_vec();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(&n);
                    if self.skip.contains(&child) {
                        continue;
                    }
                    let cfd = match rfs::openat(
                        &dir,
                        OsStr::from_bytes(&n),
                        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        Ok(f) => f,
                        // Removed while we walk (a running container): as if never there.
                        Err(rustix::io::Errno::NOENT) => continue,
                        Err(e) => return Err(self.read_err(&child, e)),
                    };
                    self.append(cfd.as_fd(), &child)?;
                }
                Ok(())
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key).cloned() {
                        h.set_entry_type(tar::EntryType::Link);
                        return self.header(h, name, Some(&first));
                    }
                    self.links.insert(key, name.to_vec());
                }
                // Reopened through the handle that was checked, not by name.
                let file = rfs::open(
                    fd_path_borrowed(fd).as_path(),
                    OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.read_err(name, e))?;
                let mut file = File::from(file);
                let size = st.st_size.max(0) as u64;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                self.header(h, name, None)?;
                // Exactly `size` bytes whatever the file does meanwhile: a shorter file is
                // padded with zeros, a longer one cut, so the archive stays well-formed.
                let mut left = size;
                while left > 0 {
                    let want = (left as usize).min(self.buf.len());
                    let n = match file.read(&mut self.buf[..want]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.read_err(name, e)),
                    };
                    if n == 0 {
                        self.buf[..want].fill(0);
                        self.out
                            .write_all(&self.buf[..want])
                            .map_err(CopyError::Write)?;
                        left -= want as u64;
                        continue;
                    }
                    self.out
                        .write_all(&self.buf[..n])
                        .map_err(CopyError::Write)?;
                    left -= n as u64;
                }
                self.bytes += size;
                self.pad(size)
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(fd, "", Vec::new())
                    .map_err(|e| self.read_err(name, e))?
                    .into_bytes();
                h.set_entry_type(tar::EntryType::Symlink);
                self.header(h, name, Some(&target))
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let rdev = st.st_rdev;
                if self.layer_whiteouts
                    && ft == FileType::CharacterDevice
                    && rfs::major(rdev) == 0
                    && rfs::minor(rdev) == 0
                {
                    let (dir, base) = split_last(name);
                    let mut w = dir.to_vec();
                    w.extend_from_slice(b".wh.");
                    w.extend_from_slice(base);
                    return self.whiteout(&w, st.st_mtime);
                }
                h.set_entry_type(match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if ft != FileType::Fifo {
                    h.set_device_major(rfs::major(rdev))
                        .and_then(|()| h.set_device_minor(rfs::minor(rdev)))
                        .map_err(CopyError::Write)?;
                }
                self.header(h, name, None)
            }
            // Sockets are not archived (as tar and Docker).
            _ => Ok(()),
        }
    }

    fn whiteout(&mut self, name: &[u8], mtime: i64) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(mtime.max(0) as u64);
        self.header(h, name, None)
    }

    /// Writes `h` named `name` (and linking to `link`), with GNU long-name entries before
    /// it when a name does not fit in the header.
    fn header(&mut self, mut h: tar::Header, name: &[u8], link: Option<&[u8]>) -> Result<()> {
        if name.len() > 100 {
            self.long(tar::EntryType::GNULongName, name)?;
        }
        if let Some(l) = link {
            if l.len() > 100 {
                self.long(tar::EntryType::GNULongLink, l)?;
            }
        }
        if let Some(g) = h.as_gnu_mut() {
            let n = name.len().min(100);
            g.name = [0; 100];
            g.name[..n].copy_from_slice(&name[..n]);
            if let Some(l) = link {
                let k = l.len().min(100);
                g.linkname = [0; 100];
                g.linkname[..k].copy_from_slice(&l[..k]);
            }
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(CopyError::Write)
    }

    fn long(&mut self, kind: tar::EntryType, data: &[u8]) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        if let Some(g) = h.as_gnu_mut() {
            g.name[..13].copy_from_slice(b"././@LongLink");
        }
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64 + 1);
        h.set_entry_type(kind);
        h.set_cksum();
        self.out
            .write_all(h.as_bytes())
            .and_then(|()| self.out.write_all(data))
            .and_then(|()| self.out.write_all(&[0]))
            .map_err(CopyError::Write)?;
        self.pad(data.len() as u64 + 1)
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (512 - (len % 512) as usize) % 512;
        self.out
            .write_all(&[0u8; 512][..rem])
            .map_err(CopyError::Write)
    }
}

fn fd_path_borrowed(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `a/b/c` as (`a/b/`, `c`).
fn split_last(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|b| *b == b'/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => (&[], name),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_as_docker_reads_them() {
        use CopyEndpoint as E;
        assert_eq!(E::parse("-"), E::Stream);
        assert_eq!(E::parse("/a:b"), E::Host("/a:b".into()));
        assert_eq!(E::parse("./c:d"), E::Host("./c:d".into()));
        assert_eq!(E::parse("file"), E::Host("file".into()));
        assert_eq!(
            E::parse("c1:/etc/x"),
            E::Container {
                container: "c1".into(),
                path: "/etc/x".into()
            }
        );
        assert_eq!(
            E::parse("c1:rel"),
            E::Container {
                container: "c1".into(),
                path: "/rel".into()
            }
        );
    }

    #[test]
    fn names_and_parents() {
        assert_eq!(base_name(b"/a/b/"), b"b");
        assert_eq!(base_name(b"/a/b/."), b"b");
        assert_eq!(base_name(b"/"), b"");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b/"), "/a");
        assert_eq!(host_parent(Path::new("out")), PathBuf::from("."));
        assert_eq!(host_parent(Path::new("/x/out/")), PathBuf::from("/x"));
    }

    #[test]
    fn tar_of_a_tree_round_trips_without_following_links() {
        let src = tempfile::tempdir().unwrap();
        let d = src.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), vec![7u8; 3000]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("l")).unwrap();
        let long = "n".repeat(150);
        std::fs::write(d.join(&long), b"x").unwrap();
        std::fs::hard_link(d.join("sub/f"), d.join("h")).unwrap();
        let fd = rfs::open(&d, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mut out = Vec::new();
        let mut t = TarOut::new(&mut out, "c");
        t.append(fd.as_fd(), b"d").unwrap();
        t.finish().unwrap();
        let dst = tempfile::tempdir().unwrap();
        berth_oci::apply_layer(&out[..], dst.path(), &ApplyOptions::default()).unwrap();
        let r = dst.path().join("d");
        assert_eq!(std::fs::read(r.join("sub/f")).unwrap(), vec![7u8; 3000]);
        assert_eq!(
            std::fs::read_link(r.join("l")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        assert_eq!(std::fs::read(r.join(&long)).unwrap(), b"x");
        assert_eq!(std::fs::read(r.join("h")).unwrap(), vec![7u8; 3000]);
    }
}
