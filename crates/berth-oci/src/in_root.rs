//! Host-side access to files inside a root directory that someone else controls: an image's
//! layer snapshot, a merged view of one, a running container's root file system.
//!
//! Such a tree holds symlinks whose targets its author chose (`etc -> /root/.ssh`), and a
//! running container can swap a file for a symlink at any moment. Paths inside it are
//! therefore never handed to host path operations (`Path::join` + `fs::read` follows them
//! out of the tree); they are resolved by the kernel with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` from a handle of the root ([`open_in_root`], [`read_in_root`]),
//! so that absolute targets and `..` stay inside it, or one component at a time without
//! following anything ([`open_entry`], [`open_subdir`], [`read_link`]) by callers that
//! resolve symlinks themselves (over several layers). Files are read through the handle
//! that was checked ([`read_regular`]): a device node or FIFO is never opened.
//!
//! ```no_run
//! use berth_oci::in_root;
//! let root = in_root::open_root("/proc/1234/root".as_ref())?;
//! let passwd = in_root::read_in_root(&root, "/etc/passwd".as_ref(), 1 << 20)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::layer::fsops;

/// How often a lookup is retried when the kernel reports that a rename raced it (`EAGAIN`
/// from `openat2` with `RESOLVE_IN_ROOT`, which it returns rather than risk an escape).
const RACE_RETRIES: usize = 64;

/// Opens the directory `path` (a host path the caller trusts, e.g. `/proc/PID/root` or a
/// layer directory of the store) as a handle for the lookups of this module.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fsops::err)
}

/// Opens `path` inside `root` as an `O_PATH` handle (nothing is read or opened for I/O).
/// Symlinks are followed, the last one too, but resolved as if `root` were `/`: an absolute
/// target starts at `root` and `..` stops there; /proc magic links are refused.
pub fn open_in_root(root: impl AsFd, path: &Path) -> io::Result<OwnedFd> {
    open_in_root_with(root, path, OFlags::empty())
}

/// [`open_in_root`], except that a symlink as the last component is not followed: the
/// handle is then the link's own (as `lstat` would see the path).
pub fn open_in_root_nofollow(root: impl AsFd, path: &Path) -> io::Result<OwnedFd> {
    open_in_root_with(root, path, OFlags::NOFOLLOW)
}

fn open_in_root_with(root: impl AsFd, path: &Path, extra: OFlags) -> io::Result<OwnedFd> {
    let rel = path.as_os_str().as_bytes();
    let rel = if rel.iter().all(|b| *b == b'/') {
        b".".as_slice()
    } else {
        rel
    };
    let mut tries = 0;
    loop {
        match rfs::openat2(
            root.as_fd(),
            fsops::os(rel),
            OFlags::PATH | OFlags::CLOEXEC | extra,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) if tries < RACE_RETRIES => tries += 1,
            Err(Errno::INTR) => {}
            r => return r.map_err(fsops::err),
        }
    }
}

/// Reads the regular file `path` inside `root` (see [`open_in_root`]), at most `limit`
/// bytes. A directory, device, FIFO or socket is an `InvalidInput` error (and is never
/// opened); a larger file a `FileTooLarge` one.
pub fn read_in_root(root: impl AsFd, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_regular(open_in_root(root, path)?, limit)
}

/// Reads the regular file that the `O_PATH` handle `file` refers to, at most `limit` bytes.
/// The file is reopened through the handle (`/proc/self/fd/N`), not looked up again by
/// name, so what is read is what was checked.
pub fn read_regular(file: impl AsFd, limit: u64) -> io::Result<Vec<u8>> {
    let st = rfs::fstat(file.as_fd()).map_err(fsops::err)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if st.st_size as u64 > limit {
        return Err(io::ErrorKind::FileTooLarge.into());
    }
    let fd_path = format!("/proc/self/fd/{}", file.as_fd().as_raw_fd());
    let opened = rfs::open(
        fd_path.as_str(),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fsops::err)?;
    let mut buf = Vec::with_capacity(st.st_size as usize);
    File::from(opened)
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::ErrorKind::FileTooLarge.into());
    }
    Ok(buf)
}

