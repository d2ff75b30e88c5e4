//! Hostile layers: each crafted tar must fail the whole layer with an error naming the entry
//! (or, where Docker accepts it, stay inside the snapshot), and nothing outside the snapshot
//! may change. Every test works in its own temp dir: `snap/` is the target, `outside/` is a
//! sentinel directory next to it.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_oci::layer::{apply_layer, ApplyOptions, LayerError, LayerErrorKind};

enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str, u32, u32),
}

/// A tar built from raw headers (names are written as given: no `..` filtering).
fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        let (name, data): (&str, &[u8]) = match e {
            E::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (n, b"")
            }
            E::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                (n, d)
            }
            E::Sym(n, t) | E::Hard(n, t) => {
                h.set_entry_type(if matches!(e, E::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                (n, b"")
            }
            E::Char(n, ma, mi) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                (n, b"")
            }
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    secret_mode: u32,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_owned();
        fs::create_dir(base.join("snap")).unwrap();
        fs::create_dir(base.join("outside")).unwrap();
        fs::write(base.join("outside/secret"), b"sentinel").unwrap();
        let secret_mode = fs::metadata(base.join("outside/secret")).unwrap().mode();
        Sandbox {
            _tmp: tmp,
            base,
            secret_mode,
        }
    }

    fn snap(&self) -> PathBuf {
        self.base.join("snap")
    }

    fn outside(&self) -> PathBuf {
        self.base.join("outside")
    }

    fn apply(&self, tar: &[u8]) -> Result<berth_oci::AppliedLayer, LayerError> {
        self.apply_with(tar, &ApplyOptions::default())
    }

    fn apply_with(
        &self,
        tar: &[u8],
        opts: &ApplyOptions,
    ) -> Result<berth_oci::AppliedLayer, LayerError> {
        apply_layer(tar, &self.snap(), opts)
    }

    /// Nothing outside `snap/` changed: the base holds only snap and outside, outside holds
    /// only the untouched secret.
    fn assert_outside_untouched(&self) {
        let mut top: Vec<_> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["outside", "snap"]);
        let inside: Vec<_> = fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(inside, ["secret"]);
        let secret = self.outside().join("secret");
        assert_eq!(fs::read(&secret).unwrap(), b"sentinel");
        assert_eq!(
            fs::metadata(&secret).unwrap().nlink(),
            1,
            "secret got hardlinked"
        );
        assert_eq!(fs::metadata(&secret).unwrap().mode(), self.secret_mode);
    }
}

