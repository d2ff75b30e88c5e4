//! The client against the server over loopback, and the server's answers to raw requests.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::Read;
use std::path::Path;

use berth_oci::Digest;
use berth_registry::client::{
    self, BlobSink, Credentials, DirBlobs, EndpointOptions, Progress, PullOptions, PushOptions,
    Session,
};
use berth_registry::name::RepoName;
use berth_registry::protocol;
use berth_registry::server::{self, AuthConfig, RunningServer, ServerConfig};

fn start(storage: &Path, auth: AuthConfig) -> RunningServer {
    server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        storage: storage.to_owned(),
        auth,
        ..Default::default()
    })
    .expect("server starts")
}

fn session(srv: &RunningServer, creds: Option<(&str, &str)>) -> Session {
    Session::new(
        &srv.addr.to_string(),
        creds.map(|(u, p)| Credentials {
            username: u.into(),
            password: p.into(),
        }),
        EndpointOptions {
            insecure: true,
            attempts: 2,
            backoff: std::time::Duration::from_millis(20),
            parallel: 3,
        },
    )
}

fn quiet(_: Progress) {}

/// An image in a blob directory: config + `layers` random layers; returns the manifest.
fn make_image(blobs: &DirBlobs, layers: &[Vec<u8>], layer_type: &str) -> Vec<u8> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = blobs.put(config).unwrap();
    let mut descs = Vec::new();
    for l in layers {
        let d = blobs.put(l).unwrap();
        descs.push(
            serde_json::json!({"mediaType": layer_type, "digest": d.to_string(), "size": l.len()}),
        );
    }
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": protocol::OCI_MANIFEST,
        "config": {"mediaType": protocol::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap()
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand_byte()).collect()
}

fn rand_byte() -> u8 {
    use std::cell::Cell;
    thread_local!(static S: Cell<u64> = Cell::new(0x9E3779B97F4A7C15 ^ std::process::id() as u64));
    S.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 24) as u8
    })
}

fn repo(s: &str) -> RepoName {
    RepoName::new(s).unwrap()
}

/// Pushes an OCI image manifest with `src`'s blobs, default options, no progress.
fn push_oci(
    s: &Session,
    name: &str,
    tag: Option<&str>,
    manifest: &[u8],
    src: &DirBlobs,
) -> Result<client::PushedImage, client::ClientError> {
    client::push(
        s,
        &repo(name),
        tag,
        manifest,
        protocol::OCI_MANIFEST,
        src,
        &PushOptions::default(),
        &quiet,
    )
}

/// Pulls `reference` of `name` into `dst` with default options, no progress.
fn pull_default(
    s: &Session,
    name: &str,
    reference: &str,
    dst: &DirBlobs,
) -> Result<client::PulledImage, client::ClientError> {
    client::pull(
        s,
        &repo(name),
        reference,
        &PullOptions::default(),
        dst,
        &quiet,
    )
}

#[test]
fn push_then_pull_gives_the_same_digests() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let manifest = make_image(
        &src,
        &[random_bytes(300_000), random_bytes(2_500_000), Vec::new()],
        protocol::OCI_LAYER_GZIP,
    );
    let s = session(&srv, None);
    let pushed = push_oci(&s, "team/app", Some("v1"), &manifest, &src).unwrap();
    assert_eq!(pushed.digest, Digest::of(&manifest));

    // A second push finds every blob there.
    let events = std::sync::Mutex::new(Vec::new());
    client::push(
        &s,
        &repo("team/app"),
        Some("v1"),
        &manifest,
        protocol::OCI_MANIFEST,
        &src,
        &PushOptions::default(),
        &|p| events.lock().unwrap().push(p),
    )
    .unwrap();
    let exists = events
        .lock()
        .unwrap()
        .iter()
        .filter(|p| matches!(p, Progress::LayerExists(_)))
        .count();
    // Layers only: the config's events are not shown (as Docker).
    assert_eq!(exists, 3);

    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let s2 = session(&srv, None);
    let pulled = pull_default(&s2, "team/app", "v1", &dst).unwrap();
    assert_eq!(pulled.manifest_digest, pushed.digest);
    assert_eq!(pulled.manifest, manifest);
    for l in pulled.layers.iter().chain([&pulled.config]) {
        let a = std::fs::read(src.path(&l.digest)).unwrap();
        let b = std::fs::read(dst.path(&l.digest)).unwrap();
        assert_eq!(a, b);
    }
    // By digest too.
    let again = pull_default(&s2, "team/app", &pushed.digest.to_string(), &dst).unwrap();
    assert_eq!(again.manifest_digest, pushed.digest);
}

