//! One suite for the [`Storage`] contract, run against every backend: the filesystem, and
//! S3 on `moto` and on `s3s-fs` (loopback servers the tests start). Each run also opens a
//! second handle on the same storage, standing for another replica.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod s3_support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_oci::{Digest, Hasher};
use berth_registry::name::RepoName;
use berth_registry::server::storage::{LinkKind, StorageErrorKind};
use berth_registry::server::{FsStorage, S3Storage, Storage};

/// `n` bytes of xorshift noise.
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

fn append(s: &dyn Storage, id: &str, bytes: &[u8]) -> u64 {
    let mut w = s.append_upload(id).unwrap();
    w.write_all(bytes).unwrap();
    let n = w.len();
    w.finish().unwrap();
    n
}

/// The contract, on `a` with `b` a second replica of the same storage.
fn suite(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    let repo = RepoName::new("suite/app").unwrap();

    // Small upload, two appends, commit; a wrong digest stores nothing.
    let data = b"hello blob";
    let d = Digest::of(data);
    assert_eq!(a.blob_size(&d).unwrap(), None);
    a.start_upload("u1", "suite/app\nalice").unwrap();
    assert!(
        a.start_upload("u1", "x/y\n").is_err(),
        "an id names one upload"
    );
    assert!(a.start_upload("../escape", "").is_err());
    assert_eq!(
        b.upload_owner("u1").unwrap().as_deref(),
        Some("suite/app\nalice")
    );
    append(&*a, "u1", &data[..4]);
    assert_eq!(b.upload_size("u1").unwrap(), Some(4));
    assert_eq!(append(&*b, "u1", &data[4..]), data.len() as u64);
    let wrong = Digest::of(b"other");
    assert_eq!(
        a.commit_upload("u1", &wrong, None).unwrap_err().kind(),
        StorageErrorKind::InvalidContent
    );
    assert_eq!(a.blob_size(&wrong).unwrap(), None);
    assert_eq!(
        a.upload_size("u1").unwrap(),
        None,
        "a mismatch drops the upload"
    );
    a.start_upload("u2", "suite/app\n").unwrap();
    append(&*a, "u2", data);
    assert_eq!(a.commit_upload("u2", &d, None).unwrap(), data.len() as u64);
    assert_eq!(b.read_blob(&d).unwrap(), data);
    assert!(b.list_blobs().unwrap().contains(&d));
    assert_eq!(a.upload_size("u2").unwrap(), None);

    // A large upload in uneven chunks, continued through the other replica, committed
    // without a hash state (re-read), then read back with seeks.
    let big = noise(7, 13 * 1024 * 1024 + 12345);
    let bd = Digest::of(&big);
    a.start_upload("big1", "suite/app\n").unwrap();
    let cuts = [0, 1 << 20, 4 << 20, 11 << 20, 12 << 20, big.len()];
    for (i, w) in cuts.windows(2).enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        let before = s.upload_size("big1").unwrap().unwrap();
        assert_eq!(before, w[0] as u64);
        assert_eq!(append(&**s, "big1", &big[w[0]..w[1]]), w[1] as u64);
    }
    assert_eq!(
        b.commit_upload("big1", &bd, None).unwrap(),
        big.len() as u64
    );
    assert_eq!(a.blob_size(&bd).unwrap(), Some(big.len() as u64));
    let mut r = a.open_blob(&bd).unwrap();
    r.seek(SeekFrom::Start(9 << 20)).unwrap();
    let mut part = vec![0u8; 100_000];
    r.read_exact(&mut part).unwrap();
    assert_eq!(part, big[9 << 20..(9 << 20) + 100_000]);
    r.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert!(all == big, "the whole blob reads back");

    // A large upload with the hash kept by the caller; a wrong one stores nothing.
    let big2 = noise(8, 6 * 1024 * 1024 + 1);
    let bd2 = Digest::of(&big2);
    a.start_upload("big2", "suite/app\n").unwrap();
    append(&*a, "big2", &big2);
    let mut h = Hasher::new();
    h.update(&big2);
    let err = a.commit_upload("big2", &bd, Some(h.clone())).unwrap_err();
    assert_eq!(err.kind(), StorageErrorKind::InvalidContent);
    assert_eq!(a.upload_size("big2").unwrap(), None);
    assert_eq!(
        a.blob_size(&bd).unwrap(),
        Some(big.len() as u64),
        "untouched"
    );
    a.start_upload("big3", "suite/app\n").unwrap();
    append(&*a, "big3", &big2);
    assert_eq!(
        a.commit_upload("big3", &bd2, Some(h)).unwrap(),
        big2.len() as u64
    );
    assert_eq!(b.read_blob(&bd2).unwrap().len(), big2.len());

    // Cancelled uploads leave nothing listed.
    a.start_upload("gone", "suite/app\n").unwrap();
    append(&*a, "gone", &noise(9, 6 << 20));
    assert!(b.cancel_upload("gone").unwrap());
    assert!(!a.cancel_upload("gone").unwrap());
    assert!(a.list_uploads().unwrap().iter().all(|(id, _)| id != "gone"));
    assert!(a.append_upload("gone").is_err());

    // Links, tags, referrers, repositories.
    a.link(&repo, LinkKind::Layer, &d, b"").unwrap();
    assert!(b.linked(&repo, LinkKind::Layer, &d).unwrap().is_some());
    assert!(b.linked(&repo, LinkKind::Manifest, &d).unwrap().is_none());
    a.link(&repo, LinkKind::Manifest, &bd2, b"application/x")
        .unwrap();
    assert_eq!(
        b.linked(&repo, LinkKind::Manifest, &bd2)
            .unwrap()
            .as_deref(),
        Some(&b"application/x"[..])
    );
    assert_eq!(
        b.list_links(&repo, LinkKind::Manifest).unwrap(),
        vec![bd2.clone()]
    );
    a.set_tag(&repo, "v1", &bd2).unwrap();
    assert_eq!(b.tag(&repo, "v1").unwrap(), Some(bd2.clone()));
    b.set_tag(&repo, "v1", &d).unwrap();
    assert_eq!(a.tag(&repo, "v1").unwrap(), Some(d.clone()));
    a.set_tag(&repo, "v0", &d).unwrap();
    assert_eq!(b.tags(&repo).unwrap(), Some(vec!["v0".into(), "v1".into()]));
    assert!(
        !a.delete_tag_if(&repo, "v1", &bd2).unwrap(),
        "v1 moved on: kept"
    );
    assert!(a.delete_tag_if(&repo, "v1", &d).unwrap());
    assert_eq!(b.tag(&repo, "v1").unwrap(), None);
    assert!(b.delete_tag(&repo, "v0").unwrap());
    assert!(!b.delete_tag(&repo, "v0").unwrap());
    assert_eq!(b.tags(&RepoName::new("suite/none").unwrap()).unwrap(), None);
    assert_eq!(b.tags(&repo).unwrap(), Some(vec![]));
    let nested = RepoName::new("suite/app/nested").unwrap();
    a.link(&nested, LinkKind::Layer, &d, b"").unwrap();
    assert_eq!(
        b.repositories().unwrap(),
        vec!["suite/app".to_owned(), "suite/app/nested".to_owned()]
    );
    a.add_referrer(&repo, &bd2, &d, b"{\"d\":1}").unwrap();
    assert_eq!(
        b.referrers(&repo, &bd2).unwrap(),
        vec![b"{\"d\":1}".to_vec()]
    );
    a.remove_referrer(&repo, &bd2, &d).unwrap();
    assert!(b.referrers(&repo, &bd2).unwrap().is_empty());
    assert!(a.unlink(&repo, LinkKind::Layer, &d).unwrap());
    assert!(!a.unlink(&repo, LinkKind::Layer, &d).unwrap());

    // Touches and sweeps: a blob touched after the cutoff is kept; an old one goes, and a
    // touch then fails.
    let cutoff = SystemTime::now() - Duration::from_millis(10);
    assert!(b.touch_blob(&d).unwrap());
    assert_eq!(a.sweep_blob(&d, cutoff).unwrap(), None);
    assert_eq!(a.read_blob(&d).unwrap(), data);
    let later = SystemTime::now() + Duration::from_secs(30);
    assert_eq!(a.sweep_blob(&d, later).unwrap(), Some(data.len() as u64));
    assert!(!b.touch_blob(&d).unwrap());
    assert_eq!(b.blob_size(&d).unwrap(), None);
    assert!(!a.delete_blob(&d).unwrap());
    assert!(a.delete_blob(&bd2).unwrap());

    // One signing key for every replica, even when they start at once.
    let keys: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                sc.spawn(move || s.signing_key().unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 32));

    // Nothing half-made is left: no uploads, debris cleaning finds the store clean.
    assert!(
        a.list_uploads().unwrap().is_empty(),
        "{:?}",
        a.list_uploads()
    );
    a.clean_debris(Duration::ZERO).unwrap();
    assert_eq!(b.list_blobs().unwrap(), vec![bd.clone()]);
}

#[test]
fn fs_storage_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(FsStorage::open(dir.path()).unwrap());
    let b = Arc::new(FsStorage::open(dir.path()).unwrap());
    suite(a, b);
}

fn s3_suite(server: &s3_support::S3Server) {
    let bucket = s3_support::bucket("suite");
    let config = server.config(&bucket, "reg/one");
    let a = Arc::new(S3Storage::open(config.clone()).unwrap());
    let b = Arc::new(S3Storage::open(config).unwrap());
    suite(a, b);
}

#[test]
fn s3_storage_on_moto_passes_the_suite() {
    if let Some(srv) = s3_support::moto() {
        s3_suite(&srv);
    }
}

#[test]
fn s3_storage_on_s3s_fs_passes_the_suite() {
    if let Some(srv) = s3_support::s3s_fs() {
        s3_suite(&srv);
    }
}
