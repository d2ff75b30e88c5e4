//! The syscalls that set up a container's filesystem and namespaces, behind a trait: a Linux
//! implementation, and a recording fake so that mount and namespace planning is unit-tested
//! without root.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};

/// What a path is, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (regular file, device, socket, fifo).
    File,
}

/// Where a mount (or a device node) goes: a path inside the container's root, resolved
/// inside that root and held open (`O_PATH`), so that a directory swapped for a symlink after
/// the lookup cannot redirect the mount to a host path (CVE-2021-30465). Its
/// [`path`](MountTarget::path) names the handle (`/proc/self/fd/N`) for `mount(2)`; the
/// recording fake uses the resolved path instead.
#[derive(Debug)]
pub struct MountTarget {
    path: PathBuf,
    handle: Option<OwnedFd>,
    /// The directory holding the target, and its name there: where the mount made on the
    /// target is looked up again ([`Syscalls::mounted_target`]).
    parent: Option<OwnedFd>,
    name: OsString,
}

impl MountTarget {
    /// The path to hand to `mount(2)`, `mknod(2)`...: it leads to the resolved target only.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A target that is only a path (the recording fake's).
    pub fn at_path(path: PathBuf) -> MountTarget {
        MountTarget {
            path,
            handle: None,
            parent: None,
            name: OsString::new(),
        }
    }

    fn from_handle(handle: OwnedFd, parent: Option<OwnedFd>, name: OsString) -> MountTarget {
        MountTarget {
            path: PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())),
            handle: Some(handle),
            parent,
            name,
        }
    }
}

/// The syscalls the container setup makes. All paths are absolute.
pub trait Syscalls {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// `chroot(2)`.
    fn chroot(&self, path: &Path) -> io::Result<()>;
    /// `mkdir -p` with `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates an empty regular file if nothing exists at `path` (a bind-mount target).
    fn touch(&self, path: &Path) -> io::Result<()>;
    /// `mknod(2)` of a character or block device or a FIFO.
    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> io::Result<()>;
    /// `lchown(2)`.
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// `symlink(2)`: a link at `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// `lstat(2)` reduced to the kind; `Ok(None)` when nothing is there.
    fn lstat_kind(&self, path: &Path) -> io::Result<Option<FileKind>>;
    /// `readlink(2)`.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// `setdomainname(2)`.
    fn setdomainname(&self, name: &str) -> io::Result<()>;
    /// `unshare(2)`.
    fn unshare(&self, flags: CloneFlags) -> io::Result<()>;
    /// Writes `contents` to an existing file (sysctl, oom_score_adj, cgroup files).
    fn write_file(&self, path: &Path, contents: &str) -> io::Result<()>;
    /// The mount flags (`MS_RDONLY`, `MS_NOSUID`, ...) in effect at `path`.
    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags>;
    /// Resolves `path` inside `root` as if `root` were `/` (symlinks, absolute or relative,
    /// and `..` never lead out of it) and opens it, creating what is missing: directories on
    /// the way and, as `create` says, the last component (a directory, or an empty file for
    /// a file bind mount; `None`: it must exist). Nothing is looked up or created by host
    /// path: each component is opened relative to its parent's handle without following it,
    /// and a symlink is followed by reading it and resolving its target the same way.
    /// Mounts below `root` are crossed. The root itself is refused (`EINVAL`).
    fn open_mount_target(
        &self,
        root: &Path,
        path: &Path,
        create: Option<FileKind>,
    ) -> io::Result<MountTarget>;
    /// The root of the mount just made on `target`: the target's handle still names the
    /// directory under it, so remounts, propagation changes and mounts below it go here.
    /// Looked up again by name in the target's parent and refused (`EBUSY`) unless it lies
    /// on another mount than the target did.
    fn mounted_target(&self, target: &MountTarget) -> io::Result<MountTarget>;
    /// The mount point of the mount holding `path` (the topmost of those stacked there) and
    /// whether that mount is shared (`shared:N` in `/proc/self/mountinfo`).
    fn parent_mount(&self, path: &Path) -> io::Result<(PathBuf, bool)>;
}

