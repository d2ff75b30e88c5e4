//! Registry replicas on one S3 bucket (issue 17): two `registry serve` instances over one
//! bucket of `moto` and of `s3s-fs` on loopback. Push through one, pull through the other at
//! once; a 50 MB layer in many chunks; a multi-platform index; an upload resumed through the
//! other replica; two replicas racing one tag; garbage collection during pushes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod s3_support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_oci::Digest;
use berth_registry::server::{self, GcOptions, RunningServer, S3Config, S3Storage, ServerConfig};
use s3_support::S3Server;

fn replica(s3: &S3Config) -> RunningServer {
    replica_with_deadline(s3, Duration::from_secs(60))
}

/// A replica whose manifest PUTs slower than `deadline` are refused (500), as the
/// collector's grace period needs (see `gc.rs`).
fn replica_with_deadline(s3: &S3Config, deadline: Duration) -> RunningServer {
    server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        s3: Some(s3.clone()),
        // Tags read through to the bucket every time: "pullable at once" is then exact.
        tag_cache: Duration::ZERO,
        manifest_put_deadline: deadline,
        ..Default::default()
    })
    .unwrap()
}

fn base(s: &RunningServer) -> String {
    format!("http://{}", s.addr)
}

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

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http") {
        loc.to_owned()
    } else {
        format!("{base}{loc}")
    }
}

fn with_digest(loc: &str, d: &Digest) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={d}")
}

/// Starts an upload; its location.
fn start(base: &str, repo: &str) -> String {
    let r = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/"))
        .send_bytes(b"")
        .unwrap();
    assert_eq!(r.status(), 202);
    absolute(base, r.header("location").unwrap())
}

/// PATCHes `data` at `offset`; the next location.
fn patch(base: &str, loc: &str, offset: usize, data: &[u8]) -> Result<String, String> {
    let r = ureq::request("PATCH", loc)
        .set("content-type", "application/octet-stream")
        .set(
            "content-range",
            &format!("{offset}-{}", offset + data.len() - 1),
        )
        .send_bytes(data)
        .map_err(|e| e.to_string())?;
    assert_eq!(r.status(), 202);
    Ok(absolute(base, r.header("location").unwrap()))
}

fn finish(loc: &str, d: &Digest) -> Result<(), String> {
    let r = ureq::put(&with_digest(loc, d))
        .send_bytes(b"")
        .map_err(|e| e.to_string())?;
    assert_eq!(r.status(), 201);
    Ok(())
}

/// Pushes a blob in `chunk`-sized PATCHes.
fn push_blob(base: &str, repo: &str, data: &[u8], chunk: usize) -> Digest {
    let d = Digest::of(data);
    let mut loc = start(base, repo);
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        loc = patch(base, &loc, off, &data[off..end]).unwrap();
        off = end;
    }
    finish(&loc, &d).unwrap();
    d
}

fn put_manifest(base: &str, repo: &str, reference: &str, mt: &str, body: &[u8]) -> u16 {
    match ureq::put(&format!("{base}/v2/{repo}/manifests/{reference}"))
        .set("content-type", mt)
        .send_bytes(body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    }
}

fn get(url: &str) -> Result<(Vec<u8>, Option<String>), u16> {
    match ureq::get(url).call() {
        Ok(r) => {
            let ct = r.header("content-type").map(str::to_owned);
            let mut b = Vec::new();
            r.into_reader().read_to_end(&mut b).unwrap();
            Ok((b, ct))
        }
        Err(ureq::Error::Status(s, _)) => Err(s),
        Err(e) => panic!("{url}: {e}"),
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize, &str)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n, mt)| serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": n}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config.0.to_string(), "size": config.1},
        "layers": layers,
    }))
    .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn servers() -> Vec<S3Server> {
    s3_support::moto()
        .into_iter()
        .chain(s3_support::s3s_fs())
        .collect()
}

