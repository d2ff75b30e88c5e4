//! Store behaviour: images, tags, layers, resolution, gc.
#![allow(clippy::unwrap_used)]

use std::fs;

use super::*;

fn layer(store: &Store, parent: Option<&Digest>, content: &[u8]) -> LayerRecord {
    let blob = store.blobs().put_bytes(content).unwrap();
    let staging = store.staging_dir().unwrap();
    fs::write(staging.path().join("f"), content).unwrap();
    store
        .commit_layer(
            staging,
            parent,
            &NewLayer {
                diff_id: blob.digest.clone(),
                blob_digest: blob.digest.clone(),
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                blob_size: blob.size,
                size: content.len() as u64,
            },
        )
        .unwrap()
}

fn image(store: &Store, config: &[u8], layers: &[Digest], tags: &[&str]) -> Digest {
    let c = store.blobs().put_bytes(config).unwrap();
    let m = store.blobs().put_bytes(&[config, b"m"].concat()).unwrap();
    store
        .add_image(
            &NewImage {
                id: c.digest.clone(),
                manifest_digest: m.digest,
                manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                created: String::new(),
                created_unix: 0,
                layers: layers.to_vec(),
            },
            &tags.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
    c.digest
}

#[test]
fn tags_move_and_old_image_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let l = layer(&store, None, b"a");
    let a = image(
        &store,
        b"cfg-a",
        std::slice::from_ref(&l.chain_id),
        &["docker.io/library/x:1"],
    );
    let b = image(
        &store,
        b"cfg-b",
        std::slice::from_ref(&l.chain_id),
        &["docker.io/library/x:1"],
    );
    let list = store.list_images().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(store.image(&a).unwrap().unwrap().tags, Vec::<String>::new());
    assert_eq!(
        store.image(&b).unwrap().unwrap().tags,
        vec!["docker.io/library/x:1"]
    );
    assert_eq!(store.layer(&l.chain_id).unwrap().unwrap().refcount, 2);
    assert_eq!(
        store.image_lowerdirs(&b).unwrap(),
        vec![store.layer_dir(&l.chain_id)]
    );
}

#[test]
fn resolve_by_tag_id_and_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = image(&store, b"cfg-a", &[], &["docker.io/library/x:1"]);
    assert_eq!(
        store
            .resolve_image("x", Some("docker.io/library/x:1"))
            .unwrap(),
        a
    );
    assert_eq!(store.resolve_image(&a.to_string(), None).unwrap(), a);
    assert_eq!(store.resolve_image(a.hex(), None).unwrap(), a);
    assert_eq!(store.resolve_image(&a.hex()[..5], None).unwrap(), a);
    assert!(matches!(
        store.resolve_image("nope", Some("docker.io/library/nope:latest")),
        Err(Error::ImageNotFound(_))
    ));
    // Make two IDs sharing a prefix: search configs until the first hex digit matches.
    let mut n = 0;
    let other = loop {
        let cfg = format!("cfg-{n}");
        if Digest::of(cfg.as_bytes()).hex()[..1] == a.hex()[..1] && Digest::of(cfg.as_bytes()) != a
        {
            break image(&store, cfg.as_bytes(), &[], &[]);
        }
        n += 1;
    };
    let err = store.resolve_image(&a.hex()[..1], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains(other.short()), "{err}");
}

#[test]
fn commit_layer_twice_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = layer(&store, None, b"same");
    let b = layer(&store, None, b"same");
    assert_eq!(a, b);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    let child = layer(&store, Some(&a.chain_id), b"child");
    assert_eq!(child.parent.as_ref(), Some(&a.chain_id));
    assert_eq!(child.chain_id, chain_id(Some(&a.chain_id), &child.diff_id));
}

#[test]
fn gc_removes_unused_and_keeps_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = layer(&store, None, b"base");
    let top = layer(&store, Some(&base.chain_id), b"top");
    let keep = image(
        &store,
        b"keep",
        std::slice::from_ref(&base.chain_id),
        &["docker.io/library/k:1"],
    );
    let drop_ = image(
        &store,
        b"drop",
        &[base.chain_id.clone(), top.chain_id.clone()],
        &[],
    );
    store.delete_image(&drop_).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.layers, vec![top.chain_id.clone()]);
    assert!(!store.layer_dir(&top.chain_id).exists());
    assert!(store.layer_dir(&base.chain_id).exists());
    assert!(store.blobs().contains(&keep));
    assert!(!store.blobs().contains(&drop_));
    assert!(!store.blobs().contains(&top.blob_digest));
    assert_eq!(store.gc().unwrap(), GcReport::default());
}

#[test]
fn try_gc_skips_while_content_is_being_added() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let orphan = store.blobs().put_bytes(b"orphan").unwrap();
    let lease = store.content_lease().unwrap();
    assert_eq!(store.try_gc().unwrap(), None);
    assert!(store.blobs().contains(&orphan.digest));
    drop(lease);
    let report = store.try_gc().unwrap().unwrap();
    assert_eq!(report.blobs, vec![orphan.digest]);
}
