//! Helpers for tests that run kuard under berth: find the berth binary, build the static kuard.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Whether a root-only test may run: root, or else skip (or fail when CI is set).
pub fn root_or_skip(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: must run as root under CI (containers need namespaces, mounts, cgroups)");
    }
    eprintln!("skipping {test}: not root (containers need namespaces, mounts, cgroups)");
    false
}

fn nix_is_root() -> bool {
    // /proc/self/status "Uid:" real, effective, saved, fs.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The berth binary: $BERTH_TEST_BIN (set by scripts/test.sh), else target/{debug,release}/berth.
pub fn berth_bin(test: &str) -> Option<PathBuf> {
    let candidates = std::env::var_os("BERTH_TEST_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["debug", "release"]
                .iter()
                .map(|p| repo().join("target").join(p).join("berth")),
        );
    for c in candidates {
        if c.is_file() {
            return Some(c);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: no berth binary: set BERTH_TEST_BIN or build it (cargo build -p berth)");
    }
    eprintln!("skipping {test}: no berth binary (set BERTH_TEST_BIN or cargo build -p berth)");
    None
}

/// Builds the static kuard (demo/kuard/build.sh) and returns its path.
pub fn static_kuard() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("demo/kuard/build.sh"))
        .env("CARGO_QUIET", "1")
        .output()
        .expect("run demo/kuard/build.sh");
    assert!(
        out.status.success(),
        "demo/kuard/build.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    repo().join("demo/kuard/kuard")
}

/// Runs berth with a private root; returns (status, stdout, stderr).
pub fn berth(bin: &Path, root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args(args)
        .output()
        .expect("run berth");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
