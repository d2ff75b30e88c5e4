//! The build context (a directory, or a tar read from stdin and unpacked into a temporary
//! directory) and what COPY and ADD take from it or from another stage's file system.
//!
//! Source paths are resolved inside their root the way a chroot would (`..` and absolute
//! symlinks stop at the root), so nothing outside the context can be read; a source that
//! names a path above the context (`COPY ../x`) is an error, as in Docker.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ignore::{clean, IgnoreError, IgnoreRules};
use crate::layertar::{detect, ArchiveKind, EntryMeta};

/// Why the context or a COPY source could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A file system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A COPY/ADD source does not exist (or is excluded by .dockerignore).
    #[error("{source_path:?} not found in the {place}")]
    NotFound {
        /// The source as written.
        source_path: String,
        /// "build context" or "stage X".
        place: String,
    },
    /// A source names a path above the context.
    #[error("forbidden path outside the build context: {source_path:?}")]
    Outside {
        /// The source as written.
        source_path: String,
    },
    /// A bad ignore pattern.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// The tar given as context could not be read.
    #[error("reading the context tar: {0}")]
    BadTar(io::Error),
    /// A tar entry would land outside the context directory.
    #[error("context tar entry {entry:?} leaves the context")]
    UnsafeEntry {
        /// The entry's name.
        entry: String,
    },
    /// Several sources need a directory destination.
    #[error(
        "when copying several sources, the destination must be a directory ending in /: {dest:?}"
    )]
    DestNotDir {
        /// The destination as written.
        dest: String,
    },
    /// A compressed archive of an unsupported kind.
    #[error("ADD {path:?}: {kind} archives are not supported; use a gzip, zstd or plain tar")]
    UnsupportedArchive {
        /// The archive.
        path: String,
        /// Its compression.
        kind: &'static str,
    },
}

impl ContextError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::Kind {
        match self {
            ContextError::Io { .. } | ContextError::BadTar(_) => crate::Kind::Io,
            ContextError::NotFound { .. } => crate::Kind::NotFound,
            ContextError::UnsupportedArchive { .. } => crate::Kind::Unsupported,
            _ => crate::Kind::InvalidArgument,
        }
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContextError + 'a {
    move |source| ContextError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A build context: a directory and its ignore rules.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    ignore: IgnoreRules,
    _tmp: Option<tempfile::TempDir>,
}