/// Finds in `mountinfo` text the mount holding `path`: its mount point and whether it is
/// shared. The longest mount point that is `path` or one of its ancestors wins; of mounts
/// stacked on one point, the last listed (the top one).
pub fn parent_mount_in(mountinfo: &str, path: &Path) -> Option<(PathBuf, bool)> {
    let mut best: Option<(PathBuf, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else {
            continue;
        };
        let point = PathBuf::from(unescape_mountinfo(point));
        if !path.starts_with(&point) {
            continue;
        }
        let shared = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .any(|f| f.starts_with("shared:"));
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| point.components().count() >= b.components().count());
        if longer {
            best = Some((point, shared));
        }
    }
    best
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(s: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let digit = |c: u8| u32::from(c - b'0');
            out.push((digit(b[i + 1]) * 64 + digit(b[i + 2]) * 8 + digit(b[i + 3])) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

/// Components of `p` as a queue, `..` kept (resolved against the handles walked so far).
fn path_components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// How many symlinks one resolution follows before `ELOOP` (as the kernel's 40).
const MAX_LINKS: usize = 40;
/// How many times a component that was just created is looked up again before giving up:
/// another process may keep removing it.
const MAX_CREATE_RETRIES: usize = 16;

fn open_in_rootfs(root: &Path, path: &Path, create: Option<FileKind>) -> io::Result<MountTarget> {
    use nix::fcntl::OFlag;
    let lookup = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let root_fd = crate::sys::owned_fd_from_received(root_fd);
    let mut pending = path_components(path);
    // The handles from the root down to the current directory, with their names.
    let mut walked: Vec<(OwnedFd, OsString)> = Vec::new();
    let (mut links, mut retries) = (0, 0);
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            walked.pop();
            continue;
        }
        let dir = walked.last().map_or(root_fd.as_fd(), |(fd, _)| fd.as_fd());
        let last = pending.is_empty();
        match crate::sys::openat_owned(dir, &name, lookup, Mode::empty()) {
            Ok(fd) => {
                let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
                match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
                    SFlag::S_IFLNK => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(io::Error::from_raw_os_error(libc::ELOOP));
                        }
                        // The link that was opened, not whatever the name holds by now.
                        let target = PathBuf::from(nix::fcntl::readlinkat(
                            Some(fd.as_raw_fd()),
                            OsStr::new(""),
                        )?);
                        if target.is_absolute() {
                            walked.clear();
                        }
                        for c in path_components(&target).into_iter().rev() {
                            pending.push_front(c);
                        }
                    }
                    SFlag::S_IFDIR => walked.push((fd, name)),
                    _ if last => walked.push((fd, name)),
                    _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let Some(kind) = create else { return Err(e) };
                retries += 1;
                if retries > MAX_CREATE_RETRIES {
                    return Err(e);
                }
                let made = if last && kind == FileKind::File {
                    crate::sys::openat_owned(
                        dir,
                        &name,
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                } else {
                    nix::sys::stat::mkdirat(
                        Some(dir.as_raw_fd()),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                    .map_err(io::Error::from)
                };
                match made {
                    Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                    // Look it up again: what is there now is resolved like anything else.
                    _ => pending.push_front(name),
                }
            }
            Err(e) => return Err(e),
        }
    }
    let Some((handle, name)) = walked.pop() else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let parent = match walked.pop() {
        Some((fd, _)) => fd,
        None => root_fd,
    };
    Ok(MountTarget::from_handle(handle, Some(parent), name))
}

/// The real thing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscalls;

