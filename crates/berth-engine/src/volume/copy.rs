//! Filling a new, empty volume with what the image has at the mount's path, as Docker does
//! at a volume's first mount.
//!
//! The image is read through a [`LayeredTree`]: the path is resolved inside the image, and
//! below it nothing is followed (a symlink is copied as a symlink, whatever it points at).
//! The volume is written through directory handles: every entry is created relative to
//! its parent's handle (`mkdirat`, `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, `symlinkat`),
//! so nothing that the copy creates can lead it outside the volume.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::container::layered::{LayeredTree, TreeDir, TreeEntry};

/// Deeper trees than this are not copied further (a bound on the recursion).
const MAX_DEPTH: usize = 256;

/// Copies the image's directory at `path` into the volume directory `data` when `data`
/// is empty and the image has a directory there; the volume's root takes that directory's
/// owner and mode. Returns whether anything was copied.
pub fn copy_up(tree: &LayeredTree, path: &str, data: &Path) -> io::Result<bool> {
    let Some(src) = tree.open_dir(path) else {
        return Ok(false);
    };
    let dest = rfs::open(
        data,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // A lock on the volume's directory: two containers created at once copy once.
    let parent = data.parent().unwrap_or(data);
    let lock = File::open(parent)?;
    rfs::flock(lock.as_fd(), rfs::FlockOperation::LockExclusive)?;
    if rfs::Dir::read_from(&dest)?
        .flatten()
        .any(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
    {
        return Ok(false);
    }
    copy_dir(&src, dest.as_fd(), 0)?;
    set_meta(dest.as_fd(), src.metadata())?;
    Ok(true)
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn set_meta(fd: BorrowedFd<'_>, md: &std::fs::Metadata) -> io::Result<()> {
    rfs::fchown(
        fd,
        Some(rustix::process::Uid::from_raw(md.uid())),
        Some(rustix::process::Gid::from_raw(md.gid())),
    )?;
    rfs::fchmod(fd, Mode::from_raw_mode(md.mode() & 0o7777))?;
    let t = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    rfs::futimens(
        fd,
        &Timestamps {
            last_access: t(md.atime(), md.atime_nsec()),
            last_modification: t(md.mtime(), md.mtime_nsec()),
        },
    )?;
    Ok(())
}

fn copy_dir(src: &TreeDir, dest: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in src.entries() {
        match entry {
            TreeEntry::Dir { name, md } => {
                rfs::mkdirat(dest, os(&name), Mode::from_raw_mode(0o700))?;
                let sub = rfs::openat(
                    dest,
                    os(&name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                if let Some(s) = src.subdir(&name) {
                    copy_dir(&s, sub.as_fd(), depth + 1)?;
                }
                set_meta(sub.as_fd(), &md)?;
            }
            TreeEntry::Symlink { name, target } => {
                rfs::symlinkat(os(&target), dest, os(&name))?;
            }
            TreeEntry::Other { name, file, md } => copy_other(&name, &file, &md, dest)?,
        }
    }
    Ok(())
}

fn copy_other(
    name: &[u8],
    file: &OwnedFd,
    md: &std::fs::Metadata,
    dest: BorrowedFd<'_>,
) -> io::Result<()> {
    let ft = md.file_type();
    if ft.is_file() {
        // Read what was checked: the handle, reopened, never the name again.
        let from = rfs::open(
            format!("/proc/self/fd/{}", file.as_raw_fd()).as_str(),
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let to = rfs::openat(
            dest,
            os(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut from = File::from(from);
        let mut to = File::from(to);
        io::copy(&mut from, &mut to)?;
        set_meta(to.as_fd(), md)?;
        return Ok(());
    }
    let kind = if ft.is_fifo() {
        rfs::FileType::Fifo
    } else if ft.is_char_device() {
        rfs::FileType::CharacterDevice
    } else if ft.is_block_device() {
        rfs::FileType::BlockDevice
    } else {
        return Ok(()); // a socket: nothing to copy
    };
    rfs::mknodat(
        dest,
        os(name),
        kind,
        Mode::from_raw_mode(md.permissions().mode() & 0o7777),
        md.rdev(),
    )?;
    rfs::chownat(
        dest,
        os(name),
        Some(rustix::process::Uid::from_raw(md.uid())),
        Some(rustix::process::Gid::from_raw(md.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_are_copied_as_links_and_never_followed() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("secret"), "host secret").unwrap();
        let layer = tempfile::tempdir().unwrap();
        let l = layer.path();
        fs::create_dir_all(l.join("data/sub")).unwrap();
        fs::write(l.join("data/sub/f"), "image file").unwrap();
        symlink(host.path().join("secret"), l.join("data/abs")).unwrap();
        symlink(host.path(), l.join("data/dirlink")).unwrap();
        symlink("/etc", l.join("data/etc")).unwrap();
        // The volume path itself through a symlink: resolved inside the image.
        symlink("/data", l.join("link")).unwrap();
        let tree = LayeredTree::new(vec![l.to_path_buf()]);
        let vol = tempfile::tempdir().unwrap();
        let data = vol.path().join("_data");
        fs::create_dir(&data).unwrap();
        assert!(copy_up(&tree, "/link", &data).unwrap());
        assert_eq!(fs::read(data.join("sub/f")).unwrap(), b"image file");
        assert!(fs::symlink_metadata(data.join("abs")).unwrap().is_symlink());
        assert_eq!(
            fs::read_link(data.join("abs")).unwrap(),
            host.path().join("secret")
        );
        assert!(fs::symlink_metadata(data.join("dirlink"))
            .unwrap()
            .is_symlink());
        // Nothing was written on the host side of a link.
        assert_eq!(fs::read_dir(host.path()).unwrap().count(), 1);
        // Not empty any more: a second copy does nothing.
        assert!(!copy_up(&tree, "/data", &data).unwrap());
        // A path the image does not have, or that is not a directory: nothing.
        let empty = vol.path().join("e");
        fs::create_dir(&empty).unwrap();
        assert!(!copy_up(&tree, "/data/sub/f", &empty).unwrap());
        assert!(!copy_up(&tree, "/nope", &empty).unwrap());
    }
}