impl BuildContext {
    /// A context from a directory. Ignore rules come from `<dockerfile>.dockerignore` next
    /// to the Dockerfile when it exists, else from `<dir>/.dockerignore`.
    pub fn from_dir(dir: &Path, dockerfile: Option<&Path>) -> Result<Self, ContextError> {
        let root = fs::canonicalize(dir).map_err(io_err("opening the build context", dir))?;
        let meta = fs::metadata(&root).map_err(io_err("opening the build context", dir))?;
        if !meta.is_dir() {
            return Err(ContextError::Io {
                what: "opening the build context",
                path: dir.to_owned(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile {
            let mut p = df.as_os_str().to_owned();
            p.push(".dockerignore");
            candidates.push(PathBuf::from(p));
        }
        candidates.push(root.join(".dockerignore"));
        let mut ignore = IgnoreRules::default();
        for c in candidates {
            match fs::read_to_string(&c) {
                Ok(text) => {
                    ignore = IgnoreRules::parse(&text)?;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("reading", &c)(e)),
            }
        }
        Ok(BuildContext {
            root,
            ignore,
            _tmp: None,
        })
    }

    /// A context unpacked from a tar stream (plain, gzip or zstd) into a directory under `tmp`.
    pub fn from_tar(data: impl Read, tmp: &Path) -> Result<Self, ContextError> {
        fs::create_dir_all(tmp).map_err(io_err("creating", tmp))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(tmp)
            .map_err(io_err("creating a directory in", tmp))?;
        let mut head = Vec::with_capacity(512);
        let mut data = data;
        (&mut data)
            .take(512)
            .read_to_end(&mut head)
            .map_err(ContextError::BadTar)?;
        let kind = detect(&head);
        let stream = io::Cursor::new(head).chain(data);
        let reader = crate::layertar::open_archive(kind, stream).map_err(ContextError::BadTar)?;
        let mut ar = tar::Archive::new(reader);
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        for entry in ar.entries().map_err(ContextError::BadTar)? {
            let mut entry = entry.map_err(ContextError::BadTar)?;
            let name = entry
                .path()
                .map_err(ContextError::BadTar)?
                .to_string_lossy()
                .into_owned();
            let cleaned = clean(&name);
            if cleaned.starts_with("..") || cleaned == ".." {
                return Err(ContextError::UnsafeEntry { entry: name });
            }
            let kind = entry.header().entry_type();
            if kind.is_block_special() || kind.is_character_special() || kind.is_fifo() {
                // COPY never copies these; creating them would only widen what a tar can do.
                continue;
            }
            // unpack_in refuses entries that would escape the directory.
            let ok = entry.unpack_in(dir.path()).map_err(ContextError::BadTar)?;
            if !ok {
                return Err(ContextError::UnsafeEntry { entry: name });
            }
        }
        let mut ctx = BuildContext::from_dir(dir.path(), None)?;
        ctx._tmp = Some(dir);
        Ok(ctx)
    }

    /// An empty context (a Dockerfile given on stdin).
    pub fn empty(tmp: &Path) -> Result<Self, ContextError> {
        fs::create_dir_all(tmp).map_err(io_err("creating", tmp))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(tmp)
            .map_err(io_err("creating a directory in", tmp))?;
        let root = dir.path().to_owned();
        Ok(BuildContext {
            root,
            ignore: IgnoreRules::default(),
            _tmp: Some(dir),
        })
    }

    /// The directory holding the context.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The context's ignore rules.
    pub fn ignore(&self) -> &IgnoreRules {
        &self.ignore
    }

    /// The source tree view of the context for COPY.
    pub fn source(&self) -> SourceTree<'_> {
        SourceTree {
            root: &self.root,
            ignore: Some(&self.ignore),
            place: "build context".into(),
            is_context: true,
        }
    }
}

/// A tree COPY reads from: the context (with its ignore rules) or a stage's root file system.
pub struct SourceTree<'a> {
    /// The directory.
    pub root: &'a Path,
    /// Rules hiding files (the context's .dockerignore).
    pub ignore: Option<&'a IgnoreRules>,
    /// How errors name the tree.
    pub place: String,
    /// Whether `..` above the root is an error (context) or clamps (stage).
    pub is_context: bool,
}

/// What an item of a COPY is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// A directory.
    Dir,
    /// A regular file, read from this host path.
    File(PathBuf),
    /// A symbolic link with this target.
    Symlink(String),
    /// Inline bytes (a heredoc).
    Inline(Vec<u8>),
    /// A local archive that ADD unpacks at the destination.
    Archive(PathBuf, ArchiveKind),
}

/// One entry a COPY or ADD writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyItem {
    /// Absolute path in the image, without the leading `/`.
    pub dest: String,
    /// What it is.
    pub kind: ItemKind,
    /// Owner, mode and mtime.
    pub meta: EntryMeta,
    /// Size in bytes (files).
    pub size: u64,
}

