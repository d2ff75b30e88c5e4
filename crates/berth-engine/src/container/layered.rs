//! Read-only lookups in an image's layers as overlayfs would show them, without mounting.
//!
//! Used before a container starts: to find the command (so a missing or non-executable
//! binary fails with 127/126 before anything is set up) and to read `/etc/passwd` and
//! `/etc/group` for `--user`.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_oci::in_root;

/// The largest /etc/passwd or /etc/group (or other file) read through a tree.
const MAX_FILE: u64 = 16 << 20;

/// Files of a container's or an image's root file system, read from the host without ever
/// leaving that root: every symlink in it resolves inside it.
pub trait RootFiles {
    /// The bytes of the regular file at `path` (absolute inside the root); `None` when it
    /// is absent, not a regular file, larger than 16 MiB or unreadable.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

/// The layers of a root filesystem, top-most first (the container's upper dir, then the
/// image's layers from the last to the first), looked up as overlayfs merges them.
///
/// Nothing is resolved by host path operations: each layer is opened once, each path
/// component is looked up in each layer's directory handle without following it (an
/// intermediate symlink in a lower layer, `etc -> /host/dir` under an upper `etc/`, is
/// never walked through), and symlinks are resolved here, within the merged view:
/// absolute targets from the tree's root, `..` stopping at it, at most 40 of them.
#[derive(Debug)]
pub struct LayeredTree {
    layers: Vec<PathBuf>,
    /// Each layer's directory opened for reading, `None` for one that cannot be opened
    /// (treated as empty).
    roots: Vec<Option<OwnedFd>>,
}

/// What a command lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLookup {
    /// An executable regular file at this path (inside the container).
    Found(String),
    /// No such file (exit 127).
    NotFound,
    /// Present but not executable, or a directory (exit 126).
    NotExecutable(String),
}

const MAX_SYMLINKS: usize = 40;

/// One directory of the merged view: the layers' directories that show through in it,
/// top-most first (none below an opaque one or a non-directory).
struct MergedDir {
    dirs: Vec<(usize, OwnedFd)>,
}

/// What one name in a merged directory is.
enum Lookup {
    /// A directory (the top-most one's metadata).
    Dir(MergedDir, fs::Metadata),
    /// A symlink, with its target as written.
    Link(Vec<u8>),
    /// Anything else, from `layer`, with an `O_PATH` handle of it.
    Other {
        layer: usize,
        file: OwnedFd,
        md: fs::Metadata,
    },
}

/// The final entry of a resolved path.
struct Entry {
    /// The host path it was found at (for display and comparisons, never to be opened).
    host: PathBuf,
    md: fs::Metadata,
    /// An `O_PATH` handle of a non-directory; `None` for a directory.
    file: Option<OwnedFd>,
}

/// What one layer's directory holds under a name.
enum Probe {
    Absent,
    Whiteout,
    Dir(OwnedFd, fs::Metadata),
    Other(OwnedFd, fs::Metadata),
}