/// Push gzip and zstd layers through one replica, pull through the other at once; a blob
/// pulled with Range; a multi-platform index.
fn round_trip(srv: &S3Server) {
    let s3 = srv.config(&s3_support::bucket("rt"), "registry");
    let (a, b) = (replica(&s3), replica(&s3));
    let (ba, bb) = (base(&a), base(&b));
    let repo = "team/app";
    let raw = noise(1, 300_000);
    let gz = gzip(&raw);
    let zst = zstd::encode_all(&raw[..], 3).unwrap();
    let mut platforms = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let config = format!("{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}").into_bytes();
        let cd = push_blob(&ba, repo, &config, 1 << 20);
        let gd = push_blob(&ba, repo, &gz, 64 * 1024);
        let zd = push_blob(&ba, repo, &zst, 1 << 20);
        let m = image_manifest(
            (&cd, config.len()),
            &[
                (&gd, gz.len(), "application/vnd.oci.image.layer.v1.tar+gzip"),
                (
                    &zd,
                    zst.len(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            ],
        );
        let md = Digest::of(&m);
        assert_eq!(
            put_manifest(&ba, repo, &md.to_string(), OCI_MANIFEST, &m),
            201
        );
        platforms.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": m.len(),
            "platform": {"architecture": arch, "os": "linux"}}));
        if i == 0 {
            assert_eq!(put_manifest(&ba, repo, "single", OCI_MANIFEST, &m), 201);
            let (got, ct) = get(&format!("{bb}/v2/{repo}/manifests/single")).unwrap();
            assert_eq!(got, m, "pullable through the other replica at once");
            assert_eq!(ct.as_deref(), Some(OCI_MANIFEST));
        }
        for (d, bytes) in [(&gd, &gz), (&zd, &zst), (&cd, &config)] {
            let (got, _) = get(&format!("{bb}/v2/{repo}/blobs/{d}")).unwrap();
            assert!(&got == bytes, "blob {d} pulls back whole");
        }
        // Range through the other replica.
        let r = ureq::get(&format!("{bb}/v2/{repo}/blobs/{gd}"))
            .set("range", "bytes=100-199")
            .call()
            .unwrap();
        assert_eq!(r.status(), 206);
        let mut part = Vec::new();
        r.into_reader().read_to_end(&mut part).unwrap();
        assert_eq!(part, gz[100..200]);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": platforms}))
    .unwrap();
    assert_eq!(put_manifest(&bb, repo, "multi", OCI_INDEX, &index), 201);
    let (got, ct) = get(&format!("{ba}/v2/{repo}/manifests/multi")).unwrap();
    assert_eq!(got, index);
    assert_eq!(ct.as_deref(), Some(OCI_INDEX));
    for p in &platforms {
        let d = p["digest"].as_str().unwrap();
        assert!(get(&format!("{bb}/v2/{repo}/manifests/{d}")).is_ok());
    }
    let (tags, _) = get(&format!("{bb}/v2/{repo}/tags/list")).unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&tags).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["multi", "single"]));
    let (cat, _) = get(&format!("{ba}/v2/_catalog")).unwrap();
    assert!(String::from_utf8_lossy(&cat).contains("team/app"));
}

#[test]
fn push_through_one_replica_pull_through_the_other() {
    for srv in servers() {
        eprintln!("== {}", srv.name);
        round_trip(&srv);
    }
}

/// A 50 MB layer in 1 MiB PATCHes, half through each replica (the session lives in the
/// bucket), committed through the second, pulled back whole through the first.
fn big_resumed(srv: &S3Server) {
    let s3 = srv.config(&s3_support::bucket("big"), "");
    let (a, b) = (replica(&s3), replica(&s3));
    let (ba, bb) = (base(&a), base(&b));
    let repo = "big/layer";
    let data = noise(2, 50 * 1024 * 1024 + 777);
    let d = Digest::of(&data);
    let chunk = 1 << 20;
    let mut loc = start(&ba, repo);
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        // The first half through A, the rest through B, resuming A's session.
        let (from, to) = if off < data.len() / 2 {
            (&ba, &bb)
        } else {
            (&bb, &ba)
        };
        let target = loc.replacen(to.as_str(), from.as_str(), 1);
        loc = patch(from, &target, off, &data[off..end]).unwrap();
        off = end;
    }
    // Status through the other replica.
    let other = loc.replacen(bb.as_str(), ba.as_str(), 1);
    let r = ureq::get(&other).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.header("range").unwrap(), format!("0-{}", data.len() - 1));
    finish(&other, &d).unwrap();
    let (got, _) = get(&format!("{bb}/v2/{repo}/blobs/{d}")).unwrap();
    assert!(got == data, "the 50 MB layer pulls back whole");
    // Nothing left of the session.
    let st = S3Storage::open(s3).unwrap();
    use berth_registry::server::Storage;
    assert!(st.list_uploads().unwrap().is_empty());
    if let Some(list) = st.multipart_uploads().unwrap() {
        assert!(list.is_empty(), "{list:?}");
    }
}