/// Options of one COPY/ADD, already expanded and resolved.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Owner to set, else root for the context and kept for stages.
    pub chown: Option<(u32, u32)>,
    /// Mode to set on every entry.
    pub chmod: Option<u32>,
    /// `--exclude` rules.
    pub exclude: IgnoreRules,
    /// `--parents`.
    pub parents: bool,
    /// ADD: unpack local archives.
    pub extract_archives: bool,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl SourceTree<'_> {
    fn not_found(&self, s: &str) -> ContextError {
        ContextError::NotFound {
            source_path: s.to_owned(),
            place: self.place.clone(),
        }
    }

    fn hidden(&self, rel: &str) -> bool {
        self.ignore.is_some_and(|i| i.is_excluded(rel))
    }

    /// Resolves `rel` inside the root following symlinks scoped to it; returns the host
    /// path and the cleaned relative path. The last component is followed too.
    fn resolve(&self, rel: &str) -> Result<Option<(PathBuf, String)>, ContextError> {
        let mut todo: Vec<String> = rel
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_owned)
            .rev()
            .collect();
        let mut parts: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                parts.pop();
                continue;
            }
            let mut p = self.root.to_path_buf();
            p.extend(&parts);
            p.push(&c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > 40 {
                        return Err(io_err("resolving", &p)(io::Error::other(
                            "too many levels of symbolic links",
                        )));
                    }
                    let target = fs::read_link(&p).map_err(io_err("reading link", &p))?;
                    let t = target.to_string_lossy().into_owned();
                    if t.starts_with('/') {
                        parts.clear();
                    }
                    for seg in t.split('/').filter(|s| !s.is_empty() && *s != ".").rev() {
                        todo.push(seg.to_owned());
                    }
                }
                Ok(_) => parts.push(c),
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::NotADirectory =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(io_err("reading", &p)(e)),
            }
        }
        let mut p = self.root.to_path_buf();
        p.extend(&parts);
        Ok(Some((p, parts.join("/"))))
    }

    /// The host path of `rel` inside the tree (symlinks followed, scoped to the root), for
    /// bind mounts; an error when it is missing, hidden or above the context.
    pub fn host_path(&self, rel: &str) -> Result<PathBuf, ContextError> {
        let c = clean(rel);
        if self.is_context && (c == ".." || c.starts_with("../")) {
            return Err(ContextError::Outside {
                source_path: rel.to_owned(),
            });
        }
        if c != "." && self.hidden(&c) {
            return Err(self.not_found(rel));
        }
        match self.resolve(&c)? {
            Some((p, _)) => Ok(p),
            None => Err(self.not_found(rel)),
        }
    }

    /// Expands a source (with wildcards) to matching relative paths, sorted.
    fn expand(&self, source: &str) -> Result<Vec<String>, ContextError> {
        let c = clean(source);
        if self.is_context && (c == ".." || c.starts_with("../")) {
            return Err(ContextError::Outside {
                source_path: source.to_owned(),
            });
        }
        let c = if c.starts_with("..") {
            clean(&format!("/{c}"))
        } else {
            c
        };
        if !has_glob(&c) {
            return Ok(vec![c]);
        }
        let mut found = vec![String::new()];
        for comp in c.split('/') {
            let mut next = Vec::new();
            for base in &found {
                if !has_glob(comp) {
                    next.push(join_rel(base, comp));
                    continue;
                }
                let re = crate::ignore::IgnoreRules::from_patterns(&[comp])?;
                let Some((dir, _)) = self.resolve(base)? else {
                    continue;
                };
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| re.is_excluded(n))
                    .collect();
                names.sort();
                for n in names {
                    next.push(join_rel(base, &n));
                }
            }
            found = next;
        }
        found.retain(|r| !self.hidden(r));
        if found.is_empty() {
            return Err(self.not_found(source));
        }
        Ok(found)
    }

    /// Plans the entries that copying `sources` to `dest` (absolute in the image; a trailing
    /// `/` means a directory) writes.
    pub fn plan(
        &self,
        sources: &[String],
        dest: &str,
        opts: &CopyOptions,
    ) -> Result<Vec<CopyItem>, ContextError> {
        let dest_dir = dest.ends_with('/') || dest.ends_with("/.");
        let dest_clean = clean(dest).trim_start_matches('/').to_owned();
        let dest_clean = if dest_clean == "." {
            String::new()
        } else {
            dest_clean
        };
        let mut expanded = Vec::new();
        for s in sources {
            for r in self.expand(s)? {
                expanded.push((s.clone(), r));
            }
        }
        let multi = expanded.len() > 1 || sources.iter().any(|s| has_glob(s));
        if multi && !dest_dir && expanded.len() > 1 {
            return Err(ContextError::DestNotDir {
                dest: dest.to_owned(),
            });
        }
        let mut items = Vec::new();
        for (written, rel) in expanded {
            if self.hidden(&rel) && rel != "." {
                return Err(self.not_found(&written));
            }
            let Some((host, real_rel)) = self.resolve(&rel)? else {
                return Err(self.not_found(&written));
            };
            let meta = fs::symlink_metadata(&host).map_err(io_err("reading", &host))?;
            let base_name = Path::new(&rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel_parent = if opts.parents {
                Path::new(&rel)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            if meta.is_dir() {
                let target = if opts.parents {
                    join_rel(&dest_clean, &rel)
                } else {
                    dest_clean.clone()
                };
                let target = if target == "." { String::new() } else { target };
                if !target.is_empty() {
                    items.push(self.item(&target, ItemKind::Dir, &meta, opts));
                }
                self.walk(&host, &real_rel, &target, opts, &mut items)?;
            } else {
                let target = if dest_dir || multi {
                    join_rel(&join_rel(&dest_clean, &rel_parent), &base_name)
                } else {
                    dest_clean.clone()
                };
                if excluded_by(&opts.exclude, &rel, &base_name) {
                    continue;
                }
                let kind = if opts.extract_archives && meta.is_file() {
                    let mut head = Vec::with_capacity(512);
                    fs::File::open(&host)
                        .and_then(|f| f.take(512).read_to_end(&mut head))
                        .map_err(io_err("reading", &host))?;
                    match detect(&head) {
                        ArchiveKind::NotArchive => ItemKind::File(host.clone()),
                        ArchiveKind::Unsupported(k) => {
                            return Err(ContextError::UnsupportedArchive {
                                path: written.clone(),
                                kind: k,
                            })
                        }
                        k => ItemKind::Archive(host.clone(), k),
                    }
                } else {
                    ItemKind::File(host.clone())
                };
                let target = if matches!(kind, ItemKind::Archive(..)) {
                    dest_clean.clone()
                } else {
                    target
                };
                items.push(self.item(&target, kind, &meta, opts));
            }
        }
        Ok(items)
    }

    fn item(
        &self,
        dest: &str,
        kind: ItemKind,
        meta: &fs::Metadata,
        opts: &CopyOptions,
    ) -> CopyItem {
        let (uid, gid) = match opts.chown {
            Some(o) => o,
            None if self.is_context => (0, 0),
            None => (meta.uid(), meta.gid()),
        };
        let mode = opts.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
        CopyItem {
            dest: dest.to_owned(),
            size: if matches!(kind, ItemKind::File(_)) {
                meta.len()
            } else {
                0
            },
            kind,
            meta: EntryMeta {
                mode,
                uid,
                gid,
                mtime: meta.mtime().max(0) as u64,
            },
        }
    }

    fn walk(
        &self,
        dir: &Path,
        rel: &str,
        target: &str,
        opts: &CopyOptions,
        items: &mut Vec<CopyItem>,
    ) -> Result<(), ContextError> {
        let mut entries: Vec<(String, PathBuf)> = fs::read_dir(dir)
            .map_err(io_err("reading directory", dir))?
            .map(|e| e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
            .collect::<Result<_, _>>()
            .map_err(io_err("reading directory", dir))?;
        entries.sort();
        for (name, path) in entries {
            let child_rel = join_rel(rel, &name);
            let child_target = join_rel(target, &name);
            let meta = fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
            let hidden = self.hidden(&child_rel);
            if meta.is_dir() {
                if hidden && !self.ignore.is_some_and(|i| i.may_include_below(&child_rel)) {
                    continue;
                }
                if excluded_by(&opts.exclude, &child_rel, &child_target) {
                    continue;
                }
                if !hidden {
                    items.push(self.item(&child_target, ItemKind::Dir, &meta, opts));
                }
                self.walk(&path, &child_rel, &child_target, opts, items)?;
                continue;
            }
            if hidden || excluded_by(&opts.exclude, &child_rel, &child_target) {
                continue;
            }
            let kind = if meta.file_type().is_symlink() {
                let t = fs::read_link(&path).map_err(io_err("reading link", &path))?;
                ItemKind::Symlink(t.to_string_lossy().into_owned())
            } else if meta.is_file() {
                ItemKind::File(path.clone())
            } else {
                // Devices, fifos and sockets are not copied, as in Docker.
                continue;
            };
            items.push(self.item(&child_target, kind, &meta, opts));
        }
        Ok(())
    }
}

fn excluded_by(rules: &IgnoreRules, rel: &str, other: &str) -> bool {
    !rules.is_empty() && (rules.is_excluded(rel) || rules.is_excluded(other))
}

/// Joins two relative paths, either possibly empty.
pub(crate) fn join_rel(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).expect("mkdir");
        fs::write(r.join("src/a.txt"), "a").expect("write");
        fs::write(r.join("src/b.md"), "b").expect("write");
        fs::write(r.join("src/sub/c.txt"), "c").expect("write");
        fs::write(r.join("top.txt"), "top").expect("write");
        fs::write(r.join("secret.env"), "x").expect("write");
        symlink("/etc/passwd", r.join("escape")).expect("link");
        symlink("src/a.txt", r.join("alias")).expect("link");
        fs::write(r.join(".dockerignore"), "*.env\nsrc/*.md\n").expect("write");
        d
    }

    fn names(items: &[CopyItem]) -> Vec<&str> {
        items.iter().map(|i| i.dest.as_str()).collect()
    }

    #[test]
    fn file_to_file_and_dir() {
        let d = tree();
        let ctx = BuildContext::from_dir(d.path(), None).expect("ctx");
        let s = ctx.source();
        let o = CopyOptions::default();
        assert_eq!(
            names(&s.plan(&["top.txt".into()], "/app/x", &o).expect("plan")),
            vec!["app/x"]
        );
        assert_eq!(
            names(&s.plan(&["top.txt".into()], "/app/", &o).expect("plan")),
            vec!["app/top.txt"]
        );
        let items = s.plan(&["src".into()], "/app", &o).expect("plan");
        assert_eq!(
            names(&items),
            vec!["app", "app/a.txt", "app/sub", "app/sub/c.txt"]
        );
        assert!(items.iter().all(|i| i.meta.uid == 0 && i.meta.gid == 0));
    }

    #[test]
    fn globs_ignore_and_errors() {
        let d = tree();
        let ctx = BuildContext::from_dir(d.path(), None).expect("ctx");
        let s = ctx.source();
        let o = CopyOptions::default();
        assert_eq!(
            names(&s.plan(&["src/*.txt".into()], "/d/", &o).expect("plan")),
            vec!["d/a.txt"]
        );
        assert!(matches!(
            s.plan(&["secret.env".into()], "/d/", &o),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            s.plan(&["src/b.md".into()], "/d/", &o),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            s.plan(&["nope".into()], "/d/", &o),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            s.plan(&["../x".into()], "/d/", &o),
            Err(ContextError::Outside { .. })
        ));
        assert!(matches!(
            s.plan(&["escape".into()], "/d/", &o),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            s.plan(&["top.txt".into(), "src/a.txt".into()], "/d", &o),
            Err(ContextError::DestNotDir { .. })
        ));
        let a = s.plan(&["alias".into()], "/d/", &o).expect("plan");
        assert_eq!(names(&a), vec!["d/alias"]);
        assert!(matches!(&a[0].kind, ItemKind::File(p) if p.ends_with("src/a.txt")));
    }

    #[test]
    fn exclude_parents_chown_chmod() {
        let d = tree();
        let ctx = BuildContext::from_dir(d.path(), None).expect("ctx");
        let s = ctx.source();
        let o = CopyOptions {
            exclude: IgnoreRules::from_patterns(&["**/c.txt"]).expect("rules"),
            chown: Some((10, 20)),
            chmod: Some(0o700),
            ..Default::default()
        };
        let items = s.plan(&["src".into()], "/app/", &o).expect("plan");
        assert_eq!(names(&items), vec!["app", "app/a.txt", "app/sub"]);
        assert!(items
            .iter()
            .all(|i| i.meta.uid == 10 && i.meta.mode == 0o700));
        let o = CopyOptions {
            parents: true,
            ..Default::default()
        };
        assert_eq!(
            names(&s.plan(&["src/sub/c.txt".into()], "/p/", &o).expect("plan")),
            vec!["p/src/sub/c.txt"]
        );
    }

    #[test]
    fn context_from_tar() {
        let mut w = crate::layertar::LayerWriter::new(Vec::new(), None);
        let m = EntryMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        w.file("Dockerfile", m, 11, &b"FROM scratch"[..])
            .expect("file");
        w.file("dir/f", m, 1, &b"f"[..]).expect("file");
        let t = w.finish().expect("tar");
        let tmp = tempfile::tempdir().expect("tmp");
        let ctx = BuildContext::from_tar(&t[..], tmp.path()).expect("ctx");
        assert_eq!(fs::read(ctx.root().join("dir/f")).expect("read"), b"f");
        let root = ctx.root().to_owned();
        drop(ctx);
        assert!(!root.exists(), "the temporary context is removed");
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() {
        let d = tree();
        fs::write(d.path().join("Dockerfile.dockerignore"), "top.txt\n").expect("write");
        let ctx =
            BuildContext::from_dir(d.path(), Some(&d.path().join("Dockerfile"))).expect("ctx");
        assert!(ctx.ignore().is_excluded("top.txt"));
        assert!(
            !ctx.ignore().is_excluded("secret.env"),
            ".dockerignore is not read then"
        );
        let plain = BuildContext::from_dir(d.path(), None).expect("ctx");
        assert!(plain.ignore().is_excluded("secret.env"));
    }
}