#[test]
fn gzip_push_compresses_uncompressed_layers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let layer: Vec<u8> = (0..9_000_000u32).map(|i| (i % 7) as u8).collect();
    let manifest = make_image(&src, std::slice::from_ref(&layer), protocol::OCI_LAYER_TAR);
    let s = session(&srv, None);
    let pushed = push_oci(&s, "gz", Some("latest"), &manifest, &src).unwrap();
    assert_eq!(pushed.layers[0].media_type, protocol::OCI_LAYER_GZIP);
    assert!(pushed.layers[0].size < layer.len() as u64 / 10);
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let pulled = pull_default(&s, "gz", "latest", &dst).unwrap();
    let gz = std::fs::read(dst.path(&pulled.layers[0].digest)).unwrap();
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, layer);
}

#[test]
fn index_pull_picks_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let s = session(&srv, None);
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let m = make_image(
            &src,
            &[arch.as_bytes().repeat(1000)],
            protocol::OCI_LAYER_GZIP,
        );
        let p = push_oci(&s, "multi", None, &m, &src).unwrap();
        entries.push(serde_json::json!({
            "mediaType": protocol::OCI_MANIFEST, "digest": p.digest.to_string(), "size": p.size,
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": protocol::OCI_INDEX, "manifests": entries
    }))
    .unwrap();
    let url = format!("http://{}/v2/multi/manifests/latest", srv.addr);
    let r = ureq::put(&url)
        .set("Content-Type", protocol::OCI_INDEX)
        .send_bytes(&index)
        .unwrap();
    assert_eq!(r.status(), 201);
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let opts = PullOptions {
        platform: Some("linux/arm64".into()),
        ..Default::default()
    };
    let pulled = client::pull(&s, &repo("multi"), "latest", &opts, &dst, &quiet).unwrap();
    assert_eq!(pulled.repo_digest, Digest::of(&index));
    let layer = std::fs::read(dst.path(&pulled.layers[0].digest)).unwrap();
    assert!(layer.starts_with(b"arm64"));
    let err = client::pull(
        &s,
        &repo("multi"),
        "latest",
        &PullOptions {
            platform: Some("linux/s390x".into()),
            ..Default::default()
        },
        &dst,
        &quiet,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

fn code_of(err: ureq::Error) -> (u16, String) {
    match err {
        ureq::Error::Status(s, r) => (s, r.into_string().unwrap_or_default()),
        ureq::Error::Transport(t) => panic!("transport: {t}"),
    }
}

#[test]
fn wrong_digest_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let srv = start(&storage, AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let wrong = Digest::of(b"something else");
    let err = ureq::post(&format!("{base}/v2/a/blobs/uploads/?digest={wrong}"))
        .send_bytes(b"the real bytes")
        .unwrap_err();
    let (status, body) = code_of(err);
    assert_eq!(status, 400);
    assert!(body.contains("DIGEST_INVALID"), "{body}");
    let head = ureq::head(&format!("{base}/v2/a/blobs/{wrong}")).call();
    assert!(head.is_err());
    let blobs: Vec<_> = walk(&storage.join("blobs"));
    assert!(blobs.is_empty(), "stored: {blobs:?}");
    assert!(walk(&storage.join("uploads")).is_empty());
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn bad_names_are_name_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let long = "a".repeat(300);
    // ureq would resolve dot segments itself: send this one raw.
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(srv.addr).unwrap();
    write!(
        tcp,
        "GET /v2/a/../b/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("NAME_INVALID"), "{answer}");
    for name in ["Upper/case", long.as_str(), "a/b-", "a__-b"] {
        let err = ureq::get(&format!("{base}/v2/{name}/tags/list"))
            .call()
            .unwrap_err();
        let (status, body) = code_of(err);
        assert_eq!(status, 400, "{name}");
        assert!(body.contains("NAME_INVALID"), "{name}: {body}");
        let err = ureq::post(&format!("{base}/v2/{name}/blobs/uploads/"))
            .send_bytes(b"")
            .unwrap_err();
        assert!(code_of(err).1.contains("NAME_INVALID"));
    }
}

#[test]
fn chunked_uploads_ranges_tags_catalog_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let data = random_bytes(100_000);
    let digest = Digest::of(&data);

    let r = ureq::post(&format!("{base}/v2/r/blobs/uploads/"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let loc = format!("{base}{}", r.header("location").unwrap());
    let r = ureq::patch(&loc)
        .set("Content-Range", "0-49999")
        .send_bytes(&data[..50_000])
        .unwrap();
    assert_eq!(r.header("range"), Some("0-49999"));
    // A chunk that does not continue the upload.
    let err = ureq::patch(&loc)
        .set("Content-Range", "10-20")
        .send_bytes(&data[10..21])
        .unwrap_err();
    assert_eq!(code_of(err).0, 416);
    let r = ureq::get(&loc).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.header("range"), Some("0-49999"));
    let r = ureq::put(&format!("{loc}?digest={digest}"))
        .send_bytes(&data[50_000..])
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );

    // Range read.
    let r = ureq::get(&format!("{base}/v2/r/blobs/{digest}"))
        .set("Range", "bytes=10-19")
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/100000"));
    let mut part = Vec::new();
    r.into_reader().read_to_end(&mut part).unwrap();
    assert_eq!(part, &data[10..20]);

    // Cancel an upload.
    let r = ureq::post(&format!("{base}/v2/r/blobs/uploads/"))
        .call()
        .unwrap();
    let loc2 = format!("{base}{}", r.header("location").unwrap());
    assert_eq!(ureq::delete(&loc2).call().unwrap().status(), 204);
    assert_eq!(code_of(ureq::get(&loc2).call().unwrap_err()).0, 404);

    // Cross-repo mount.
    let r = ureq::post(&format!(
        "{base}/v2/other/blobs/uploads/?mount={digest}&from=r"
    ))
    .call()
    .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        ureq::head(&format!("{base}/v2/other/blobs/{digest}"))
            .call()
            .unwrap()
            .status(),
        200
    );

    // Manifests under several tags, paginated.
    let config = b"{}";
    let cd = Digest::of(config);
    ureq::post(&format!("{base}/v2/r/blobs/uploads/?digest={cd}"))
        .send_bytes(config)
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": protocol::OCI_MANIFEST,
        "config": {"mediaType": protocol::OCI_CONFIG, "digest": cd.to_string(), "size": 2},
        "layers": [{"mediaType": protocol::OCI_LAYER_GZIP, "digest": digest.to_string(), "size": data.len()}]
    }))
    .unwrap();
    let md = Digest::of(&manifest);
    for tag in ["a", "b", "c", "d"] {
        let r = ureq::put(&format!("{base}/v2/r/manifests/{tag}"))
            .set("Content-Type", protocol::OCI_MANIFEST)
            .send_bytes(&manifest)
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = ureq::get(&format!("{base}/v2/r/tags/list?n=2"))
        .call()
        .unwrap();
    assert!(r.header("link").unwrap().contains("last=b"));
    let v: serde_json::Value = r.into_json().unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    let v: serde_json::Value = ureq::get(&format!("{base}/v2/r/tags/list?n=2&last=b"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["tags"], serde_json::json!(["c", "d"]));
    let v: serde_json::Value = ureq::get(&format!("{base}/v2/_catalog"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["other", "r"]));
    let r = ureq::head(&format!("{base}/v2/r/manifests/a"))
        .call()
        .unwrap();
    assert_eq!(
        r.header("docker-content-digest"),
        Some(md.to_string().as_str())
    );
    assert_eq!(r.header("content-type"), Some(protocol::OCI_MANIFEST));
    assert_eq!(
        r.header("content-length"),
        Some(manifest.len().to_string().as_str())
    );

    // A manifest naming a blob the repository lacks.
    let bad = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": protocol::OCI_MANIFEST,
        "config": {"mediaType": protocol::OCI_CONFIG, "digest": Digest::of(b"nope").to_string(), "size": 4},
        "layers": []
    }))
    .unwrap();
    let err = ureq::put(&format!("{base}/v2/r/manifests/bad"))
        .set("Content-Type", protocol::OCI_MANIFEST)
        .send_bytes(&bad)
        .unwrap_err();
    assert!(code_of(err).1.contains("MANIFEST_BLOB_UNKNOWN"));
    // Too large.
    // Too large: refused on the announced length, before any body byte is read.
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(srv.addr).unwrap();
        write!(
            tcp,
            "PUT /v2/r/manifests/huge HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            protocol::OCI_MANIFEST,
            5 << 20
        )
        .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tcp.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("SIZE_INVALID"), "{answer}");
    }

    // Referrers: an artifact whose subject is the manifest.
    let empty = b"{}";
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": protocol::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(empty).to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": protocol::OCI_MANIFEST, "digest": md.to_string(), "size": manifest.len()}
    }))
    .unwrap();
    let ad = Digest::of(&artifact);
    let r = ureq::put(&format!("{base}/v2/r/manifests/{ad}"))
        .set("Content-Type", protocol::OCI_MANIFEST)
        .send_bytes(&artifact)
        .unwrap();
    assert_eq!(r.header("oci-subject"), Some(md.to_string().as_str()));
    let v: serde_json::Value = ureq::get(&format!("{base}/v2/r/referrers/{md}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["manifests"][0]["digest"], ad.to_string());
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    let r = ureq::get(&format!("{base}/v2/r/referrers/{md}?artifactType=other"))
        .call()
        .unwrap();
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    let v: serde_json::Value = r.into_json().unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));

    // Deleting a manifest by digest removes its tags.
    assert_eq!(
        ureq::delete(&format!("{base}/v2/r/manifests/{md}"))
            .call()
            .unwrap()
            .status(),
        202
    );
    let err = ureq::get(&format!("{base}/v2/r/manifests/a"))
        .call()
        .unwrap_err();
    assert!(code_of(err).1.contains("MANIFEST_UNKNOWN"));

    // gc sweeps what no manifest references any more (the blob, not the artifact's config).
    let storage = server::FsStorage::open(dir.path().join("storage")).unwrap();
    // Young blobs are spared when asked (pushes upload blobs before their manifest).
    let spared = server::gc(
        &storage,
        &server::GcOptions {
            blob_min_age: std::time::Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(spared.swept.is_empty());
    let report = server::gc(
        &storage,
        &server::GcOptions {
            blob_min_age: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.swept.contains(&digest));
    assert!(!report.swept.contains(&ad));
}

#[test]
fn eight_clients_pushing_one_layer_make_one_blob() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let srv = start(&storage, AuthConfig::default());
    let data = random_bytes(3_000_000);
    let digest = Digest::of(&data);
    std::thread::scope(|sc| {
        for i in 0..8 {
            let (srv, data, digest) = (&srv, &data, &digest);
            sc.spawn(move || {
                let base = format!("http://{}", srv.addr);
                let r = ureq::post(&format!("{base}/v2/same{i}/blobs/uploads/"))
                    .call()
                    .unwrap();
                let loc = format!("{base}{}", r.header("location").unwrap());
                let r = ureq::put(&format!("{loc}?digest={digest}"))
                    .send_bytes(data)
                    .unwrap();
                assert_eq!(r.status(), 201);
            });
        }
    });
    let blobs = walk(&storage.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), data);
    assert!(walk(&storage.join("uploads")).is_empty());
}

