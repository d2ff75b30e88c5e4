//! Shared by berth-oci's integration tests: the root-only guard.

/// Whether a root-only test may run: skips with `skipping {what}: {need}` when not root,
/// fails when CI is set (root tests may not skip there).
pub fn require_root(what: &str, need: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} needs root (CI is set, so it may not skip)");
    }
    eprintln!("skipping {what}: {need}");
    false
}