/// The error names `entry` and is of `kind`.
fn assert_refused(
    res: Result<berth_oci::AppliedLayer, LayerError>,
    entry: &str,
    kind: LayerErrorKind,
) {
    let e = match res {
        Ok(a) => panic!("layer with {entry:?} was accepted: {a:?}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    eprintln!("refused as expected: {msg}");
    assert!(msg.contains(entry), "error {msg:?} does not name {entry:?}");
    assert_eq!(e.kind(), kind, "{msg}");
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
}

/// Root-only tests skip with a message, except under CI where they must run.
fn require_root(test: &str) -> bool {
    common::require_root(test, "needs root")
}

#[test]
fn traversal_dotdot_is_refused() {
    let s = Sandbox::new();
    let t = tar_of(&[E::File("ok", b"1"), E::File("../outside/pwned", b"x")]);
    assert_refused(
        s.apply(&t),
        "../outside/pwned",
        LayerErrorKind::InvalidArgument,
    );
    s.assert_outside_untouched();
    let s = Sandbox::new();
    let t = tar_of(&[E::File("a/../../outside/secret", b"x")]);
    assert_refused(
        s.apply(&t),
        "a/../../outside/secret",
        LayerErrorKind::InvalidArgument,
    );
    s.assert_outside_untouched();
}

#[test]
fn dotdot_that_stays_inside_is_fine() {
    let s = Sandbox::new();
    let t = tar_of(&[E::File("a/../b", b"x")]);
    s.apply(&t).unwrap();
    assert_eq!(fs::read(s.snap().join("b")).unwrap(), b"x");
    s.assert_outside_untouched();
}

#[test]
fn absolute_names_stay_inside() {
    let s = Sandbox::new();
    let t = tar_of(&[E::File("/etc/berth-hostile-test", b"x")]);
    s.apply(&t).unwrap();
    assert_eq!(
        fs::read(s.snap().join("etc/berth-hostile-test")).unwrap(),
        b"x"
    );
    assert!(!Path::new("/etc/berth-hostile-test").exists());
    s.assert_outside_untouched();
}

#[test]
fn relative_symlink_escape_then_write_through_it() {
    let s = Sandbox::new();
    let t = tar_of(&[E::Sym("a", "../outside"), E::File("a/pwned", b"x")]);
    assert_refused(s.apply(&t), "a/pwned", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn absolute_symlink_then_write_through_it() {
    let s = Sandbox::new();
    let target = s.outside().to_str().unwrap().to_owned();
    let t = tar_of(&[E::Sym("a", &target), E::File("a/secret", b"overwritten")]);
    assert_refused(s.apply(&t), "a/secret", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
    // The classic: a -> /etc then a/passwd. Refused before anything is opened under /etc.
    let s = Sandbox::new();
    let t = tar_of(&[E::Sym("a", "/etc"), E::Dir("a/berth-hostile-dir/")]);
    assert_refused(
        s.apply(&t),
        "a/berth-hostile-dir/",
        LayerErrorKind::InvalidArgument,
    );
    assert!(!Path::new("/etc/berth-hostile-dir").exists());
    s.assert_outside_untouched();
}

#[test]
fn hardlink_escape_is_refused() {
    let s = Sandbox::new();
    let t = tar_of(&[E::Hard("h", "../../etc/passwd")]);
    assert_refused(s.apply(&t), "h", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
    let s = Sandbox::new();
    let t = tar_of(&[E::Hard("h", "../outside/secret")]);
    assert_refused(s.apply(&t), "h", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn hardlink_through_symlinked_parent_is_refused() {
    let s = Sandbox::new();
    let t = tar_of(&[E::Sym("l", "../outside"), E::Hard("h", "l/secret")]);
    assert_refused(s.apply(&t), "h", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
    let s = Sandbox::new();
    let abs = s.outside().to_str().unwrap().to_owned();
    let t = tar_of(&[E::Sym("l", &abs), E::Hard("h", "l/secret")]);
    assert_refused(s.apply(&t), "h", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn file_over_symlink_replaces_the_symlink() {
    let s = Sandbox::new();
    let t = tar_of(&[E::Sym("f", "../outside/secret"), E::File("f", b"mine")]);
    s.apply(&t).unwrap();
    let meta = fs::symlink_metadata(s.snap().join("f")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read(s.snap().join("f")).unwrap(), b"mine");
    s.assert_outside_untouched();
}

#[test]
fn dir_replaced_by_symlink_then_write_below_it() {
    let s = Sandbox::new();
    let t = tar_of(&[
        E::Dir("d/"),
        E::File("d/f", b"1"),
        E::Sym("d", "../outside"),
        E::File("d/g", b"x"),
    ]);
    assert_refused(s.apply(&t), "d/g", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn symlink_loop_and_file_parent_are_refused() {
    let s = Sandbox::new();
    let t = tar_of(&[E::Sym("a", "a"), E::File("a/x", b"x")]);
    assert_refused(s.apply(&t), "a/x", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
    let s = Sandbox::new();
    let t = tar_of(&[E::File("f", b"1"), E::File("f/x", b"x")]);
    assert_refused(s.apply(&t), "f/x", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn device_node_in_a_non_root_path() {
    // Policy: devices are created when allowed by the options (default) and permitted
    // (CAP_MKNOD); refused with an error naming the entry otherwise.
    let s = Sandbox::new();
    let t = tar_of(&[E::Dir("home/"), E::Char("home/kmem", 1, 2)]);
    let no_dev = ApplyOptions {
        allow_devices: false,
        ..ApplyOptions::default()
    };
    assert_refused(
        s.apply_with(&t, &no_dev),
        "home/kmem",
        LayerErrorKind::PermissionDenied,
    );
    assert!(!s.snap().join("home/kmem").exists());
    s.assert_outside_untouched();
    if !require_root("device_node_in_a_non_root_path") {
        return;
    }
    let s = Sandbox::new();
    s.apply(&t).unwrap();
    let m = fs::symlink_metadata(s.snap().join("home/kmem")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 2));
    s.assert_outside_untouched();
}

#[test]
fn huge_header_size_is_refused_quickly() {
    let s = Sandbox::new();
    let mut t = tar_of(&[E::File("big", b"abc")]);
    // Rewrite the size field to the largest octal value (64 GiB) and fix the checksum.
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&t[..512]);
    h.set_size(0o77777777777);
    h.set_cksum();
    t[..512].copy_from_slice(h.as_bytes());
    let start = std::time::Instant::now();
    assert_refused(s.apply(&t), "big", LayerErrorKind::InvalidArgument);
    assert!(start.elapsed().as_secs() < 5);
    s.assert_outside_untouched();
}

#[test]
fn truncated_stream_is_refused() {
    let s = Sandbox::new();
    let data = vec![7u8; 10_000];
    let t = tar_of(&[E::File("a", b"1"), E::File("b", &data)]);
    let cut = &t[..512 * 3 + 3000];
    assert_refused(s.apply(cut), "b", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
    // A header cut in half.
    let s = Sandbox::new();
    assert_refused(
        s.apply(&t[..512 * 2 + 100]),
        "invalid tar stream",
        LayerErrorKind::InvalidArgument,
    );
}

#[test]
fn bad_gzip_is_refused() {
    let s = Sandbox::new();
    let mut bad = vec![0x1f, 0x8b, 0x08, 0x00];
    bad.extend_from_slice(&[0xAB; 200]);
    assert_refused(s.apply(&bad), "Gzip", LayerErrorKind::InvalidArgument);
    // A valid gzip of a tar, truncated.
    let t = tar_of(&[E::File("a", &[1u8; 50_000])]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&t).unwrap();
    let gz = enc.finish().unwrap();
    let s = Sandbox::new();
    let e = s.apply(&gz[..gz.len() / 2]).unwrap_err();
    assert_eq!(e.kind(), LayerErrorKind::InvalidArgument, "{e}");
    s.assert_outside_untouched();
}

#[test]
fn bad_zstd_is_refused() {
    let s = Sandbox::new();
    let mut bad = vec![0x28, 0xb5, 0x2f, 0xfd];
    bad.extend_from_slice(&[0x55; 200]);
    assert_refused(s.apply(&bad), "Zstd", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn bogus_whiteouts_are_refused() {
    let s = Sandbox::new();
    let t = tar_of(&[E::File(".wh.../x", b"")]);
    assert_refused(s.apply(&t), ".wh.../x", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
    let s = Sandbox::new();
    let t = tar_of(&[E::File("a/.wh..", b"")]);
    assert_refused(s.apply(&t), "a/.wh..", LayerErrorKind::InvalidArgument);
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !require_root("whiteouts_become_overlay_whiteouts") {
        return;
    }
    let s = Sandbox::new();
    let t = tar_of(&[
        E::Dir("etc/"),
        E::File("etc/.wh.gone", b""),
        E::Dir("opq/"),
        E::File("opq/.wh..wh..opq", b""),
        E::File("opq/kept", b"k"),
        E::File(".wh..wh.plnk", b""),
    ]);
    s.apply(&t).unwrap();
    let m = fs::symlink_metadata(s.snap().join("etc/gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    let v = rustix::fs::getxattr(
        s.snap().join("opq"),
        "trusted.overlay.opaque",
        &mut [0u8; 8][..],
    )
    .unwrap();
    assert_eq!(v, 1);
    assert!(s.snap().join("opq/kept").exists());
    assert!(!s.snap().join(".wh..wh.plnk").exists());
    s.assert_outside_untouched();
}

#[test]
fn forged_overlay_xattrs_are_dropped() {
    if !require_root("forged_overlay_xattrs_are_dropped") {
        return;
    }
    let s = Sandbox::new();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc".as_slice()),
        ("SCHILY.xattr.user.kept", b"v".as_slice()),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_path("d/").unwrap();
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let t = b.into_inner().unwrap();
    let a = s.apply(&t).unwrap();
    assert_eq!(a.xattrs_skipped, 1);
    let d = s.snap().join("d");
    assert!(rustix::fs::getxattr(&d, "trusted.overlay.redirect", &mut [0u8; 16][..]).is_err());
    assert!(rustix::fs::getxattr(&d, "user.kept", &mut [0u8; 16][..]).is_ok());
}

#[test]
fn nothing_is_followed_from_a_target_that_is_a_symlink_inside() {
    // In-tree relative symlinks in parents are followed (as Docker): lib -> usr/lib.
    let s = Sandbox::new();
    let t = tar_of(&[
        E::Dir("usr/lib/"),
        E::Sym("lib", "usr/lib"),
        E::File("lib/x", b"x"),
    ]);
    s.apply(&t).unwrap();
    assert_eq!(fs::read(s.snap().join("usr/lib/x")).unwrap(), b"x");
    s.assert_outside_untouched();
}

#[test]
fn entry_below_a_whiteout_of_the_same_layer_fails() {
    if !require_root("entry_below_a_whiteout_of_the_same_layer_fails") {
        return;
    }
    let s = Sandbox::new();
    let t = tar_of(&[
        E::Dir("d/"),
        E::Dir("d/sub/"),
        E::File("d/sub/a", b"1"),
        E::File("d/.wh.sub", b""),
        E::File("d/sub/b", b"2"),
    ]);
    // An entry under a path whited out earlier in the same layer: the whiteout device is not
    // a directory, so the layer fails (and nothing is written into the removed directory).
    assert_refused(s.apply(&t), "d/sub/b", LayerErrorKind::InvalidArgument);
    let wh = fs::symlink_metadata(s.snap().join("d/sub")).unwrap();
    assert!(wh.file_type().is_char_device());
    s.assert_outside_untouched();
}

#[test]
fn a_failed_snapshot_can_be_removed() {
    let s = Sandbox::new();
    let mut t = tar_of(&[
        E::Dir("locked/"),
        E::File("locked/f", b"1"),
        E::Sym("out", "../outside"),
        E::File("../escape", b"x"),
    ]);
    // Make "locked/" mode 000 and "locked/f" read-only.
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&t[..512]);
    h.set_mode(0o000);
    h.set_cksum();
    t[..512].copy_from_slice(h.as_bytes());
    assert_refused(s.apply(&t), "../escape", LayerErrorKind::InvalidArgument);
    berth_oci::remove_snapshot(&s.snap()).unwrap();
    assert!(!s.snap().exists());
    fs::create_dir(s.snap()).unwrap();
    s.assert_outside_untouched();
    // Absent is fine.
    fs::remove_dir(s.snap()).unwrap();
    berth_oci::remove_snapshot(&s.snap()).unwrap();
}

#[test]
fn huge_extended_headers_are_refused_without_reading_them() {
    for kind in [tar::EntryType::XHeader, tar::EntryType::GNULongName] {
        let s = Sandbox::new();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(1 << 33); // 8 GiB claimed, a few bytes given
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.as_old_mut().name[..8].copy_from_slice(b"pax-bomb");
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend_from_slice(&[b'9'; 1024]);
        let start = std::time::Instant::now();
        let e = s.apply(&t).unwrap_err();
        assert!(start.elapsed().as_secs() < 5);
        assert_eq!(e.kind(), LayerErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("extended header"), "{e}");
        s.assert_outside_untouched();
    }
}