fn auth_config(dir: &Path) -> AuthConfig {
    let hash = bcrypt::hash("secret", 4).unwrap();
    let ht = dir.join("htpasswd");
    std::fs::write(&ht, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
    AuthConfig {
        htpasswd: Some(ht),
        public: vec!["public/*".into()],
        rules: vec![
            server::AccessRule {
                repository: "alice/*".into(),
                users: vec!["alice".into()],
                actions: vec!["*".into()],
            },
            server::AccessRule {
                repository: "public/*".into(),
                users: vec!["alice".into()],
                actions: vec!["*".into()],
            },
        ],
        ..Default::default()
    }
}

#[test]
fn auth_challenges_tokens_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), auth_config(dir.path()));
    let base = format!("http://{}", srv.addr);

    // Anonymous pull of a private repository: 401 with a bearer challenge.
    let err = ureq::get(&format!("{base}/v2/alice/app/manifests/latest"))
        .call()
        .unwrap_err();
    let ureq::Error::Status(401, resp) = err else {
        panic!("expected 401")
    };
    let ch = resp.header("www-authenticate").unwrap().to_owned();
    assert!(ch.starts_with("Bearer realm=\""), "{ch}");
    assert!(ch.contains("/token\""), "{ch}");
    assert!(ch.contains("service=\"berth-registry\""), "{ch}");
    assert!(ch.contains("scope=\"repository:alice/app:pull\""), "{ch}");
    assert!(resp.into_string().unwrap().contains("UNAUTHORIZED"));

    // Login: wrong password refused, right one accepted.
    let s = session(&srv, Some(("alice", "wrong")));
    let err = s.login().unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    session(&srv, Some(("alice", "secret"))).login().unwrap();

    // Push and pull with the bearer flow.
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let manifest = make_image(&src, &[random_bytes(1000)], protocol::OCI_LAYER_GZIP);
    let alice = session(&srv, Some(("alice", "secret")));
    for r in ["alice/app", "public/app"] {
        push_oci(&alice, r, Some("latest"), &manifest, &src).unwrap();
    }
    // Anonymous pull of a public repository works; of a private one it does not.
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let anon = session(&srv, None);
    pull_default(&anon, "public/app", "latest", &dst).unwrap();
    let err = pull_default(&anon, "alice/app", "latest", &dst).unwrap_err();
    assert_eq!(err.kind(), berth_registry::ErrorKind::Unauthorized, "{err}");
    // Bob may not push to alice's repositories.
    let bob = session(&srv, Some(("bob", "secret")));
    let err = push_oci(&bob, "alice/other", Some("x"), &manifest, &src).unwrap_err();
    assert_eq!(err.kind(), berth_registry::ErrorKind::Unauthorized, "{err}");

    // A token scoped to repository A cannot push to repository B.
    let t: serde_json::Value = ureq::get(&format!(
        "{base}/token?service=berth-registry&scope=repository:alice/a:pull,push"
    ))
    .set("Authorization", &format!("Basic {}", b64("alice:secret")))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let token = t["token"].as_str().unwrap();
    let ok = ureq::post(&format!("{base}/v2/alice/a/blobs/uploads/"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(ok.status(), 202);
    let err = ureq::post(&format!("{base}/v2/alice/b/blobs/uploads/"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_err();
    assert_eq!(code_of(err).0, 401);
    // Wrong password at the token endpoint.
    let err = ureq::get(&format!("{base}/token?scope=repository:alice/a:pull"))
        .set("Authorization", &format!("Basic {}", b64("alice:nope")))
        .call()
        .unwrap_err();
    assert_eq!(code_of(err).0, 401);
    // Basic accepted directly.
    let r = ureq::get(&format!("{base}/v2/alice/app/tags/list"))
        .set("Authorization", &format!("Basic {}", b64("alice:secret")))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn interrupted_pull_resumes_its_partial_blob() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let layer = random_bytes(1_000_000);
    let manifest = make_image(&src, std::slice::from_ref(&layer), protocol::OCI_LAYER_GZIP);
    let s = session(&srv, None);
    push_oci(&s, "resume", Some("v"), &manifest, &src).unwrap();
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let ld = Digest::of(&layer);
    // Half the layer is already there from an earlier, interrupted pull.
    std::fs::write(dst.partial_path(&ld), &layer[..500_000]).unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    client::pull(
        &s,
        &repo("resume"),
        "v",
        &PullOptions::default(),
        &dst,
        &|p| events.lock().unwrap().push(p),
    )
    .unwrap();
    assert_eq!(std::fs::read(dst.path(&ld)).unwrap(), layer);
    let first = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|p| match p {
            Progress::Transferring { digest, done, .. } if digest == &ld => Some(*done),
            _ => None,
        })
        .unwrap();
    assert!(first > 500_000, "started from {first}");
    // A corrupt partial file is detected, dropped, and the blob fetched whole.
    let dst2 = DirBlobs::new(dir.path().join("dst2")).unwrap();
    let mut bad = layer[..500_000].to_vec();
    bad[0] ^= 0xff;
    std::fs::write(dst2.partial_path(&ld), &bad).unwrap();
    client::pull(
        &s,
        &repo("resume"),
        "v",
        &PullOptions::default(),
        &dst2,
        &quiet,
    )
    .unwrap();
    assert_eq!(std::fs::read(dst2.path(&ld)).unwrap(), layer);
    assert!(!dst2.partial_path(&ld).exists());
}

#[test]
fn self_signed_tls_with_verification_off() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        storage: dir.path().join("storage"),
        tls: server::TlsMode::SelfSigned,
        ..Default::default()
    })
    .unwrap();
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let manifest = make_image(&src, &[random_bytes(10_000)], protocol::OCI_LAYER_GZIP);
    let s = session(&srv, None);
    push_oci(&s, "tls/app", Some("1"), &manifest, &src).unwrap();
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let pulled = pull_default(&s, "tls/app", "1", &dst).unwrap();
    assert_eq!(pulled.manifest, manifest);
    // Plain HTTP is not spoken on a TLS port, and a verifying client refuses the certificate.
    assert!(ureq::get(&format!("http://{}/v2/", srv.addr))
        .call()
        .is_err());
    let strict = Session::new(
        &srv.addr.to_string(),
        None,
        EndpointOptions {
            insecure: false,
            attempts: 1,
            ..Default::default()
        },
    );
    assert!(strict.ping().is_err());
}

