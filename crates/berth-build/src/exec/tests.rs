use super::*;
use crate::cache::MemoryCache;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A backend keeping layers in memory and views as unpacked temporary directories.
struct FakeBackend {
    tmp: tempfile::TempDir,
    images: HashMap<String, BaseImage>,
    layers: Mutex<HashMap<Digest, Vec<u8>>>,
    cache: MemoryCache,
    puts: AtomicUsize,
}

struct TmpView(tempfile::TempDir);
impl RootfsView for TmpView {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl FakeBackend {
    fn new() -> Self {
        let b = FakeBackend {
            tmp: tempfile::tempdir().expect("tmp"),
            images: HashMap::new(),
            layers: Mutex::new(HashMap::new()),
            cache: MemoryCache::default(),
            puts: AtomicUsize::new(0),
        };
        let mut w = LayerWriter::new(Vec::new(), None);
        let m = EntryMeta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        w.dir("etc", m).expect("dir");
        let passwd = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
        w.file(
            "etc/passwd",
            EntryMeta { mode: 0o644, ..m },
            passwd.len() as u64,
            &passwd[..],
        )
        .expect("file");
        w.file("bin/sh", m, 2, &b"sh"[..]).expect("file");
        let tar = w.finish().expect("tar");
        let layer = b.store(&tar);
        let mut config = ImageConfig::scratch();
        config.config.env = vec!["PATH=/bin".into()];
        config.config.cmd = Some(vec!["sh".into()]);
        config.rootfs.diff_ids = vec![layer.diff_id.to_string()];
        config.created = Some("2020-01-01T00:00:00Z".into());
        let img = BaseImage {
            id: Digest::of(&config.to_bytes()),
            config,
            layers: vec![layer],
        };
        let mut b = b;
        b.images.insert("busybox".into(), img);
        b
    }

    fn store(&self, tar: &[u8]) -> LayerRef {
        let d = Digest::of(tar);
        self.layers
            .lock()
            .expect("lock")
            .insert(d.clone(), tar.to_vec());
        LayerRef {
            diff_id: d.clone(),
            digest: d,
            size: tar.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
    }

    fn blob(&self, l: &LayerRef) -> Vec<u8> {
        self.layers.lock().expect("lock")[&l.diff_id].clone()
    }
}

impl BuildBackend for FakeBackend {
    fn base_image(&self, reference: &str, _pull: bool) -> Result<BaseImage, BackendError> {
        self.images
            .get(reference)
            .cloned()
            .ok_or_else(|| BackendError::NotFound {
                what: format!("image {reference:?}"),
            })
    }
    fn tmp_dir(&self) -> PathBuf {
        self.tmp.path().join("tmp")
    }
    fn put_layer(&self, _parents: &[LayerRef], tar: &Path) -> Result<LayerRef, BackendError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let bytes = fs::read(tar).map_err(|e| BackendError::failed("reading layer", e))?;
        Ok(self.store(&bytes))
    }
    fn has_layer(&self, _parents: &[LayerRef], layer: &LayerRef) -> bool {
        self.layers
            .lock()
            .expect("lock")
            .contains_key(&layer.diff_id)
    }
    fn rootfs(&self, layers: &[LayerRef]) -> Result<Box<dyn RootfsView>, BackendError> {
        let dir = tempfile::tempdir().map_err(|e| BackendError::failed("tmp", e))?;
        for l in layers {
            let bytes = self.blob(l);
            let mut ar = tar::Archive::new(&bytes[..]);
            ar.unpack(dir.path())
                .map_err(|e| BackendError::failed("unpack", e))?;
        }
        Ok(Box::new(TmpView(dir)))
    }
    fn cache_mount_dir(&self, id: &str) -> Result<PathBuf, BackendError> {
        Ok(self
            .tmp
            .path()
            .join("cachemounts")
            .join(Digest::of(id.as_bytes()).hex()))
    }
    fn cache_get(&self, key: &Digest) -> Result<Option<CacheEntry>, BackendError> {
        Ok(self.cache.get(key))
    }
    fn cache_put(&self, key: &Digest, entry: &CacheEntry) -> Result<(), BackendError> {
        self.cache.put(key, entry);
        Ok(())
    }
}

/// Understands `echo TEXT > /path` and `exit N` lines; records every spec.
#[derive(Default)]
struct FakeRunner {
    specs: Mutex<Vec<RunSpec>>,
}

impl StepRunner for FakeRunner {
    fn run(
        &self,
        spec: &RunSpec,
        output: &mut dyn Write,
        layer: &mut dyn Write,
    ) -> Result<i32, BackendError> {
        self.specs.lock().expect("lock").push(spec.clone());
        let script = spec.argv.last().cloned().unwrap_or_default();
        let mut w = LayerWriter::new(Vec::new(), spec.mtime_clamp);
        let m = EntryMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        };
        for line in script.lines() {
            let line = line.trim();
            if let Some(n) = line.strip_prefix("exit ") {
                let _ = output.write_all(b"something went wrong\n");
                return Ok(n.trim().parse().unwrap_or(1));
            }
            if let Some(rest) = line.strip_prefix("echo ") {
                let (text, path) = rest.split_once(" > ").unwrap_or((rest, ""));
                let _ = output.write_all(format!("{text}\n").as_bytes());
                if !path.is_empty() {
                    let body = format!("{text}\n");
                    w.parents(path, EntryMeta { mode: 0o755, ..m })
                        .map_err(|e| BackendError::failed("tar", e))?;
                    w.file(path, m, body.len() as u64, body.as_bytes())
                        .map_err(|e| BackendError::failed("tar", e))?;
                }
            }
        }
        let tar = w.finish().map_err(|e| BackendError::failed("tar", e))?;
        layer
            .write_all(&tar)
            .map_err(|e| BackendError::failed("write", e))?;
        Ok(0)
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);
impl Progress for Recorder {
    fn event(&self, e: Event<'_>) {
        let s = match e {
            Event::Step {
                id,
                stage,
                index,
                total,
                text,
            } => format!("#{id} [{stage} {index}/{total}] {text}"),
            Event::Cached { id } => format!("#{id} CACHED"),
            Event::Done { id, .. } => format!("#{id} DONE"),
            Event::Failed { id } => format!("#{id} FAILED"),
            Event::Output { .. } => return,
        };
        self.0.lock().expect("lock").push(s);
    }
}

struct Setup {
    ctx_dir: tempfile::TempDir,
    backend: FakeBackend,
    runner: FakeRunner,
}

impl Setup {
    fn new(files: &[(&str, &str)]) -> Self {
        let ctx_dir = tempfile::tempdir().expect("tmp");
        for (p, c) in files {
            let path = ctx_dir.path().join(p);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, c).expect("write");
        }
        Setup {
            ctx_dir,
            backend: FakeBackend::new(),
            runner: FakeRunner::default(),
        }
    }

