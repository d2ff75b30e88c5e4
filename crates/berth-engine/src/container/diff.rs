//! `diff`: what a container changed in its file system, read from its overlay upper
//! directory (berth's own, opened by handle and walked without following anything).
//!
//! As Docker: a whiteout is `D`, a path the image's layers lack is `A`, one they have is
//! `C`; a directory the image has is `C` only when its mode changed or something below
//! it did. The empty stubs that the runtime made as mount points (`/etc/hosts`,
//! `/proc`, a volume's target...) are not changes, as Docker's init layer hides them.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use berth_oci::in_root;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use super::copy::CopyError;
use super::layered::LayeredTree;
use super::{Container, ContainerError, Lifecycle};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `C`: it was in the image and changed.
    Modified,
    /// `A`: new.
    Added,
    /// `D`: removed.
    Deleted,
}

impl ChangeKind {
    /// Docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }

    /// Docker's number in the API (`Kind`: 0 modified, 1 added, 2 deleted).
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path inside the container.
    pub path: String,
    /// What happened.
    pub kind: ChangeKind,
}

/// Mount points the runtime may create in a container's rw layer, relative to its root.
const RUNTIME_STUBS: &[&str] = &[
    "proc",
    "sys",
    "sys/fs/cgroup",
    "dev",
    "dev/pts",
    "dev/shm",
    "dev/mqueue",
    "etc/resolv.conf",
    "etc/hosts",
    "etc/hostname",
    ".dockerenv",
];

impl Lifecycle {
    /// The image's layers of `c`, top first, as a tree to look paths up in.
    pub(crate) fn image_tree(&self, c: &Container) -> Result<LayeredTree, ContainerError> {
        let image: berth_oci::Digest = c
            .record
            .image_id
            .parse()
            .map_err(|_| ContainerError::ImageNotFound(c.record.image_ref.clone()))?;
        Ok(LayeredTree::new(self.store().image_lowerdirs(&image)?))
    }

    /// The paths of `c`'s rw layer (relative, no leading `/`) that are only the runtime's
    /// empty mount-point stubs: absent from the image, an empty file or directory.
    pub(crate) fn mount_stubs(&self, c: &Container, lower: &LayeredTree) -> Vec<Vec<u8>> {
        let upper = self.container_dir(c.id()).join("upper");
        let Ok(root) = File::open(&upper).map(OwnedFd::from) else {
            return Vec::new();
        };
        let mut targets: Vec<String> = RUNTIME_STUBS.iter().map(|s| s.to_string()).collect();
        for b in &c.spec.host_config.binds {
            let parts: Vec<&str> = b.split(':').collect();
            let t = if parts.len() >= 2 { parts[1] } else { parts[0] };
            targets.push(t.to_owned());
        }
        targets.extend(c.spec.host_config.tmpfs.keys().cloned());
        let mut out = Vec::new();
        for t in targets {
            let rel = t.trim_matches('/').to_owned();
            if rel.is_empty() || lower.resolve(&format!("/{rel}")).is_some() {
                continue;
            }
            if is_empty_stub(&root, &rel) {
                out.push(rel.into_bytes());
            }
        }
        out
    }

    /// `diff`: the changes of `c`'s file system against its image, sorted by path.
    pub fn diff(&self, c: &Container) -> Result<Vec<Change>, CopyError> {
        let lower = self.image_tree(c)?;
        let skip = self.mount_stubs(c, &lower);
        let upper = self.container_dir(c.id()).join("upper");
        let root = rfs::open(
            &upper,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContainerError::io("opening", &upper)(e.into()))?;
        let mut out = Vec::new();
        walk(&root, "", &lower, &skip, &mut out)
            .map_err(|e| ContainerError::io("reading", &upper)(e.into()))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// True when `rel` in the directory `root` is an empty regular file or empty directory
/// (looked up one component at a time, never following a symlink).
fn is_empty_stub(root: &OwnedFd, rel: &str) -> bool {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = comps.split_last() else {
        return false;
    };
    let mut dir = match root.try_clone() {
        Ok(d) => d,
        Err(_) => return false,
    };
    for p in parents {
        dir = match in_root::open_subdir(&dir, p.as_bytes()) {
            Ok(d) => d,
            Err(_) => return false,
        };
    }
    match rfs::statat(&dir, *last, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => st.st_size == 0,
            FileType::Directory => in_root::open_subdir(&dir, last.as_bytes())
                .ok()
                .and_then(|d| rfs::Dir::read_from(&d).ok())
                .is_some_and(|d| {
                    d.filter_map(Result::ok)
                        .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
                }),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Records the changes under the upper directory `dir` (path `prefix`, "" for the root);
/// returns whether there were any.
fn walk(
    dir: &OwnedFd,
    prefix: &str,
    lower: &LayeredTree,
    skip: &[Vec<u8>],
    out: &mut Vec<Change>,
) -> rustix::io::Result<bool> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in rfs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    let mut any = false;
    for n in names {
        let name = String::from_utf8_lossy(&n).into_owned();
        let path = format!("{prefix}/{name}");
        if skip.iter().any(|s| s.as_slice() == &path.as_bytes()[1..]) {
            continue;
        }
        let st = match rfs::statat(dir, OsStr::from_bytes(&n), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            out.push(Change {
                path,
                kind: ChangeKind::Deleted,
            });
            any = true;
            continue;
        }
        let below = lower.resolve(&path);
        if ft == FileType::Directory {
            let sub = match in_root::open_subdir(dir, &n) {
                Ok(d) => d,
                Err(_) => continue,
            };
            let at = out.len();
            let children = walk(&sub, &path, lower, skip, out)?;
            let kind = match &below {
                None => Some(ChangeKind::Added),
                Some((_, md)) if md.is_dir() => {
                    use std::os::unix::fs::MetadataExt;
                    // The mode, not the mtime: a mount-point stub made in it moved that.
                    let same = md.mode() & 0o7777 == st.st_mode & 0o7777;
                    let opaque = in_root::is_opaque(sub.as_fd());
                    (!same || children || opaque).then_some(ChangeKind::Modified)
                }
                Some(_) => Some(ChangeKind::Modified),
            };
            if let Some(kind) = kind {
                out.insert(at, Change { path, kind });
                any = true;
            }
            continue;
        }
        out.push(Change {
            path,
            kind: if below.is_some() {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            },
        });
        any = true;
    }
    Ok(any)
}
