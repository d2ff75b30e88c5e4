//! Issue 14: `cp`, `diff`, `export` and `commit`, as a user sees them (output, exit codes,
//! files on disk), and `cp`'s attacks: every path inside a container is hostile.
//!
//! - A symlink in the container that points at a host file (`/link -> /etc/shadow` or a host
//!   temp file) is never read on the host: `cp -L` copies the container's own file or fails.
//! - A container directory that is a symlink to a host directory (`/evil -> /tmp/...`)
//!   receives a copy inside the container, never on the host; also while the container keeps
//!   swapping a real directory and such a symlink (a racing loop, as mount_race does).
//! - A tar given on standard input with `../` names or absolute links stays inside.
//!
//! Every test drives the binary named by `BERTH_TEST_BIN` (this build's berth when unset).

#![allow(clippy::unwrap_used)]

mod containers_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use containers_support::{busybox_tar, require_root, stderr, stdout, BIN};

/// A root and runroot of this test's own, busybox imported.
struct Berth {
    dir: tempfile::TempDir,
}

impl Berth {
    fn new(test: &str) -> Option<Berth> {
        if !require_root(test) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-cp-")
            .tempdir()
            .expect("temp dir");
        let b = Berth { dir };
        b.ok(&[
            "import",
            busybox_tar().to_str().expect("utf-8"),
            "busybox:latest",
        ]);
        Some(b)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let bin = std::env::var("BERTH_TEST_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(self.path("root"))
            .arg("--runroot")
            .arg(self.path("run"))
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(Stdio::null())
            .args(args);
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out).trim().to_string()
    }

    /// `berth ARGS` with `input` on standard input.
    fn with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let mut sin = child.stdin.take().expect("stdin");
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = sin.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait berth");
        let _ = writer.join();
        out
    }

    /// A running busybox container named `name` that runs `script` (then sleeps).
    fn run(&self, name: &str, script: &str) {
        let full = format!("{script}\nexec sleep 1000");
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &full,
        ]);
    }

    fn exec(&self, name: &str, script: &str) -> String {
        self.ok(&["exec", name, "sh", "-c", script])
    }

    /// Host mounts under this test's directory (a detached mount must leave none).
    fn mounts_here(&self) -> Vec<String> {
        containers_support::mounts_under(self.dir.path())
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let out = self.berth(&["ps", "-a", "-q", "--no-trunc"]);
        for id in stdout(&out).lines().filter(|l| !l.is_empty()) {
            let _ = self.berth(&["rm", "-f", id]);
        }
    }
}