/// Opens the entry `name` (one path component, no `/`) of the directory `dir` as an
/// `O_PATH` handle without following it: a symlink yields a handle of the link itself.
pub fn open_entry(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    check_component(name)?;
    rfs::openat(
        dir.as_fd(),
        fsops::os(name),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fsops::err)
}

/// Opens the subdirectory `name` (one path component) of `dir` for reading (listing,
/// xattrs) without following it: a symlink is an error.
pub fn open_subdir(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    check_component(name)?;
    fsops::open_subdir(dir.as_fd(), name).map_err(fsops::err)
}

/// The target of the symlink `name` (one path component) in `dir`, as written.
pub fn read_link(dir: impl AsFd, name: &[u8]) -> io::Result<Vec<u8>> {
    check_component(name)?;
    rfs::readlinkat(dir.as_fd(), fsops::os(name), Vec::new())
        .map(|t| t.into_bytes())
        .map_err(fsops::err)
}

/// Whether overlayfs treats the directory `dir` (opened for reading, see [`open_subdir`])
/// as opaque: `trusted.overlay.opaque` or `user.overlay.opaque` is `y`, so that lower
/// layers' entries below it are hidden.
pub fn is_opaque(dir: impl AsFd) -> bool {
    [b"trusted.overlay.opaque".as_slice(), b"user.overlay.opaque"]
        .iter()
        .any(|n| {
            fsops::get_xattr(dir.as_fd(), n).is_ok_and(|v| v.as_deref() == Some(b"y".as_slice()))
        })
}

/// `name` must be a single component: not empty, `.`, `..`, and without `/`.
fn check_component(name: &[u8]) -> io::Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single path component",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/passwd"), "inside").unwrap();
        // Absolute and relative escapes, a link to a link, and a dir link out.
        symlink(host.path().join("secret"), r.join("abs")).unwrap();
        symlink(
            "../../../../..".to_string() + &host.path().join("secret").display().to_string(),
            r.join("rel"),
        )
        .unwrap();
        symlink("/etc/passwd", r.join("etc/link")).unwrap();
        symlink(host.path(), r.join("dirlink")).unwrap();
        let fd = open_root(r).unwrap();
        let read = |p: &str| read_in_root(&fd, p.as_ref(), 1 << 20).map_err(|e| e.kind());
        assert_eq!(read("/etc/passwd").unwrap(), b"inside");
        assert_eq!(read("etc/link").unwrap(), b"inside");
        assert_eq!(read("/../../etc/passwd").unwrap(), b"inside");
        assert_eq!(read("abs"), Err(io::ErrorKind::NotFound));
        assert_eq!(read("rel"), Err(io::ErrorKind::NotFound));
        assert_eq!(read("dirlink/secret"), Err(io::ErrorKind::NotFound));
        assert_eq!(read("/etc"), Err(io::ErrorKind::InvalidInput));
        // Not following the last link: the link itself, even a dangling one.
        let l = open_in_root_nofollow(&fd, "/abs".as_ref()).unwrap();
        let ft = FileType::from_raw_mode(rfs::fstat(&l).unwrap().st_mode);
        assert_eq!(ft, FileType::Symlink);
        assert!(open_in_root_nofollow(&fd, "/dirlink/secret".as_ref()).is_err());
        assert_eq!(
            read_in_root(&fd, "/etc/passwd".as_ref(), 3).map_err(|e| e.kind()),
            Err(io::ErrorKind::FileTooLarge)
        );
    }

    #[test]
    fn single_components_never_follow() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir(r.join("d")).unwrap();
        symlink("/etc", r.join("l")).unwrap();
        let fd = open_root(r).unwrap();
        let l = open_entry(&fd, b"l").unwrap();
        assert!(
            rfs::fstat(&l)
                .map(|s| FileType::from_raw_mode(s.st_mode))
                .unwrap()
                == FileType::Symlink
        );
        assert_eq!(read_link(&fd, b"l").unwrap(), b"/etc");
        assert!(open_subdir(&fd, b"l").is_err());
        assert!(open_subdir(&fd, b"d").is_ok());
        assert!(open_entry(&fd, b"..").is_err());
        assert!(open_entry(&fd, b"d/x").is_err());
        assert!(!is_opaque(open_subdir(&fd, b"d").unwrap()));
    }
}