#[test]
fn a_50mb_layer_in_chunks_resumed_through_the_other_replica() {
    for srv in servers() {
        eprintln!("== {}", srv.name);
        big_resumed(&srv);
    }
}

/// Two replicas push different manifests to one tag at the same moment, many times: every
/// push is acknowledged, both manifests stay pullable by digest, and both replicas agree on
/// where the tag ended.
fn tag_race(srv: &S3Server) {
    let s3 = srv.config(&s3_support::bucket("race"), "r");
    let (a, b) = (replica(&s3), replica(&s3));
    let bases = [base(&a), base(&b)];
    let repo = "race/tag";
    let config = b"{\"os\":\"linux\"}".to_vec();
    let cd = push_blob(&bases[0], repo, &config, 1 << 20);
    for round in 0..12 {
        let manifests: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                let layer = noise(1000 + round * 2 + i, 1000);
                let ld = push_blob(&bases[i as usize], repo, &layer, 1 << 20);
                image_manifest(
                    (&cd, config.len()),
                    &[(
                        &ld,
                        layer.len(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )],
                )
            })
            .collect();
        let statuses: Vec<u16> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2)
                .map(|i| {
                    let (b, m) = (&bases[i], &manifests[i]);
                    sc.spawn(move || put_manifest(b, repo, "latest", OCI_MANIFEST, m))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(statuses, vec![201, 201], "round {round}");
        let seen: Vec<Vec<u8>> = bases
            .iter()
            .map(|b| get(&format!("{b}/v2/{repo}/manifests/latest")).unwrap().0)
            .collect();
        assert_eq!(seen[0], seen[1], "both replicas agree, round {round}");
        assert!(manifests.contains(&seen[0]));
        for m in &manifests {
            let d = Digest::of(m);
            assert_eq!(
                get(&format!("{}/v2/{repo}/manifests/{d}", bases[1]))
                    .unwrap()
                    .0,
                *m
            );
        }
    }
}

#[test]
fn two_replicas_racing_one_tag() {
    for srv in servers() {
        eprintln!("== {}", srv.name);
        tag_race(&srv);
    }
}