/// Looks `name` up in one layer directory without following anything: a directory is
/// opened for reading (`O_NOFOLLOW | O_DIRECTORY`), anything else only as an `O_PATH`
/// handle (a device or FIFO of an image is never opened).
fn probe(dir: &OwnedFd, name: &[u8]) -> Probe {
    let md_of = |fd: OwnedFd| -> io::Result<(OwnedFd, fs::Metadata)> {
        let f = File::from(fd);
        let md = f.metadata()?;
        Ok((OwnedFd::from(f), md))
    };
    match in_root::open_subdir(dir, name) {
        Ok(fd) => match md_of(fd) {
            Ok((fd, md)) => Probe::Dir(fd, md),
            Err(_) => Probe::Absent,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Probe::Absent,
        Err(_) => match in_root::open_entry(dir, name).and_then(md_of) {
            Ok((_, md)) if md.file_type().is_char_device() && md.rdev() == 0 => Probe::Whiteout,
            Ok((fd, md)) => Probe::Other(fd, md),
            Err(_) => Probe::Absent,
        },
    }
}

impl MergedDir {
    /// Looks `name` up as overlayfs would: the top-most layer that has it decides; a
    /// whiteout hides it; directories merge down to an opaque one or a non-directory.
    fn lookup(&self, name: &[u8]) -> Option<Lookup> {
        let mut top: Option<fs::Metadata> = None;
        let mut dirs = Vec::new();
        for (layer, dir) in &self.dirs {
            match probe(dir, name) {
                Probe::Absent => continue,
                Probe::Whiteout => break,
                Probe::Dir(fd, md) => {
                    let opaque = in_root::is_opaque(&fd);
                    dirs.push((*layer, fd));
                    top.get_or_insert(md);
                    if opaque {
                        break;
                    }
                }
                // Below a directory, a non-directory is hidden; on top, it is the entry.
                Probe::Other(_, _) if top.is_some() => break,
                Probe::Other(_, md) if md.file_type().is_symlink() => {
                    return in_root::read_link(dir, name).ok().map(Lookup::Link);
                }
                Probe::Other(file, md) => {
                    return Some(Lookup::Other {
                        layer: *layer,
                        file,
                        md,
                    })
                }
            }
        }
        top.map(|md| Lookup::Dir(MergedDir { dirs }, md))
    }
}

impl LayeredTree {
    /// A tree over `layers`, top-most first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        let roots = layers
            .iter()
            .map(|l| {
                File::open(l)
                    .ok()
                    .filter(|f| f.metadata().is_ok_and(|m| m.is_dir()))
                    .map(OwnedFd::from)
            })
            .collect();
        LayeredTree { layers, roots }
    }

    /// The merged root directory (fresh handles: lookups consume levels as they go).
    fn root_dir(&self) -> MergedDir {
        MergedDir {
            dirs: self
                .roots
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((i, r.as_ref()?.try_clone().ok()?)))
                .collect(),
        }
    }

    /// Resolves `path` (absolute inside the container) to its final entry, following
    /// symlinks within the tree.
    fn entry(&self, path: &str) -> Option<Entry> {
        self.entry_and_dir(path).map(|(e, _)| e)
    }

    /// [`Self::entry`], with the merged directory when the entry is one.
    fn entry_and_dir(&self, path: &str) -> Option<(Entry, Option<MergedDir>)> {
        let mut pending: Vec<Vec<u8>> = split(path.as_bytes());
        pending.reverse();
        // The directories walked so far, each with its name.
        let mut stack: Vec<(Vec<u8>, MergedDir, fs::Metadata)> = Vec::new();
        let root = self.root_dir();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_slice() {
                b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let here = stack.last().map_or(&root, |(_, d, _)| d);
            match here.lookup(&comp)? {
                Lookup::Dir(dir, md) => stack.push((comp, dir, md)),
                Lookup::Link(target) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return None;
                    }
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    pending.extend(split(&target).into_iter().rev());
                }
                Lookup::Other { layer, file, md } => {
                    // A file with more to walk below it: ENOTDIR.
                    if !pending.is_empty() {
                        return None;
                    }
                    let mut host = self.layers.get(layer)?.clone();
                    host.extend(stack.iter().map(|(n, _, _)| os(n)));
                    host.push(os(&comp));
                    return Some((
                        Entry {
                            host,
                            md,
                            file: Some(file),
                        },
                        None,
                    ));
                }
            }
        }
        let (layer, md) = match stack.last() {
            Some((_, d, md)) => (d.dirs.first()?.0, md.clone()),
            None => {
                let (layer, top) = root.dirs.first()?;
                let md = File::from(top.try_clone().ok()?).metadata().ok()?;
                (*layer, md)
            }
        };
        let mut host = self.layers.get(layer)?.clone();
        host.extend(stack.iter().map(|(n, _, _)| os(n)));
        let dir = match stack.pop() {
            Some((_, d, _)) => d,
            None => root,
        };
        Some((
            Entry {
                host,
                md,
                file: None,
            },
            Some(dir),
        ))
    }

    /// The directory at `path` (absolute inside the tree, symlinks resolved within it), for
    /// listing; `None` when it is absent or not a directory.
    pub fn open_dir(&self, path: &str) -> Option<TreeDir> {
        let (entry, dir) = self.entry_and_dir(path)?;
        Some(TreeDir {
            dir: dir?,
            md: entry.md,
        })
    }

    /// Resolves `path` (absolute inside the container), following symlinks within the tree.
    /// Returns the host path of the final entry (to compare, never to open: only this
    /// tree's handles are safe to read through) and its metadata.
    pub fn resolve(&self, path: &str) -> Option<(PathBuf, fs::Metadata)> {
        self.entry(path).map(|e| (e.host, e.md))
    }

    /// Reads a file's bytes through the tree (None when absent, not a regular file, larger
    /// than 16 MiB or unreadable).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let file = self.entry(path)?.file?;
        in_root::read_regular(file, MAX_FILE).ok()
    }

    /// True when `path` resolves to a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(path).is_some_and(|(_, md)| md.is_dir())
    }

    /// Looks a command up as the container's `execve` would: a name with a `/` directly,
    /// otherwise in each directory of `path_env`.
    pub fn find_command(&self, cmd: &str, cwd: &str, path_env: &str) -> CommandLookup {
        let check = |p: &str| -> Option<CommandLookup> {
            let (_, md) = self.resolve(p)?;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                Some(CommandLookup::Found(p.to_string()))
            } else {
                Some(CommandLookup::NotExecutable(p.to_string()))
            }
        };
        if cmd.contains('/') {
            let full = if cmd.starts_with('/') {
                cmd.to_string()
            } else {
                format!("{}/{}", cwd.trim_end_matches('/'), cmd)
            };
            return check(&full).unwrap_or(CommandLookup::NotFound);
        }
        let mut first_bad = None;
        for dir in path_env.split(':').filter(|d| !d.is_empty()) {
            let p = format!("{}/{}", dir.trim_end_matches('/'), cmd);
            match check(&p) {
                Some(CommandLookup::Found(p)) => return CommandLookup::Found(p),
                Some(bad) if first_bad.is_none() => first_bad = Some(bad),
                _ => {}
            }
        }
        // As Go's LookPath: a non-executable match still means "not found in $PATH".
        let _ = first_bad;
        CommandLookup::NotFound
    }
}

