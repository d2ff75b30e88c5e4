//! A merged, read-only view of layer snapshot directories without mounting anything:
//! directories are recreated, files hard-linked (no data is copied, so the view must be on
//! the snapshots' file system), symlinks recreated, and overlay whiteouts (0/0 character
//! devices) delete what lower layers had. Used to read another stage's files for
//! `COPY --from` and `/etc/passwd` for `--chown`.

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Merges `layers` (bottom first) into the empty directory `dest`.
pub fn merge_layers(layers: &[&Path], dest: &Path) -> io::Result<()> {
    for layer in layers {
        merge_dir(layer, dest)?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether overlayfs would treat `dir` as opaque (`trusted.` or `user.overlay.opaque` = `y`).
fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 4];
            matches!(rustix::fs::lgetxattr(dir, *name, &mut buf), Ok(1) if buf[0] == b'y')
        })
}

fn merge_dir(src: &Path, dest: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            remove_any(&to)?;
        } else if ft.is_dir() {
            match fs::symlink_metadata(&to) {
                // An opaque directory hides everything lower layers had in it.
                Ok(m) if m.is_dir() && is_opaque(&from) => {
                    fs::remove_dir_all(&to)?;
                    fs::create_dir(&to)?;
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                Err(_) => fs::create_dir(&to)?,
            }
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
            // Owners matter to COPY --from; without privilege they stay the caller's.
            let _ = lchown(&to, Some(md.uid()), Some(md.gid()));
            merge_dir(&from, &to)?;
        } else if ft.is_symlink() {
            remove_any(&to)?;
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            let _ = lchown(&to, Some(md.uid()), Some(md.gid()));
        } else if ft.is_file() {
            remove_any(&to)?;
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)?;
                let _ = lchown(&to, Some(md.uid()), Some(md.gid()));
            }
        }
        // Devices, fifos and sockets are of no use to COPY: skipped.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_wins_and_links_share_data() {
        let t = tempfile::tempdir().expect("tmp");
        let (a, b, out) = (t.path().join("a"), t.path().join("b"), t.path().join("out"));
        for d in [&a, &b, &out] {
            fs::create_dir_all(d).expect("mkdir");
        }
        fs::create_dir_all(a.join("etc")).expect("mkdir");
        fs::write(a.join("etc/passwd"), "old").expect("write");
        fs::write(a.join("keep"), "k").expect("write");
        fs::create_dir_all(b.join("etc")).expect("mkdir");
        fs::write(b.join("etc/passwd"), "new").expect("write");
        std::os::unix::fs::symlink("keep", b.join("link")).expect("symlink");
        merge_layers(&[&a, &b], &out).expect("merge");
        assert_eq!(
            fs::read_to_string(out.join("etc/passwd")).expect("read"),
            "new"
        );
        assert_eq!(fs::read_to_string(out.join("link")).expect("read"), "k");
        assert!(!is_opaque(&a));
        assert_eq!(
            fs::metadata(out.join("keep")).expect("md").ino(),
            fs::metadata(a.join("keep")).expect("md").ino()
        );
    }

    #[test]
    fn opaque_directories_hide_lower_content() {
        let t = tempfile::tempdir().expect("tmp");
        let (a, b, out) = (t.path().join("a"), t.path().join("b"), t.path().join("out"));
        for d in [a.join("d"), b.join("d"), out.clone()] {
            fs::create_dir_all(d).expect("mkdir");
        }
        fs::write(a.join("d/old"), "o").expect("write");
        fs::write(b.join("d/new"), "n").expect("write");
        let set = ["trusted.overlay.opaque", "user.overlay.opaque"]
            .iter()
            .any(|n| {
                rustix::fs::lsetxattr(b.join("d"), *n, b"y", rustix::fs::XattrFlags::empty())
                    .is_ok()
            });
        if !set {
            eprintln!("skipping: this file system takes no overlay xattrs");
            return;
        }
        merge_layers(&[&a, &b], &out).expect("merge");
        assert!(out.join("d/new").exists());
        assert!(!out.join("d/old").exists());
    }
}
