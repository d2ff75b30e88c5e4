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

/// Whether a root-only test may run (containers, mounts).
fn require_root(test: &str) -> bool {
    support::require_root(test)
}

#[test]
fn rmi_racing_create_and_run_leaves_no_container_without_its_image() {
    if !require_root("rmi_racing_create_and_run_leaves_no_container_without_its_image") {
        return;
    }
    let env = Env::new();
    for round in 0..12 {
        env.import_busybox("root", "race:1");
        let name = format!("c{round}");
        let create = env
            .cmd(
                "root",
                &[
                    "create",
                    "--name",
                    &name,
                    "--network",
                    "none",
                    "race:1",
                    "true",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = env
            .cmd(
                "root",
                &["run", "--rm", "--network", "none", "race:1", "true"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(20 * (round as u64 % 5)));
        }
        let rmi = env.run("root", &["rmi", "-f", "race:1"]);
        for (what, out) in [
            ("create", create.wait_with_output().unwrap()),
            ("run", run.wait_with_output().unwrap()),
            ("rmi", rmi),
        ] {
            // One side wins: the loser says so in one line; never a half-made state.
            if !out.status.success() {
                let err = stderr(&out);
                assert!(
                    err.contains("No such image")
                        || err.contains("Unable to find image")
                        || err.contains("in use"),
                    "{what} failed unclearly: {err}"
                );
            }
        }
    }
    // Every container row's image exists, and the container starts.
    let ids = env.ok("root", &["ps", "-a", "-q", "--no-trunc"]);
    for id in ids.lines().filter(|l| !l.is_empty()) {
        let image = env.ok("root", &["inspect", "-f", "{{.Image}}", id]);
        env.ok("root", &["image", "inspect", image.trim()]);
        let out = env.run("root", &["start", "-a", id]);
        assert!(out.status.success(), "container {id}: {}", stderr(&out));
        env.ok("root", &["rm", "-f", id]);
    }
    assert_db_integrity(&env.root("root"));
    assert_blobs_match_names(&env.root("root"));
}

/// A minimal HTTP/1.1 request to `addr`; returns (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 2 + n + 2..];
        }
        body = out;
    }
    (status, body)
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn a_pull_that_fails_its_diff_id_check_leaves_nothing() {
    let env = Env::new();
    let (_server, addr) = support::serve_registry(&env.path("storage"), &[]);
    let good = format!("{addr}/bad/img:1");
    env.import_busybox("src", &good);
    env.ok("src", &["push", &good]);
    // The same manifest with a config whose diff ID is wrong, under tag 2.
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let (st, manifest) = http(
        &addr,
        "GET",
        "/v2/bad/img/manifests/1",
        &[("Accept", accept)],
        b"",
    );
    assert_eq!(st, 200);
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let cfg_digest = m["config"]["digest"].as_str().unwrap().to_owned();
    let (st, cfg) = http(
        &addr,
        "GET",
        &format!("/v2/bad/img/blobs/{cfg_digest}"),
        &[],
        b"",
    );
    assert_eq!(st, 200);
    let mut c: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    c["rootfs"]["diff_ids"][0] = serde_json::json!(format!("sha256:{}", "ab".repeat(32)));
    let bad_cfg = serde_json::to_vec(&c).unwrap();
    let bad_digest = format!("sha256:{}", sha256_hex(&bad_cfg));
    let (st, _) = http(
        &addr,
        "POST",
        &format!("/v2/bad/img/blobs/uploads/?digest={bad_digest}"),
        &[("Content-Type", "application/octet-stream")],
        &bad_cfg,
    );
    assert_eq!(st, 201, "monolithic upload of the bad config");
    m["config"]["digest"] = serde_json::json!(bad_digest);
    m["config"]["size"] = serde_json::json!(bad_cfg.len());
    let mt = m["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_owned();
    let (st, _) = http(
        &addr,
        "PUT",
        "/v2/bad/img/manifests/2",
        &[("Content-Type", &mt)],
        &serde_json::to_vec(&m).unwrap(),
    );
    assert_eq!(st, 201);

    let out = env.run("dst", &["pull", "-q", &format!("{addr}/bad/img:2")]);
    assert!(!out.status.success(), "the bad pull succeeded");
    assert!(
        stderr(&out).to_lowercase().contains("diff"),
        "{}",
        stderr(&out)
    );
    let root = env.root("dst");
    assert_eq!(
        entries(&root.join("blobs/sha256")),
        Vec::<String>::new(),
        "blobs left"
    );
    assert_eq!(
        entries(&root.join("layers")),
        Vec::<String>::new(),
        "layers left"
    );
    assert_eq!(
        entries(&root.join("tmp")),
        Vec::<String>::new(),
        "staging left"
    );
}

#[test]
fn image_prune_reports_the_orphan_bytes_it_frees_and_layer_locks_go_with_layers() {
    let env = Env::new();
    env.import_busybox("root", "busybox:latest");
    let root = env.root("root");
    // An orphan blob (as a killed pull leaves one): 100000 bytes.
    let data = vec![7u8; 100_000];
    let hex = sha256_hex(&data);
    fs::write(root.join("blobs/sha256").join(&hex), &data).unwrap();
    let out = env.ok("root", &["image", "prune", "-f"]);
    assert!(
        out.contains("Total reclaimed space: 100kB")
            || out.contains("Total reclaimed space: 100 kB"),
        "{out}"
    );
    assert!(!root.join("blobs/sha256").join(&hex).exists());
    // Layer locks live as long as their layers.
    env.ok("root", &["rmi", "busybox"]);
    assert_eq!(entries(&root.join("layers")), Vec::<String>::new());
    let locks: Vec<String> = entries(&root.join("locks"))
        .into_iter()
        .filter(|n| n.starts_with("layer-"))
        .collect();
    assert_eq!(locks, Vec::<String>::new());
}

#[test]
fn a_killed_save_leaves_nothing_beside_its_output() {
    let env = Env::new();
    let (_server, reference) = registry_with_image(&env, "save/big", 48);
    drop(_server);
    let outdir = env.path("out");
    fs::create_dir_all(&outdir).unwrap();
    let target = outdir.join("img.tar");
    for delay_ms in [30u64, 120, 300] {
        let mut child = env
            .cmd("src", &["save", "-o", target.to_str().unwrap(), &reference])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        let left: Vec<String> = entries(&outdir)
            .into_iter()
            .filter(|n| n != "img.tar")
            .collect();
        assert_eq!(left, Vec::<String>::new(), "killed after {delay_ms} ms");
    }
    env.ok("src", &["save", "-o", target.to_str().unwrap(), &reference]);
    assert_eq!(entries(&outdir), vec!["img.tar".to_owned()]);

    // A load killed while it unpacks: the next command sweeps its staging.
    let tmp = env.root("dst").join("tmp");
    let mut child = env
        .cmd("dst", &["load", "-i", target.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staged = wait_for_entry(&tmp, 20, |e| {
        e.starts_with("layer-") || e.starts_with("blob-")
    });
    let _ = child.kill();
    child.wait().unwrap();
    assert!(staged, "the load never staged anything");
    env.ok("dst", &["images"]);
    assert_eq!(entries(&tmp), Vec::<String>::new());
    env.ok("dst", &["load", "-i", target.to_str().unwrap()]);
    env.ok("dst", &["image", "inspect", &reference]);
    assert_eq!(entries(&tmp), Vec::<String>::new());
}

/// A tmpfs of `size` mounted at `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs at {}", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_named_as_such() {
    if !require_root("a_full_disk_is_named_as_such") {
        return;
    }
    let env = Env::new();
    let _fs = Tmpfs::mount(&env.path("full"), "24m");
    let root = env.path("full/root");
    let run = |args: &[&str]| {
        berth_command(&root, &env.path("full-run"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["import", busybox_tar().to_str().unwrap(), "busybox:latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Fill the file system.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", env.path("full/filler").display()))
        .stderr(Stdio::null())
        .status();
    for args in [
        &["ps", "-a"][..],
        &["images"][..],
        &["tag", "busybox", "b:2"][..],
    ] {
        let out = run(args);
        if out.status.success() {
            continue;
        }
        let err = stderr(&out);
        assert!(err.contains("no space left on device"), "{args:?}: {err}");
        assert!(
            err.contains(root.join("berth.db").to_str().unwrap())
                || err.contains(root.to_str().unwrap()),
            "{args:?}: {err}"
        );
        assert!(!err.contains("xShmMap"), "{err}");
    }
    let out = run(&["import", busybox_tar().to_str().unwrap(), "other:1"]);
    assert!(!out.status.success());
    let err = stderr(&out).to_lowercase();
    assert!(err.contains("no space left on device"), "{err}");
}

#[test]
fn twenty_parallel_mixed_commands_keep_the_store_whole() {
    if !require_root("twenty_parallel_mixed_commands_keep_the_store_whole") {
        return;
    }
    let env = Env::new();
    let (_server, reference) = registry_with_image(&env, "mixed/img", 4);
    env.import_busybox("root", "busybox:latest");
    let tar = busybox_tar().to_str().unwrap().to_owned();
    let jobs: Vec<Vec<String>> = (0..20)
        .map(|i| {
            let v: Vec<&str> = match i % 6 {
                0 => vec!["pull", "-q", &reference],
                1 => vec!["run", "--rm", "--network", "none", "busybox", "true"],
                2 => vec!["rmi", "-f", &reference],
                3 => vec!["images"],
                4 => vec!["image", "prune", "-a", "-f"],
                _ => vec!["import", &tar, "imported:1"],
            };
            v.into_iter().map(str::to_owned).collect()
        })
        .collect();
    let children: Vec<_> = jobs
        .iter()
        .map(|args| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            (
                args.clone(),
                env.cmd("root", &a)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for (args, c) in children {
        let out = c.wait_with_output().unwrap();
        if !out.status.success() {
            let err = stderr(&out);
            // A clean conflict: the image went, or is in use (one line). A `run` whose image
            // went tries to pull it, as Docker's does: "Unable to find image", then the pull's
            // one error line (Docker Hub is a closed loopback port here).
            let lines = err.trim().lines().count();
            let pulled = err.starts_with("Unable to find image") && lines == 2;
            assert!(
                (err.contains("No such image")
                    || err.contains("Unable to find image")
                    || err.contains("in use")
                    || err.contains("conflict"))
                    && (lines == 1 || pulled),
                "{args:?}: {err}"
            );
        }
    }
    let root = env.root("root");
    assert_db_integrity(&root);
    assert_blobs_match_names(&root);
    assert_eq!(entries(&root.join("tmp")), Vec::<String>::new());
    // Every image left is whole, and the busybox ones run.
    let ids = env.ok("root", &["images", "-q", "--no-trunc"]);
    for id in ids.lines().filter(|l| !l.is_empty()) {
        env.ok("root", &["image", "inspect", id]);
    }
    for name in ["busybox", "imported:1"] {
        if env
            .run("root", &["image", "inspect", name])
            .status
            .success()
        {
            env.ok("root", &["run", "--rm", "--network", "none", name, "true"]);
        }
    }
}

#[test]
fn system_df_shows_staging_in_progress_and_sweeps_a_dead_owners() {
    let env = Env::new();
    env.import_busybox("root", "busybox:latest");
    let tmp = env.root("root").join("tmp");
    // A download in progress: an entry and its owner lock, held by this process.
    fs::write(tmp.join("pull-test"), vec![0u8; 3_000_000]).unwrap();
    let lock = fs::File::create(tmp.join("pull-test.lock")).unwrap();
    lock.lock().unwrap();
    let df = env.ok("root", &["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Staging"))
        .unwrap_or_else(|| panic!("no staging row: {df}"));
    assert!(row.contains("3MB"), "{row}");
    // Its owner dies: the next command removes it, and df has no such row.
    drop(lock);
    let df = env.ok("root", &["system", "df"]);
    assert!(!df.contains("Staging"), "{df}");
    assert_eq!(entries(&tmp), Vec::<String>::new());
}