/// A directory of the merged view, for walking it without leaving the tree (see
/// [`LayeredTree::open_dir`]): its entries are looked up as overlayfs shows them, and
/// nothing in it is ever followed.
pub struct TreeDir {
    dir: MergedDir,
    md: fs::Metadata,
}

impl std::fmt::Debug for TreeDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeDir").finish_non_exhaustive()
    }
}

/// One entry of a [`TreeDir`].
#[derive(Debug)]
pub enum TreeEntry {
    /// A directory: open it with [`TreeDir::subdir`].
    Dir {
        /// Its name.
        name: Vec<u8>,
        /// The top-most layer's metadata of it.
        md: fs::Metadata,
    },
    /// A symlink, with its target as written (never followed).
    Symlink {
        /// Its name.
        name: Vec<u8>,
        /// Its target.
        target: Vec<u8>,
    },
    /// Anything else (a regular file, a device, a FIFO), with an `O_PATH` handle of it.
    Other {
        /// Its name.
        name: Vec<u8>,
        /// The handle (read a regular file through `/proc/self/fd/N`).
        file: OwnedFd,
        /// Its metadata.
        md: fs::Metadata,
    },
}

impl TreeDir {
    /// The directory's own metadata (its top-most layer's).
    pub fn metadata(&self) -> &fs::Metadata {
        &self.md
    }

