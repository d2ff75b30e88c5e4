//! A read-only browser of the container's own file system under `/fs/`.
//!
//! Paths are resolved lexically (no `..`), then the resolved real path must stay under the
//! browser's root, so neither `..` nor a symlink leads out of it. Only directories and
//! regular files are shown; devices, sockets and FIFOs are refused.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::http::{percent_decode, Body, Response};
use crate::page::html_escape;

/// Largest file of unknown size (like those in /proc) read into memory.
const MAX_UNSIZED: u64 = 1 << 20;

/// Why a path cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path has bad escapes or `..`.
    #[error("invalid path {0:?}: no '..' and valid percent-escapes only")]
    InvalidPath(String),
    /// Nothing there.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// It resolves outside the root, or is not a file or directory.
    #[error("{0}: {1}")]
    Forbidden(String, &'static str),
    /// Reading failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl FsError {
    /// The class of this error.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            FsError::InvalidPath(_) => crate::ErrorKind::InvalidArgument,
            FsError::NotFound(_) => crate::ErrorKind::NotFound,
            FsError::Forbidden(..) => crate::ErrorKind::PermissionDenied,
            FsError::Io(..) => crate::ErrorKind::Internal,
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            FsError::InvalidPath(_) => 400,
            FsError::NotFound(_) => 404,
            FsError::Forbidden(..) => 403,
            FsError::Io(..) => 500,
        }
    }
}

/// Turns the part of the URL after `/fs` into a relative path, refusing `..`.
pub fn relative_path(url_rest: &str) -> Result<PathBuf, FsError> {
    let decoded =
        percent_decode(url_rest).ok_or_else(|| FsError::InvalidPath(url_rest.to_string()))?;
    if decoded.contains('\0') {
        return Err(FsError::InvalidPath(url_rest.to_string()));
    }
    let mut out = PathBuf::new();
    for c in Path::new(&decoded).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(FsError::InvalidPath(decoded))
            }
        }
    }
    Ok(out)
}

/// Serves `/fs/<rest>` from `root`.
pub fn serve(root: &Path, url_rest: &str) -> Result<Response, FsError> {
    let rel = relative_path(url_rest)?;
    let shown = format!("/{}", rel.display());
    let path = root.join(&rel);
    let real_root = root
        .canonicalize()
        .map_err(|e| FsError::Io("/".into(), e))?;
    let real = path.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FsError::NotFound(shown.clone()),
        _ => FsError::Io(shown.clone(), e),
    })?;
    if !real.starts_with(&real_root) {
        return Err(FsError::Forbidden(
            shown,
            "resolves outside the browsed file system",
        ));
    }
    let meta = fs::metadata(&real).map_err(|e| FsError::Io(shown.clone(), e))?;
    if meta.is_dir() {
        if !url_rest.is_empty() && !url_rest.ends_with('/') {
            // Relative links in the listing need the trailing slash.
            let loc = format!("/fs{}/", url_rest_prefix(url_rest));
            return Ok(Response::text(301, format!("see {loc}\n")).with_header("Location", loc));
        }
        return list(&real, &shown);
    }
    if !meta.is_file() {
        return Err(FsError::Forbidden(shown, "not a regular file or directory"));
    }
    let mut f = fs::File::open(&real).map_err(|e| FsError::Io(shown.clone(), e))?;
    let ctype = content_type(&real);
    if meta.len() == 0 {
        // /proc and /sys files report size 0 but have content: read a bounded amount.
        let mut buf = Vec::new();
        (&mut f)
            .take(MAX_UNSIZED)
            .read_to_end(&mut buf)
            .map_err(|e| FsError::Io(shown.clone(), e))?;
        return Ok(Response::new(200, ctype, buf));
    }
    Ok(Response {
        status: 200,
        content_type: ctype,
        headers: Vec::new(),
        body: Body::File(f, meta.len()),
    })
}

fn url_rest_prefix(s: &str) -> &str {
    s.trim_end_matches('/')
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "" | "txt" | "conf" | "md" | "sh" | "toml" | "yaml" | "yml" | "cfg" => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

fn list(dir: &Path, shown: &str) -> Result<Response, FsError> {
    let mut entries: Vec<(String, String, String, String)> = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| FsError::Io(shown.to_string(), e))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            '-'
        } else {
            '?'
        };
        let mode = format!("{kind}{}", mode_string(m.permissions().mode()));
        let target = if ft.is_symlink() {
            fs::read_link(e.path())
                .map(|t| format!(" -> {}", t.display()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let href = format!(
            "{}{}",
            url_encode(&name),
            if ft.is_dir() { "/" } else { "" }
        );
        let size = if ft.is_file() {
            m.size().to_string()
        } else {
            String::new()
        };
        entries.push((
            name,
            href,
            format!("{mode} {:>5}:{:<5}", m.uid(), m.gid()),
            format!("{size}{target}"),
        ));
    }
    entries.sort();
    let mut html = format!(
        "<!doctype html><meta charset=utf-8><title>kuard fs {0}</title><style>body{{font-family:monospace}}td{{padding:0 .8em}}</style><h1>{0}</h1><table>",
        html_escape(shown)
    );
    if shown != "/" {
        html.push_str("<tr><td></td><td><a href=\"../\">../</a></td><td></td></tr>");
    }
    for (name, href, mode, extra) in &entries {
        html.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
            html_escape(mode),
            html_escape(href),
            html_escape(name),
            html_escape(extra)
        ));
    }
    html.push_str("</table>\n");
    Ok(Response::new(200, "text/html; charset=utf-8", html))
}

fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("root/etc")).unwrap();
        fs::write(d.path().join("root/etc/hello.txt"), "hi there").unwrap();
        fs::write(d.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink("../../secret", d.path().join("root/etc/escape")).unwrap();
        std::os::unix::fs::symlink("/etc/hello.txt", d.path().join("root/abs")).unwrap();
        std::os::unix::fs::symlink("hello.txt", d.path().join("root/etc/inside")).unwrap();
        d
    }

    #[test]
    fn lists_and_reads() {
        let d = tree();
        let root = d.path().join("root");
        let r = serve(&root, "/").unwrap();
        let html = String::from_utf8(r.body_bytes().to_vec()).unwrap();
        assert!(html.contains("href=\"etc/\""), "{html}");
        let r = serve(&root, "/etc/").unwrap();
        let html = String::from_utf8(r.body_bytes().to_vec()).unwrap();
        assert!(
            html.contains("hello.txt") && html.contains("-&gt; ../../secret"),
            "{html}"
        );
        let r = serve(&root, "/etc/inside").unwrap();
        assert!(matches!(r.body, Body::File(_, 8)));
        assert_eq!(serve(&root, "/etc").unwrap().status, 301);
    }

    #[test]
    fn refuses_escapes() {
        let d = tree();
        let root = d.path().join("root");
        assert_eq!(serve(&root, "/../secret").unwrap_err().status(), 400);
        assert_eq!(
            serve(&root, "/etc/%2e%2e/%2e%2e/secret")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(serve(&root, "/etc/escape").unwrap_err().status(), 403);
        // An absolute symlink resolves on the real root, which is outside this tree.
        assert!(serve(&root, "/abs").is_err());
        assert_eq!(serve(&root, "/nope").unwrap_err().status(), 404);
        assert_eq!(serve(&root, "/%zz").unwrap_err().status(), 400);
        assert_eq!(serve(&root, "/a%00b").unwrap_err().status(), 400);
    }
}
