//! The image verbs end to end through the `berth` binary, each test on its own temp root:
//! import, images, save, load (with skopeo and umoci as real peers), tag, rmi, prune,
//! history, system df, concurrency and bad input.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "containers_support/mod.rs"]
mod support;

use support::{berth_command, require_tool};

/// Whether a root-only test may run: skips (with a message) when not root, fails under CI.
fn require_root(test: &str) -> bool {
    support::require_root_for(test, "busybox rootfs with owners")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd_in(&self, root: &Path, args: &[&str]) -> Command {
        let mut c = berth_command(root, &self.dir.path().join("run"));
        c.args(args);
        c
    }

    fn run_in(&self, root: &Path, args: &[&str]) -> Output {
        self.cmd_in(root, args).output().expect("run berth")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.root(), args)
    }

    /// Runs and asserts success; returns stdout.
    fn ok_in(&self, root: &Path, args: &[&str]) -> String {
        let out = self.run_in(root, args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(&self.root(), args)
    }

    fn inspect_in(&self, root: &Path, image: &str) -> Value {
        let out = self.ok_in(root, &["image", "inspect", image]);
        let v: Value = serde_json::from_str(&out).expect("inspect JSON");
        v[0].clone()
    }

    /// A small rootfs tar with the given files.
    fn small_tar(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let path = self.path(name);
        let mut b = tar::Builder::new(fs::File::create(&path).expect("create tar"));
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(946684800);
            h.set_cksum();
            b.append_data(&mut h, p, *data).expect("append");
        }
        b.finish().expect("finish tar");
        path
    }
}