    /// Its entries by name: the union of the layers' names, each resolved as overlayfs
    /// would (whiteouts hide, the top-most layer decides).
    pub fn entries(&self) -> Vec<TreeEntry> {
        let mut names = std::collections::BTreeSet::new();
        for (_, fd) in &self.dir.dirs {
            let Ok(dir) = rustix::fs::Dir::read_from(fd) else {
                continue;
            };
            for e in dir.flatten() {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.insert(n.to_vec());
                }
            }
        }
        names
            .into_iter()
            .filter_map(|name| match self.dir.lookup(&name)? {
                Lookup::Dir(_, md) => Some(TreeEntry::Dir { name, md }),
                Lookup::Link(target) => Some(TreeEntry::Symlink { name, target }),
                Lookup::Other { file, md, .. } => Some(TreeEntry::Other { name, file, md }),
            })
            .collect()
    }

    /// The subdirectory `name` (not following a symlink).
    pub fn subdir(&self, name: &[u8]) -> Option<TreeDir> {
        match self.dir.lookup(name)? {
            Lookup::Dir(dir, md) => Some(TreeDir { dir, md }),
            _ => None,
        }
    }
}

impl RootFiles for LayeredTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        LayeredTree::read(self, path)
    }
}

/// A mounted root file system (a running container's, through `/proc/PID/root` of a process
/// in it), read with `openat2(RESOLVE_IN_ROOT)` from a handle of its root: a symlink that
/// the container swaps in at any moment can only ever point inside it.
#[derive(Debug)]
pub struct MountedRoot {
    root: OwnedFd,
}

impl MountedRoot {
    /// Opens the root directory at `path` (a host path the caller trusts).
    pub fn open(path: &Path) -> io::Result<MountedRoot> {
        Ok(MountedRoot {
            root: in_root::open_root(path)?,
        })
    }
}

impl RootFiles for MountedRoot {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        in_root::read_in_root(self.root.as_fd(), Path::new(path), MAX_FILE).ok()
    }
}

