//! Root-only tests: an overlay rootfs mounted inside the container's mount namespace (no
//! host mount outlives it), and a network namespace joined by path.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use berth_runtime::oci::{LinuxNamespaceBuilder, LinuxNamespaceType};
use berth_runtime::{run, ContainerConfig, RootfsMount, Signal};
use common::{require_root, unique_id, Bundle};

#[test]
fn overlay_rootfs_is_mounted_inside_and_writes_land_in_upper() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let layer = b.rootfs();
    let work = tempfile::tempdir().unwrap();
    let (upper, workdir, target) = (
        work.path().join("upper"),
        work.path().join("work"),
        work.path().join("merged"),
    );
    for d in [&upper, &workdir, &target] {
        std::fs::create_dir(d).unwrap();
    }
    let id = unique_id("overlay");
    let mut spec = b.spec(&id, "echo hi > /created; ls /bin/busybox");
    let mut root = spec.root().clone().unwrap();
    root.set_path(target.clone());
    spec.set_root(Some(root));
    let mut cfg = ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec);
    cfg.rootfs_mounts = vec![RootfsMount {
        typ: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={}", layer.display()),
            format!("upperdir={}", upper.display()),
            format!("workdir={}", workdir.display()),
        ],
    }];
    let mut c = run(cfg).unwrap();
    assert_eq!(c.wait().unwrap().unwrap().code, 0);
    c.delete(false).unwrap();
    assert_eq!(
        std::fs::read_to_string(upper.join("created")).unwrap(),
        "hi\n"
    );
    assert!(
        !layer.join("created").exists(),
        "the lower layer stays untouched"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(target.to_str().unwrap()),
        "host mount left behind"
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "the mount point stays empty on the host"
    );
}

#[test]
fn a_network_namespace_is_joined_by_path() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let first = unique_id("netA");
    let mut a = run(ContainerConfig::new(
        &first,
        b.state_dir(&first),
        b.path(),
        b.spec(&first, "sleep 30"),
    ))
    .unwrap();
    let net_a = std::fs::read_link(format!("/proc/{}/ns/net", a.pid())).unwrap();
    let second = unique_id("netB");
    let mut spec = b.spec(&second, "readlink /proc/self/ns/net");
    let mut linux = spec.linux().clone().unwrap();
    let mut ns: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    ns.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(format!("/proc/{}/ns/net", a.pid()))
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(ns));
    spec.set_linux(Some(linux));
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut cfg = ContainerConfig::new(&second, b.state_dir(&second), b.path(), spec);
    cfg.stdio.stdout = Some(w);
    let mut c = run(cfg).unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert_eq!(c.wait().unwrap().unwrap().code, 0);
    c.delete(false).unwrap();
    assert_eq!(out.trim(), net_a.to_str().unwrap());
    a.kill(Signal::SIGKILL, false).unwrap();
    a.wait().unwrap();
    a.delete(false).unwrap();
}