fn count_entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn image_ids(env: &Env) -> Vec<String> {
    env.ok(&["images", "-q", "--no-trunc"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The one-line error contract: status 1 (Docker's for these verbs), one `Error:` line.
fn assert_one_error_line(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: status; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("Error: "), "{what}: {stderr:?}");
}

#[test]
fn import_images_save_load_keeps_ids_and_digests() {
    if !require_root("import_images_save_load_keeps_ids_and_digests") {
        return;
    }
    let env = Env::new();
    let tar = support::busybox_tar();
    let id = env.ok(&[
        "import",
        "-c",
        r#"CMD ["sh"]"#,
        "-c",
        "ENV A=1",
        "-c",
        "WORKDIR /srv",
        tar.to_str().unwrap(),
        "test/bb:1",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let table = env.ok(&["images"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED")
            && header.ends_with("SIZE"),
        "{header:?}"
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("test/bb      1         "), "{row:?}");
    assert!(row.contains(&id[7..19]), "{row:?}");
    assert!(
        row.contains("ago") && row.trim_end().ends_with("MB"),
        "{row:?}"
    );

    let original = env.inspect_in(&env.root(), "test/bb:1");
    assert_eq!(original["Id"], id);
    assert_eq!(original["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(original["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(original["Config"]["WorkingDir"], "/srv");
    assert_eq!(original["RepoTags"], serde_json::json!(["test/bb:1"]));

    for format in ["docker-archive", "oci-archive"] {
        let archive = env.path(&format!("{format}.tar"));
        env.ok(&[
            "save",
            "--format",
            format,
            "-o",
            archive.to_str().unwrap(),
            "test/bb:1",
        ]);
        let fresh = env.path(&format!("fresh-{format}"));
        let out = env.ok_in(&fresh, &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: test/bb:1\n", "{format}");
        let loaded = env.inspect_in(&fresh, "test/bb:1");
        for key in ["Id", "RootFS", "Config", "Created", "RepoTags", "Size"] {
            assert_eq!(loaded[key], original[key], "{format}: {key}");
        }
        assert_eq!(
            loaded["Descriptor"]["digest"], original["Descriptor"]["digest"],
            "{format}: manifest digest"
        );
        // The same archive again: nothing new, same answer.
        let again = env.ok_in(&fresh, &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(again, out);
        assert_eq!(count_entries(&fresh.join("tmp")), 0);
    }

    // Streamed through stdin, gzip-compressed, as `docker save | gzip | docker load`.
    let archive = env.path("docker-archive.tar");
    let gz = env.path("archive.tar.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", archive.display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let fresh = env.path("fresh-stdin");
    let out = env
        .cmd_in(&fresh, &["load"])
        .stdin(fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.inspect_in(&fresh, "test/bb:1")["Id"], id);
}

#[test]
fn skopeo_reads_and_writes_berth_archives() {
    if !require_root("skopeo_reads_and_writes_berth_archives")
        || !require_tool("skopeo_reads_and_writes_berth_archives", "skopeo")
    {
        return;
    }
    let env = Env::new();
    let tar = support::busybox_tar();
    env.ok(&["import", tar.to_str().unwrap(), "test/bb:1"]);
    let diff_ids = env.inspect_in(&env.root(), "test/bb:1")["RootFS"]["Layers"].clone();
    let docker = env.path("d.tar");
    let oci = env.path("o.tar");
    env.ok(&["save", "-o", docker.to_str().unwrap(), "test/bb:1"]);
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().unwrap(),
        "test/bb:1",
    ]);
    for src in [
        format!("docker-archive:{}", docker.display()),
        format!("oci-archive:{}", oci.display()),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", &src])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"], diff_ids, "{src}");
    }
    // Archives written by skopeo load into berth.
    let copies = [
        (
            format!("oci-archive:{}", oci.display()),
            env.path("sk-d.tar"),
            "docker-archive",
            "test/skd:3",
        ),
        (
            format!("docker-archive:{}", docker.display()),
            env.path("sk-o.tar"),
            "oci-archive",
            "test/sko:2",
        ),
    ];
    for (src, dst, kind, name) in copies {
        let out = Command::new("skopeo")
            .args([
                "copy",
                "-q",
                &src,
                &format!("{kind}:{}:{name}", dst.display()),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy to {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fresh = env.path(&format!("fresh-{kind}"));
        let loaded = env.ok_in(&fresh, &["load", "-i", dst.to_str().unwrap()]);
        assert_eq!(loaded, format!("Loaded image: {name}\n"));
        let v = env.inspect_in(&fresh, name);
        assert_eq!(v["RootFS"]["Layers"], diff_ids, "{kind}");
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    link: Option<PathBuf>,
}

fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Node> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                stack.push(p.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                Node {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    size: if ft.is_file() { m.len() } else { 0 },
                    link: ft.is_symlink().then(|| fs::read_link(&p).unwrap()),
                },
            );
        }
    }
    out
}

#[test]
fn umoci_unpack_of_berth_oci_layout_matches_snapshot() {
    if !require_root("umoci_unpack_of_berth_oci_layout_matches_snapshot")
        || !require_tool("umoci_unpack_of_berth_oci_layout_matches_snapshot", "umoci")
    {
        return;
    }
    let env = Env::new();
    let tar = support::busybox_tar();
    env.ok(&["import", tar.to_str().unwrap(), "test/bb:1"]);
    let oci = env.path("o.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().unwrap(),
        "test/bb:1",
    ]);
    let layout = env.path("layout");
    fs::create_dir(&layout).unwrap();
    tar::Archive::new(fs::File::open(&oci).unwrap())
        .unpack(&layout)
        .unwrap();
    let bundle = env.path("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:test/bb:1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lower = env.inspect_in(&env.root(), "test/bb:1")["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_owned();
    let ours = tree(Path::new(&lower));
    let theirs = tree(&bundle.join("rootfs"));
    assert!(ours.len() > 200, "busybox tree has {} entries", ours.len());
    assert_eq!(ours, theirs);
}

#[test]
fn concurrent_imports_store_one_layer() {
    let env = Env::new();
    let data = vec![7u8; 1 << 20];
    let tar = env.small_tar("same.tar", &[("bin/big", &data), ("etc/hello", b"hi\n")]);
    // Create the store first so that the processes race on content, not on set-up.
    env.ok(&["images"]);
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.cmd_in(&env.root(), &["import", tar.to_str().unwrap(), "conc:1"])
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
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let root = env.root();
    assert_eq!(count_entries(&root.join("layers")), 1, "one layer snapshot");
    assert_eq!(count_entries(&root.join("tmp")), 0, "nothing left in tmp/");
    let ids = image_ids(&env);
    assert_eq!(
        ids.len(),
        20,
        "each import is its own image (its own created time)"
    );
    let layer_blobs: Vec<Value> = ids
        .iter()
        .map(|id| env.inspect_in(&root, id)["RootFS"]["Layers"][0].clone())
        .collect();
    assert!(layer_blobs.iter().all(|l| *l == layer_blobs[0]));
    let diff = layer_blobs[0].as_str().unwrap();
    assert!(
        root.join("blobs/sha256").join(&diff[7..]).is_file(),
        "one layer blob"
    );
    // 20 layer-sharing images: 1 layer blob + 20 configs + 20 manifests.
    assert_eq!(count_entries(&root.join("blobs/sha256")), 41);
    let tagged = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(tagged.lines().filter(|l| *l == "conc:1").count(), 1);
}

#[test]
fn bad_input_is_one_error_line_and_leaves_nothing() {
    let env = Env::new();
    let good = env.small_tar("good.tar", &[("etc/hello", b"hi\n")]);
    let not_tar = env.path("not-a-tar");
    fs::write(&not_tar, "this is not a tar archive\n".repeat(100)).unwrap();
    let missing = env.path("missing.tar");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("missing file", vec!["import", missing.to_str().unwrap()]),
        (
            "not a tar",
            vec!["import", not_tar.to_str().unwrap(), "x:1"],
        ),
        (
            "bad reference",
            vec!["import", good.to_str().unwrap(), "Bad:Ref"],
        ),
        (
            "bad change",
            vec!["import", "-c", "RUN rm -rf /", good.to_str().unwrap()],
        ),
        ("unknown image rmi", vec!["rmi", "nosuch:1"]),
        ("unknown image tag", vec!["tag", "nosuch", "other:1"]),
        ("unknown image history", vec!["history", "nosuch"]),
        ("unknown image inspect", vec!["image", "inspect", "nosuch"]),
        (
            "unknown image save",
            vec!["save", "-o", "/dev/null", "nosuch"],
        ),
        (
            "load missing",
            vec!["load", "-i", missing.to_str().unwrap()],
        ),
        (
            "load not a tar",
            vec!["load", "-i", not_tar.to_str().unwrap()],
        ),
        (
            "load plain rootfs",
            vec!["load", "-i", good.to_str().unwrap()],
        ),
        ("bad filter", vec!["images", "--filter", "bogus=1"]),
    ];
    for (what, args) in &cases {
        let out = env.run(args);
        assert_one_error_line(&out, what);
    }
    let stderr = String::from_utf8(env.run(&["rmi", "nosuch:1"]).stderr).unwrap();
    assert_eq!(stderr, "Error: No such image: nosuch:1\n");
    let stderr = String::from_utf8(env.run(&["import", missing.to_str().unwrap()]).stderr).unwrap();
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    let root = env.root();
    assert_eq!(count_entries(&root.join("tmp")), 0);
    assert_eq!(count_entries(&root.join("layers")), 0);
    assert_eq!(count_entries(&root.join("blobs/sha256")), 0);
    assert!(image_ids(&env).is_empty());
    // A failed save leaves no output file.
    let out_file = env.path("out.tar");
    let out = env.run(&["save", "-o", out_file.to_str().unwrap(), "nosuch"]);
    assert_one_error_line(&out, "save");
    assert!(!out_file.exists());
}

#[test]
fn rmi_untags_then_deletes_like_docker() {
    let env = Env::new();
    let tar = env.small_tar("a.tar", &[("a", b"a")]);
    let id = env
        .ok(&["import", tar.to_str().unwrap(), "a:1"])
        .trim()
        .to_owned();
    env.ok(&["tag", "a:1", "a:2"]);
    env.ok(&["tag", &id[7..15], "b:1"]);
    assert_eq!(env.ok(&["rmi", "a:2"]), "Untagged: a:2\n");
    let out = env.run(&["rmi", &id[7..19]]);
    assert_one_error_line(&out, "rmi by id, two repositories");
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be forced"));
    let out = env.ok(&["rmi", "-f", &id[7..19]]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Untagged: a:1"));
    assert_eq!(lines.next(), Some("Untagged: b:1"));
    assert_eq!(lines.next(), Some(format!("Deleted: {id}").as_str()));
    assert!(lines.all(|l| l.starts_with("Deleted: sha256:")));
    assert!(image_ids(&env).is_empty());
    let root = env.root();
    assert_eq!(count_entries(&root.join("layers")), 0);
    assert_eq!(count_entries(&root.join("blobs/sha256")), 0);

    // Last tag of an image: untag and delete.
    let id = env
        .ok(&["import", tar.to_str().unwrap(), "c:1"])
        .trim()
        .to_owned();
    assert_eq!(
        env.ok(&["rmi", "c:1"]).lines().take(2).collect::<Vec<_>>(),
        vec!["Untagged: c:1".to_owned(), format!("Deleted: {id}")]
    );
}

#[test]
fn ambiguous_prefix_lists_the_matches() {
    let env = Env::new();
    let tar = env.small_tar("a.tar", &[("a", b"a")]);
    // 17 images: two of them share a first hex digit.
    let mut ids = Vec::new();
    for _ in 0..17 {
        ids.push(env.ok(&["import", tar.to_str().unwrap()]).trim()[7..].to_owned());
    }
    let (prefix, matches): (String, Vec<&String>) = (0..16)
        .map(|d| format!("{d:x}"))
        .map(|p| {
            let m = ids.iter().filter(|i| i.starts_with(&p)).collect::<Vec<_>>();
            (p, m)
        })
        .find(|(_, m)| m.len() >= 2)
        .unwrap();
    let out = env.run(&["rmi", &prefix]);
    assert_one_error_line(&out, "ambiguous prefix");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for m in matches {
        assert!(stderr.contains(&m[..12]), "{stderr}");
    }
    assert_eq!(image_ids(&env).len(), 17);
}

#[test]
fn reimport_moves_tag_and_prune_removes_dangling() {
    let env = Env::new();
    let t1 = env.small_tar("1.tar", &[("v", b"1")]);
    let t2 = env.small_tar("2.tar", &[("v", b"2")]);
    let old = env
        .ok(&["import", "-m", "first", t1.to_str().unwrap(), "x:1"])
        .trim()
        .to_owned();
    let new = env
        .ok(&["import", t2.to_str().unwrap(), "x:1"])
        .trim()
        .to_owned();
    let rows = env.ok(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]);
    assert!(rows.contains(&format!("x 1 {}", &new[7..19])), "{rows}");
    assert!(
        rows.contains(&format!("<none> <none> {}", &old[7..19])),
        "{rows}"
    );
    let dangling = env.ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"]);
    assert_eq!(dangling, format!("{old}\n"));
    let history = env.ok(&["history", &old[7..]]);
    assert!(history.starts_with("IMAGE          CREATED"), "{history}");
    assert!(history.contains("first"), "{history}");
    let json_line = env.ok(&["images", "--format", "json", "x"]);
    let v: Value = serde_json::from_str(json_line.trim()).unwrap();
    assert_eq!(v["Repository"], "x");
    assert_eq!(v["Tag"], "1");
    let df = env.ok(&["system", "df"]);
    assert!(
        df.starts_with(
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages          2"
        ),
        "{df}"
    );

    let pruned = env.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.starts_with(&format!("Deleted Images:\ndeleted: {old}\n")),
        "{pruned}"
    );
    assert!(pruned.contains("\n\nTotal reclaimed space: "), "{pruned}");
    assert_eq!(image_ids(&env), vec![new.clone()]);
    // Nothing dangling any more: nothing to do.
    assert_eq!(
        env.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    // Without -f and without a terminal answer, nothing is removed.
    env.ok(&["image", "prune", "-a"]);
    assert_eq!(image_ids(&env), vec![new]);
    env.ok(&["image", "prune", "-a", "-f"]);
    assert!(image_ids(&env).is_empty());
}

#[test]
fn import_killed_midway_leaves_old_state_and_gc_cleans_up() {
    use std::io::Write;
    let env = Env::new();
    let keep = env.small_tar("keep.tar", &[("k", b"keep")]);
    let kept = env
        .ok(&["import", keep.to_str().unwrap(), "keep:1"])
        .trim()
        .to_owned();
    let big = vec![1u8; 4 << 20];
    let tar = env.small_tar("big.tar", &[("big", &big)]);
    let bytes = fs::read(&tar).unwrap();
    let mut child = env
        .cmd_in(&env.root(), &["import", "-", "half:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    // Wait until it is staging content, then kill it mid-stream.
    let tmp = env.root().join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count_entries(&tmp) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    // The old state: the kept image only, still whole.
    assert_eq!(image_ids(&env), vec![kept.clone()]);
    assert_eq!(env.inspect_in(&env.root(), "keep:1")["Id"], kept);
    let root = env.root();
    // The next command (here `images`, above) swept the dead writer's staging; the next
    // collection removes what else it stored.
    assert_eq!(count_entries(&root.join("tmp")), 0);
    env.ok(&["image", "prune", "-f"]);
    assert_eq!(count_entries(&root.join("tmp")), 0);
    assert_eq!(count_entries(&root.join("layers")), 1);
    // Piped input works when whole.
    let out = env
        .cmd_in(&root, &["import", "-", "whole:1"])
        .stdin(fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(image_ids(&env).len(), 2);
}

/// Imports `tar` with `changes`, untagged (so dangling); returns the full image ID.
fn import_dangling(env: &Env, tar: &Path, changes: &[&str]) -> String {
    let mut args = vec!["import"];
    for c in changes {
        args.push("-c");
        args.push(c);
    }
    args.push(tar.to_str().unwrap());
    env.ok(&args).trim().to_owned()
}

#[test]
fn prune_filters_until_and_label_as_docker() {
    let env = Env::new();
    let t1 = env.small_tar("1.tar", &[("v", b"1")]);
    let t2 = env.small_tar("2.tar", &[("v", b"2")]);
    let t3 = env.small_tar("3.tar", &[("v", b"3")]);
    let t4 = env.small_tar("4.tar", &[("v", b"4")]);
    let keep = import_dangling(&env, &t1, &["LABEL keep=yes"]);
    let other = import_dangling(&env, &t2, &["LABEL other=1"]);
    let plain = import_dangling(&env, &t3, &[]);
    let tagged = env
        .ok(&[
            "import",
            "-c",
            "LABEL keep=yes",
            t4.to_str().unwrap(),
            "t:1",
        ])
        .trim()
        .to_owned();
    let mut all = vec![keep.clone(), other.clone(), plain.clone(), tagged.clone()];
    all.sort();
    let sorted_ids = |env: &Env| {
        let mut v = image_ids(env);
        v.sort();
        v
    };
    assert_eq!(sorted_ids(&env), all);

    // Everything was created just now: nothing is older than 24 hours.
    let out = env.ok(&["image", "prune", "-f", "--filter", "until=24h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(sorted_ids(&env), all);

    // label=KEY=VALUE prunes only the dangling images that have it (not the tagged one).
    let out = env.ok(&["image", "prune", "-f", "--filter", "label=keep=yes"]);
    assert!(
        out.starts_with(&format!("Deleted Images:\ndeleted: {keep}\n")),
        "{out}"
    );
    assert!(!image_ids(&env).contains(&keep));
    assert!(image_ids(&env).contains(&tagged));

    // label!=KEY prunes the images without it.
    let out = env.ok(&["image", "prune", "-f", "--filter", "label!=other"]);
    assert!(out.contains(&format!("deleted: {plain}\n")), "{out}");
    assert!(!out.contains(&other), "{out}");
    let mut left = vec![other.clone(), tagged.clone()];
    left.sort();
    assert_eq!(sorted_ids(&env), left);

    // until=DATE in the future prunes what is older, i.e. the rest of the dangling ones.
    let out = env.ok(&[
        "image",
        "prune",
        "-f",
        "--filter",
        "until=2099-01-01T00:00:00Z",
    ]);
    assert!(out.contains(&format!("deleted: {other}\n")), "{out}");
    assert_eq!(image_ids(&env), vec![tagged.clone()]);

    // -a with a label filter that does not match keeps the tagged image; one that does
    // removes it (untagged first).
    env.ok(&["image", "prune", "-a", "-f", "--filter", "label=nosuch"]);
    assert_eq!(image_ids(&env), vec![tagged.clone()]);
    let out = env.ok(&[
        "image",
        "prune",
        "-f",
        "--filter",
        "dangling=false",
        "--filter",
        "label=keep",
    ]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: t:1\ndeleted: {tagged}\n"
        )),
        "{out}"
    );
    assert!(image_ids(&env).is_empty());

    // Bad filters: one error line, status 1, nothing removed.
    let again = import_dangling(&env, &t1, &[]);
    for bad in ["until=soon", "bogus=1", "dangling=maybe", "label="] {
        let out = env.run(&["image", "prune", "-f", "--filter", bad]);
        assert_one_error_line(&out, bad);
    }
    let stderr = String::from_utf8(
        env.run(&["image", "prune", "-f", "--filter", "until=soon"])
            .stderr,
    )
    .unwrap();
    assert_eq!(
        stderr,
        "Error: failed to parse value as time or duration: \"soon\"\n"
    );
    assert_eq!(image_ids(&env), vec![again]);
}

#[test]
fn sizes_are_unpacked_content_in_images_history_df_and_inspect() {
    let env = Env::new();
    // 1000 bytes in a file, a hardlink to it (counted once), a symlink (its target's
    // length, 5), a directory and an empty file (nothing): 1005 bytes, where the tar
    // itself has over 3 kB.
    let path = env.path("sized.tar");
    let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_cksum();
    b.append_data(&mut dir, "d/", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1000);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "d/file", &[7u8; 1000][..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Link);
    l.set_size(0);
    l.set_mode(0o644);
    b.append_link(&mut l, "d/hardlink", "d/file").unwrap();
    let mut s = tar::Header::new_gnu();
    s.set_entry_type(tar::EntryType::Symlink);
    s.set_size(0);
    s.set_mode(0o777);
    b.append_link(&mut s, "d/symlink", "d/fil").unwrap();
    let mut e = tar::Header::new_gnu();
    e.set_size(0);
    e.set_mode(0o644);
    e.set_cksum();
    b.append_data(&mut e, "empty", &[][..]).unwrap();
    b.finish().unwrap();
    drop(b);
    assert!(fs::metadata(&path).unwrap().len() > 3000);

    let id = env
        .ok(&["import", path.to_str().unwrap(), "sized:1"])
        .trim()
        .to_owned();
    let inspect = env.inspect_in(&env.root(), "sized:1");
    assert_eq!(inspect["Size"], 1005, "{inspect}");
    assert_eq!(
        env.ok(&["images", "--format", "{{.Size}}", "sized"]),
        "1kB\n"
    );
    let history = env.ok(&["history", "--format", "{{.Size}}", "sized:1"]);
    assert_eq!(history, "1kB\n");
    let df = env.ok(&["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(df.starts_with("Images 1kB\n"), "{df}");
    // A second image sharing the layer: df counts it once, images shows each.
    env.ok(&["tag", &id, "sized:2"]);
    let df = env.ok(&["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(df.starts_with("Images 1kB\n"), "{df}");
}

#[test]
fn load_errors_name_the_file_in_one_clean_line() {
    let env = Env::new();
    let out = env.run(&["load", "-i", "/etc/passwd"]);
    assert_one_error_line(&out, "load /etc/passwd");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: /etc/passwd is not a valid image archive: invalid tar header\n"
    );
    let out = env.run(&["load", "-i", "/nonexistent"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: open /nonexistent: no such file or directory\n"
    );
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["import", "/nonexistent"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: open /nonexistent: no such file or directory\n"
    );
    // import of a file that is no tar: named, its bytes not quoted.
    let out = env.run(&["import", "/etc/passwd", "p:1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: /etc/passwd: invalid tar stream: invalid tar header\n"
    );
    assert_eq!(out.status.code(), Some(1));
    // A truncated archive: named, no bytes quoted.
    let good = env.small_tar("x.tar", &[("a", b"a")]);
    env.ok(&["import", good.to_str().unwrap(), "x:1"]);
    let archive = env.path("x-archive.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "x:1"]);
    let bytes = fs::read(&archive).unwrap();
    let cut = env.path("cut.tar");
    fs::write(&cut, &bytes[..700]).unwrap();
    let out = env.run(&["load", "-i", cut.to_str().unwrap()]);
    assert_one_error_line(&out, "truncated archive");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(cut.to_str().unwrap()), "{stderr}");
    assert_eq!(count_entries(&env.root().join("tmp")), 0);
}

#[test]
fn load_quiet_still_says_what_was_loaded_and_moved() {
    let env = Env::new();
    let t1 = env.small_tar("1.tar", &[("v", b"1")]);
    let t2 = env.small_tar("2.tar", &[("v", b"2")]);
    let id = env
        .ok(&["import", t1.to_str().unwrap(), "x:1"])
        .trim()
        .to_owned();
    let archive = env.path("x.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "x:1"]);
    let other_root = env.path("other");
    // A fresh root: one line, no progress (stdout is no terminal).
    let out = env.ok_in(
        &other_root,
        &["load", "-q", "-i", archive.to_str().unwrap()],
    );
    assert_eq!(out, "Loaded image: x:1\n");
    let out = env.ok_in(&other_root, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: x:1\n");
    // x:1 now names another image there: the tag moves back, and -q says so.
    let moved = env
        .ok_in(&other_root, &["import", t2.to_str().unwrap(), "x:1"])
        .trim()
        .to_owned();
    let out = env.ok_in(
        &other_root,
        &["load", "-q", "-i", archive.to_str().unwrap()],
    );
    assert_eq!(
        out,
        format!(
            "The image x:1 already exists, renaming the old one with ID {moved} to empty string\nLoaded image: x:1\n"
        )
    );
    let inspect = env.inspect_in(&other_root, "x:1");
    assert_eq!(inspect["Id"], id.as_str());
}

#[test]
fn save_and_load_draw_progress_only_on_a_terminal() {
    if !require_tool("save_and_load_draw_progress_only_on_a_terminal", "script") {
        return;
    }
    let env = Env::new();
    let big: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let tar = env.small_tar("big.tar", &[("big", &big)]);
    env.ok(&["import", tar.to_str().unwrap(), "big:1"]);
    let archive = env.path("big-archive.tar");
    // Not a terminal: nothing but the result.
    let out = env.run(&["save", "-o", archive.to_str().unwrap(), "big:1"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    // On a terminal (script(1) gives the command a pty): per-layer bars, Docker's words.
    let prog = env
        .cmd_in(&env.root(), &[])
        .get_program()
        .to_str()
        .unwrap()
        .to_owned();
    let runroot = env.path("run");
    let shell = |root: &Path, args: &str| {
        let cmd = format!(
            "{prog} --root {} --runroot {} {args}",
            root.display(),
            runroot.display()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let saved = shell(
        &env.root(),
        &format!("save -o {}.2 big:1", archive.display()),
    );
    assert!(saved.contains("Saving layer ["), "{saved:?}");
    assert!(saved.contains("3MB/3MB"), "{saved:?}");
    let loaded = shell(
        &env.path("other"),
        &format!("load -i {}.2", archive.display()),
    );
    assert!(loaded.contains("Loading layer ["), "{loaded:?}");
    assert!(loaded.contains("Loaded image: big:1"), "{loaded:?}");
    let quiet = shell(
        &env.path("other-q"),
        &format!("load -q -i {}.2", archive.display()),
    );
    assert!(!quiet.contains("Loading layer"), "{quiet:?}");
    assert!(quiet.contains("Loaded image: big:1"), "{quiet:?}");
}
