//! The container's filesystem: rootfs mounts, spec mounts, devices, `pivot_root`, masked and
//! read-only paths. The plan is computed from the spec in the parent ([`MountPlan::from_spec`]);
//! the child carries it out through [`Syscalls`] ([`MountPlan::setup_rootfs`] before and
//! [`MountPlan::finish_rootfs`] after `pivot_root`), so the sequence is unit-tested on the fake.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceType, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::syscalls::{FileKind, MountTarget, Syscalls};

/// A mount that makes up the rootfs itself (like containerd's `Mount`): mounted inside the
/// container's mount namespace onto the rootfs path before anything else, so it never
/// outlives the container. E.g. an overlay with `lowerdir=a:b,upperdir=u,workdir=w`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsMount {
    /// File system type, e.g. `overlay`, `bind`, `tmpfs`.
    #[serde(rename = "type")]
    pub typ: String,
    /// Source (`overlay`, a directory for `bind`).
    pub source: PathBuf,
    /// Options: mount flags (`ro`, `nodev`, `rbind`, ...) and file-system data (`lowerdir=...`).
    pub options: Vec<String>,
}

/// Mount options split into flags, propagation flags and file-system data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags, including `MS_BIND|MS_REC` for `bind`/`rbind`.
    pub flags: MsFlags,
    /// Propagation to apply after the mount (`MS_PRIVATE`, `MS_SHARED`, ... with `MS_REC`).
    pub propagation: MsFlags,
    /// The comma-joined options the kernel does not know as flags, for the file system.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
        }
    }
}

/// The propagation flags a mount option names (`private`, `rslave`, ...), `r` meaning recursive.
fn propagation_flags(opt: &str) -> Option<MsFlags> {
    let (recursive, kind) = match opt.strip_prefix('r') {
        Some(kind @ ("private" | "shared" | "slave" | "unbindable")) => (true, kind),
        _ => (false, opt),
    };
    let flag = match kind {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if recursive {
        flag | MsFlags::MS_REC
    } else {
        flag
    })
}

/// Parses mount options the way `mount(8)` and runc do.
pub fn parse_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        if let Some(propagation) = propagation_flags(opt) {
            out.propagation |= propagation;
            continue;
        }
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            // Options of other runtimes that have no meaning here.
            "tmpcopyup" | "nosymfollow" | "idmap" | "ridmap" | "" => continue,
            other => {
                data.push(other);
                continue;
            }
        };
        out.flags.insert(set);
        out.flags.remove(clear);
    }
    out.data = data.join(",");
    out
}

/// Parses `rootfsPropagation` (`private`, `rslave`, ...); the default is `rprivate`.
pub fn parse_propagation(value: Option<&str>) -> Result<MsFlags> {
    match value {
        None | Some("") => Ok(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        Some(v) => propagation_flags(v).ok_or_else(|| {
            Error::spec(format!("rootfsPropagation {v:?} is not a propagation type"))
        }),
    }
}

/// One mount of the spec, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMount {
    /// Where, inside the container.
    pub destination: PathBuf,
    /// File system type (`bind` for bind mounts).
    pub typ: String,
    /// Source: a host path for binds, a file-system name otherwise.
    pub source: Option<PathBuf>,
    /// The options as written in the spec.
    pub options: Vec<String>,
}

/// A device node to create in the container's `/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Path inside the container, e.g. `/dev/null`.
    pub path: PathBuf,
    /// `'c'`, `'b'` or `'p'` (a FIFO).
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The devices every container gets (as runc and Docker): null zero full random urandom tty.
pub fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| DeviceNode {
        path: path.into(),
        kind: 'c',
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The cgroup hierarchies to mount at the spec's `cgroup` mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CgroupMountLayout {
    /// A single cgroup2 file system.
    #[default]
    Unified,
    /// A tmpfs with one cgroup v1 file system per hierarchy: (directory name, mount options
    /// such as `cpu,cpuacct` or `name=systemd`), plus `unified` when the host has a v2 mount
    /// beside them (hybrid).
    V1 {
        /// (directory name, options) per hierarchy.
        hierarchies: Vec<(String, String)>,
        /// Mount cgroup2 at `unified` too.
        hybrid_unified: bool,
    },
}

/// Everything the child needs to build the container's filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPlan {
    /// The rootfs on the host.
    pub rootfs: PathBuf,
    /// Mounts making up the rootfs, mounted onto it first.
    pub rootfs_mounts: Vec<RootfsMount>,
    /// Propagation of `/` in the new mount namespace (bits of [`MsFlags`]).
    pub propagation: u64,
    /// The spec's mounts, in order.
    pub mounts: Vec<PlannedMount>,
    /// Device nodes to create (defaults plus the spec's), unless `/dev` is a bind mount.
    pub devices: Vec<DeviceNode>,
    /// Make device nodes by bind-mounting the host's (in a user namespace, mknod is refused).
    pub bind_devices: bool,
    /// Paths hidden from the container (files: /dev/null bound over; dirs: read-only tmpfs).
    pub masked_paths: Vec<PathBuf>,
    /// Paths made read-only.
    pub readonly_paths: Vec<PathBuf>,
    /// Remount the root read-only at the end.
    pub readonly_root: bool,
    /// How to mount a `cgroup` mount.
    pub cgroup_layout: CgroupMountLayout,
    /// The container runs in a user namespace: keep locked flags on remounts.
    pub userns: bool,
    /// Without a cgroup namespace, the container's own cgroup directories are bind-mounted
    /// (as runc does) instead of fresh cgroup mounts: (directory name, host directory);
    /// a single entry with an empty name on v2.
    pub cgroup_binds: Vec<(String, PathBuf)>,
    /// The container shares the runtime's mount namespace: nothing is mounted (that would
    /// change the host's mounts), the process only chroots into the rootfs.
    #[serde(default)]
    pub no_mount_ns: bool,
}

