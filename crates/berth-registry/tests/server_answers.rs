//! Answers of the registry that the conformance suite and the garbage collector depend on:
//! a malformed tag is an unknown manifest (issue 17), a manifest naming a blob that is gone
//! is refused even when the repository still links it, and what interrupted runs left behind
//! is cleaned at start (issue 18).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use berth_oci::Digest;
use berth_registry::protocol;
use berth_registry::server::{self, AuthConfig, RunningServer, ServerConfig, Storage};

fn start(storage: &Path) -> RunningServer {
    server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        storage: storage.to_owned(),
        auth: AuthConfig::default(),
        upload_max_age: Duration::from_secs(3600),
        ..Default::default()
    })
    .unwrap()
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

fn set_mtime(p: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

#[test]
fn a_malformed_tag_is_an_unknown_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"));
    let base = format!("http://{}", srv.addr);
    let long = "t".repeat(129);
    for tag in ["-leading-dash", ".dot", long.as_str(), "a%2Fb"] {
        let url = format!("{base}/v2/some/repo/manifests/{tag}");
        let (status, body) = answer(ureq::get(&url).call());
        assert_eq!(status, 404, "GET {tag}: {body}");
        assert!(body.contains("MANIFEST_UNKNOWN"), "GET {tag}: {body}");
        let (status, _) = answer(ureq::head(&url).call());
        assert_eq!(status, 404, "HEAD {tag}");
        let (status, body) = answer(ureq::delete(&url).call());
        assert_eq!(status, 404, "DELETE {tag}: {body}");
    }
    // A PUT is told the tag is invalid (the spec's tag grammar).
    let (status, body) = answer(
        ureq::put(&format!("{base}/v2/some/repo/manifests/-bad"))
            .set("Content-Type", protocol::OCI_MANIFEST)
            .send_bytes(br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#),
    );
    assert_eq!(status, 400, "{body}");
}

/// A blob the repository still links but whose content is gone (a collection took it) is
/// not accepted in a manifest: the PUT answers 400 MANIFEST_BLOB_UNKNOWN, never 201.
#[test]
fn a_manifest_naming_a_linked_blob_that_is_gone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let srv = start(&storage);
    let base = format!("http://{}", srv.addr);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"layer bytes".to_vec();
    for data in [&config[..], &layer[..]] {
        let d = Digest::of(data);
        let (s, body) = answer(
            ureq::post(&format!("{base}/v2/app/blobs/uploads/?digest={d}")).send_bytes(data),
        );
        assert_eq!(s, 201, "{body}");
    }
    let ld = Digest::of(&layer);
    let hex = ld.hex();
    std::fs::remove_file(storage.join("blobs/sha256").join(&hex[..2]).join(hex)).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": protocol::OCI_MANIFEST,
        "config": {"mediaType": protocol::OCI_CONFIG, "digest": Digest::of(config).to_string(), "size": config.len()},
        "layers": [{"mediaType": protocol::OCI_LAYER_GZIP, "digest": ld.to_string(), "size": layer.len()}],
    });
    let (s, body) = answer(
        ureq::put(&format!("{base}/v2/app/manifests/1"))
            .set("Content-Type", protocol::OCI_MANIFEST)
            .send_bytes(&serde_json::to_vec(&manifest).unwrap()),
    );
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}");
    let (s, _) = answer(ureq::get(&format!("{base}/v2/app/manifests/1")).call());
    assert_eq!(s, 404);
}

/// Temp files of interrupted writes and abandoned upload sessions are removed when the
/// registry starts; young ones (another replica's, in flight) stay.
#[test]
fn debris_of_earlier_runs_is_cleaned_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let s = server::FsStorage::open(&storage).unwrap();
    let d = Digest::of(b"kept");
    s.put_blob(&d, b"kept").unwrap();
    let hex = d.hex();
    let blob_dir = storage.join("blobs/sha256").join(&hex[..2]);
    let tags_dir = storage.join("repositories/r/_manifests/tags");
    std::fs::create_dir_all(&tags_dir).unwrap();
    let old_tmps = [blob_dir.join(".tmp-a"), tags_dir.join(".tmp-b")];
    let young_tmp = blob_dir.join(".tmp-c");
    for p in old_tmps.iter().chain([&young_tmp]) {
        std::fs::write(p, b"half written").unwrap();
    }
    for p in &old_tmps {
        set_mtime(p, Duration::from_secs(3600));
    }
    s.start_upload("abandoned", "r\n").unwrap();
    s.start_upload("inflight", "r\n").unwrap();
    set_mtime(
        &storage.join("uploads/abandoned/data"),
        Duration::from_secs(2 * 3600),
    );

    let _srv = start(&storage);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (old_tmps.iter().any(|p| p.exists()) || storage.join("uploads/abandoned").exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in &old_tmps {
        assert!(!p.exists(), "{} survived the start", p.display());
    }
    assert!(!storage.join("uploads/abandoned").exists());
    assert!(young_tmp.exists());
    assert!(storage.join("uploads/inflight/data").exists());
    assert_eq!(s.read_blob(&d).unwrap(), b"kept");
}

/// `registry gc` removes the same debris (and keeps what is young), and says how much.
#[test]
fn gc_removes_old_temp_files_and_abandoned_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let s = server::FsStorage::open(&storage).unwrap();
    let tags_dir = storage.join("repositories/r/_manifests/tags");
    std::fs::create_dir_all(&tags_dir).unwrap();
    let (old, young) = (tags_dir.join(".tmp-old"), tags_dir.join(".tmp-young"));
    std::fs::write(&old, b"x").unwrap();
    std::fs::write(&young, b"x").unwrap();
    set_mtime(&old, Duration::from_secs(3600));
    s.start_upload("abandoned", "r\n").unwrap();
    s.start_upload("inflight", "r\n").unwrap();
    set_mtime(
        &storage.join("uploads/abandoned/data"),
        Duration::from_secs(2 * 3600),
    );
    let report = server::gc(
        &s,
        &server::GcOptions {
            upload_max_age: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.debris_removed, 1);
    assert_eq!(report.uploads_removed, 1);
    assert!(!old.exists() && young.exists());
    assert!(!storage.join("uploads/abandoned").exists());
    assert!(storage.join("uploads/inflight/data").exists());
}

/// A secret named in the configuration signs the tokens (replicas on separate storages share
/// it); no key is made in the storage then.
#[test]
fn a_configured_token_secret_wins_over_the_stored_key() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let ht = dir.path().join("htpasswd");
    std::fs::write(&ht, format!("erin:{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
    let replica = |storage: &str| {
        server::spawn(&ServerConfig {
            addr: "127.0.0.1:0".into(),
            storage: dir.path().join(storage),
            auth: AuthConfig {
                htpasswd: Some(ht.clone()),
                token_secret: Some("shared by the replicas".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap()
    };
    let (a, b) = (replica("a"), replica("b"));
    let basic = base64::engine::general_purpose::STANDARD.encode("erin:pw");
    let t: serde_json::Value = ureq::get(&format!(
        "http://{}/token?service=berth-registry&scope=repository:erin/x:pull",
        a.addr
    ))
    .set("Authorization", &format!("Basic {basic}"))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let token = t["token"].as_str().unwrap();
    let (s, body) = answer(
        ureq::get(&format!("http://{}/v2/erin/x/tags/list", b.addr))
            .set("Authorization", &format!("Bearer {token}"))
            .call(),
    );
    // Authorized on the other replica: the repository is merely unknown there.
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("NAME_UNKNOWN"), "{body}");
    for storage in ["a", "b"] {
        assert!(!dir.path().join(storage).join("signing-key").exists());
    }
}