/// Collections run back to back (grace 5 s, manifest PUT deadline 4 s) while two pushers push through two replicas,
/// some waiting past the grace between their layer and their manifest: every manifest
/// answered 201 pulls back whole, and unreferenced garbage is swept.
fn gc_during_push(srv: &S3Server) {
    let s3 = srv.config(&s3_support::bucket("gc"), "g");
    let deadline = Duration::from_secs(4);
    let (a, b) = (
        replica_with_deadline(&s3, deadline),
        replica_with_deadline(&s3, deadline),
    );
    let bases = [base(&a), base(&b)];
    let stop = Arc::new(AtomicBool::new(false));
    let swept = Arc::new(AtomicUsize::new(0));
    let collector = {
        let (s3, stop, swept) = (s3.clone(), stop.clone(), swept.clone());
        std::thread::spawn(move || {
            let st = S3Storage::open(s3).unwrap();
            let opts = GcOptions {
                blob_min_age: Duration::from_secs(5),
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let r = server::gc(&st, &opts).unwrap();
                swept.fetch_add(r.swept.len(), Ordering::Relaxed);
            }
        })
    };
    let until = Instant::now() + Duration::from_secs(15);
    let pushers: Vec<_> = (0..2u64)
        .map(|p| {
            let bases = bases.clone();
            std::thread::spawn(move || {
                let repo = format!("gc/p{p}");
                let mut accepted = Vec::new();
                let mut refused = 0;
                let mut i = 0u64;
                while Instant::now() < until {
                    i += 1;
                    let seed = (p << 32) | i;
                    let via = &bases[(i % 2) as usize];
                    let other = &bases[((i + 1) % 2) as usize];
                    // Garbage: referenced by nothing, swept once older than the grace.
                    push_blob(via, &repo, &noise(seed ^ 0xdead, 512), 1 << 20);
                    let layer = noise(seed, 4096);
                    let ld = push_blob(via, &repo, &layer, 1 << 20);
                    let config = format!("{{\"seed\":{seed}}}").into_bytes();
                    let cd = push_blob(via, &repo, &config, 1 << 20);
                    // Some pushes dawdle past the grace before their manifest.
                    std::thread::sleep(Duration::from_millis((seed % 5) * 1500));
                    let m = image_manifest(
                        (&cd, config.len()),
                        &[(&ld, layer.len(), "application/vnd.oci.image.layer.v1.tar")],
                    );
                    let tag = format!("t{i}");
                    match put_manifest(other, &repo, &tag, OCI_MANIFEST, &m) {
                        201 => accepted.push((tag, m, vec![(ld, layer), (cd, config)])),
                        // (400: a blob was swept first; 500: the PUT outlasted its
                        // deadline on a loaded machine; neither is acknowledged)
                        400 | 500 => refused += 1,
                        s => panic!("manifest PUT answered {s}"),
                    }
                }
                (repo, accepted, refused)
            })
        })
        .collect();
    let results: Vec<_> = pushers.into_iter().map(|h| h.join().unwrap()).collect();
    // One more full collection after the pushes, then check.
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    let st = S3Storage::open(s3.clone()).unwrap();
    server::gc(
        &st,
        &GcOptions {
            blob_min_age: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .unwrap();
    let mut total = 0;
    for (repo, accepted, _refused) in &results {
        for (tag, m, blobs) in accepted {
            total += 1;
            let (got, _) = get(&format!("{}/v2/{repo}/manifests/{tag}", bases[0])).unwrap();
            assert_eq!(&got, m);
            for (d, bytes) in blobs {
                let got = get(&format!("{}/v2/{repo}/blobs/{d}", bases[1]))
                    .unwrap_or_else(|s| panic!("{repo}:{tag} lost blob {d}: {s}"));
                assert!(&got.0 == bytes);
            }
        }
    }
    assert!(total >= 2, "too few pushes acknowledged: {total}");
    assert!(
        swept.load(Ordering::Relaxed) > 0,
        "the garbage was never swept"
    );
}

#[test]
fn gc_during_pushes_through_two_replicas_loses_nothing_acknowledged() {
    for srv in servers() {
        eprintln!("== {}", srv.name);
        gc_during_push(&srv);
    }
}

#[test]
fn blob_gets_redirect_to_presigned_urls_when_asked() {
    let Some(srv) = s3_support::moto() else {
        return;
    };
    let mut s3 = srv.config(&s3_support::bucket("redir"), "p");
    s3.redirect = true;
    let a = replica(&s3);
    let ba = base(&a);
    let data = noise(5, 10_000);
    let d = push_blob(&ba, "re/dir", &data, 1 << 20);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let r = agent
        .get(&format!("{ba}/v2/re/dir/blobs/{d}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 307);
    let loc = r.header("location").unwrap().to_owned();
    assert!(
        loc.starts_with(&srv.endpoint) && loc.contains("X-Amz-Signature="),
        "{loc}"
    );
    let (got, _) = get(&loc).unwrap();
    assert_eq!(got, data, "the presigned URL serves the blob");
    // Unknown blobs are still the registry's 404, and HEAD is answered by the registry.
    let missing = Digest::of(b"missing");
    assert_eq!(
        get(&format!("{ba}/v2/re/dir/blobs/{missing}")).unwrap_err(),
        404
    );
    let h = agent
        .head(&format!("{ba}/v2/re/dir/blobs/{d}"))
        .call()
        .unwrap();
    assert_eq!(h.status(), 200);
}