#[test]
fn faults_are_retried_and_cut_downloads_resume() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let layer = random_bytes(3_000_000);
    let manifest = make_image(&src, std::slice::from_ref(&layer), protocol::OCI_LAYER_GZIP);
    // Through a proxy answering 503 at first: the push retries with backoff.
    let proxy = berth_registry::test_support::flaky_proxy(srv.addr, 3, None).unwrap();
    let s = Session::new(
        &proxy.to_string(),
        None,
        EndpointOptions {
            insecure: true,
            attempts: 6,
            backoff: std::time::Duration::from_millis(10),
            parallel: 2,
        },
    );
    push_oci(&s, "flaky", Some("1"), &manifest, &src).unwrap();
    // Through a proxy that cuts the blob download after 1 MB: the pull resumes it.
    let proxy = berth_registry::test_support::flaky_proxy(srv.addr, 0, Some(1_000_000)).unwrap();
    let s = Session::new(
        &proxy.to_string(),
        None,
        EndpointOptions {
            insecure: true,
            attempts: 4,
            backoff: std::time::Duration::from_millis(10),
            parallel: 1,
        },
    );
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    client::pull(
        &s,
        &repo("flaky"),
        "1",
        &PullOptions::default(),
        &dst,
        &|p| events.lock().unwrap().push(p),
    )
    .unwrap();
    let ld = Digest::of(&layer);
    assert_eq!(std::fs::read(dst.path(&ld)).unwrap(), layer);
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|p| matches!(p, Progress::Retrying { .. })),
        "{events:?}"
    );
}