/// Asserts a failed `cp` as Docker's: status 1 and this one error line.
fn assert_fails_with(out: &Output, line: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1: {}{}",
        stdout(out),
        stderr(out)
    );
    assert_eq!(stderr(out).trim(), line);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn cp_both_ways_running_and_stopped_with_dockers_rules_and_errors() {
    let Some(b) = Berth::new("cp_both_ways_running_and_stopped_with_dockers_rules_and_errors")
    else {
        return;
    };
    b.run("c1", "true");
    // A host tree: nested dirs, a long name, a symlink, a hardlink, modes.
    let src = b.path("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("sub/deeper/f"), b"deep").unwrap();
    let long = "l".repeat(180);
    fs::write(src.join(&long), b"long").unwrap();
    symlink("sub/deeper/f", src.join("rel")).unwrap();
    fs::hard_link(src.join("sub/deeper/f"), src.join("hard")).unwrap();
    fs::write(src.join("big"), vec![0x5au8; 3 << 20]).unwrap();
    let src_s = src.to_str().unwrap();

    // Into an existing directory: it lands under its own name.
    b.ok(&["cp", src_s, "c1:/tmp"]);
    assert_eq!(
        b.exec("c1", "cat /tmp/src/sub/deeper/f /tmp/src/rel"),
        "deepdeep"
    );
    assert_eq!(b.exec("c1", &format!("cat /tmp/src/{long}")), "long");
    assert_eq!(b.exec("c1", "wc -c < /tmp/src/big"), (3 << 20).to_string());
    assert_eq!(b.exec("c1", "readlink /tmp/src/rel"), "sub/deeper/f");
    // Without -a, files belong to the container's root.
    fs::write(src.join("owned"), b"o").unwrap();
    std::os::unix::fs::chown(src.join("owned"), Some(4242), Some(4343)).unwrap();
    b.ok(&["cp", src.join("owned").to_str().unwrap(), "c1:/tmp/owned"]);
    assert_eq!(b.exec("c1", "stat -c %u:%g /tmp/owned"), "0:0");
    b.ok(&[
        "cp",
        "-a",
        src.join("owned").to_str().unwrap(),
        "c1:/tmp/owned-a",
    ]);
    assert_eq!(b.exec("c1", "stat -c %u:%g /tmp/owned-a"), "4242:4343");

    // To a missing path: created with the source's content; `/.` copies the contents.
    b.ok(&["cp", &format!("{src_s}/."), "c1:/tmp/contents"]);
    assert_eq!(b.exec("c1", "cat /tmp/contents/sub/deeper/f"), "deep");
    // A file onto a file: overwritten.
    b.exec("c1", "echo old > /root/target");
    b.ok(&["cp", src.join("owned").to_str().unwrap(), "c1:/root/target"]);
    assert_eq!(b.exec("c1", "cat /root/target"), "o");

    // Out again: into a missing path, an existing dir, and the contents with `/.`.
    let out1 = b.path("out1");
    b.ok(&["cp", "c1:/tmp/src", out1.to_str().unwrap()]);
    assert_eq!(fs::read(out1.join("sub/deeper/f")).unwrap(), b"deep");
    assert_eq!(fs::read(out1.join("big")).unwrap().len(), 3 << 20);
    assert_eq!(
        fs::read_link(out1.join("rel")).unwrap(),
        Path::new("sub/deeper/f")
    );
    let outdir = b.path("outdir");
    fs::create_dir(&outdir).unwrap();
    b.ok(&["cp", "c1:/tmp/src", outdir.to_str().unwrap()]);
    assert_eq!(fs::read(outdir.join("src").join(&long)).unwrap(), b"long");
    let dot = b.path("dot");
    fs::create_dir(&dot).unwrap();
    b.ok(&["cp", "c1:/tmp/src/.", dot.to_str().unwrap()]);
    assert!(dot.join("sub/deeper/f").is_file() && !dot.join("src").exists());
    // A file out to a new name.
    b.ok(&["cp", "c1:/etc/passwd", b.path("pw").to_str().unwrap()]);
    assert!(fs::read_to_string(b.path("pw"))
        .unwrap()
        .starts_with("root:x:0:0"));

    // Errors, in Docker's words with berth's prefix, status 1.
    assert_fails_with(
        &b.berth(&["cp", "c1:/nonexistent", b.path("x").to_str().unwrap()]),
        "Error: Could not find the file /nonexistent in container c1",
    );
    let missing = b.path("nope");
    assert_fails_with(
        &b.berth(&["cp", missing.to_str().unwrap(), "c1:/tmp"]),
        &format!(
            "Error: lstat {}: no such file or directory",
            missing.display()
        ),
    );
    assert_fails_with(
        &b.berth(&["cp", src_s, "c1:/no/such/dir/x"]),
        "Error: Could not find the file /no/such/dir in container c1",
    );
    assert_fails_with(
        &b.berth(&["cp", "c1:/etc/passwd", b.path("no/dir/x").to_str().unwrap()]),
        &format!(
            "Error: invalid output path: directory {:?} does not exist",
            b.path("no/dir")
        ),
    );
    assert_fails_with(
        &b.berth(&["cp", "c1:/etc/passwd", "c1:/tmp"]),
        "Error: copying between containers is not supported",
    );
    assert_fails_with(
        &b.berth(&["cp", src_s, b.path("y").to_str().unwrap()]),
        "Error: must specify at least one container source",
    );
    assert_fails_with(
        &b.berth(&["cp", src_s, "nosuch:/tmp"]),
        "Error: No such container: nosuch",
    );
    let out = b.berth(&["cp", "c1:/tmp/src", b.path("pw").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // `-` both ways: a tar stream named after the source, and one extracted into a dir.
    let out = b.berth(&["cp", "c1:/tmp/src/sub", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path().unwrap().display().to_string();
            p.trim_end_matches('/').to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["sub", "sub/deeper", "sub/deeper/f"]);
    let out = b.with_stdin(&["cp", "-", "c1:/tmp"], &out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.exec("c1", "cat /tmp/sub/deeper/f"), "deep");
    assert_fails_with(
        &b.with_stdin(&["cp", "-", "c1:/etc/passwd"], b""),
        "Error: destination \"c1:/etc/passwd\" must be a directory",
    );

    // A stopped container: both ways, through a private mount that nothing else sees.
    b.ok(&["stop", "-t", "1", "c1"]);
    let out2 = b.path("out2");
    b.ok(&["cp", "c1:/tmp/src/sub", out2.to_str().unwrap()]);
    assert_eq!(fs::read(out2.join("deeper/f")).unwrap(), b"deep");
    b.ok(&[
        "cp",
        src.join("owned").to_str().unwrap(),
        "c1:/root/while-stopped",
    ]);
    assert!(b.mounts_here().is_empty(), "{:?}", b.mounts_here());
    assert_fails_with(
        &b.berth(&["cp", "c1:/gone", b.path("z").to_str().unwrap()]),
        "Error: Could not find the file /gone in container c1",
    );
    b.ok(&["start", "c1"]);
    assert_eq!(b.exec("c1", "cat /root/while-stopped"), "o");
}

#[test]
fn cp_out_never_reads_a_host_file_through_a_container_symlink() {
    let Some(b) = Berth::new("cp_out_never_reads_a_host_file_through_a_container_symlink") else {
        return;
    };
    let secret = b.path("host-secret");
    fs::write(&secret, b"HOST SECRET").unwrap();
    let s = secret.display().to_string();
    b.run(
        "c2",
        &format!(
            "echo container-shadow > /etc/shadow; ln -s /etc/shadow /link; ln -s {s} /hostlink; \
             ln -s / /rootlink; mkdir -p /d; ln -s {s} /d/inner"
        ),
    );
    for name in ["c2"] {
        assert!(containers_support::eventually(10, || b
            .berth(&["exec", name, "test", "-L", "/d/inner"])
            .status
            .success()));
    }
    // -L: the container's /etc/shadow, not the host's.
    let out = b.path("shadow");
    b.ok(&["cp", "-L", "c2:/link", out.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "container-shadow\n");
    // Without -L: the link itself, never what it points to on the host.
    let l = b.path("linkcopy");
    b.ok(&["cp", "c2:/hostlink", l.to_str().unwrap()]);
    assert_eq!(fs::read_link(&l).unwrap(), secret);
    assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
    // -L on a link to a host path: resolved inside the container, where it does not exist.
    let out = b.berth(&["cp", "-L", "c2:/hostlink", b.path("leak").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!b.path("leak").exists());
    // Through a directory symlink to / (the container's root, not the host's).
    let out = b.berth(&[
        "cp",
        &format!("c2:/rootlink{s}"),
        b.path("leak2").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!b.path("leak2").exists());
    // A tree holding such a link: the link is copied as a link.
    let d = b.path("dcopy");
    b.ok(&["cp", "c2:/d", d.to_str().unwrap()]);
    assert!(fs::symlink_metadata(d.join("inner"))
        .unwrap()
        .file_type()
        .is_symlink());
    // The same on the stopped container, through its private mount.
    b.ok(&["stop", "-t", "1", "c2"]);
    let out = b.path("shadow-stopped");
    b.ok(&["cp", "-L", "c2:/link", out.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "container-shadow\n");
    let out = b.berth(&[
        "cp",
        "-L",
        "c2:/hostlink",
        b.path("leak3").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!b.path("leak3").exists());
    assert!(b.mounts_here().is_empty());
}

#[test]
fn cp_in_through_a_symlink_to_a_host_dir_lands_inside_the_container() {
    let Some(b) = Berth::new("cp_in_through_a_symlink_to_a_host_dir_lands_inside_the_container")
    else {
        return;
    };
    let hostdir = b.path("hostdir");
    fs::create_dir(&hostdir).unwrap();
    let h = hostdir.display().to_string();
    b.run("c3", &format!("ln -s {h} /evil; mkdir -p {h}"));
    assert!(containers_support::eventually(10, || b
        .berth(&["exec", "c3", "test", "-L", "/evil"])
        .status
        .success()));
    let file = b.path("payload");
    fs::write(&file, b"payload").unwrap();
    b.ok(&["cp", file.to_str().unwrap(), "c3:/evil/"]);
    b.ok(&["cp", file.to_str().unwrap(), "c3:/evil/renamed"]);
    assert!(
        listing(&hostdir).is_empty(),
        "host dir got {:?}",
        listing(&hostdir)
    );
    assert_eq!(
        b.exec("c3", &format!("cat {h}/payload {h}/renamed")),
        "payloadpayload"
    );

    // A tar on standard input: `../` climbing, an absolute name, a symlink out and a
    // write through it. Nothing reaches the host; the absolute name stays inside.
    let mut tb = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut hd = tar::Header::new_gnu();
        hd.set_size(data.len() as u64);
        hd.set_mode(0o644);
        hd.set_entry_type(tar::EntryType::Regular);
        // Names the tar crate would refuse to write: set the raw bytes.
        let g = hd.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        hd.set_cksum();
        tb.append(&hd, data).unwrap();
    };
    add(&format!("/{}/abs", h.trim_start_matches('/')), b"abs");
    let stream_ok = tb.into_inner().unwrap();
    let out = b.with_stdin(&["cp", "-", "c3:/tmp"], &stream_ok);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.exec("c3", &format!("cat /tmp{h}/abs")), "abs");

    let mut tb = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_entry_type(tar::EntryType::Symlink);
    hd.set_size(0);
    hd.set_mode(0o777);
    hd.set_path("out").unwrap();
    hd.set_link_name(&h).unwrap();
    hd.set_cksum();
    tb.append(&hd, &[][..]).unwrap();
    let mut hd = tar::Header::new_gnu();
    hd.set_size(4);
    hd.set_mode(0o644);
    hd.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"out/pwned");
    hd.set_cksum();
    tb.append(&hd, &b"pwnd"[..]).unwrap();
    let out = b.with_stdin(&["cp", "-", "c3:/tmp"], &tb.into_inner().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let mut tb = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(4);
    hd.set_mode(0o644);
    let climb = format!("../../../../../../..{h}/climbed");
    hd.as_gnu_mut().unwrap().name[..climb.len()].copy_from_slice(climb.as_bytes());
    hd.set_cksum();
    tb.append(&hd, &b"pwnd"[..]).unwrap();
    let out = b.with_stdin(&["cp", "-", "c3:/tmp"], &tb.into_inner().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        listing(&hostdir).is_empty(),
        "host dir got {:?}",
        listing(&hostdir)
    );

    // Stopped: the same copy lands in the container's rw layer, not on the host.
    b.ok(&["stop", "-t", "1", "c3"]);
    b.ok(&["cp", file.to_str().unwrap(), "c3:/evil/stopped"]);
    assert!(
        listing(&hostdir).is_empty(),
        "host dir got {:?}",
        listing(&hostdir)
    );
    assert!(b.mounts_here().is_empty());
    b.ok(&["start", "c3"]);
    assert_eq!(b.exec("c3", &format!("cat {h}/stopped")), "payload");
}

#[test]
fn cp_races_a_container_that_swaps_its_destination_for_a_host_symlink() {
    let Some(b) = Berth::new("cp_races_a_container_that_swaps_its_destination_for_a_host_symlink")
    else {
        return;
    };
    let hostdir = b.path("racehost");
    fs::create_dir(&hostdir).unwrap();
    fs::write(hostdir.join("secret"), b"HOST SECRET").unwrap();
    let h = hostdir.display().to_string();
    // /dst is a real directory one moment and a symlink to the host dir's path the next.
    b.run(
        "c4",
        &format!(
            "mkdir -p /real /real/sub; echo inside > /real/secret; ln -s {h} /link; \
             while :; do mv /real /dst; mv /dst /real; mv /link /dst; mv /dst /link; done &"
        ),
    );
    let file = b.path("racer");
    fs::write(&file, b"racer").unwrap();
    let tree = b.path("racetree");
    fs::create_dir_all(tree.join("a/b")).unwrap();
    fs::write(tree.join("a/b/c"), b"c").unwrap();
    let (mut wrote_in, mut read_out) = (0, 0);
    for i in 0..60 {
        if b.berth(&["cp", file.to_str().unwrap(), "c4:/dst/"])
            .status
            .success()
        {
            wrote_in += 1;
        }
        let _ = b.berth(&["cp", tree.to_str().unwrap(), "c4:/dst/sub/"]);
        let out = b.path(&format!("raceout{i}"));
        if b.berth(&["cp", "c4:/dst/.", out.to_str().unwrap()])
            .status
            .success()
        {
            read_out += 1;
            if let Ok(s) = fs::read(out.join("secret")) {
                assert_eq!(
                    s, b"inside\n",
                    "read the host's file through the swapped link"
                );
            }
        }
    }
    assert_eq!(
        listing(&hostdir),
        ["secret"],
        "the host dir must not receive anything"
    );
    assert_eq!(fs::read(hostdir.join("secret")).unwrap(), b"HOST SECRET");
    assert!(
        wrote_in > 0 && read_out > 0,
        "no copy won ({wrote_in}, {read_out})"
    );
}

#[test]
fn diff_export_and_commit_show_what_the_container_changed() {
    let Some(b) = Berth::new("diff_export_and_commit_show_what_the_container_changed") else {
        return;
    };
    b.run("c5", "true");
    // A fresh container changed nothing (the runtime's mount stubs are not changes).
    assert_eq!(b.ok(&["diff", "c5"]), "");
    b.exec(
        "c5",
        "mkdir -p /tmp/newdir && echo hi > /tmp/newdir/f && echo x >> /etc/group && \
         rm /var/www/index.html && echo hello > /hello",
    );
    assert_eq!(
        b.ok(&["diff", "c5"]),
        "C /etc\nC /etc/group\nA /hello\nC /tmp\nA /tmp/newdir\nA /tmp/newdir/f\nC /var\nC /var/www\nD /var/www/index.html"
    );
    let out = b.berth(&["diff", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "Error: No such container: nosuch");

    // export: the merged file system, without what was removed, to a file or stdout.
    let file = b.path("c5.tar");
    b.ok(&["export", "-o", file.to_str().unwrap(), "c5"]);
    let names = |bytes: &[u8]| -> Vec<String> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    };
    let n = names(&fs::read(&file).unwrap());
    assert!(n.iter().any(|p| p == "bin/busybox"), "{n:?}");
    assert!(n.iter().any(|p| p == "tmp/newdir/f"));
    assert!(n.iter().any(|p| p == "hello"));
    assert!(!n.iter().any(|p| p == "var/www/index.html"));
    assert!(
        !n.iter().any(|p| p.starts_with("proc/") && p != "proc/"),
        "mounts are not exported"
    );
    let out = b.berth(&["export", "c5"]);
    assert!(out.status.success());
    assert_eq!(names(&out.stdout), n);
    let out = b.berth(&[
        "export",
        "-o",
        b.path("no/dir/x.tar").to_str().unwrap(),
        "c5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(&b.path(""))
        .iter()
        .all(|f| !f.starts_with(".berth-export")));

    // commit: prints the ID; the image has the changes and the -c settings; the container
    // runs on (thawed).
    let images_before = b.ok(&["images", "-q", "--no-trunc"]);
    let out = b.berth(&["commit", "-c", "BOGUS x", "c5", "bad:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("BOGUS"), "{}", stderr(&out));
    assert_eq!(b.ok(&["images", "-q", "--no-trunc"]), images_before);
    let id = b.ok(&[
        "commit",
        "-a",
        "Jane <jane@example.com>",
        "-m",
        "my change",
        "-c",
        "ENV FOO=bar",
        "-c",
        "CMD [\"cat\", \"/hello\"]",
        "-c",
        "WORKDIR /tmp",
        "c5",
        "snap:1",
    ]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(b.exec("c5", "echo alive"), "alive");
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "snap:1"]),
        "hello"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "snap:1",
            "sh",
            "-c",
            "echo $FOO; pwd; cat /tmp/newdir/f; test -e /var/www/index.html || echo gone"
        ]),
        "bar\n/tmp\nhi\ngone"
    );
    assert_eq!(
        b.inspect_image("snap:1", "{{.Author}}|{{.Comment}}"),
        "Jane <jane@example.com>|my change"
    );
    // --pause=false and no reference: an untagged image.
    let id2 = b.ok(&["commit", "--pause=false", "c5"]);
    assert!(id2.starts_with("sha256:"));
    // A stopped container commits too.
    b.ok(&["stop", "-t", "1", "c5"]);
    let id3 = b.ok(&["commit", "c5", "snap:2"]);
    assert!(id3.starts_with("sha256:"));
    assert!(b.mounts_here().is_empty());
}

impl Berth {
    fn inspect_image(&self, image: &str, template: &str) -> String {
        self.ok(&["image", "inspect", "-f", template, image])
    }
}
