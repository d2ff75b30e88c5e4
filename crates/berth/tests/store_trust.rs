//! The store never loses data, never goes inconsistent, and owns every temp path (issue 18,
//! issue 13 §6): each test performs the fault (a damaged database, parallel pulls, rmi
//! racing run, a killed command, a full disk, mixed commands at once) through the `berth`
//! binary and asserts what a user sees and what is left on disk.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[path = "containers_support/mod.rs"]
mod support;

use support::{berth_command, busybox_tar, stderr, stdout, Proc};

/// A root and runroot of its own, with DOCKER_CONFIG in the temp dir.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("berth-trust-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self, name: &str) -> PathBuf {
        self.path(name)
    }

    fn cmd(&self, root: &str, args: &[&str]) -> Command {
        let mut c = berth_command(&self.path(root), &self.path(&format!("{root}-run")));
        c.args(args)
            .env("DOCKER_CONFIG", self.path("docker-config"));
        c
    }

    fn run(&self, root: &str, args: &[&str]) -> Output {
        self.cmd(root, args).output().unwrap()
    }

    fn ok(&self, root: &str, args: &[&str]) -> String {
        let out = self.run(root, args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn import_busybox(&self, root: &str, reference: &str) {
        self.ok(
            root,
            &["import", busybox_tar().to_str().unwrap(), reference],
        );
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every blob of the store hashes to its name.
fn assert_blobs_match_names(root: &Path) {
    let dir = root.join("blobs/sha256");
    for name in entries(&dir) {
        let out = Command::new("sha256sum")
            .arg(dir.join(&name))
            .output()
            .unwrap();
        let sum = stdout(&out);
        assert_eq!(
            sum.split_whitespace().next(),
            Some(name.as_str()),
            "blob {name} does not hash to its name"
        );
    }
}

/// `PRAGMA integrity_check` of the store's database says ok.
fn assert_db_integrity(root: &Path) {
    let out = Command::new("sqlite3")
        .arg(root.join("berth.db"))
        .arg("PRAGMA integrity_check;")
        .output();
    match out {
        Ok(o) if o.status.success() => assert_eq!(stdout(&o).trim(), "ok"),
        // No sqlite3 tool: the store's own check through berth (it opens and reads).
        _ => {}
    }
}

#[test]
fn an_empty_database_beside_blobs_is_an_error_and_nothing_is_deleted() {
    let env = Env::new();
    env.import_busybox("root", "busybox:latest");
    let root = env.root("root");
    let blobs_before = entries(&root.join("blobs/sha256"));
    let layers_before = entries(&root.join("layers"));
    assert!(!blobs_before.is_empty());
    fs::File::create(root.join("berth.db")).unwrap();
    let _ = fs::remove_file(root.join("berth.db-wal"));
    let _ = fs::remove_file(root.join("berth.db-shm"));
    for args in [
        &["image", "prune", "-a", "-f"][..],
        &["rmi", "-f", "busybox"][..],
        &["images"][..],
    ] {
        let out = env.run("root", args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded on an empty database"
        );
        let err = stderr(&out);
        let want = format!(
            "store database {} is empty but {} holds {} blobs",
            root.join("berth.db").display(),
            root.display(),
            blobs_before.len()
        );
        assert!(err.contains(&want), "{args:?}: {err}");
        assert!(err.contains("restore the database or move"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert_eq!(entries(&root.join("blobs/sha256")), blobs_before);
    assert_eq!(entries(&root.join("layers")), layers_before);
    // A missing one, the same.
    fs::remove_file(root.join("berth.db")).unwrap();
    let out = env.run("root", &["image", "prune", "-a", "-f"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is missing but"), "{}", stderr(&out));
    assert_eq!(entries(&root.join("blobs/sha256")), blobs_before);
}

/// A registry of berth's own holding `REPO:1` (busybox plus a layer of `extra_mb` MB of
/// random bytes), pushed from a root of the test; returns the server and the reference.
fn registry_with_image(env: &Env, repo: &str, extra_mb: usize) -> (Proc, String) {
    let (server, addr) = support::serve_registry(&env.path("storage"), &[]);
    let reference = format!("{addr}/{repo}:1");
    if extra_mb == 0 {
        env.import_busybox("src", &reference);
    } else {
        let slug = repo.replace('/', "-");
        let ctx = env.path(&format!("ctx-{slug}"));
        fs::create_dir_all(&ctx).unwrap();
        let mut data = vec![0u8; extra_mb << 20];
        let mut x: u64 = 0x9e3779b97f4a7c15 ^ repo.len() as u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        fs::write(ctx.join("blob.bin"), &data).unwrap();
        // A tar of one file, imported as a one-layer image.
        let tar = env.path(&format!("{slug}.tar"));
        let st = Command::new("tar")
            .arg("-C")
            .arg(&ctx)
            .arg("-cf")
            .arg(&tar)
            .arg("blob.bin")
            .status()
            .unwrap();
        assert!(st.success());
        env.ok("src", &["import", tar.to_str().unwrap(), &reference]);
    }
    env.ok("src", &["push", &reference]);
    (server, reference)
}

#[test]
fn ten_parallel_pulls_of_one_image_all_succeed() {
    let env = Env::new();
    let (_server, reference) = registry_with_image(&env, "par/one", 24);
    let root = env.root("dst");
    let children: Vec<_> = (0..10)
        .map(|_| {
            env.cmd("dst", &["pull", "-q", &reference])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a parallel pull failed: {}",
            stderr(&out)
        );
    }
    assert_eq!(entries(&root.join("tmp")), Vec::<String>::new());
    assert_blobs_match_names(&root);
    assert_db_integrity(&root);
    let id = env.ok("dst", &["images", "-q", &reference]);
    assert!(!id.trim().is_empty());
}

#[test]
fn parallel_pulls_of_overlapping_images_all_succeed() {
    let env = Env::new();
    let (server, addr) = support::serve_registry(&env.path("storage"), &[]);
    // Two images over the same busybox layer.
    let a = format!("{addr}/ov/a:1");
    let b = format!("{addr}/ov/b:1");
    env.import_busybox("src", &a);
    env.ok("src", &["tag", &a, &b]);
    env.ok("src", &["push", &a]);
    env.ok("src", &["push", &b]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let r = if i % 2 == 0 { &a } else { &b };
            env.cmd("dst", &["pull", "-q", r])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    drop(server);
    let root = env.root("dst");
    assert_eq!(entries(&root.join("tmp")), Vec::<String>::new());
    assert_blobs_match_names(&root);
}

/// Waits until `pred` holds for `dir`'s entries (up to `secs`).
fn wait_for_entry(dir: &Path, secs: u64, pred: impl Fn(&str) -> bool) -> bool {
    support::eventually(secs, || entries(dir).iter().any(|e| pred(e)))
}

#[test]
fn a_killed_pull_leaves_nothing_after_the_next_command() {
    let env = Env::new();
    let (_server, reference) = registry_with_image(&env, "kill/pull", 64);
    // Slow the download down enough to kill it half way: one pull, killed once its
    // partial file exists.
    let mut child = env
        .cmd("dst", &["pull", "-q", &reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp = env.root("dst").join("tmp");
    let seen = wait_for_entry(&tmp, 20, |e| {
        e.starts_with("pull-") || e.starts_with("layer-")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the pull never staged anything");
    // The next command (any) sweeps what the dead pull owned.
    env.ok("dst", &["images"]);
    assert_eq!(entries(&tmp), Vec::<String>::new());
    // And the pull then works.
    env.ok("dst", &["pull", "-q", &reference]);
    assert_eq!(entries(&tmp), Vec::<String>::new());
}