#[test]
fn chunked_upload_survives_a_restart_between_chunks() {
    // Another replica (or a restarted process) has no hash state: the commit re-reads.
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let data = random_bytes(200_000);
    let digest = Digest::of(&data);
    let srv = start(&storage, AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let r = ureq::post(&format!("{base}/v2/re/blobs/uploads/"))
        .call()
        .unwrap();
    let path = r.header("location").unwrap().to_owned();
    ureq::patch(&format!("{base}{path}"))
        .send_bytes(&data[..120_000])
        .unwrap();
    srv.stop();
    let srv = start(&storage, AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let r = ureq::patch(&format!("{base}{path}"))
        .set("Content-Range", "120000-199999")
        .send_bytes(&data[120_000..])
        .unwrap();
    assert_eq!(r.header("range"), Some("0-199999"));
    let r = ureq::put(&format!("{base}{path}?digest={digest}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut got = Vec::new();
    ureq::get(&format!("{base}/v2/re/blobs/{digest}"))
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, data);
}

/// A token service that only speaks the OAuth2 form POST: the client falls back from GET to
/// `grant_type=password`, and an identity token (user `<token>`) is sent as
/// `grant_type=refresh_token`; an access token is no refresh token.
#[test]
fn oauth2_post_token_flow() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        &dir.path().join("storage"),
        AuthConfig {
            token_get: Some(false),
            ..auth_config(dir.path())
        },
    );
    let base = format!("http://{}", srv.addr);
    let err = ureq::get(&format!("{base}/token?service=berth-registry"))
        .set("Authorization", &format!("Basic {}", b64("alice:secret")))
        .call()
        .unwrap_err();
    assert!(matches!(err, ureq::Error::Status(405, _)));

    let err = session(&srv, Some(("alice", "wrong"))).login().unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    let alice = session(&srv, Some(("alice", "secret")));
    alice.login().unwrap();
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let manifest = make_image(&src, &[random_bytes(1000)], protocol::OCI_LAYER_GZIP);
    push_oci(&alice, "alice/app", Some("1"), &manifest, &src).unwrap();

    // A refresh token, as Docker's login asks for one (access_type=offline).
    let answer: serde_json::Value = serde_json::from_str(
        &ureq::post(&format!("{base}/token"))
            .send_form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "secret"),
                ("service", "berth-registry"),
                ("scope", "repository:alice/app:pull"),
                ("client_id", "test"),
                ("access_type", "offline"),
            ])
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let refresh = answer["refresh_token"].as_str().unwrap();
    let access = answer["access_token"].as_str().unwrap();
    let with_token = session(&srv, Some(("<token>", refresh)));
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let pulled = pull_default(&with_token, "alice/app", "1", &dst).unwrap();
    assert_eq!(pulled.manifest, manifest);
    let err = pull_default(
        &session(&srv, Some(("<token>", access))),
        "alice/app",
        "1",
        &DirBlobs::new(dir.path().join("dst2")).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), berth_registry::ErrorKind::Unauthorized, "{err}");
}

