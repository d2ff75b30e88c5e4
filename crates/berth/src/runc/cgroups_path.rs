//! A spec's `linux.cgroupsPath` in systemd's `slice:prefix:name` form, turned into the
//! cgroupfs path systemd gives that unit (what kubelet's systemd cgroup driver names), so
//! berth places the container where runc's systemd driver would.

use std::path::PathBuf;

/// Whether `path` has systemd's `slice:prefix:name` form (not a path: no leading `/`, two
/// colons).
pub fn is_systemd_form(path: &str) -> bool {
    !path.starts_with('/') && path.matches(':').count() == 2
}

/// `kubepods-besteffort-pod1.slice:cri-containerd:abc` ->
/// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope`.
/// An empty slice is `system.slice`; a name ending in `.slice` is the unit itself.
pub fn systemd_to_cgroupfs(path: &str) -> Result<PathBuf, String> {
    let mut parts = path.splitn(3, ':');
    let (slice, prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(p), Some(n)) => (s, p, n),
        _ => return Err(format!("cgroupsPath {path:?} is not slice:prefix:name")),
    };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err(format!("cgroupsPath {path:?}: bad unit name"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut out = PathBuf::from("/");
    out.push(expand_slice(slice).map_err(|e| format!("cgroupsPath {path:?}: {e}"))?);
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    out.push(unit);
    Ok(out)
}

/// systemd's slice nesting: `a-b-c.slice` lives in `a.slice/a-b.slice/a-b-c.slice`; `-.slice`
/// is the root.
fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let base = slice
        .strip_suffix(".slice")
        .ok_or_else(|| format!("slice {slice:?} does not end in .slice"))?;
    if slice.contains('/') {
        return Err(format!("slice {slice:?} holds a '/'"));
    }
    if base == "-" {
        return Ok(PathBuf::new());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(format!("invalid slice name {slice:?}"));
    }
    let mut out = PathBuf::new();
    let mut prefix = String::new();
    for comp in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(comp);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_pod_scope() {
        assert!(is_systemd_form(
            "kubepods-besteffort-pod1.slice:cri-containerd:abc"
        ));
        assert!(!is_systemd_form("/kubepods/besteffort/pod1/abc"));
        assert_eq!(
            systemd_to_cgroupfs("kubepods-besteffort-pod1.slice:cri-containerd:abc").unwrap(),
            PathBuf::from(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
            )
        );
    }

    #[test]
    fn defaults_and_root_slice() {
        assert_eq!(
            systemd_to_cgroupfs(":runc:x").unwrap(),
            PathBuf::from("/system.slice/runc-x.scope")
        );
        assert_eq!(
            systemd_to_cgroupfs("-.slice:p:x").unwrap(),
            PathBuf::from("/p-x.scope")
        );
        assert_eq!(
            systemd_to_cgroupfs("system.slice::x.slice").unwrap(),
            PathBuf::from("/system.slice/x.slice")
        );
    }

    #[test]
    fn bad_slices_refused() {
        for bad in ["a--b.slice:p:x", "foo:p:x", "a/b.slice:p:x", "a.slice:p:"] {
            assert!(systemd_to_cgroupfs(bad).is_err(), "{bad}");
        }
    }
}
