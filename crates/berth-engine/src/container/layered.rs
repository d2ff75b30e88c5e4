//! Read-only lookups in an image's layers as overlayfs would show them, without mounting.
//!
//! Used before a container starts: to find the command (so a missing or non-executable
//! binary fails with 127/126 before anything is set up) and to read `/etc/passwd` and
//! `/etc/group` for `--user`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The layers of a root filesystem, top-most first (the container's upper dir, then the
/// image's layers from the last to the first).
#[derive(Debug, Clone)]
pub struct LayeredTree {
    layers: Vec<PathBuf>,
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

impl LayeredTree {
    /// A tree over `layers`, top-most first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        LayeredTree { layers }
    }

    /// Finds the top-most entry for an already-resolved path (no symlinks followed).
    fn entry(&self, rel: &[String]) -> Option<(PathBuf, fs::Metadata)> {
        let relpath: PathBuf = rel.iter().collect();
        for layer in &self.layers {
            let p = layer.join(&relpath);
            if let Ok(md) = fs::symlink_metadata(&p) {
                if md.file_type().is_char_device() && md.rdev() == 0 {
                    return None; // whiteout
                }
                return Some((p, md));
            }
            // A whiteout of a parent directory hides the whole subtree below it.
            let mut parent = layer.clone();
            for c in rel.iter().take(rel.len().saturating_sub(1)) {
                parent.push(c);
                if let Ok(md) = fs::symlink_metadata(&parent) {
                    if md.file_type().is_char_device() && md.rdev() == 0 {
                        return None;
                    }
                    if !md.is_dir() {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Resolves `path` (absolute inside the container), following symlinks within the tree.
    /// Returns the host path of the final entry and its metadata.
    pub fn resolve(&self, path: &str) -> Option<(PathBuf, fs::Metadata)> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        let mut last = None;
        if pending.is_empty() {
            return self.entry(&[]).or_else(|| {
                let p = self.layers.last()?.clone();
                let md = fs::metadata(&p).ok()?;
                Some((p, md))
            });
        }
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(comp);
            let (host, md) = self.entry(&cur)?;
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return None;
                }
                let target = fs::read_link(&host).ok()?;
                let t = target.to_string_lossy().to_string();
                cur.pop();
                if t.starts_with('/') {
                    cur.clear();
                }
                for c in t.split('/').filter(|c| !c.is_empty()).rev() {
                    pending.push(c.to_string());
                }
                last = None;
                continue;
            }
            if !pending.is_empty() && !md.is_dir() {
                return None;
            }
            last = Some((host, md));
        }
        last.or_else(|| self.entry(&cur))
    }

    /// Reads a file's bytes through the tree (None when absent or unreadable).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let (host, md) = self.resolve(path)?;
        if !md.is_file() || md.len() > 16 << 20 {
            return None;
        }
        fs::read(host).ok()
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
}