/// An index is pushed as every child manifest (by digest, with its blobs) then the index;
/// `all_platforms` pulls every child's blobs, and the pulled copy pushes on unchanged.
#[test]
fn index_push_sends_every_child_then_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let s = session(&srv, None);
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let m = make_image(
            &src,
            &[random_bytes(3000), random_bytes(2000)],
            protocol::OCI_LAYER_GZIP,
        );
        let d = src.put(&m).unwrap();
        entries.push(serde_json::json!({
            "mediaType": protocol::OCI_MANIFEST, "digest": d.to_string(), "size": m.len(),
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": protocol::OCI_INDEX, "manifests": entries
    }))
    .unwrap();
    let pushed = client::push(
        &s,
        &repo("multi"),
        Some("1"),
        &index,
        protocol::OCI_INDEX,
        &src,
        &PushOptions::default(),
        &quiet,
    )
    .unwrap();
    assert_eq!(pushed.digest, Digest::of(&index));
    let get = |r: &str, reference: &str| {
        ureq::get(&format!("http://{}/v2/{r}/manifests/{reference}", srv.addr))
            .set("Accept", protocol::MANIFEST_ACCEPT)
            .call()
            .unwrap()
    };
    let answer = get("multi", "1");
    assert_eq!(answer.content_type(), protocol::OCI_INDEX);
    let mut body = Vec::new();
    answer.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, index);
    for e in &entries {
        assert_eq!(get("multi", e["digest"].as_str().unwrap()).status(), 200);
    }

    // Every platform pulled, then pushed on to another repository: the same index.
    let dst = DirBlobs::new(dir.path().join("dst")).unwrap();
    let pulled = client::pull(
        &s,
        &repo("multi"),
        "1",
        &PullOptions {
            all_platforms: true,
            ..Default::default()
        },
        &dst,
        &quiet,
    )
    .unwrap();
    assert_eq!(pulled.repo_digest, Digest::of(&index));
    assert_eq!(pulled.other_manifests.len(), 1);
    dst.put(&pulled.manifest).unwrap();
    for (_, m) in &pulled.other_manifests {
        dst.put(m).unwrap();
    }
    let (_, index_bytes) = pulled.index.clone().unwrap();
    let again = client::push(
        &s,
        &repo("copy"),
        Some("1"),
        &index_bytes,
        protocol::OCI_INDEX,
        &dst,
        &PushOptions::default(),
        &quiet,
    )
    .unwrap();
    assert_eq!(again.digest, pushed.digest);
    // A child missing from the source: an error naming it, the index not written.
    let partial = DirBlobs::new(dir.path().join("partial")).unwrap();
    partial.put(&pulled.manifest).unwrap();
    let err = client::push(
        &s,
        &repo("partial"),
        Some("1"),
        &index_bytes,
        protocol::OCI_INDEX,
        &partial,
        &PushOptions::default(),
        &quiet,
    )
    .unwrap_err();
    assert!(err.to_string().contains("sha256:"), "{err}");
    let missing = ureq::get(&format!("http://{}/v2/partial/manifests/1", srv.addr))
        .set("Accept", protocol::MANIFEST_ACCEPT)
        .call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}

