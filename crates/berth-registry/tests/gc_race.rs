//! `registry gc` running again and again while pushes go on (issue 18): every manifest PUT
//! answered 201 pulls back whole afterwards, whatever the collector did meanwhile.
//!
//! Each push references a layer that is old (its mtime set two hours back, as a layer
//! uploaded long ago and referenced by no manifest) and a fresh config: the collector may
//! sweep the old layer at any moment before the manifest arrives. A collection is running at
//! every instant, with a grace period shorter than the old layer's age. On the old code
//! (no touches, no re-check before deleting, a manifest accepted for a linked blob that is
//! gone) dozens of the accepted pushes lost a blob within the six seconds.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use berth_oci::Digest;
use berth_registry::protocol;
use berth_registry::server::{self, AuthConfig, GcOptions, ServerConfig};

fn blob_path(storage: &Path, d: &Digest) -> PathBuf {
    let hex = d.hex();
    storage.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Sets a blob's mtime two hours back; false when it is gone already.
fn age_blob(storage: &Path, d: &Digest) -> bool {
    let Ok(f) = std::fs::File::options()
        .write(true)
        .open(blob_path(storage, d))
    else {
        return false;
    };
    f.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .is_ok()
}

fn upload(base: &str, repo: &str, data: &[u8]) -> Option<Digest> {
    let d = Digest::of(data);
    let r = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")).send_bytes(data);
    matches!(r, Ok(ref r) if r.status() == 201).then_some(d)
}

/// `n` bytes of xorshift noise, distinct for every seed (a seed's low bit must not be lost
/// to the odd start value: two pushes sharing a layer let the second age the first's
/// acknowledged blob, which no client can do to a registry).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = (seed << 1) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Pushed {
    repo: String,
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Digest>,
}

fn get(url: &str) -> Result<Vec<u8>, String> {
    match ureq::get(url).call() {
        Ok(r) => {
            let mut b = Vec::new();
            r.into_reader()
                .read_to_end(&mut b)
                .map_err(|e| e.to_string())?;
            Ok(b)
        }
        Err(ureq::Error::Status(s, r)) => {
            Err(format!("{s} {}", r.into_string().unwrap_or_default()))
        }
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn manifests_accepted_during_gc_pull_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let srv = server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        storage: storage.clone(),
        auth: AuthConfig::default(),
        // Below the collector's 3 s grace, as the safety argument in gc.rs needs: a PUT
        // slowed past it (a loaded CI machine's fsync) is refused, never lost.
        manifest_put_deadline: Duration::from_secs(1),
        ..Default::default()
    })
    .unwrap();
    let base = format!("http://{}", srv.addr);
    let stop = Arc::new(AtomicBool::new(false));
    let swept = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let collector = {
        let (storage, stop, swept, runs) =
            (storage.clone(), stop.clone(), swept.clone(), runs.clone());
        std::thread::spawn(move || {
            let s = server::FsStorage::open(&storage).unwrap();
            let opts = GcOptions {
                blob_min_age: Duration::from_secs(3),
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let report = server::gc(&s, &opts).unwrap();
                swept.fetch_add(report.swept.len(), Ordering::Relaxed);
                runs.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // At least 6 s, and on a loaded machine on until each pusher has 8 acknowledged pushes
    // (bounded by 40 s), so that the race is exercised whatever the machine's speed.
    let deadline = Instant::now() + Duration::from_secs(6);
    let hard_deadline = Instant::now() + Duration::from_secs(40);
    let pushers: Vec<_> = (0..2u64)
        .map(|p| {
            let (base, storage) = (base.clone(), storage.clone());
            std::thread::spawn(move || {
                let repo = format!("race/r{p}");
                let mut accepted = Vec::new();
                let mut refused = 0usize;
                let mut i = 0u64;
                while (Instant::now() < deadline || accepted.len() < 8)
                    && Instant::now() < hard_deadline
                {
                    i += 1;
                    let seed = (p << 32) | i;
                    // Garbage the collector must sweep: old, referenced by nothing.
                    if let Some(g) = upload(&base, &repo, &noise(seed ^ 0xdead, 512)) {
                        age_blob(&storage, &g);
                    }
                    let Some(layer) = upload(&base, &repo, &noise(seed, 4096)) else {
                        continue;
                    };
                    if !age_blob(&storage, &layer) {
                        continue;
                    }
                    // Half the pushes ask first, as a client does before skipping an upload
                    // (and upload again when it is gone); the others race the collector
                    // with the manifest alone.
                    if i.is_multiple_of(2) {
                        let url = format!("{base}/v2/{repo}/blobs/{layer}");
                        if ureq::head(&url).call().is_err()
                            && upload(&base, &repo, &noise(seed, 4096)).is_none()
                        {
                            continue;
                        }
                    }
                    let config = format!(
                        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":"{seed}"}}"#
                    );
                    let Some(cd) = upload(&base, &repo, config.as_bytes()) else {
                        continue;
                    };
                    let manifest = serde_json::to_vec(&serde_json::json!({
                        "schemaVersion": 2,
                        "mediaType": protocol::OCI_MANIFEST,
                        "config": {"mediaType": protocol::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
                        "layers": [{"mediaType": protocol::OCI_LAYER_GZIP, "digest": layer.to_string(), "size": 4096}],
                    }))
                    .unwrap();
                    let tag = format!("t{i}");
                    match ureq::put(&format!("{base}/v2/{repo}/manifests/{tag}"))
                        .set("Content-Type", protocol::OCI_MANIFEST)
                        .send_bytes(&manifest)
                    {
                        Ok(r) if r.status() == 201 => accepted.push(Pushed {
                            repo: repo.clone(),
                            tag,
                            manifest,
                            blobs: vec![cd, layer],
                        }),
                        _ => refused += 1,
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for p in pushers {
        let (a, r) = p.join().unwrap();
        accepted.extend(a);
        refused += r;
    }
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();

    let mut lost = Vec::new();
    for p in &accepted {
        match get(&format!("{base}/v2/{}/manifests/{}", p.repo, p.tag)) {
            Ok(m) if m == p.manifest => {}
            other => lost.push(format!("{}:{} manifest: {:?}", p.repo, p.tag, other.err())),
        }
        for d in &p.blobs {
            match get(&format!("{base}/v2/{}/blobs/{d}", p.repo)) {
                Ok(b) if Digest::of(&b) == *d => {}
                Ok(_) => lost.push(format!("{}:{} blob {d}: wrong content", p.repo, p.tag)),
                Err(e) => lost.push(format!("{}:{} blob {d}: {e}", p.repo, p.tag)),
            }
        }
    }
    let runs = runs.load(Ordering::Relaxed);
    let swept = swept.load(Ordering::Relaxed);
    eprintln!(
        "{} manifests accepted, {refused} refused, {runs} collections, {swept} blobs swept, {} lost",
        accepted.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} accepted pushes lost content:\n{}",
        lost.len(),
        accepted.len(),
        lost.join("\n")
    );
    assert!(
        accepted.len() >= 10,
        "only {} pushes accepted",
        accepted.len()
    );
    assert!(runs >= 5, "only {runs} collections ran");
    assert!(swept > 0, "the collector swept nothing");
}