impl MountPlan {
    /// Plans the filesystem of a container from its spec.
    pub fn from_spec(
        spec: &Spec,
        rootfs: &Path,
        rootfs_mounts: &[RootfsMount],
        cgroup_layout: CgroupMountLayout,
        userns: bool,
    ) -> Result<MountPlan> {
        let linux = spec.linux().as_ref();
        let mut mounts = Vec::new();
        let mut dev_is_bind = false;
        for m in spec.mounts().iter().flatten() {
            let dest = m.destination();
            if !dest.is_absolute() {
                return Err(Error::spec(format!(
                    "mount destination {} is not absolute",
                    dest.display()
                )));
            }
            let options = m.options().clone().unwrap_or_default();
            let opts = parse_options(&options);
            let typ = m.typ().clone().unwrap_or_else(|| {
                if opts.flags.contains(MsFlags::MS_BIND) {
                    "bind".into()
                } else {
                    "none".into()
                }
            });
            let is_bind = typ == "bind" || opts.flags.contains(MsFlags::MS_BIND);
            if is_bind && m.source().is_none() {
                return Err(Error::spec(format!(
                    "bind mount on {} has no source",
                    dest.display()
                )));
            }
            if is_bind && clean(dest) == Path::new("/dev") {
                dev_is_bind = true;
            }
            mounts.push(PlannedMount {
                destination: dest.clone(),
                typ: if is_bind { "bind".into() } else { typ },
                source: m.source().clone(),
                options,
            });
        }
        let mut devices = if dev_is_bind {
            Vec::new()
        } else {
            default_devices()
        };
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::P => 'p',
                other => {
                    return Err(Error::spec(format!(
                        "device {}: type {other:?} cannot be created",
                        d.path().display()
                    )))
                }
            };
            let node = DeviceNode {
                path: d.path().clone(),
                kind,
                major: u64::try_from(d.major())
                    .map_err(|_| Error::spec("negative device major"))?,
                minor: u64::try_from(d.minor())
                    .map_err(|_| Error::spec("negative device minor"))?,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            };
            devices.retain(|x| x.path != node.path);
            devices.push(node);
        }
        let propagation = parse_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
        Ok(MountPlan {
            rootfs: rootfs.to_path_buf(),
            rootfs_mounts: rootfs_mounts.to_vec(),
            propagation: propagation.bits(),
            mounts,
            devices,
            bind_devices: userns,
            masked_paths: linux
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            readonly_paths: linux
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            cgroup_layout,
            userns,
            cgroup_binds: Vec::new(),
            no_mount_ns: false,
        })
    }

    /// Builds the rootfs inside the new mount namespace and pivots into it. Call in the child.
    pub fn setup_rootfs(&self, sys: &dyn Syscalls) -> Result<(), InitFailure> {
        self.setup_rootfs_with(sys, || Ok(()))
    }

    /// Like [`MountPlan::setup_rootfs`], calling `before_cgroup_mounts` after every mount but
    /// the `cgroup` ones: the init waits there for the parent to move it into its cgroup
    /// (which costs an RCU grace period on v1) while it mounted everything else, and then
    /// creates its cgroup namespace, which the cgroup mounts show.
    pub fn setup_rootfs_with(
        &self,
        sys: &dyn Syscalls,
        before_cgroup_mounts: impl FnOnce() -> Result<(), InitFailure>,
    ) -> Result<(), InitFailure> {
        self.setup_rootfs_hooked(sys, before_cgroup_mounts, || Ok(()))
    }

    /// Like [`MountPlan::setup_rootfs_with`], calling `before_pivot` once everything is
    /// mounted and the devices made, right before `pivot_root`: where the OCI `prestart`,
    /// `createRuntime` and `createContainer` hooks run. Without a mount namespace of its
    /// own ([`MountPlan::no_mount_ns`]) nothing is mounted and the process chroots instead.
    pub fn setup_rootfs_hooked(
        &self,
        sys: &dyn Syscalls,
        before_cgroup_mounts: impl FnOnce() -> Result<(), InitFailure>,
        before_pivot: impl FnOnce() -> Result<(), InitFailure>,
    ) -> Result<(), InitFailure> {
        let root = &self.rootfs;
        if self.no_mount_ns {
            before_cgroup_mounts()?;
            before_pivot()?;
            sys.chroot(root)
                .map_err(|e| InitFailure::new(format!("chroot {}", root.display()), e))?;
            return sys
                .chdir(Path::new("/"))
                .map_err(|e| InitFailure::new("chdir /", e));
        }
        let propagation = MsFlags::from_bits_truncate(self.propagation);
        sys.mount(None, Path::new("/"), None, propagation, None)
            .map_err(|e| InitFailure::new("make / private", e))?;
        // pivot_root refuses a new root whose parent mount is shared (and the rootfs mounts and
        // its bind would propagate to the host): with a propagation other than the default
        // rprivate, the mount holding the rootfs is made private if it is shared, as runc
        // does; the requested propagation is applied to the new `/` after pivot_root.
        if !self.default_propagation() {
            let (parent, shared) = sys.parent_mount(root).map_err(|e| {
                InitFailure::new(format!("find the mount of {}", root.display()), e)
            })?;
            if shared {
                sys.mount(None, &parent, None, MsFlags::MS_PRIVATE, None)
                    .map_err(|e| {
                        InitFailure::new(format!("make {} private", parent.display()), e)
                    })?;
            }
        }
        for m in &self.rootfs_mounts {
            let opts = parse_options(&m.options);
            let (typ, flags) = if m.typ == "bind" {
                (None, opts.flags | MsFlags::MS_BIND)
            } else {
                (Some(m.typ.as_str()), opts.flags)
            };
            let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
            sys.mount(Some(&m.source), root, typ, flags, data)
                .map_err(|e| {
                    InitFailure::new(format!("mount {} rootfs on {}", m.typ, root.display()), e)
                })?;
        }
        // pivot_root needs the new root to be a mount point.
        sys.mount(
            Some(root),
            root,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| InitFailure::new(format!("bind rootfs {}", root.display()), e))?;
        for m in self.mounts.iter().filter(|m| m.typ != "cgroup") {
            self.mount_one(sys, m)?;
        }
        before_cgroup_mounts()?;
        for m in self.mounts.iter().filter(|m| m.typ == "cgroup") {
            self.mount_one(sys, m)?;
        }
        self.create_devices(sys)?;
        before_pivot()?;
        self.pivot(sys)
    }

    fn mount_one(&self, sys: &dyn Syscalls, m: &PlannedMount) -> Result<(), InitFailure> {
        let what = |verb: &str| format!("{verb} {} on {}", m.typ, m.destination.display());
        let opts = parse_options(&m.options);
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        // The target is resolved and created inside the rootfs and mounted through its
        // handle, never by path: a container sharing a directory on the way cannot swap it
        // for a symlink to a host path in between (CVE-2021-30465).
        let open_target = |kind| {
            sys.open_mount_target(&self.rootfs, &m.destination, Some(kind))
                .map_err(|e| InitFailure::new(what("create target of"), e))
        };
        let top = match m.typ.as_str() {
            "bind" => {
                let src = m.source.as_deref().unwrap_or(Path::new(""));
                let kind = match sys
                    .lstat_kind(src)
                    .map_err(|e| InitFailure::new(what("stat source of"), e))?
                {
                    Some(FileKind::Dir) => FileKind::Dir,
                    None => {
                        return Err(InitFailure::new(
                            format!("bind mount source {}", src.display()),
                            io::Error::from_raw_os_error(libc::ENOENT),
                        ))
                    }
                    _ => FileKind::File,
                };
                let target = open_target(kind)?;
                let bind = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
                sys.mount(Some(src), target.path(), None, bind, None)
                    .map_err(|e| InitFailure::new(what("mount"), e))?;
                let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
                if extra.is_empty() && opts.propagation.is_empty() {
                    return Ok(());
                }
                let top = sys
                    .mounted_target(&target)
                    .map_err(|e| InitFailure::new(what("find the mount of"), e))?;
                if !extra.is_empty() {
                    self.remount(sys, top.path(), extra | bind)
                        .map_err(|e| InitFailure::new(what("remount"), e))?;
                }
                top
            }
            "cgroup" => {
                let target = open_target(FileKind::Dir)?;
                self.mount_cgroup(sys, &target, opts.flags)?;
                if opts.propagation.is_empty() {
                    return Ok(());
                }
                sys.mounted_target(&target)
                    .map_err(|e| InitFailure::new(what("find the mount of"), e))?
            }
            typ => {
                let target = open_target(FileKind::Dir)?;
                let source = m.source.clone().unwrap_or_else(|| PathBuf::from(typ));
                sys.mount(Some(&source), target.path(), Some(typ), opts.flags, data)
                    .map_err(|e| InitFailure::new(what("mount"), e))?;
                if opts.propagation.is_empty() {
                    return Ok(());
                }
                sys.mounted_target(&target)
                    .map_err(|e| InitFailure::new(what("find the mount of"), e))?
            }
        };
        if !opts.propagation.is_empty() {
            sys.mount(None, top.path(), None, opts.propagation, None)
                .map_err(|e| InitFailure::new(what("set propagation of"), e))?;
        }
        Ok(())
    }

    /// Remounts a bind mount with `flags`, keeping the flags a user namespace may not clear.
    fn remount(&self, sys: &dyn Syscalls, dest: &Path, flags: MsFlags) -> io::Result<()> {
        let mut flags = flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
        if self.userns {
            let locked =
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
            flags |= sys.mount_flags(dest)? & locked;
        }
        sys.mount(None, dest, None, flags, None)
    }

    fn mount_cgroup(
        &self,
        sys: &dyn Syscalls,
        target: &MountTarget,
        flags: MsFlags,
    ) -> Result<(), InitFailure> {
        let fail = |step: String| move |e| InitFailure::new(step, e);
        let shown = target.path().display();
        let base = flags - MsFlags::MS_RDONLY;
        if !self.cgroup_binds.is_empty() {
            return self.bind_cgroups(sys, target, flags);
        }
        match &self.cgroup_layout {
            CgroupMountLayout::Unified => sys
                .mount(
                    Some(Path::new("cgroup2")),
                    target.path(),
                    Some("cgroup2"),
                    flags,
                    None,
                )
                .map_err(fail(format!("mount cgroup2 on {shown}"))),
            CgroupMountLayout::V1 {
                hierarchies,
                hybrid_unified,
            } => {
                sys.mount(
                    Some(Path::new("tmpfs")),
                    target.path(),
                    Some("tmpfs"),
                    base,
                    Some("mode=755"),
                )
                .map_err(fail(format!("mount tmpfs on {shown}")))?;
                // Everything below goes into that new tmpfs, reached through its own handle.
                let top = sys
                    .mounted_target(target)
                    .map_err(fail(format!("find the tmpfs on {shown}")))?;
                let dest = top.path();
                let subdir = |name: &str| {
                    sys.open_mount_target(dest, Path::new(name), Some(FileKind::Dir))
                        .map_err(fail(format!("mkdir {}", dest.join(name).display())))
                };
                for (name, options) in hierarchies {
                    let dir = subdir(name)?;
                    sys.mount(
                        Some(Path::new("cgroup")),
                        dir.path(),
                        Some("cgroup"),
                        flags,
                        Some(options),
                    )
                    .map_err(fail(format!(
                        "mount cgroup {options} on {}",
                        dest.join(name).display()
                    )))?;
                    // `cpu,cpuacct` is also reachable as `cpu` and `cpuacct`, as on the host.
                    if name.contains(',') {
                        for part in name.split(',') {
                            let link = dest.join(part);
                            sys.symlink(Path::new(name), &link)
                                .map_err(fail(format!("symlink {}", link.display())))?;
                        }
                    }
                }
                if *hybrid_unified {
                    let dir = subdir("unified")?;
                    sys.mount(
                        Some(Path::new("cgroup2")),
                        dir.path(),
                        Some("cgroup2"),
                        flags,
                        None,
                    )
                    .map_err(fail(format!(
                        "mount cgroup2 on {}",
                        dest.join("unified").display()
                    )))?;
                }
                if flags.contains(MsFlags::MS_RDONLY) {
                    sys.mount(
                        None,
                        dest,
                        None,
                        base | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                        Some("mode=755"),
                    )
                    .map_err(fail(format!("remount {} read-only", dest.display())))?;
                }
                Ok(())
            }
        }
    }

    fn bind_cgroups(
        &self,
        sys: &dyn Syscalls,
        target: &MountTarget,
        flags: MsFlags,
    ) -> Result<(), InitFailure> {
        let fail = |step: String| move |e| InitFailure::new(step, e);
        let base = flags - MsFlags::MS_RDONLY;
        let v1 = matches!(self.cgroup_layout, CgroupMountLayout::V1 { .. });
        let tmpfs = if v1 {
            sys.mount(
                Some(Path::new("tmpfs")),
                target.path(),
                Some("tmpfs"),
                base,
                Some("mode=755"),
            )
            .map_err(fail(format!("mount tmpfs on {}", target.path().display())))?;
            Some(sys.mounted_target(target).map_err(fail(format!(
                "find the tmpfs on {}",
                target.path().display()
            )))?)
        } else {
            None
        };
        let holder = tmpfs.as_ref().unwrap_or(target);
        let dest = holder.path();
        for (name, host) in &self.cgroup_binds {
            let shown = dest.join(name);
            let sub;
            let dir = if name.is_empty() {
                holder
            } else {
                sub = sys
                    .open_mount_target(dest, Path::new(name), Some(FileKind::Dir))
                    .map_err(fail(format!("mkdir {}", shown.display())))?;
                &sub
            };
            sys.mount(
                Some(host),
                dir.path(),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(fail(format!(
                "bind cgroup {} on {}",
                host.display(),
                shown.display()
            )))?;
            let top = sys
                .mounted_target(dir)
                .map_err(fail(format!("find the mount on {}", shown.display())))?;
            self.remount(
                sys,
                top.path(),
                base | (flags & MsFlags::MS_RDONLY) | MsFlags::MS_REC,
            )
            .map_err(fail(format!("remount {}", shown.display())))?;
            if name.contains(',') {
                for part in name.split(',') {
                    let link = dest.join(part);
                    sys.symlink(Path::new(name), &link)
                        .map_err(fail(format!("symlink {}", link.display())))?;
                }
            }
        }
        Ok(())
    }

    fn create_devices(&self, sys: &dyn Syscalls) -> Result<(), InitFailure> {
        if self.devices.is_empty() {
            return Ok(());
        }
        // Nodes are made in their directory's handle, resolved inside the rootfs, never by a
        // host path that a symlink in the image or a shared volume could redirect. Most share
        // /dev: its handle is kept from one to the next.
        let mut parent_of: Option<(PathBuf, MountTarget)> = None;
        for d in &self.devices {
            let step = format!("create device {}", d.path.display());
            let (dir, name) = match (d.path.parent(), d.path.file_name()) {
                (Some(dir), Some(name)) => (dir, name),
                _ => {
                    return Err(InitFailure::new(
                        step,
                        io::Error::from_raw_os_error(libc::EINVAL),
                    ))
                }
            };
            // A FIFO needs no privilege to make, in a user namespace too.
            if self.bind_devices && d.kind != 'p' {
                let target = sys
                    .open_mount_target(&self.rootfs, &d.path, Some(FileKind::File))
                    .map_err(|e| InitFailure::new(step.clone(), e))?;
                sys.mount(Some(&d.path), target.path(), None, MsFlags::MS_BIND, None)
                    .map_err(|e| InitFailure::new(step, e))?;
                continue;
            }
            if parent_of.as_ref().is_none_or(|(p, _)| p != dir) {
                let target = sys
                    .open_mount_target(&self.rootfs, dir, Some(FileKind::Dir))
                    .map_err(|e| InitFailure::new(format!("mkdir for {}", d.path.display()), e))?;
                parent_of = Some((dir.to_path_buf(), target));
            }
            let Some((_, parent)) = parent_of.as_ref() else {
                continue;
            };
            let dest = parent.path().join(name);
            let (kind, dev) = match d.kind {
                'b' => (SFlag::S_IFBLK, nix::sys::stat::makedev(d.major, d.minor)),
                'p' => (SFlag::S_IFIFO, 0),
                _ => (SFlag::S_IFCHR, nix::sys::stat::makedev(d.major, d.minor)),
            };
            match sys.mknod(&dest, kind, d.mode, dev) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => other.map_err(|e| InitFailure::new(step.clone(), e))?,
            }
            if d.uid != 0 || d.gid != 0 {
                sys.lchown(&dest, d.uid, d.gid)
                    .map_err(|e| InitFailure::new(step, e))?;
            }
        }
        let dev_target = match parent_of {
            Some((p, t)) if p == Path::new("/dev") => t,
            _ => sys
                .open_mount_target(&self.rootfs, Path::new("/dev"), Some(FileKind::Dir))
                .map_err(|e| InitFailure::new("open /dev", e))?,
        };
        let dev = dev_target.path();
        // Like runc: /dev/core only where the host has a /proc/kcore.
        let kcore = sys
            .lstat_kind(Path::new("/proc/kcore"))
            .ok()
            .flatten()
            .is_some();
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
            ("core", "/proc/kcore"),
        ] {
            if link == "core" && !kcore {
                continue;
            }
            let path = dev.join(link);
            match sys.symlink(Path::new(target), &path) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => other.map_err(|e| InitFailure::new(format!("symlink /dev/{link}"), e))?,
            }
        }
        Ok(())
    }

    fn pivot(&self, sys: &dyn Syscalls) -> Result<(), InitFailure> {
        let dot = Path::new(".");
        sys.chdir(&self.rootfs)
            .map_err(|e| InitFailure::new(format!("chdir {}", self.rootfs.display()), e))?;
        // pivot_root(".", ".") stacks the old root under the new one; detach it right away.
        sys.pivot_root(dot, dot)
            .map_err(|e| InitFailure::new("pivot_root", e))?;
        sys.mount(None, dot, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
            .map_err(|e| InitFailure::new("make old root slave", e))?;
        sys.umount2(dot, MntFlags::MNT_DETACH)
            .map_err(|e| InitFailure::new("detach old root", e))?;
        sys.chdir(Path::new("/"))
            .map_err(|e| InitFailure::new("chdir /", e))?;
        if !self.default_propagation() {
            let propagation = MsFlags::from_bits_truncate(self.propagation);
            sys.mount(None, Path::new("/"), None, propagation, None)
                .map_err(|e| InitFailure::new("apply rootfsPropagation to /", e))?;
        }
        Ok(())
    }

    /// The propagation is the default `rprivate`: nothing to undo or apply around pivot_root.
    fn default_propagation(&self) -> bool {
        MsFlags::from_bits_truncate(self.propagation) == MsFlags::MS_PRIVATE | MsFlags::MS_REC
    }

    /// Read-only paths, masked paths and a read-only root, after `pivot_root`.
    pub fn finish_rootfs(&self, sys: &dyn Syscalls) -> Result<(), InitFailure> {
        if self.no_mount_ns {
            return Ok(());
        }
        for p in &self.readonly_paths {
            let step = || format!("make {} read-only", p.display());
            if sys
                .lstat_kind(p)
                .map_err(|e| InitFailure::new(step(), e))?
                .is_none()
            {
                continue;
            }
            sys.mount(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                .map_err(|e| InitFailure::new(step(), e))?;
            let keep = sys
                .mount_flags(p)
                .map_err(|e| InitFailure::new(step(), e))?
                & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
            sys.mount(
                Some(p),
                p,
                None,
                keep | MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_REC,
                None,
            )
            .map_err(|e| InitFailure::new(step(), e))?;
        }
        for p in &self.masked_paths {
            let step = || format!("mask {}", p.display());
            match sys.lstat_kind(p).map_err(|e| InitFailure::new(step(), e))? {
                None => continue,
                Some(FileKind::Dir) => sys.mount(
                    Some(Path::new("tmpfs")),
                    p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None,
                ),
                Some(_) => sys.mount(
                    Some(Path::new("/dev/null")),
                    p,
                    None,
                    MsFlags::MS_BIND,
                    None,
                ),
            }
            .map_err(|e| InitFailure::new(step(), e))?;
        }
        if self.readonly_root {
            let root = Path::new("/");
            let keep = sys
                .mount_flags(root)
                .map_err(|e| InitFailure::new("remount / read-only", e))?;
            sys.mount(
                None,
                root,
                None,
                keep | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
            )
            .map_err(|e| InitFailure::new("remount / read-only", e))?;
        }
        Ok(())
    }
}

/// A failed setup step in the container's init, with the OS error.
#[derive(Debug)]
pub struct InitFailure {
    /// What was being done.
    pub step: String,
    /// The OS error.
    pub error: io::Error,
}

impl InitFailure {
    /// A failure of `step`.
    pub fn new(step: impl Into<String>, error: io::Error) -> InitFailure {
        InitFailure {
            step: step.into(),
            error,
        }
    }
}

/// Strips `.` and trailing slashes without touching the filesystem.
fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Joins `path` under `root` resolving symlinks as if `root` were `/`: no `..` and no symlink
/// (absolute or relative) can lead out of `root`.
pub fn secure_join(sys: &dyn Syscalls, root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&c);
        if sys.lstat_kind(&root.join(&candidate))? == Some(FileKind::Symlink) {
            links += 1;
            if links > 40 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = sys.read_link(&root.join(&candidate))?;
            if target.is_absolute() {
                resolved = PathBuf::new();
            }
            for c in components(&target).into_iter().rev() {
                pending.push_front(c);
            }
        } else {
            resolved = candidate;
        }
    }
    Ok(root.join(resolved))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::syscalls::RecordingSyscalls;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&["nosuid", "rbind", "ro", "rslave", "mode=755", "size=65536k"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(parse_options(&["ro", "rw"]).flags, MsFlags::empty());
    }

    #[test]
    fn every_propagation_name_and_its_recursive_form() {
        for (name, flag) in [
            ("private", MsFlags::MS_PRIVATE),
            ("shared", MsFlags::MS_SHARED),
            ("slave", MsFlags::MS_SLAVE),
            ("unbindable", MsFlags::MS_UNBINDABLE),
        ] {
            assert_eq!(parse_options(&[name]).propagation, flag, "{name}");
            let recursive = format!("r{name}");
            assert_eq!(
                parse_options(&[recursive.as_str()]).propagation,
                flag | MsFlags::MS_REC
            );
            assert_eq!(parse_propagation(Some(name)).unwrap(), flag);
        }
        assert_eq!(
            parse_propagation(None).unwrap(),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert!(parse_propagation(Some("ro")).is_err());
        assert!(parse_propagation(Some("rro")).is_err());
        assert_eq!(parse_options(&["rw"]).propagation, MsFlags::empty());
    }

    #[test]
    fn secure_join_keeps_symlinks_inside_the_root() {
        let sys = RecordingSyscalls::new()
            .with_symlink("/r/etc", "/../../host")
            .with_symlink("/r/a", "../../b")
            .with_path("/r/host", FileKind::Dir);
        assert_eq!(
            secure_join(&sys, Path::new("/r"), Path::new("/etc/x")).unwrap(),
            Path::new("/r/host/x")
        );
        assert_eq!(
            secure_join(&sys, Path::new("/r"), Path::new("/a/c")).unwrap(),
            Path::new("/r/b/c")
        );
        assert_eq!(
            secure_join(&sys, Path::new("/r"), Path::new("/../../x")).unwrap(),
            Path::new("/r/x")
        );
        let looping = RecordingSyscalls::new().with_symlink("/r/l", "/l");
        assert!(secure_join(&looping, Path::new("/r"), Path::new("/l")).is_err());
    }

    fn plan(spec: &Spec) -> MountPlan {
        MountPlan::from_spec(
            spec,
            Path::new("/rootfs"),
            &[],
            CgroupMountLayout::Unified,
            false,
        )
        .unwrap()
    }

    #[test]
    fn rootfs_setup_mounts_in_order_then_pivots() {
        let spec = crate::spec::default_spec(&["true"]);
        let p = MountPlan {
            rootfs_mounts: vec![RootfsMount {
                typ: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    "lowerdir=/l1:/l2".into(),
                    "upperdir=/u".into(),
                    "workdir=/w".into(),
                ],
            }],
            ..plan(&spec)
        };
        let sys = RecordingSyscalls::new();
        p.setup_rootfs(&sys).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], "mount - / - REC|PRIVATE -");
        assert_eq!(
            calls[1],
            "mount overlay /rootfs overlay 0 lowerdir=/l1:/l2,upperdir=/u,workdir=/w"
        );
        assert_eq!(calls[2], "mount /rootfs /rootfs - BIND|REC -");
        let pos = |needle: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} missing in {calls:#?}"))
        };
        assert!(pos("mount proc /rootfs/proc proc") < pos("pivot_root"));
        assert!(
            pos("mount tmpfs /rootfs/dev tmpfs NOSUID|STRICTATIME mode=755,size=65536k")
                < pos("mknod /rootfs/dev/null c 666 1:3")
        );
        assert!(pos("mount devpts /rootfs/dev/pts devpts NOSUID|NOEXEC newinstance,ptmxmode=0666,mode=0620,gid=5") > pos("mount tmpfs /rootfs/dev"));
        assert!(pos("mount sysfs /rootfs/sys sysfs RDONLY|NOSUID|NODEV|NOEXEC") > 0);
        assert!(
            pos("mount cgroup2 /rootfs/sys/fs/cgroup cgroup2 RDONLY|NOSUID|NODEV|NOEXEC|RELATIME")
                > 0
        );
        assert!(pos("symlink /rootfs/dev/ptmx -> pts/ptmx") < pos("pivot_root"));
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("symlink /rootfs/dev/core")));
        let tail: Vec<_> = calls[calls.len() - 5..].to_vec();
        assert_eq!(
            tail,
            vec![
                "chdir /rootfs",
                "pivot_root . .",
                "mount - . - REC|SLAVE -",
                "umount2 . MntFlags(MNT_DETACH)",
                "chdir /"
            ]
        );
    }

    #[test]
    fn bind_mounts_are_remounted_read_only_and_files_get_a_file_target() {
        let mut spec = crate::spec::default_spec(&["true"]);
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/data")
                .typ("bind")
                .source("/host/data")
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .unwrap(),
        );
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/etc/hosts")
                .typ("bind")
                .source("/host/hosts")
                .options(vec!["bind".to_string()])
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
        let sys = RecordingSyscalls::new()
            .with_path("/host/data", FileKind::Dir)
            .with_path("/host/hosts", FileKind::File);
        plan(&spec).setup_rootfs(&sys).unwrap();
        let calls = sys.calls();
        let i = calls
            .iter()
            .position(|c| c == "mount /host/data /rootfs/data - BIND|REC -")
            .unwrap();
        assert_eq!(
            calls[i + 1],
            "mount - /rootfs/data - RDONLY|REMOUNT|BIND|REC -"
        );
        assert!(calls.contains(&"open_target /rootfs/etc/hosts file".to_string()));
        assert!(calls.contains(&"open_target /rootfs/data dir".to_string()));
        assert!(calls.contains(&"mount /host/hosts /rootfs/etc/hosts - BIND -".to_string()));
    }

    #[test]
    fn mount_targets_resolve_inside_the_rootfs() {
        let mut spec = crate::spec::default_spec(&["true"]);
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/v2/d/target")
                .typ("tmpfs")
                .source("tmpfs")
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
        // A shared directory on the way that was swapped for a link to a host directory.
        let sys = RecordingSyscalls::new()
            .with_path("/rootfs/v2", FileKind::Dir)
            .with_symlink("/rootfs/v2/d", "/../../host");
        plan(&spec).setup_rootfs(&sys).unwrap();
        let calls = sys.calls();
        assert!(
            calls.contains(&"mount tmpfs /rootfs/host/target tmpfs 0 -".to_string()),
            "{calls:#?}"
        );
        assert!(!calls.iter().any(|c| c.contains(" /host")), "{calls:#?}");
    }

    #[test]
    fn the_root_itself_is_no_mount_target() {
        let mut spec = crate::spec::default_spec(&["true"]);
        spec.set_mounts(Some(vec![oci_spec::runtime::MountBuilder::default()
            .destination("/..")
            .typ("tmpfs")
            .source("tmpfs")
            .build()
            .unwrap()]));
        let err = plan(&spec)
            .setup_rootfs(&RecordingSyscalls::new())
            .unwrap_err();
        assert_eq!(err.step, "create target of tmpfs on /..");
        assert_eq!(err.error.raw_os_error(), Some(libc::EINVAL));
    }

    /// The Linux resolution, on a real directory tree (no mount, so no root needed): links
    /// out of the root and `..` land inside it, missing directories and files are made there.
    #[test]
    fn linux_targets_are_opened_and_created_inside_the_root() {
        use crate::syscalls::LinuxSyscalls;
        use std::os::unix::fs::symlink;
        let host = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("v2")).unwrap();
        symlink(host.path(), r.join("v2/d")).unwrap();
        symlink("../../../../..", r.join("up")).unwrap();
        let sys = LinuxSyscalls;
        let t = sys
            .open_mount_target(r, Path::new("/v2/d/target"), Some(FileKind::Dir))
            .unwrap();
        let inside = r
            .join(host.path().strip_prefix("/").unwrap())
            .join("target");
        assert_eq!(std::fs::read_link(t.path()).unwrap(), inside);
        assert!(inside.is_dir());
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
        let f = sys
            .open_mount_target(r, Path::new("/up/../etc/hosts"), Some(FileKind::File))
            .unwrap();
        assert_eq!(std::fs::read_link(f.path()).unwrap(), r.join("etc/hosts"));
        assert!(r.join("etc/hosts").is_file());
        let missing = sys.open_mount_target(r, Path::new("/nope"), None);
        assert_eq!(missing.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let top = sys.open_mount_target(r, Path::new("/up"), Some(FileKind::Dir));
        assert_eq!(top.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        // Nothing is mounted on the target yet: its "mount" is refused.
        assert_eq!(
            sys.mounted_target(&t).unwrap_err().raw_os_error(),
            Some(libc::EBUSY)
        );
    }

    #[test]
    fn masked_and_readonly_paths_after_pivot() {
        let spec = crate::spec::default_spec(&["true"]);
        let sys = RecordingSyscalls::new()
            .with_path("/proc/kcore", FileKind::File)
            .with_path("/proc/acpi", FileKind::Dir)
            .with_path("/proc/sys", FileKind::Dir);
        plan(&spec).finish_rootfs(&sys).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                "mount /proc/sys /proc/sys - BIND|REC -",
                "mount /proc/sys /proc/sys - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|BIND|REC -",
                "mount tmpfs /proc/acpi tmpfs RDONLY -",
                "mount /dev/null /proc/kcore - BIND -",
            ]
        );
    }

    #[test]
    fn v1_cgroup_layout_mounts_each_hierarchy() {
        let spec = crate::spec::default_spec(&["true"]);
        let layout = CgroupMountLayout::V1 {
            hierarchies: vec![
                ("cpu,cpuacct".into(), "cpu,cpuacct".into()),
                ("memory".into(), "memory".into()),
            ],
            hybrid_unified: true,
        };
        let p = MountPlan::from_spec(&spec, Path::new("/r"), &[], layout, false).unwrap();
        let sys = RecordingSyscalls::new();
        p.setup_rootfs(&sys).unwrap();
        let calls = sys.calls();
        for want in [
            "mount tmpfs /r/sys/fs/cgroup tmpfs NOSUID|NODEV|NOEXEC|RELATIME mode=755",
            "mount cgroup /r/sys/fs/cgroup/cpu,cpuacct cgroup RDONLY|NOSUID|NODEV|NOEXEC|RELATIME cpu,cpuacct",
            "symlink /r/sys/fs/cgroup/cpu -> cpu,cpuacct",
            "mount cgroup2 /r/sys/fs/cgroup/unified cgroup2 RDONLY|NOSUID|NODEV|NOEXEC|RELATIME -",
            "mount - /r/sys/fs/cgroup - RDONLY|NOSUID|NODEV|NOEXEC|REMOUNT|RELATIME mode=755",
        ] {
            assert!(calls.iter().any(|c| c == want), "{want} missing in {calls:#?}");
        }
    }

    /// Issue #16: `rootfsPropagation: shared` made pivot_root fail (EINVAL) because the
    /// mount holding the rootfs stayed shared; it is made private first, and the requested
    /// propagation is applied to the new `/` after pivot_root.
    #[test]
    fn shared_root_propagation_privatizes_the_rootfs_parent_and_applies_after_pivot() {
        let mut spec = crate::spec::default_spec(&["true"]);
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_rootfs_propagation(Some("shared".into()));
        let sys = RecordingSyscalls::new().with_shared_root();
        plan(&spec).setup_rootfs(&sys).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], "mount - / - SHARED -");
        assert_eq!(calls[1], "parent_mount /rootfs");
        assert_eq!(calls[2], "mount - / - PRIVATE -");
        assert_eq!(calls[3], "mount /rootfs /rootfs - BIND|REC -");
        assert_eq!(calls.last().unwrap(), "mount - / - SHARED -");
        // The default (rprivate) costs no lookup.
        let sys = RecordingSyscalls::new().with_shared_root();
        plan(&crate::spec::default_spec(&["true"]))
            .setup_rootfs(&sys)
            .unwrap();
        assert!(!sys.calls().iter().any(|c| c.starts_with("parent_mount")));
    }

    #[test]
    fn parent_mount_is_the_longest_prefix_and_knows_shared() {
        let info: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    30 22 0:5 / /tmp rw master:3 - tmpfs tmpfs rw\n\
                    31 22 0:6 / /tmp\\040x rw shared:9 - tmpfs tmpfs rw\n";
        assert_eq!(
            crate::syscalls::parent_mount_in(info, Path::new("/tmp/b/rootfs")),
            Some((PathBuf::from("/tmp"), false))
        );
        assert_eq!(
            crate::syscalls::parent_mount_in(info, Path::new("/tmp x/r")),
            Some((PathBuf::from("/tmp x"), true))
        );
        assert_eq!(
            crate::syscalls::parent_mount_in(info, Path::new("/var")),
            Some((PathBuf::from("/"), true))
        );
    }

    #[test]
    fn fifo_devices_are_made_with_mknod_even_in_a_user_namespace() {
        let mut spec = crate::spec::default_spec(&["true"]);
        let fifo: oci_spec::runtime::LinuxDevice = serde_json::from_value(serde_json::json!(
            {"path": "/dev/myfifo", "type": "p", "fileMode": 420, "uid": 0, "gid": 0}
        ))
        .unwrap();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_devices(Some(vec![fifo]));
        let p = MountPlan::from_spec(
            &spec,
            Path::new("/rootfs"),
            &[],
            CgroupMountLayout::Unified,
            true,
        )
        .unwrap();
        let sys = RecordingSyscalls::new();
        p.setup_rootfs(&sys).unwrap();
        let calls = sys.calls();
        assert!(
            calls.contains(&"mknod /rootfs/dev/myfifo p 644 0:0".to_string()),
            "{calls:#?}"
        );
        // The character devices are bound from the host in a user namespace.
        assert!(calls.contains(&"mount /dev/null /rootfs/dev/null - BIND -".to_string()));
    }

    #[test]
    fn without_a_mount_namespace_nothing_is_mounted() {
        let mut spec = crate::spec::default_spec(&["true"]);
        spec.set_mounts(Some(vec![]));
        let mut p = plan(&spec);
        p.no_mount_ns = true;
        let sys = RecordingSyscalls::new();
        p.setup_rootfs(&sys).unwrap();
        p.finish_rootfs(&sys).unwrap();
        assert_eq!(sys.calls(), vec!["chroot /rootfs", "chdir /"]);
    }

    #[test]
    fn a_failing_step_is_named() {
        let spec = crate::spec::default_spec(&["true"]);
        let sys = RecordingSyscalls::new().failing("mount proc", libc::EPERM);
        let err = plan(&spec).setup_rootfs(&sys).unwrap_err();
        assert_eq!(err.step, "mount proc on /proc");
        assert_eq!(err.error.raw_os_error(), Some(libc::EPERM));
    }
}
