//! Property tests: random trees (names, modes incl. setuid, owners, mtimes, symlinks, hardlinks,
//! xattrs, long names, whiteouts and opaque dirs) survive tar -> apply -> tar byte for byte.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use berth_oci::layer::{apply_layer, diff_upper, write_dir_tar, ApplyOptions, DiffOptions};
use proptest::prelude::*;
use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File {
        data: Vec<u8>,
        xattr: Option<Vec<u8>>,
    },
    Symlink(String),
    /// A hardlink to the n-th file (modulo the number of files), if any.
    Hardlink(usize),
    /// An overlay whiteout (0/0 character device), only in upper-dir trees.
    Whiteout,
}

#[derive(Debug, Clone)]
struct Spec {
    path: Vec<String>,
    node: Node,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    opaque: bool,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{1,6}", "[a-zA-Z0-9 _é+=-]{1,12}", "[a-z]{60,110}",]
        .prop_filter("not . or .. or a whiteout", |n| {
            n != "." && n != ".." && !n.starts_with(".wh.")
        })
}

fn node(upper: bool) -> impl Strategy<Value = Node> {
    let whiteout_weight = if upper { 1 } else { 0 };
    prop_oneof![
        3 => Just(Node::Dir),
        4 => (
            proptest::collection::vec(any::<u8>(), 0..3000),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..20))
        )
            .prop_map(|(data, xattr)| Node::File { data, xattr }),
        1 => "[a-z./]{1,30}".prop_map(Node::Symlink),
        1 => (0usize..8).prop_map(Node::Hardlink),
        whiteout_weight => Just(Node::Whiteout),
    ]
}

fn spec(upper: bool) -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(name(), 1..4),
        node(upper),
        0u32..0o10000,
        prop_oneof![Just(0u32), 1u32..70_000],
        prop_oneof![Just(0u32), 1u32..70_000],
        0i64..2_000_000_000,
        any::<bool>(),
    )
        .prop_map(move |(path, node, mode, uid, gid, mtime, opaque)| Spec {
            path,
            node,
            mode,
            uid,
            gid,
            mtime,
            opaque: opaque && upper,
        })
}

