//! The README's main command, `bash examples/chapter2.sh`, runs green (issue 7): build, push
//! to berth's own registry, pull, run with a published port, OOM kill under --memory, cleanup.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::berth::{berth_bin, repo, root_or_skip};

#[test]
fn chapter2_walkthrough_runs_green_and_cleans_up() {
    let name = "chapter2_walkthrough_runs_green_and_cleans_up";
    if !root_or_skip(name) {
        return;
    }
    let Some(bin) = berth_bin(name) else { return };
    let out = Command::new("bash")
        .arg(repo().join("examples/chapter2.sh"))
        .env("BERTH", &bin)
        .env_remove("KEEP_GOING")
        .output()
        .expect("run examples/chapter2.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chapter2.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("The chapter ran green with berth."),
        "{stdout}"
    );
    for step in [
        "$ berth build -t kuard-amd64:1 .",
        "$ berth push localhost:",
        "$ berth pull localhost:",
        "ok: exit status 137",
        "ok: inspect shows OOMKilled true and ExitCode 137",
        "$ berth image prune -f",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    // Its temp root is gone and nothing of it is mounted.
    let work = stdout
        .lines()
        .find_map(|l| l.strip_prefix("temp root: "))
        .and_then(|l| l.split(';').next())
        .unwrap();
    assert!(!std::path::Path::new(work).exists(), "{work} left behind");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(work), "{work} still mounted");
}
