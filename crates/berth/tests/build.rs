//! `berth build`, `builder prune` and `image analyze` end to end through the binary, each
//! test on its own temporary root with busybox imported as the base image: the reference
//! build and its cache, multi-stage with --target, secrets, .dockerignore, stdin inputs,
//! reproducible digests, the BigFile and private-key analysis, and bad input.
//!
//! RUN steps need root (namespaces, overlayfs): without root these tests skip, or fail when
//! CI is set.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "containers_support/mod.rs"]
mod support;

use support::berth_command;

/// Whether a root-only test may run: skips (with a message) when not root, fails under CI.
fn require_root(test: &str) -> bool {
    support::require_root_for(test, "RUN steps run in containers")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A fresh root with busybox imported as `busybox:latest`.
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let tar = support::busybox_tar();
        env.ok(&["import", tar.to_str().expect("utf8"), "busybox"]);
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = berth_command(&self.root(), &self.path("run"));
        c.args(args).env_remove("SOURCE_DATE_EPOCH");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        child.wait_with_output().expect("wait berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A context directory with `files`.
    fn context(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = self.path(name);
        for (p, c) in files {
            let path = dir.join(p);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, c).expect("write");
        }
        fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn build(&self, ctx: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["build", "--progress=plain"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().expect("utf8"));
        self.run(&args)
    }

    fn build_ok(&self, ctx: &Path, extra: &[&str]) -> String {
        let out = self.build(ctx, extra);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed: {err}");
        err
    }

    fn image_id(&self, name: &str) -> String {
        self.ok(&["images", "-q", "--no-trunc", name])
            .trim()
            .to_owned()
    }

    /// Every blob of `image` (config, manifest, layers), through `save`.
    fn image_blobs(&self, image: &str) -> Vec<Vec<u8>> {
        let out = self.path("saved.tar");
        self.ok(&["save", "-o", out.to_str().expect("utf8"), image]);
        let mut ar = tar::Archive::new(fs::File::open(&out).expect("open"));
        let mut blobs = Vec::new();
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let mut b = Vec::new();
            e.read_to_end(&mut b).expect("read");
            blobs.push(b);
        }
        blobs
    }

    /// Mounts under this test's directory still present (must be none).
    fn leftover_mounts(&self) -> Vec<String> {
        support::mounts_under(self.dir.path())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const REFERENCE: &str =
    "FROM busybox\nCOPY big.bin /big.bin\nRUN echo hi > /x\nENTRYPOINT [\"/bin/cat\", \"/x\"]\n";

#[test]
fn reference_build_then_cache_hits_changes_and_no_cache() {
    if !require_root("reference_build_then_cache_hits_changes_and_no_cache") {
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", REFERENCE.as_bytes()),
            ("big.bin", &vec![7u8; 1 << 20]),
        ],
    );
    let log = env.build_ok(&ctx, &["-t", "ref:1"]);
    assert!(log.contains("[3/4] RUN echo hi > /x"), "{log}");
    assert!(log.contains("(2 built, 0 cached)"), "{log}");
    let id = env.image_id("ref:1");
    assert!(id.starts_with("sha256:"), "{id}");
    let run = env.ok(&["run", "--rm", "ref:1"]);
    assert_eq!(run, "hi\n");

    // Nothing changed: every step cached, no layer built, same image.
    let layers_before = fs::read_dir(env.root().join("layers"))
        .expect("layers")
        .count();
    let log = env.build_ok(&ctx, &["-t", "ref:1"]);
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");
    assert!(log.contains("(0 built, 2 cached)"), "{log}");
    assert_eq!(env.image_id("ref:1"), id);
    assert_eq!(
        fs::read_dir(env.root().join("layers"))
            .expect("layers")
            .count(),
        layers_before
    );

    // A touched file with the same content is still a hit; new content rebuilds from COPY.
    fs::write(ctx.join("big.bin"), vec![7u8; 1 << 20]).expect("touch");
    assert!(env
        .build_ok(&ctx, &["-t", "ref:1"])
        .contains("(0 built, 2 cached)"));
    fs::write(ctx.join("big.bin"), vec![8u8; 1 << 20]).expect("change");
    let log = env.build_ok(&ctx, &["-t", "ref:1"]);
    assert!(log.contains("(2 built, 0 cached)"), "{log}");
    let new_id = env.image_id("ref:1");
    assert_ne!(new_id, id);
    // The old image stays, untagged.
    let all = env.ok(&["images", "-q", "--no-trunc"]);
    assert!(all.contains(&id), "{all}");

    let log = env.build_ok(&ctx, &["-t", "ref:1", "--no-cache"]);
    assert!(log.contains("(2 built, 0 cached)"), "{log}");

    // builder prune clears the cache: the next build builds again.
    let pruned = env.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert!(env
        .build_ok(&ctx, &["-t", "ref:1"])
        .contains("(2 built, 0 cached)"));

    // -q prints the ID only; --iidfile writes it.
    let iid = env.path("iid");
    let out = env.ok(&[
        "build",
        "-q",
        "--iidfile",
        iid.to_str().expect("utf8"),
        ctx.to_str().expect("utf8"),
    ]);
    assert_eq!(out.trim(), fs::read_to_string(&iid).expect("iidfile"));
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

#[test]
fn multi_stage_target_args_heredoc_and_metadata() {
    if !require_root("multi_stage_target_args_heredoc_and_metadata") {
        return;
    }
    let env = Env::new();
    let df = r#"ARG BASE=busybox
FROM ${BASE} AS build
RUN <<EOF
mkdir -p /out
echo built > /out/app
EOF

FROM busybox AS broken
RUN echo about to fail && exit 3

FROM busybox
ARG GREETING=hello
ENV WHERE=/srv
WORKDIR $WHERE
COPY --from=build /out/app ./app
COPY <<EOT /etc/greeting
$GREETING world
EOT
USER app
EXPOSE 8080
CMD ["cat", "/srv/app", "/etc/greeting"]
"#;
    let ctx = env.context("ctx", &[("Dockerfile", df.as_bytes())]);
    let log = env.build_ok(&ctx, &["-t", "multi"]);
    assert!(
        !log.contains("about to fail"),
        "the broken stage is not needed: {log}"
    );
    assert!(log.contains("[build 2/2]"), "{log}");
    assert_eq!(env.ok(&["run", "--rm", "multi"]), "built\nhello world\n");
    let insp = env.ok(&["image", "inspect", "multi"]);
    assert!(insp.contains("\"User\": \"app\""), "{insp}");
    assert!(insp.contains("\"WorkingDir\": \"/srv\""), "{insp}");
    assert!(insp.contains("8080/tcp"), "{insp}");
    assert!(env.ok(&["run", "--rm", "multi", "id", "-u"]).trim() == "1000");

    let out = env.build(&ctx, &["-t", "broken", "--target", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(err.contains("about to fail"), "{err}");
    assert!(env.ok(&["images", "-q", "broken"]).trim().is_empty());

    let out = env.build(&ctx, &["--target", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("target stage \"nope\" could not be found")
    );
    // No container state or mount is left behind.
    let leftovers = fs::read_dir(env.path("run").join("build"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

#[test]
fn secret_is_mounted_for_its_step_and_lands_in_no_blob() {
    if !require_root("secret_is_mounted_for_its_step_and_lands_in_no_blob") {
        return;
    }
    let env = Env::new();
    let secret = env.path("token.txt");
    let value = "berth-secret-7f3a9c2e";
    fs::write(&secret, value).expect("write");
    // The Dockerfile checks a fragment of the value, so the whole value appears nowhere
    // but in the secret file.
    let df = format!(
        "FROM busybox\nRUN --mount=type=secret,id=tok test \"$(wc -c < /run/secrets/tok)\" -eq {} && grep -q 7f3a9 /run/secrets/tok && echo ok > /checked\nRUN test ! -e /run/secrets/tok\n",
        value.len()
    );
    let ctx = env.context("ctx", &[("Dockerfile", df.as_bytes())]);
    let spec = format!("id=tok,src={}", secret.display());
    env.build_ok(&ctx, &["-t", "sec", "--secret", &spec]);
    for blob in env.image_blobs("sec") {
        assert!(
            !contains(&blob, value.as_bytes()),
            "the secret's bytes are in a blob"
        );
    }
    let hist = env.ok(&["history", "--no-trunc", "sec"]);
    assert!(!hist.contains(value));
    // Required but missing: a clear error.
    let df2 = "FROM busybox\nRUN --mount=type=secret,id=missing,required true\n";
    let ctx2 = env.context("ctx2", &[("Dockerfile", df2.as_bytes())]);
    let out = env.build(&ctx2, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret \"missing\" is required"));
}

#[test]
fn dockerignore_exceptions_and_stdin_inputs() {
    if !require_root("dockerignore_exceptions_and_stdin_inputs") {
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                b"FROM busybox\nCOPY . /ctx/\nCMD [\"ls\", \"/ctx\"]\n",
            ),
            (".dockerignore", b"*.md\n!KEEP.md\nsecret/\n"),
            ("a.txt", b"a"),
            ("drop.md", b"d"),
            ("KEEP.md", b"k"),
            ("secret/key", b"x"),
        ],
    );
    env.build_ok(&ctx, &["-t", "ign"]);
    let ls = env.ok(&["run", "--rm", "ign"]);
    let names: Vec<&str> = ls.lines().collect();
    assert!(
        names.contains(&"a.txt") && names.contains(&"KEEP.md"),
        "{ls}"
    );
    assert!(
        !names.contains(&"drop.md") && !names.contains(&"secret"),
        "{ls}"
    );

    // -f - with a context directory.
    let out = env.run_stdin(
        &[
            "build",
            "-q",
            "-t",
            "fromstdin",
            "-f",
            "-",
            ctx.to_str().expect("utf8"),
        ],
        b"FROM busybox\nCOPY a.txt /a.txt\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A Dockerfile alone on stdin (no context).
    let out = env.run_stdin(
        &["build", "-q", "-t", "nocontext", "-"],
        b"FROM busybox\nENV X=1\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A context tar on stdin.
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).expect("append");
    };
    add(
        "Dockerfile",
        b"FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n",
    );
    add("f", b"from tar\n");
    let tarball = t.into_inner().expect("tar");
    let out = env.run_stdin(&["build", "-q", "-t", "tarctx", "-"], &tarball);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ok(&["run", "--rm", "tarctx"]), "from tar\n");
}

#[test]
fn source_date_epoch_gives_the_same_digest() {
    if !require_root("source_date_epoch_gives_the_same_digest") {
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", REFERENCE.as_bytes()), ("big.bin", b"data")],
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = env
            .cmd(&["build", "-q", "--no-cache", ctx.to_str().expect("utf8")])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .expect("build");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn analyze_finds_bigfile_waste_and_deleted_private_key() {
    if !require_root("analyze_finds_bigfile_waste_and_deleted_private_key") {
        return;
    }
    let env = Env::new();
    let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    let df = "FROM busybox\nRUN dd if=/dev/zero of=/BigFile bs=1048576 count=100 2>/dev/null\nRUN rm /BigFile\nCOPY id_rsa /root/.ssh/id_rsa\nRUN rm /root/.ssh/id_rsa\n";
    let ctx = env.context("ctx", &[("Dockerfile", df.as_bytes()), ("id_rsa", key)]);
    env.build_ok(&ctx, &["-t", "wasteful"]);
    let out = env.ok(&["image", "analyze", "--format", "json", "wasteful"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v["wasted_bytes"].as_u64(),
        Some(100 * 1048576 + key.len() as u64),
        "{out}"
    );
    assert_eq!(v["wasted"][0]["path"], "/BigFile");
    let secrets = v["secrets"].as_array().expect("secrets");
    assert!(
        secrets
            .iter()
            .any(|s| s["path"] == "/root/.ssh/id_rsa" && s["deleted_later"] == true),
        "{out}"
    );
    let table = env.ok(&["image", "analyze", "wasteful"]);
    assert!(
        table.contains("/BigFile") && table.contains("Advice"),
        "{table}"
    );
    let out = env.run(&["image", "analyze", "--fail-on", "wasted=10MB", "wasteful"]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["image", "analyze", "--fail-on", "secrets", "busybox"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_input_is_one_clear_error_and_leaves_nothing() {
    if !require_root("bad_input_is_one_clear_error_and_leaves_nothing") {
        return;
    }
    let env = Env::new();
    let before = env.ok(&["images", "-q", "--no-trunc", "-a"]);
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUNN echo\n",
            "Dockerfile:2:1: unknown instruction \"RUNN\"",
        ),
        ("FROM busybox\nRUN <<EOF\necho\n", "unterminated heredoc"),
        (
            "FROM busybox\nCOPY missing.txt /x\n",
            "\"missing.txt\" not found in the build context",
        ),
        (
            "FROM busybox\nCOPY ../x /x\n",
            "forbidden path outside the build context",
        ),
        (
            "FROM busybox\nRUN echo oops-output && exit 7\n",
            "exited with status 7",
        ),
        (
            "FROM busybox\nADD https://example.com/a.tar.gz /\n",
            "remote sources need network access",
        ),
        ("FROM nosuchimage\n", "nosuchimage"),
    ];
    for (i, (df, want)) in cases.iter().enumerate() {
        let ctx = env.context(&format!("bad{i}"), &[("Dockerfile", df.as_bytes())]);
        let out = env.build(&ctx, &["-t", "bad:1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{df}: {err}");
        assert!(err.contains(want), "{df}: expected {want:?} in {err}");
        if want.contains("RUNN") {
            assert!(
                err.contains("    2 | RUNN echo\n"),
                "the offending line is shown: {err}"
            );
        }
        if want.contains("status 7") {
            assert!(
                err.contains("oops-output"),
                "the failing step's output is shown: {err}"
            );
        }
    }
    let out = env.build(
        &env.context("okctx", &[("Dockerfile", b"FROM busybox\n")]),
        &["-t", "Bad:Tag"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        env.ok(&["images", "-q", "--no-trunc", "-a"]),
        before,
        "no image was made"
    );
    let leftovers = fs::read_dir(env.path("run").join("build"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "no container state is left");
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

#[test]
fn user_workdir_env_take_effect_in_run() {
    if !require_root("user_workdir_env_take_effect_in_run") {
        return;
    }
    let env = Env::new();
    let df = "FROM busybox\nENV GREETING=hi\nRUN <<EOF\n#!/bin/sh\necho \"script $0\" > /ran\nEOF\nWORKDIR /work/dir\nUSER app\nCMD [\"sh\", \"-c\", \"echo $GREETING $(pwd) $(id -u)\"]\n";
    let ctx = env.context("ctx", &[("Dockerfile", df.as_bytes())]);
    env.build_ok(&ctx, &["-t", "effects"]);
    assert_eq!(env.ok(&["run", "--rm", "effects"]), "hi /work/dir 1000\n");
    // A heredoc with a shebang ran as a script of its own.
    assert_eq!(
        env.ok(&["run", "--rm", "effects", "cat", "/ran"]),
        "script /dev/pipes/EOF\n"
    );
}

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_layers() {
    if !require_root("cache_mounts_persist_across_builds_and_stay_out_of_layers") {
        return;
    }
    let env = Env::new();
    let df = "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app sh -c 'echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count'\nCMD [\"sh\", \"-c\", \"cat /count; ls /var/cache/app 2>/dev/null | wc -l\"]\n";
    let ctx = env.context("ctx", &[("Dockerfile", df.as_bytes())]);
    env.build_ok(&ctx, &["-t", "cm"]);
    env.build_ok(&ctx, &["-t", "cm", "--no-cache"]);
    let out = env.ok(&["run", "--rm", "cm"]);
    let lines: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        lines,
        vec!["2", "0"],
        "the cache kept the first run's log; the image has none of it"
    );
    env.ok(&["builder", "prune", "-f"]);
    env.build_ok(&ctx, &["-t", "cm"]);
    assert_eq!(
        env.ok(&["run", "--rm", "cm"]).split_whitespace().next(),
        Some("1")
    );
}

#[test]
fn a_missing_base_from_an_explicit_registry_is_pulled() {
    if !require_root("a_missing_base_from_an_explicit_registry_is_pulled") {
        return;
    }
    let env = Env::new();
    let (server, addr) = support::serve_registry(&env.path("registry"), &[]);
    let reference = format!("{addr}/base/busybox:1");
    env.ok(&["tag", "busybox", &reference]);
    env.ok(&["push", &reference]);
    env.ok(&["rmi", &reference]);
    let df = format!("FROM {reference}\nRUN echo pulled > /p\nCMD [\"cat\", \"/p\"]\n");
    let ctx = env.context("ctx", &[("Dockerfile", df.as_bytes())]);
    env.build_ok(&ctx, &["-t", "frompull"]);
    assert_eq!(env.ok(&["run", "--rm", "frompull"]), "pulled\n");
    assert!(!env.ok(&["images", "-q", &reference]).trim().is_empty());
    drop(server);
}
