//! Layers written by GNU tar (gnu and pax formats, sparse files, long names, xattrs with any
//! bytes, hardlinks, fifos, setuid) apply to the same tree, compared through our own
//! deterministic `write_dir_tar`. Root only (owners, setuid).

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use berth_oci::layer::{apply_layer, write_dir_tar, ApplyOptions, DiffOptions};

fn require_root() -> bool {
    common::require_root("GNU tar interop", "needs root")
}

fn make_tree(root: &Path, xattrs: bool) {
    let long = "l".repeat(120);
    fs::create_dir_all(root.join("dir").join(&long)).unwrap();
    fs::write(root.join("dir").join(&long).join("f"), b"deep").unwrap();
    fs::write(root.join("plain"), b"plain data").unwrap();
    fs::hard_link(root.join("plain"), root.join("hard")).unwrap();
    symlink("plain", root.join("sym")).unwrap();
    symlink("/nonexistent/abs", root.join("abs-sym")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    fs::write(root.join("suid"), b"#!/bin/sh\n").unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        root.join("suid"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1000)),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    // Sparse: a hole, 4 KiB of data, a hole, 4 KiB of data, then a 1 MiB tail hole.
    let mut f = fs::File::create(root.join("sparse")).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(&[0xAA; 4096]).unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    f.write_all(&[0xBB; 4096]).unwrap();
    f.set_len(4 << 20).unwrap();
    drop(f);
    if xattrs {
        for (p, v) in [
            ("plain", b"line1\nline2\x00\xff".as_slice()),
            ("dir", b"d".as_slice()),
        ] {
            rustix::fs::setxattr(
                root.join(p),
                "user.berth.test",
                v,
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
    }
}

fn canonical(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_dir_tar(dir, &mut out, &DiffOptions::default()).unwrap();
    out
}

fn check(format_args: &[&str], xattrs: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    make_tree(&src, xattrs);
    let tarball = tmp.path().join("layer.tar");
    let status = Command::new("tar")
        .args(format_args)
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar {format_args:?} failed");
    let bytes = fs::read(&tarball).unwrap();
    let applied = apply_layer(&bytes[..], &dst, &ApplyOptions::default()).unwrap();
    assert_eq!(applied.diff_id, berth_oci::Digest::of(&bytes));
    let (a, b) = (canonical(&src), canonical(&dst));
    assert!(
        a == b,
        "tree applied from tar {format_args:?} differs from the source"
    );
    let sparse = fs::metadata(dst.join("sparse")).unwrap();
    assert_eq!(sparse.len(), 4 << 20);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "sparse file lost its holes ({} blocks)",
        sparse.blocks()
    );
}

#[test]
fn gnu_format_sparse_longnames() {
    if require_root() {
        check(&["--format=gnu", "--sparse"], false);
    }
}

#[test]
fn pax_format_sparse_xattrs() {
    if require_root() {
        check(
            &[
                "--format=pax",
                "--sparse",
                "--xattrs",
                "--xattrs-include=user.*",
            ],
            true,
        );
    }
}

#[test]
fn pax_format_sparse_0_1() {
    if require_root() {
        check(&["--format=pax", "--sparse", "--sparse-version=0.1"], false);
    }
}