/// A stored blob whose bytes do not match its digest: the sendfile upload is refused, the
/// ordinary upload is refused too and words the error; nothing is stored, no upload is left.
#[test]
fn corrupt_source_blob_is_refused_by_both_upload_paths() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let srv = start(&storage, AuthConfig::default());
    let src = DirBlobs::new(dir.path().join("src")).unwrap();
    let layer = random_bytes(100_000);
    let manifest = make_image(&src, std::slice::from_ref(&layer), protocol::OCI_LAYER_GZIP);
    let d = Digest::of(&layer);
    let mut bad = layer.clone();
    bad[5000] ^= 0xff;
    std::fs::write(src.path(&d), &bad).unwrap();
    let err = push_oci(&session(&srv, None), "a/b", Some("1"), &manifest, &src).unwrap_err();
    assert!(err.to_string().contains("digest invalid"), "{err}");
    let blobs: Vec<_> = walk(&storage.join("blobs"))
        .into_iter()
        .filter(|p| p.ends_with(d.hex()) || p.to_string_lossy().contains(d.hex()))
        .collect();
    assert!(blobs.is_empty(), "stored: {blobs:?}");
    assert!(walk(&storage.join("uploads")).is_empty());
}

/// An upload body of thousands of tiny chunks (each its own frame on the server) is stored
/// whole and in order: the server hands chunks on in batches and writes each with writev.
#[test]
fn upload_of_many_tiny_chunks_is_stored_in_order() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let data = random_bytes(3000 * 97);
    let digest = Digest::of(&data);
    let r = ureq::post(&format!("{base}/v2/tiny/blobs/uploads/"))
        .call()
        .unwrap();
    let loc = r.header("location").unwrap().to_owned();
    let path = format!(
        "{loc}{}digest={digest}",
        if loc.contains('?') { '&' } else { '?' }
    );
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        srv.addr
    )
    .into_bytes();
    for c in data.chunks(97) {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let got = ureq::get(&format!("{base}/v2/tiny/blobs/{digest}"))
        .call()
        .unwrap();
    let mut body = Vec::new();
    got.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, data);
}
