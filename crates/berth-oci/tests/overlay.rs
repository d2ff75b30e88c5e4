//! The kernel agrees: a layer applied by berth-oci, changed through a real overlayfs mount,
//! diffed with `diff_upper` and applied again as a second snapshot, stacks to the changed view
//! (whiteouts hide files, opaque dirs hide lower content). Root only; every mount is undone.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_oci::layer::{apply_layer, diff_upper, ApplyOptions, DiffOptions};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount(&self.0, UnmountFlags::DETACH);
    }
}

fn overlay(lowers: &[&Path], upper: Option<(&Path, &Path)>, at: &Path) -> Mounted {
    let lower = lowers
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let mut data = format!("lowerdir={lower}");
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    let data = CString::new(data).unwrap();
    let flags = if upper.is_none() {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    mount("overlay", at, "overlay", flags, Some(data.as_c_str())).unwrap();
    Mounted(at.to_owned())
}

fn require_root() -> bool {
    common::require_root("overlay round trip", "needs root for overlay mounts")
}

fn base_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], dir: bool| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("a/", b"", true);
    add("a/x", b"x", false);
    add("a/y", b"y", false);
    add("d/", b"", true);
    add("d/old", b"old", false);
    add("keep", b"v1", false);
    b.into_inner().unwrap()
}

#[test]
fn overlay_diff_apply_stacks_to_the_changed_view() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for d in ["l1", "l2", "upper", "work", "merged", "merged2"] {
        fs::create_dir(t.join(d)).unwrap();
    }
    apply_layer(&base_layer()[..], &t.join("l1"), &ApplyOptions::default()).unwrap();

    {
        let _m = overlay(
            &[&t.join("l1")],
            Some((&t.join("upper"), &t.join("work"))),
            &t.join("merged"),
        );
        let m = t.join("merged");
        fs::remove_file(m.join("a/x")).unwrap();
        fs::remove_dir_all(m.join("d")).unwrap();
        fs::create_dir(m.join("d")).unwrap();
        fs::write(m.join("d/new"), b"new").unwrap();
        fs::write(m.join("keep"), b"v2").unwrap();
    }

    let mut layer = Vec::new();
    let stats = diff_upper(&t.join("upper"), &mut layer, &DiffOptions::default()).unwrap();
    let names: Vec<String> = tar::Archive::new(&layer[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    for want in ["a/", "a/.wh.x", "d/", "d/.wh..wh..opq", "d/new", "keep"] {
        assert!(
            names.contains(&want.to_owned()),
            "{want} missing from {names:?}"
        );
    }

    let applied = apply_layer(&layer[..], &t.join("l2"), &ApplyOptions::default()).unwrap();
    assert_eq!(applied.diff_id, stats.diff_id);
    let wh = fs::symlink_metadata(t.join("l2/a/x")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);

    let _m = overlay(&[&t.join("l2"), &t.join("l1")], None, &t.join("merged2"));
    let m = t.join("merged2");
    assert!(!m.join("a/x").exists(), "whiteout did not hide a/x");
    assert_eq!(fs::read(m.join("a/y")).unwrap(), b"y");
    assert!(!m.join("d/old").exists(), "opaque dir did not hide d/old");
    assert_eq!(fs::read(m.join("d/new")).unwrap(), b"new");
    assert_eq!(fs::read(m.join("keep")).unwrap(), b"v2");
}

#[test]
fn diff_refuses_redirected_dirs() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path();
    fs::create_dir(upper.join("moved")).unwrap();
    rustix::fs::setxattr(
        upper.join("moved"),
        "trusted.overlay.redirect",
        b"/orig",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let e = diff_upper(upper, &mut Vec::new(), &DiffOptions::default()).unwrap_err();
    assert!(e.to_string().contains("redirect_dir"), "{e}");
    assert!(e.to_string().contains("moved"), "{e}");
}

#[test]
fn opaque_upper_root_round_trips() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (upper, snap) = (tmp.path().join("u"), tmp.path().join("s"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&snap).unwrap();
    fs::write(upper.join("f"), b"f").unwrap();
    rustix::fs::setxattr(
        &upper,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut layer = Vec::new();
    diff_upper(&upper, &mut layer, &DiffOptions::default()).unwrap();
    let first = tar::Archive::new(&layer[..])
        .entries()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path_bytes()
        .into_owned();
    assert_eq!(first, b".wh..wh..opq");
    apply_layer(&layer[..], &snap, &ApplyOptions::default()).unwrap();
    let mut v = [0u8; 4];
    let n = rustix::fs::getxattr(&snap, "trusted.overlay.opaque", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y");
    assert_eq!(fs::read(snap.join("f")).unwrap(), b"f");
}
