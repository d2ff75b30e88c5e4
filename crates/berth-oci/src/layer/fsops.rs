//! File-system operations relative to directory file descriptors (no path is ever resolved
//! from the process's root or working directory once a root fd is open).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Lookups never leave the directory they start from, and never use /proc magic links.
pub(crate) const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

pub(crate) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

pub(crate) fn err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Opens a directory beneath `root` as an `O_PATH` handle, following only symlinks that stay
/// beneath `root`.
pub(crate) fn open_dir_path_beneath(root: BorrowedFd<'_>, rel: &[u8]) -> Result<OwnedFd, Errno> {
    let rel = if rel.is_empty() { b".".as_slice() } else { rel };
    rfs::openat2(
        root,
        os(rel),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

/// Opens a directory beneath `root` for reading (to set times, xattrs); the last component must
/// not be a symlink.
pub(crate) fn open_dir_beneath_nofollow(
    root: BorrowedFd<'_>,
    rel: &[u8],
) -> Result<OwnedFd, Errno> {
    let rel = if rel.is_empty() { b".".as_slice() } else { rel };
    rfs::openat2(
        root,
        os(rel),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

/// Opens the single-component `name` in `dir` as a directory for reading, not following it.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rfs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Whether `name` in `dir` is a directory (not following a symlink); `None` if absent.
pub(crate) fn file_type_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<FileType>, Errno> {
    match rfs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` from `dir`, recursively if it is a directory; absent is fine.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match file_type_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = open_dir_for_removal(dir, name)?;
            remove_children(sub.as_fd())?;
            rfs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)
        }
        Some(_) => rfs::unlinkat(dir, os(name), AtFlags::empty()),
    }
}

/// Opens a directory about to be removed; one without permissions for its owner (mode 000,
/// from a layer) is made accessible first, so that non-root callers can remove it too.
fn open_dir_for_removal(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let fd = match open_subdir(dir, name) {
        Err(Errno::ACCESS) => {
            // `name` was just seen to be a directory (not a symlink), so nothing is followed.
            rfs::chmodat(dir, os(name), Mode::from_raw_mode(0o700), AtFlags::empty())?;
            open_subdir(dir, name)?
        }
        other => other?,
    };
    // Its entries are unlinked next, which needs write permission on it. Best effort: a
    // directory of another owner stays as it is (and root needs no permission anyway).
    let _ = rfs::fchmod(&fd, Mode::from_raw_mode(0o700));
    Ok(fd)
}

fn remove_children(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut names: Vec<(Vec<u8>, FileType)> = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push((name.to_vec(), entry.file_type()));
    }
    for (name, ty) in names {
        match ty {
            FileType::Directory => {
                let sub = open_dir_for_removal(dir, &name)?;
                remove_children(sub.as_fd())?;
                rfs::unlinkat(dir, os(&name), AtFlags::REMOVEDIR)?;
            }
            FileType::Unknown => remove_at(dir, &name)?,
            _ => rfs::unlinkat(dir, os(&name), AtFlags::empty())?,
        }
    }
    Ok(())
}

/// Lists the xattr names of an open file (empty if the file system has none).
pub(crate) fn list_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; 4096];
    let n = loop {
        match rfs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = rfs::flistxattr_query(fd)?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Reads one xattr of an open file; `None` if it is not set.
pub(crate) fn get_xattr(fd: BorrowedFd<'_>, name: &[u8]) -> Result<Option<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        match rfs::fgetxattr(fd, os(name), &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => {
                let need = rfs::fgetxattr_query(fd, os(name))?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(Errno::NODATA) | Err(Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}
