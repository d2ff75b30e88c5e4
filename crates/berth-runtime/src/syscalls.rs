//! The syscalls that set up a container's filesystem and namespaces, behind a trait: a Linux
//! implementation, and a recording fake so that mount and namespace planning is unit-tested
//! without root.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    /// `mkdir -p` with `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates an empty regular file if nothing exists at `path` (a bind-mount target).
    fn touch(&self, path: &Path) -> io::Result<()>;
    /// `mknod(2)` of a character or block device.
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
}

/// A fake that records every call as one line of text and answers `lstat_kind` and
/// `read_link` from a table, for unit tests of the setup logic.
#[derive(Debug, Default)]
pub struct RecordingSyscalls {
    calls: RefCell<Vec<String>>,
    kinds: RefCell<HashMap<PathBuf, FileKind>>,
    links: HashMap<PathBuf, PathBuf>,
    fail: HashMap<String, i32>,
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
        let k = if kind == SFlag::S_IFBLK { "b" } else { "c" };
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
}