/// The non-empty components of a path.
fn split(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn os(name: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(name)
}

/// The layer directories as a colon-free list check: overlayfs cannot take paths with `:`
/// or `,` in its options.
pub fn overlay_safe(p: &Path) -> bool {
    let s = p.to_string_lossy();
    !s.contains(':') && !s.contains(',')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn exe(p: &Path) {
        fs::write(p, b"#!").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn lookups_across_layers() {
        let d = tempfile::tempdir().unwrap();
        let low = d.path().join("low");
        let up = d.path().join("up");
        fs::create_dir_all(low.join("bin")).unwrap();
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::create_dir_all(up.join("usr/bin")).unwrap();
        exe(&low.join("bin/busybox"));
        symlink("/bin/busybox", low.join("bin/sh")).unwrap();
        symlink("../../bin/busybox", up.join("usr/bin/env")).unwrap();
        fs::write(low.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(low.join("bin/data"), "x").unwrap();
        exe(&low.join("bin/gone"));
        fs::create_dir_all(up.join("bin")).unwrap();
        // A whiteout is a 0/0 char device; without root, use a missing entry instead.
        let t = LayeredTree::new(vec![up.clone(), low.clone()]);
        assert_eq!(
            t.find_command("sh", "/", "/usr/bin:/bin"),
            CommandLookup::Found("/bin/sh".into())
        );
        assert_eq!(
            t.find_command("env", "/", "/usr/bin:/bin"),
            CommandLookup::Found("/usr/bin/env".into())
        );
        assert_eq!(
            t.find_command("nosuch", "/", "/usr/bin:/bin"),
            CommandLookup::NotFound
        );
        assert_eq!(
            t.find_command("/bin/data", "/", ""),
            CommandLookup::NotExecutable("/bin/data".into())
        );
        assert_eq!(
            t.find_command("/bin", "/", ""),
            CommandLookup::NotExecutable("/bin".into())
        );
        assert_eq!(t.find_command("data", "/", "/bin"), CommandLookup::NotFound);
        assert_eq!(
            t.find_command("./busybox", "/bin", ""),
            CommandLookup::Found("/bin/./busybox".into())
        );
        assert!(t.read("/etc/passwd").is_some());
        assert!(t.read("/etc/../etc/passwd").is_some());
        assert!(t.is_dir("/usr/bin"));
        symlink("/loop", low.join("loop")).unwrap();
        assert!(t.resolve("/loop").is_none());
        // Escapes stay inside: /.. is /.
        assert!(t.read("/../../etc/passwd").is_some());
    }

    #[test]
    fn lower_layer_symlinks_never_lead_to_host_files() {
        let host = tempfile::tempdir().unwrap();
        fs::write(
            host.path().join("passwd"),
            "evil:x:4242:4242::/evil:/bin/sh\n",
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        let (up, low) = (d.path().join("up"), d.path().join("low"));
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(&low).unwrap();
        // The attack: a lower `etc` that points out, under an upper `etc/` without passwd.
        symlink(host.path(), low.join("etc")).unwrap();
        let t = LayeredTree::new(vec![up.clone(), low.clone()]);
        assert_eq!(t.read("/etc/passwd"), None);
        assert!(t.is_dir("/etc"));
        // Symlinks to host paths, absolute or climbing, resolve inside the tree.
        let host_passwd = host.path().join("passwd").display().to_string();
        symlink(&host_passwd, up.join("etc/passwd")).unwrap();
        symlink(
            format!("../../../../../..{host_passwd}"),
            up.join("etc/group"),
        )
        .unwrap();
        let t = LayeredTree::new(vec![up.clone(), low.clone()]);
        assert_eq!(t.read("/etc/passwd"), None);
        assert_eq!(t.read("/etc/group"), None);
        // ... and find the tree's own file when it has one there.
        fs::create_dir_all(up.join(host.path().strip_prefix("/").unwrap())).unwrap();
        fs::write(up.join(host_passwd.trim_start_matches('/')), "inside").unwrap();
        let t = LayeredTree::new(vec![up, low]);
        assert_eq!(t.read("/etc/passwd").as_deref(), Some(b"inside".as_slice()));
        assert_eq!(t.read("/etc/group").as_deref(), Some(b"inside".as_slice()));
    }

    #[test]
    fn opaque_dirs_and_non_dirs_hide_lower_entries() {
        let d = tempfile::tempdir().unwrap();
        let (up, mid, low) = (
            d.path().join("up"),
            d.path().join("mid"),
            d.path().join("low"),
        );
        for l in [&up, &mid, &low] {
            fs::create_dir_all(l.join("a")).unwrap();
        }
        fs::write(low.join("a/low"), "1").unwrap();
        fs::write(mid.join("a/mid"), "2").unwrap();
        fs::create_dir_all(low.join("f")).unwrap();
        fs::write(low.join("f/x"), "3").unwrap();
        fs::write(mid.join("f"), "file").unwrap();
        fs::create_dir_all(up.join("f")).unwrap();
        let t = LayeredTree::new(vec![up.clone(), mid.clone(), low.clone()]);
        assert!(t.read("/a/low").is_some() && t.read("/a/mid").is_some());
        // A file in the middle cuts the directory below it off.
        assert_eq!(t.read("/f/x"), None);
        // Not a directory: ENOTDIR.
        assert_eq!(t.read("/a/mid/x"), None);
        let opaque = rustix::fs::setxattr(
            mid.join("a").as_path(),
            "user.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        );
        if opaque.is_ok() {
            let t = LayeredTree::new(vec![up, mid, low]);
            assert!(t.read("/a/mid").is_some());
            assert_eq!(t.read("/a/low"), None, "below an opaque directory");
        }
    }
}