    fn build_with(
        &self,
        df: &str,
        f: impl FnOnce(&mut BuildRequest<'_>),
    ) -> Result<BuildOutput, BuildError> {
        self.build_reporting(df, f, &NoProgress)
    }

    /// Builds `df` on this context, the request adjusted by `f`, events to `progress`.
    fn build_reporting(
        &self,
        df: &str,
        f: impl FnOnce(&mut BuildRequest<'_>),
        progress: &dyn Progress,
    ) -> Result<BuildOutput, BuildError> {
        let ctx = BuildContext::from_dir(self.ctx_dir.path(), None).expect("ctx");
        let mut req = BuildRequest {
            dockerfile: dockerfile::parse(df, "Dockerfile")?,
            file_name: "Dockerfile".into(),
            context: &ctx,
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            pull: false,
            labels: BTreeMap::new(),
            secrets: BTreeMap::new(),
            network: None,
            source_date_epoch: None,
        };
        f(&mut req);
        build(&req, &self.backend, &self.runner, progress)
    }

    fn build(&self, df: &str) -> Result<BuildOutput, BuildError> {
        self.build_with(df, |_| {})
    }

    /// The spec of the last RUN step the fake runner ran.
    fn last_spec(&self) -> RunSpec {
        self.runner
            .specs
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("spec")
    }

    fn files_of(&self, out: &BuildOutput) -> BTreeMap<String, String> {
        let view = self.backend.rootfs(&out.layers).expect("view");
        let mut m = BTreeMap::new();
        fn walk(root: &Path, dir: &Path, m: &mut BTreeMap<String, String>) {
            for e in fs::read_dir(dir).expect("readdir") {
                let e = e.expect("entry");
                let p = e.path();
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                if p.is_dir() {
                    walk(root, &p, m);
                } else {
                    m.insert(rel, fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        walk(view.path(), view.path(), &mut m);
        m
    }
}

const REFERENCE: &str =
    "FROM busybox\nCOPY big.bin /big.bin\nRUN echo hi > /x\nENTRYPOINT [\"/bin/sh\"]\n";

#[test]
fn reference_build_and_full_cache() {
    let s = Setup::new(&[("big.bin", "data")]);
    let a = s.build(REFERENCE).expect("build");
    assert_eq!(a.layers.len(), 3);
    assert_eq!(a.built_steps, 2);
    assert_eq!(a.config.config.entrypoint, Some(vec!["/bin/sh".to_owned()]));
    assert_eq!(
        a.config.config.cmd, None,
        "ENTRYPOINT resets the inherited CMD"
    );
    let files = s.files_of(&a);
    assert_eq!(files["big.bin"], "data");
    assert_eq!(files["x"], "hi\n");
    let hist: Vec<(bool, String)> = a
        .config
        .history
        .iter()
        .map(|h| (h.empty_layer, h.created_by.clone().unwrap_or_default()))
        .collect();
    assert_eq!(hist.len(), 3);
    assert!(hist[0].1.starts_with("COPY big.bin /big.bin") && !hist[0].0);
    assert!(hist[1].1.starts_with("RUN /bin/sh -c echo hi > /x") && !hist[1].0);
    assert!(hist[2].0, "ENTRYPOINT is metadata only");
    assert_eq!(a.id, Digest::of(&a.config_bytes));

    let puts = s.backend.puts.load(Ordering::SeqCst);
    let b = s.build(REFERENCE).expect("rebuild");
    assert_eq!((b.built_steps, b.cached_steps), (0, 2));
    assert_eq!(
        s.backend.puts.load(Ordering::SeqCst),
        puts,
        "a rebuild with nothing changed builds no layer"
    );
    assert_eq!(b.id, a.id, "a fully cached build gives the same image");
    assert_eq!(s.runner.specs.lock().expect("lock").len(), 1);

    let c = s
        .build_with(REFERENCE, |r| r.no_cache = true)
        .expect("no-cache");
    assert_eq!((c.built_steps, c.cached_steps), (2, 0));
}

#[test]
fn changed_source_rebuilds_from_that_step() {
    let df = "FROM busybox\nCOPY a /a\nRUN echo 1 > /1\nCOPY b /b\nRUN echo 2 > /2\n";
    let s = Setup::new(&[("a", "a"), ("b", "b")]);
    s.build(df).expect("build");
    // Same content, new mtime: still cached.
    fs::write(s.ctx_dir.path().join("b"), "b").expect("touch");
    let t = s.build(df).expect("rebuild");
    assert_eq!((t.built_steps, t.cached_steps), (0, 4));
    fs::write(s.ctx_dir.path().join("b"), "B").expect("change");
    let r = s.build(df).expect("rebuild");
    assert_eq!((r.built_steps, r.cached_steps), (2, 2));
    assert_eq!(s.files_of(&r)["b"], "B");
    // A mode change counts too.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        s.ctx_dir.path().join("a"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let r = s.build(df).expect("rebuild");
    assert_eq!((r.built_steps, r.cached_steps), (4, 0));
}

#[test]
fn env_and_arg_change_the_key() {
    let df = "FROM busybox\nARG V=1\nRUN echo x > /x\n";
    let s = Setup::new(&[]);
    s.build(df).expect("build");
    let again = s.build(df).expect("build");
    assert_eq!(again.built_steps, 0);
    let other = s
        .build_with(df, |r| {
            r.build_args.insert("V".into(), "2".into());
        })
        .expect("build");
    assert_eq!(
        other.built_steps, 1,
        "a different ARG value reaches RUN's environment"
    );
    let spec = s.last_spec();
    assert!(spec.env.contains(&"V=2".to_owned()));
    assert!(
        other.config.config.env.iter().all(|e| !e.starts_with("V=")),
        "ARGs are not persisted"
    );
}

#[test]
fn multi_stage_target_skips_and_copy_from() {
    let df = "ARG BASE=busybox\nFROM ${BASE} AS build\nRUN echo built > /out/app\n\nFROM busybox AS broken\nRUN exit 3\n\nFROM scratch\nCOPY --from=build /out/app /app\nCMD [\"/app\"]\n";
    let s = Setup::new(&[]);
    let out = s.build(df).expect("build skips the broken stage");
    let files = s.files_of(&out);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        vec!["app".to_owned()]
    );
    assert_eq!(files["app"], "built\n");
    assert_eq!(out.layers.len(), 1);
    let err = s
        .build_with(df, |r| r.target = Some("broken".into()))
        .expect_err("broken stage");
    match err {
        BuildError::StepFailed {
            status,
            output,
            line,
            ..
        } => {
            assert_eq!(status, 3);
            assert_eq!(line, 6);
            assert!(output.contains("something went wrong"));
        }
        other => panic!("{other}"),
    }
    let t = s
        .build_with(df, |r| r.target = Some("build".into()))
        .expect("target build");
    assert_eq!(t.layers.len(), 2);
    assert!(matches!(
        s.build_with(df, |r| r.target = Some("nope".into())),
        Err(BuildError::UnknownTarget(_))
    ));
    // COPY --from by index.
    let out = s
        .build("FROM busybox\nRUN echo one > /one\nFROM scratch\nCOPY --from=0 /one /\n")
        .expect("build");
    assert_eq!(s.files_of(&out)["one"], "one\n");
}

#[test]
fn independent_stages_and_progress() {
    let df = "FROM busybox AS a\nRUN echo a > /a\nFROM busybox AS b\nRUN echo b > /b\nFROM scratch\nCOPY --from=a /a /\nCOPY --from=b /b /\n";
    let s = Setup::new(&[]);
    let rec = Recorder::default();
    let out = s.build_reporting(df, |_| {}, &rec).expect("build");
    assert_eq!(s.files_of(&out).len(), 2);
    let lines = rec.0.lock().expect("lock").clone();
    assert!(
        lines.iter().any(|l| l.contains("[a 2/2] RUN echo a > /a")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[stage-2 3/3] COPY --from=b /b /")),
        "{lines:?}"
    );
    let rec2 = Recorder::default();
    s.build_reporting(df, |_| {}, &rec2).expect("build");
    assert_eq!(
        rec2.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.ends_with("CACHED"))
            .count(),
        4
    );
}

#[test]
fn secrets_reach_only_their_step() {
    let s = Setup::new(&[]);
    let secret_dir = tempfile::tempdir().expect("tmp");
    let secret = secret_dir.path().join("token");
    fs::write(&secret, "s3cr3t-value").expect("write");
    let df =
        "FROM busybox\nRUN --mount=type=secret,id=tok echo used > /used\nRUN echo other > /other\n";
    let out = s
        .build_with(df, |r| {
            r.secrets.insert("tok".into(), secret.clone());
        })
        .expect("build");
    let specs = s.runner.specs.lock().expect("lock").clone();
    assert_eq!(
        specs[0].mounts,
        vec![RunMount {
            target: "/run/secrets/tok".into(),
            source: Some(secret.clone()),
            readonly: true
        }]
    );
    assert!(specs[1].mounts.is_empty());
    for l in &out.layers {
        assert!(!contains_bytes(&s.backend.blob(l), b"s3cr3t-value"));
    }
    assert!(!contains_bytes(&out.config_bytes, b"s3cr3t-value"));
    let err = s
        .build("FROM busybox\nRUN --mount=type=secret,id=k,required echo x\n")
        .expect_err("missing");
    assert!(matches!(err, BuildError::MissingSecret { .. }), "{err}");
}

#[test]
fn bad_input_errors() {
    let s = Setup::new(&[("a", "a")]);
    let e = s
        .build("FROM busybox\nCOPY missing.txt /x\n")
        .expect_err("missing");
    assert_eq!(e.kind(), crate::Kind::NotFound);
    assert!(
        e.to_string().starts_with(
            "Dockerfile:2: COPY missing.txt /x: \"missing.txt\" not found in the build context"
        ),
        "{e}"
    );
    let e = s
        .build("FROM busybox\nCOPY ../x /x\n")
        .expect_err("outside");
    assert!(e.to_string().contains("outside the build context"), "{e}");
    let e = s
        .build("FROM busybox\nADD https://example.com/x.tar /\n")
        .expect_err("url");
    assert!(matches!(e, BuildError::RemoteSource { .. }));
    assert!(e.to_string().contains("offline"));
    let e = s.build("FROM nosuchimage\n").expect_err("no image");
    assert!(e.to_string().contains("nosuchimage"), "{e}");
    let e = s.build("FROM busybox\nRUNN x\n").expect_err("parse");
    assert!(matches!(e, BuildError::Parse(_)));
    let e = s.build("FROM busybox\nEXPOSE 80/xyz\n").expect_err("proto");
    assert!(e.to_string().contains("invalid protocol"), "{e}");
    let e = s
        .build("FROM busybox\nCOPY --chown=ghost a /a\n")
        .expect_err("user");
    assert!(e.to_string().contains("unable to find user"), "{e}");
    assert_eq!(
        s.backend.puts.load(Ordering::SeqCst),
        0,
        "no layer was stored"
    );
}

#[test]
fn metadata_instructions() {
    let s = Setup::new(&[("f", "f")]);
    let df = "FROM busybox\nENV APP=/srv NAME=\"my app\"\nWORKDIR $APP\nWORKDIR sub\nUSER app\nLABEL a=1 \"b c\"=\"d e\"\nEXPOSE 8080 53/udp 7000-7001\nVOLUME /data\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/ash\", \"-c\"]\nCMD echo $NAME\nCOPY --chown=app f ./f\nONBUILD RUN echo child\nMAINTAINER me\n";
    let out = s.build(df).expect("build");
    let c = &out.config.config;
    assert_eq!(c.env_get("NAME"), Some("my app"));
    assert_eq!(c.working_dir, "/srv/sub");
    assert_eq!(c.user, "app");
    assert_eq!(c.labels["b c"], "d e");
    assert_eq!(
        c.exposed_ports.keys().cloned().collect::<Vec<_>>(),
        vec!["53/udp", "7000/tcp", "7001/tcp", "8080/tcp"]
    );
    assert!(c.volumes.contains_key("/data"));
    assert_eq!(c.stop_signal, "SIGINT");
    assert_eq!(
        c.healthcheck.as_ref().map(|h| h.interval),
        Some(5_000_000_000)
    );
    assert_eq!(
        c.cmd,
        Some(vec!["/bin/ash".into(), "-c".into(), "echo $NAME".into()])
    );
    assert_eq!(c.on_build, Some(vec!["RUN echo child".into()]));
    assert_eq!(out.config.author.as_deref(), Some("me"));
    let view = s.backend.rootfs(&out.layers).expect("view");
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(view.path().join("srv/sub/f")).expect("copied into WORKDIR");
    let _ = md.uid();
    let tar = s.backend.blob(out.layers.last().expect("layer"));
    let mut ar = tar::Archive::new(&tar[..]);
    let owners: Vec<(String, u64)> = ar
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("e");
            (
                e.path().expect("p").to_string_lossy().into_owned(),
                e.header().uid().expect("uid"),
            )
        })
        .collect();
    assert!(
        owners.contains(&("srv/sub/f".to_owned(), 1000)),
        "{owners:?}"
    );
    assert_eq!(
        out.config.history.iter().filter(|h| !h.empty_layer).count(),
        3,
        "two WORKDIRs made directories, COPY a layer"
    );
    // A child of the image runs its ONBUILD trigger.
    let mut child_backend_img = out.clone();
    child_backend_img.config.config.on_build = Some(vec!["RUN echo triggered > /t".into()]);
    let mut s2 = Setup::new(&[]);
    s2.backend.images.insert(
        "parent".into(),
        BaseImage {
            id: out.id.clone(),
            config: child_backend_img.config.clone(),
            layers: vec![],
        },
    );
    let child = s2.build("FROM parent\nRUN echo x > /x\n").expect("child");
    assert_eq!(child.config.config.on_build, None);
    assert_eq!(s2.files_of(&child)["t"], "triggered\n");
}

#[test]
fn heredocs_and_add_archives() {
    let s = Setup::new(&[]);
    // A gzip tar in the context.
    let mut w = LayerWriter::new(Vec::new(), None);
    w.file(
        "pkg/readme",
        EntryMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        },
        2,
        &b"hi"[..],
    )
    .expect("file");
    let tar = w.finish().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gz");
    fs::write(
        s.ctx_dir.path().join("pkg.tar.gz"),
        gz.finish().expect("gz"),
    )
    .expect("write");
    let df = "FROM busybox\nARG WHO=world\nCOPY <<EOF /etc/greeting\nhello $WHO\nEOF\nCOPY <<'EOF' /etc/raw\nhello $WHO\nEOF\nADD pkg.tar.gz /opt/\nRUN <<EOF\necho heredoc > /h\nEOF\n";
    let out = s.build(df).expect("build");
    let files = s.files_of(&out);
    assert_eq!(files["etc/greeting"], "hello world\n");
    assert_eq!(files["etc/raw"], "hello $WHO\n");
    assert_eq!(files["opt/pkg/readme"], "hi");
    assert_eq!(files["h"], "heredoc\n");
}

#[test]
fn reproducible_with_source_date_epoch() {
    let df = "FROM busybox\nCOPY a /a\nRUN echo x > /x\nLABEL v=1\n";
    let ids: Vec<Digest> = (0..2)
        .map(|_| {
            let s = Setup::new(&[("a", "a")]);
            std::thread::sleep(Duration::from_millis(1100));
            s.build_with(df, |r| r.source_date_epoch = Some(1_600_000_000))
                .expect("build")
                .id
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn dockerignore_exceptions_apply_to_copy() {
    let s = Setup::new(&[
        ("keep.md", "k"),
        ("drop.md", "d"),
        ("src/x", "x"),
        (".dockerignore", "*.md\n!keep.md\n"),
    ]);
    let out = s.build("FROM scratch\nCOPY . /ctx/\n").expect("build");
    let files = s.files_of(&out);
    assert!(files.contains_key("ctx/keep.md"));
    assert!(!files.contains_key("ctx/drop.md"));
    assert!(files.contains_key("ctx/src/x"));
}

#[test]
fn run_bind_mounts_from_context_and_stage_are_read_only() {
    let s = Setup::new(&[("conf/app.ini", "x=1")]);
    let df = "FROM busybox AS tools\nRUN echo tool > /opt/tool\nFROM busybox\nRUN --mount=type=bind,source=conf,target=/conf,rw --mount=type=bind,from=tools,source=/opt,target=/tools echo used > /u\n";
    s.build(df).expect("build");
    let specs = s.runner.specs.lock().expect("lock").clone();
    let last = specs.last().expect("spec");
    assert_eq!(last.mounts.len(), 2);
    assert!(last.mounts.iter().all(|m| m.readonly));
    assert!(last.mounts[0]
        .source
        .as_ref()
        .is_some_and(|p| p.ends_with("conf")));
    let e = s
        .build("FROM busybox\nRUN --mount=type=bind,source=../etc,target=/x echo\n")
        .expect_err("outside");
    assert!(e.to_string().contains("outside the build context"), "{e}");
}

#[test]
fn workdir_creates_a_missing_directory_once() {
    let s = Setup::new(&[]);
    let out = s
        .build("FROM busybox\nWORKDIR /etc\nWORKDIR /srv/app\nWORKDIR .hidden\nCMD pwd\n")
        .expect("build");
    assert_eq!(out.config.config.working_dir, "/srv/app/.hidden");
    // /etc exists: metadata only; the two new directories each get a layer.
    assert_eq!(out.built_steps, 2);
    let view = s.backend.rootfs(&out.layers).expect("view");
    assert!(view.path().join("srv/app/.hidden").is_dir());
    let again = s
        .build("FROM busybox\nWORKDIR /etc\nWORKDIR /srv/app\nWORKDIR .hidden\nCMD pwd\n")
        .expect("build");
    assert_eq!((again.built_steps, again.cached_steps), (0, 2));
    assert_eq!(again.id, out.id);
}

#[test]
fn shebang_heredoc_runs_as_its_own_script() {
    let s = Setup::new(&[]);
    s.build("FROM busybox\nRUN <<EOF\n#!/bin/sh\necho script\nEOF\n")
        .expect("build");
    let spec = s.last_spec();
    assert_eq!(spec.argv, vec!["/dev/pipes/EOF".to_owned()]);
    assert_eq!(spec.mounts.len(), 1);
    assert_eq!(spec.mounts[0].target, "/dev/pipes/EOF");
    assert!(spec.mounts[0].readonly);
}

#[test]
fn env_values_see_the_environment_before_the_instruction() {
    let s = Setup::new(&[]);
    let out = s
        .build("FROM busybox\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc PATH=$PATH:/x\n")
        .expect("build");
    let c = &out.config.config;
    assert_eq!(c.env_get("def"), Some("hello"));
    assert_eq!(c.env_get("ghi"), Some("bye"));
    assert_eq!(c.env_get("PATH"), Some("/bin:/x"));
}

#[test]
fn unconsumed_build_args_are_reported() {
    let s = Setup::new(&[]);
    let out = s
        .build_with("ARG G\nFROM busybox\nARG S\n", |r| {
            for k in ["G", "S", "NOPE", "HTTP_PROXY"] {
                r.build_args.insert(k.into(), "1".into());
            }
        })
        .expect("build");
    assert_eq!(out.unused_build_args, vec!["NOPE".to_owned()]);
}