fn set_times(p: &Path, mtime: i64) {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn lchown(p: &Path, uid: u32, gid: u32) {
    rustix::fs::chownat(
        CWD,
        p,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Builds the tree under `root`. Paths are made unique by the map (later specs win for a
/// path, earlier ones whose path is a prefix become directories).
fn build(root: &Path, specs: &[Spec]) {
    let mut by_path: BTreeMap<Vec<String>, Spec> = BTreeMap::new();
    for s in specs {
        // A node cannot live under a non-directory: its ancestors become dirs.
        for i in 1..s.path.len() {
            let anc = s.path[..i].to_vec();
            let e = by_path.entry(anc.clone()).or_insert_with(|| Spec {
                path: anc,
                node: Node::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 1_000_000,
                opaque: false,
            });
            e.node = Node::Dir;
        }
        let keep_dir = matches!(by_path.get(&s.path), Some(e) if matches!(e.node, Node::Dir))
            && by_path
                .keys()
                .any(|k| k.len() > s.path.len() && k.starts_with(&s.path));
        if !keep_dir {
            by_path.insert(s.path.clone(), s.clone());
        }
    }
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let entries: Vec<&Spec> = by_path.values().collect();
    // BTreeMap order puts parents before children.
    for s in &entries {
        let p = s.path.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        match &s.node {
            Node::Dir => {
                fs::create_dir(&p).unwrap();
                if s.opaque {
                    rustix::fs::setxattr(
                        &p,
                        "trusted.overlay.opaque",
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .unwrap();
                }
            }
            Node::File { data, xattr } => {
                fs::write(&p, data).unwrap();
                if let Some(v) = xattr {
                    rustix::fs::setxattr(&p, "user.berth", v, rustix::fs::XattrFlags::empty())
                        .unwrap();
                }
                files.push(p.clone());
            }
            Node::Symlink(t) => symlink(t, &p).unwrap(),
            Node::Hardlink(i) => {
                if files.is_empty() {
                    fs::write(&p, b"").unwrap();
                    files.push(p.clone());
                } else {
                    fs::hard_link(&files[i % files.len()], &p).unwrap();
                    continue; // shares the target's metadata
                }
            }
            Node::Whiteout => rustix::fs::mknodat(
                CWD,
                &p,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .unwrap(),
        }
        lchown(&p, s.uid, s.gid);
        if !matches!(s.node, Node::Symlink(_)) {
            fs::set_permissions(&p, fs::Permissions::from_mode(s.mode)).unwrap();
        }
    }
    // Times last, deepest first, so creating children does not disturb them.
    for s in entries.iter().rev() {
        if matches!(s.node, Node::Hardlink(_)) {
            continue;
        }
        let p = s.path.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        set_times(&p, s.mtime);
    }
}

fn require_root(test: &str) -> bool {
    common::require_root(
        test,
        "needs root (owners, setuid, trusted xattrs, whiteouts)",
    )
}

fn check_round_trip(specs: &[Spec], upper: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    build(&a, specs);
    let write = |dir: &Path| {
        let mut out = Vec::new();
        let stats = if upper {
            diff_upper(dir, &mut out, &DiffOptions::default()).unwrap()
        } else {
            write_dir_tar(dir, &mut out, &DiffOptions::default()).unwrap()
        };
        assert_eq!(stats.size, out.len() as u64);
        assert_eq!(stats.diff_id, berth_oci::Digest::of(&out));
        (out, stats)
    };
    let (t1, s1) = write(&a);
    let (t1_again, _) = write(&a);
    assert!(t1 == t1_again, "tar of the same tree differs between runs");
    let applied = apply_layer(&t1[..], &b, &ApplyOptions::default()).unwrap();
    assert_eq!(applied.diff_id, s1.diff_id);
    let (t2, s2) = write(&b);
    if t1 != t2 {
        let list = |t: &[u8]| {
            let mut ar = tar::Archive::new(t);
            ar.entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    format!(
                        "{} {:?} {:o} {} {} {} {}",
                        String::from_utf8_lossy(&e.path_bytes()),
                        h.entry_type(),
                        h.mode().unwrap(),
                        h.uid().unwrap(),
                        h.gid().unwrap(),
                        h.mtime().unwrap(),
                        h.size().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        panic!(
            "round trip differs:\n{:#?}\n---\n{:#?}",
            list(&t1),
            list(&t2)
        );
    }
    assert_eq!(s1, s2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn dir_tar_apply_round_trips(specs in proptest::collection::vec(spec(false), 1..25)) {
        if require_root("dir_tar_apply_round_trips") {
            check_round_trip(&specs, false);
        }
    }

    #[test]
    fn diff_upper_apply_round_trips(specs in proptest::collection::vec(spec(true), 1..25)) {
        if require_root("diff_upper_apply_round_trips") {
            check_round_trip(&specs, true);
        }
    }
}

#[test]
fn mtime_clamp_and_numeric_owners() {
    if !require_root("mtime_clamp_and_numeric_owners") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("f"), b"x").unwrap();
    lchown(&d.join("f"), 1234, 5678);
    set_times(&d.join("f"), 2_000_000_000);
    let mut out = Vec::new();
    write_dir_tar(
        d,
        &mut out,
        &DiffOptions {
            mtime_clamp: Some(1_000),
        },
    )
    .unwrap();
    let mut ar = tar::Archive::new(&out[..]);
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.header().mtime().unwrap(), 1_000);
    assert_eq!(e.header().uid().unwrap(), 1234);
    assert_eq!(e.header().gid().unwrap(), 5678);
    assert_eq!(e.header().username_bytes(), Some(&b""[..]));
}