impl Syscalls for LinuxSyscalls {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        Ok(nix::mount::mount(source, target, fstype, flags, data)?)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        Ok(nix::mount::umount2(target, flags)?)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        Ok(nix::unistd::pivot_root(new_root, put_old)?)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chdir(path)?)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chroot(path)?)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> io::Result<()> {
        Ok(nix::sys::stat::mknod(
            path,
            kind,
            Mode::from_bits_truncate(mode),
            dev,
        )?)
    }

    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn lstat_kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Ok(Some(FileKind::Symlink)),
            Ok(m) if m.is_dir() => Ok(Some(FileKind::Dir)),
            Ok(_) => Ok(Some(FileKind::File)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(path)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        Ok(nix::unistd::sethostname(name)?)
    }

    fn setdomainname(&self, name: &str) -> io::Result<()> {
        crate::sys::setdomainname(name)
    }

    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        Ok(nix::sched::unshare(flags)?)
    }

    fn write_file(&self, path: &Path, contents: &str) -> io::Result<()> {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(contents.as_bytes())
    }

    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags> {
        use nix::sys::statvfs::FsFlags;
        let st = nix::sys::statvfs::statvfs(path)?;
        let f = st.flags();
        let mut out = MsFlags::empty();
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs_flag) {
                out |= ms_flag;
            }
        }
        Ok(out)
    }

    fn open_mount_target(
        &self,
        root: &Path,
        path: &Path,
        create: Option<FileKind>,
    ) -> io::Result<MountTarget> {
        open_in_rootfs(root, path, create)
    }

    fn mounted_target(&self, target: &MountTarget) -> io::Result<MountTarget> {
        use nix::fcntl::OFlag;
        let (Some(handle), Some(parent)) = (&target.handle, &target.parent) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let top = crate::sys::openat_owned(
            parent.as_fd(),
            &target.name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // The name is looked up again, so it could have been renamed meanwhile: what it
        // holds now must be a mount other than the one the target lay on (still inside the
        // root, as the parent is).
        if crate::sys::mount_id(top.as_fd())? == crate::sys::mount_id(handle.as_fd())? {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let parent =
            nix::unistd::dup(parent.as_raw_fd()).map(crate::sys::owned_fd_from_received)?;
        Ok(MountTarget::from_handle(
            top,
            Some(parent),
            target.name.clone(),
        ))
    }

    fn parent_mount(&self, path: &Path) -> io::Result<(PathBuf, bool)> {
        let text = fs::read_to_string("/proc/self/mountinfo")?;
        parent_mount_in(&text, path).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// A fake that records every call as one line of text and answers `lstat_kind` and
/// `read_link` from a table, for unit tests of the setup logic.
#[derive(Debug, Default)]
pub struct RecordingSyscalls {
    calls: RefCell<Vec<String>>,
    kinds: RefCell<HashMap<PathBuf, FileKind>>,
    links: HashMap<PathBuf, PathBuf>,
    fail: HashMap<String, i32>,
    shared_root: bool,
}

impl RecordingSyscalls {
    /// A fake where every path is missing and every call succeeds.
    pub fn new() -> RecordingSyscalls {
        RecordingSyscalls::default()
    }

    /// Declares that `path` exists with `kind`.
    pub fn with_path(self, path: impl Into<PathBuf>, kind: FileKind) -> RecordingSyscalls {
        self.kinds.borrow_mut().insert(path.into(), kind);
        self
    }

    /// Declares a symlink at `path` pointing at `target`.
    pub fn with_symlink(
        mut self,
        path: impl Into<PathBuf>,
        target: impl Into<PathBuf>,
    ) -> RecordingSyscalls {
        let path = path.into();
        self.kinds
            .borrow_mut()
            .insert(path.clone(), FileKind::Symlink);
        self.links.insert(path, target.into());
        self
    }

    /// Makes `/`, the mount holding every path, a shared mount.
    pub fn with_shared_root(mut self) -> RecordingSyscalls {
        self.shared_root = true;
        self
    }

    /// Makes every call whose recorded line starts with `prefix` fail with `errno`.
    pub fn failing(mut self, prefix: &str, errno: i32) -> RecordingSyscalls {
        self.fail.insert(prefix.to_string(), errno);
        self
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, line: String) -> io::Result<()> {
        let failure = self
            .fail
            .iter()
            .find(|(prefix, _)| line.starts_with(prefix.as_str()))
            .map(|(_, errno)| *errno);
        self.calls.borrow_mut().push(line);
        match failure {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

/// Renders mount flags compactly for the fake's records, e.g. `BIND|REC|RDONLY`.
pub fn flags_text(flags: MsFlags) -> String {
    let names: Vec<String> = flags
        .iter_names()
        .map(|(n, _)| n.trim_start_matches("MS_").to_string())
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

impl Syscalls for RecordingSyscalls {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(format!(
            "mount {} {} {} {} {}",
            source.map_or("-".into(), |s| s.display().to_string()),
            target.display(),
            fstype.unwrap_or("-"),
            flags_text(flags),
            data.unwrap_or("-")
        ))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        self.record(format!("umount2 {} {:?}", target.display(), flags))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.record(format!(
            "pivot_root {} {}",
            new_root.display(),
            put_old.display()
        ))
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(format!("chdir {}", path.display()))
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(format!("chroot {}", path.display()))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.kinds
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_insert(FileKind::Dir);
        self.record(format!("mkdir_all {} {:o}", path.display(), mode))
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        self.kinds
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_insert(FileKind::File);
        self.record(format!("touch {}", path.display()))
    }

    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> io::Result<()> {
        let k = match kind {
            SFlag::S_IFBLK => "b",
            SFlag::S_IFIFO => "p",
            _ => "c",
        };
        self.record(format!(
            "mknod {} {} {:o} {}:{}",
            path.display(),
            k,
            mode,
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        ))
    }

    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.record(format!("lchown {} {}:{}", path.display(), uid, gid))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(format!(
            "symlink {} -> {}",
            link.display(),
            target.display()
        ))
    }

    fn lstat_kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        Ok(self.kinds.borrow().get(path).copied())
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.links
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.record(format!("sethostname {name}"))
    }

    fn setdomainname(&self, name: &str) -> io::Result<()> {
        self.record(format!("setdomainname {name}"))
    }

    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        self.record(format!("unshare {:?}", flags))
    }

    fn write_file(&self, path: &Path, contents: &str) -> io::Result<()> {
        self.record(format!("write {} {}", path.display(), contents))
    }

    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags> {
        let _ = path;
        Ok(MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
    }

    /// Resolves with [`crate::mounts::secure_join`] over the table, records
    /// `open_target PATH dir|file|-` and declares what it creates.
    fn open_mount_target(
        &self,
        root: &Path,
        path: &Path,
        create: Option<FileKind>,
    ) -> io::Result<MountTarget> {
        let resolved = crate::mounts::secure_join(self, root, path)?;
        if resolved == root {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let kind = match create {
            Some(FileKind::File) => "file",
            Some(_) => "dir",
            None => "-",
        };
        self.record(format!("open_target {} {kind}", resolved.display()))?;
        let exists = self.kinds.borrow().contains_key(&resolved);
        match create {
            None if !exists => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
            Some(k) if !exists => {
                self.kinds.borrow_mut().insert(resolved.clone(), k);
            }
            _ => {}
        }
        Ok(MountTarget::at_path(resolved))
    }

    fn mounted_target(&self, target: &MountTarget) -> io::Result<MountTarget> {
        Ok(MountTarget::at_path(target.path.clone()))
    }

    /// Records `parent_mount PATH`; the answer is `/`, shared as [`RecordingSyscalls::with_shared_root`] says.
    fn parent_mount(&self, path: &Path) -> io::Result<(PathBuf, bool)> {
        self.record(format!("parent_mount {}", path.display()))?;
        Ok((PathBuf::from("/"), self.shared_root))
    }
}
