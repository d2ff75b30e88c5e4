//! Property test: random hostile layers (names with `..`, `/`, `.`; symlinks and hardlinks
//! pointing anywhere, including straight at a sentinel directory outside the snapshot;
//! whiteouts; entries replacing each other) either apply or fail, never panic, and never
//! change anything outside the snapshot.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_oci::layer::{apply_layer, ApplyOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File,
    Symlink(usize),
    Hardlink(usize),
}

fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "secret"]),
        1 => prop::sample::select(vec!["..", ".", "", ".wh.a", ".wh..wh..opq", "outside"]),
    ]
}

fn name() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(component(), 1..4)).prop_map(|(abs, comps)| {
        let mut n = comps.join("/");
        if abs {
            n.insert(0, '/');
        }
        n
    })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        1 => Just(Kind::Dir),
        2 => Just(Kind::File),
        2 => (0usize..12).prop_map(Kind::Symlink),
        1 => (0usize..12).prop_map(Kind::Hardlink),
    ]
}

/// Link targets: relative, absolute, escaping, and the sentinel's absolute paths.
fn target(i: usize, sentinel: &Path) -> String {
    let s = sentinel.to_str().unwrap();
    match i {
        0 => "..".into(),
        1 => "../..".into(),
        2 => "/".into(),
        3 => s.into(),
        4 => format!("{s}/secret"),
        5 => "a".into(),
        6 => "../outside".into(),
        7 => "../outside/secret".into(),
        8 => "a/b".into(),
        9 => "/a/../../outside".into(),
        10 => "../../../../../../..".into(),
        _ => ".".into(),
    }
}

fn layer(entries: &[(String, Kind)], sentinel: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, k) in entries {
        if n.is_empty() || n.len() > 100 {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mode(0o755);
        let mut data: &[u8] = b"";
        match k {
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                data = b"pwned";
                h.set_size(5);
            }
            Kind::Symlink(i) | Kind::Hardlink(i) => {
                h.set_entry_type(if matches!(k, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                let t = target(*i, sentinel);
                if t.len() > 100 {
                    continue;
                }
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
        }
        h.as_old_mut().name[..n.len()].copy_from_slice(n.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn snapshot_of(dir: &Path) -> BTreeMap<String, (u32, u64, u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let data = if m.is_file() {
            fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.insert(
            e.file_name().into_string().unwrap(),
            (m.mode(), m.nlink(), m.mtime() as u64, data),
        );
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn hostile_layers_never_touch_the_outside(entries in prop::collection::vec((name(), kind()), 1..16)) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        let snap = base.join("snap");
        let outside = base.join("outside");
        fs::create_dir(&snap).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"sentinel").unwrap();
        fs::create_dir(outside.join("a")).unwrap();
        let before = (snapshot_of(base).len(), snapshot_of(&outside), fs::metadata(&outside).unwrap().mtime());
        let t = layer(&entries, &outside);
        let _ = apply_layer(&t[..], &snap, &ApplyOptions::default());
        let after = (snapshot_of(base).len(), snapshot_of(&outside), fs::metadata(&outside).unwrap().mtime());
        prop_assert_eq!(before, after);
        prop_assert!(snapshot_of(&outside.join("a")).is_empty());
        berth_oci::remove_snapshot(&snap).unwrap();
        prop_assert!(!snap.exists());
        prop_assert_eq!(fs::read(outside.join("secret")).unwrap(), b"sentinel");
    }
}
