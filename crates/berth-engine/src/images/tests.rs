//! Image use cases against a temp store (no root needed): users block deletion, archives
//! round-trip, a layer whose content does not match its config is refused.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::EngineConfig;

fn engine(dir: &Path) -> Engine {
    Engine::open(EngineConfig {
        root: dir.join("root"),
        runroot: dir.join("run"),
    })
    .expect("open engine")
}

fn small_tar(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "file", content).unwrap();
    b.finish().unwrap();
    path
}

fn import(e: &Engine, tar: &Path, reference: Option<&str>) -> Digest {
    e.import(&ImportRequest {
        source: ImportSource::Path(tar.to_path_buf()),
        reference: reference.map(str::to_owned),
        changes: vec![],
        message: None,
    })
    .expect("import")
}

#[test]
fn image_used_by_a_container_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let tar = small_tar(dir.path(), "a.tar", b"a");
    let id = import(&e, &tar, Some("used:1"));
    e.store()
        .add_image_user(&id, "stopped container 0123456789ab")
        .unwrap();
    let err = e.remove_image(id.short(), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string().contains("stopped container 0123456789ab"),
        "{err}"
    );
    let err = e.remove_image("used:1", false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // Pruning everything leaves it alone.
    assert!(e.prune_images(true).unwrap().actions.is_empty());
    // Forced by name: the tag goes, the image stays for its container.
    let actions = e.remove_image("used:1", true).unwrap();
    assert_eq!(actions, vec![RemoveAction::Untagged("used:1".into())]);
    assert!(e.store().image(&id).unwrap().is_some());
    e.store()
        .add_image_user(&id, "running container 0123456789ab")
        .unwrap();
    let err = e.remove_image(id.short(), true).unwrap_err();
    assert!(err.to_string().contains("cannot be forced"), "{err}");
}

#[test]
fn save_load_round_trip_between_roots() {
    let dir = tempfile::tempdir().unwrap();
    let a = engine(&dir.path().join("a"));
    let tar = small_tar(dir.path(), "a.tar", b"content");
    let id = import(&a, &tar, Some("rt:1"));
    for (format, name) in [
        (ArchiveFormat::Docker, "d.tar"),
        (ArchiveFormat::Oci, "o.tar"),
    ] {
        let out = dir.path().join(name);
        a.save_to_file(&["rt:1".to_owned()], format, &out).unwrap();
        let b = engine(&dir.path().join(format!("b-{name}")));
        let report = b.load(&ImportSource::Path(out)).unwrap();
        assert_eq!(report.images, vec![(id.clone(), vec!["rt:1".to_owned()])]);
        let (ra, rb) = (
            a.store().image(&id).unwrap().unwrap(),
            b.store().image(&id).unwrap().unwrap(),
        );
        assert_eq!(ra.manifest_digest, rb.manifest_digest);
        assert_eq!(ra.layers, rb.layers);
    }
}

#[test]
fn load_refuses_a_layer_that_does_not_match_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let a = engine(&dir.path().join("a"));
    let id = import(&a, &small_tar(dir.path(), "a.tar", b"good"), Some("x:1"));
    let archive = dir.path().join("d.tar");
    a.save_to_file(&["x:1".to_owned()], ArchiveFormat::Docker, &archive)
        .unwrap();
    // Rewrite the archive with the layer's bytes swapped for another tar of the same size.
    let evil = small_tar(dir.path(), "evil.tar", b"evil");
    let evil_bytes = fs::read(&evil).unwrap();
    let layer = a.store().image_layers(&id).unwrap()[0].blob_digest.clone();
    let mut out = tar::Builder::new(Vec::new());
    let mut input = tar::Archive::new(fs::File::open(&archive).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path.ends_with(layer.hex()) {
            assert_eq!(data.len(), evil_bytes.len());
            data = evil_bytes.clone();
        }
        let mut h = entry.header().clone();
        out.append_data(&mut h, &path, &data[..]).unwrap();
    }
    let tampered = dir.path().join("tampered.tar");
    fs::write(&tampered, out.into_inner().unwrap()).unwrap();
    let b = engine(&dir.path().join("b"));
    let err = b.load(&ImportSource::Path(tampered)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(b.store().list_images().unwrap().is_empty());
    assert!(b.store().list_layers().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("b/root/tmp")).unwrap().count(),
        0
    );
}
