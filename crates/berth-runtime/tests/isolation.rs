//! Root-only tests: the container is isolated the way Docker's defaults say.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{require_root, run_capture, unique_id, Bundle};

#[test]
fn pid1_hostname_caps_seccomp_and_no_host_processes() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("iso");
    let (code, out) = run_capture(
        &b,
        &id,
        "echo pid=$$; echo host=$(hostname); grep -E '^(CapEff|Seccomp):' /proc/self/status; echo procs=$(ls -d /proc/[0-9]* | wc -l); ip -o link show lo; ip -o addr show lo; echo links=$(ls /sys/class/net | wc -w)",
        |_| {},
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains(&format!("host={id}\n")), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // A network namespace of its own with only lo, up (Docker's --network none).
    assert!(out.contains("<LOOPBACK,UP,LOWER_UP>"), "{out}");
    assert!(out.contains("inet 127.0.0.1/8"), "{out}");
    assert!(out.contains("links=1\n"), "{out}");
    // sh, ls (and the subshell): nothing of the host.
    let procs: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(procs <= 4, "{out}");
}

#[test]
fn privileged_operations_fail_inside() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("priv");
    let script = "\
        unshare -m true 2>/dev/null && echo unshare=ok || echo unshare=fail; \
        mount -t tmpfs none /mnt 2>/dev/null && echo mount=ok || echo mount=fail; \
        (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys=ok || echo procsys=fail; \
        echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); \
        echo keys=$(cat /proc/keys 2>/dev/null | wc -c); \
        insmod /nonexistent.ko 2>/dev/null && echo insmod=ok || echo insmod=fail; \
        echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)";
    let (code, out) = run_capture(&b, &id, script, |_| {});
    assert_eq!(code, 0, "{out}");
    for want in [
        "unshare=fail",
        "mount=fail",
        "procsys=fail",
        "kcore=0",
        "keys=0",
        "insmod=fail",
        "nnp=0",
    ] {
        assert!(out.contains(want), "{want} not in {out}");
    }
}

#[test]
fn keyctl_and_module_loading_are_refused() {
    let Some(_serial) = require_root() else {
        return;
    };
    // busybox has no keyctl: borrow the host's perl (its /usr, read-only) to make the raw
    // syscalls: keyctl(KEYCTL_GET_KEYRING_ID) = 250, init_module = 175, unshare = 272.
    if !Path::new("/usr/bin/perl").exists() {
        panic!("/usr/bin/perl is needed to make raw syscalls in the container");
    }
    let b = Bundle::new();
    for link in ["lib", "lib64"] {
        if Path::new("/").join(link).exists() {
            let _ = std::fs::remove_dir_all(b.rootfs().join(link));
            std::os::unix::fs::symlink(format!("usr/{link}"), b.rootfs().join(link)).unwrap();
        }
    }
    let id = unique_id("keyctl");
    let script = "/usr/bin/perl -e 'for my $c ([\"keyctl\", 250, 0, -1, 0], [\"init_module\", 175, 0, 0, 0], [\"unshare\", 272, 0x10000000, 0, 0]) { my ($n, @a) = @$c; my $r = syscall($a[0], @a[1..$#a]); print \"$n=\", ($r == -1 ? $!+0 : \"ok\"), \"\\n\" }'";
    let (code, out) = run_capture(&b, &id, script, |spec| {
        use berth_runtime::oci::MountBuilder;
        let mut mounts = spec.mounts().clone().unwrap();
        mounts.push(
            MountBuilder::default()
                .destination("/usr")
                .typ("bind")
                .source("/usr")
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
    });
    assert_eq!(code, 0, "{out}");
    for want in ["keyctl=1\n", "init_module=1\n", "unshare=1\n"] {
        assert!(out.contains(want), "{want} (EPERM) not in {out}");
    }
}

#[test]
fn mounts_devices_and_readonly_paths() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("mnt");
    let script = "\
        ls /dev | tr '\\n' ' '; echo; \
        grep -E ' /(proc/sys|sys|dev/shm|dev/pts|dev/mqueue|sys/fs/cgroup) ' /proc/self/mountinfo | cut -d' ' -f5,6; \
        echo x > /dev/shm/f && echo shm=ok; \
        (echo x > /sys/kernel/foo) 2>/dev/null || echo sysro=ok";
    let (code, out) = run_capture(&b, &id, script, |_| {});
    assert_eq!(code, 0, "{out}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr",
    ] {
        assert!(
            out.split_whitespace().any(|w| w == dev),
            "/dev/{dev} missing: {out}"
        );
    }
    assert!(out.contains("/proc/sys ro,"), "{out}");
    assert!(out.contains("/sys ro,"), "{out}");
    assert!(out.contains("/sys/fs/cgroup ro,"), "{out}");
    assert!(out.contains("shm=ok") && out.contains("sysro=ok"), "{out}");
}

#[test]
fn bind_mounts_readonly_root_user_env_cwd_rlimits() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("bind");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "from host\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let hostro = tempfile::tempdir().unwrap();
    let script = "\
        cat /data/hello; echo written > /data/new && echo rw=ok; \
        (echo x > /ro/x) 2>/dev/null || echo ro=ok; \
        (echo x > /etc/x) 2>/dev/null || echo rootro=ok; \
        echo x > /scratch/x && echo tmpfs=ok; \
        echo id=$(id -u):$(id -g):$(id -G); echo pwd=$(pwd); echo env=$FOO; \
        echo nofile=$(ulimit -n):$(ulimit -Hn); \
        grep CapEff /proc/self/status";
    let hp = host.path().to_path_buf();
    let hrp = hostro.path().to_path_buf();
    let (code, out) = run_capture(&b, &id, script, move |spec| {
        use berth_runtime::oci::MountBuilder;
        let mut mounts = spec.mounts().clone().unwrap();
        mounts.push(
            MountBuilder::default()
                .destination("/data")
                .typ("bind")
                .source(hp)
                .options(vec!["rbind".to_string(), "rw".to_string()])
                .build()
                .unwrap(),
        );
        mounts.push(
            MountBuilder::default()
                .destination("/ro")
                .typ("bind")
                .source(hrp)
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .unwrap(),
        );
        mounts.push(
            MountBuilder::default()
                .destination("/scratch")
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec!["size=1m".to_string()])
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
        let mut root = spec.root().clone().unwrap();
        root.set_readonly(Some(true));
        spec.set_root(Some(root));
        let mut p = spec.process().clone().unwrap();
        let mut user = p.user().clone();
        user.set_uid(1000);
        user.set_gid(1000);
        user.set_additional_gids(Some(vec![10]));
        p.set_user(user);
        p.set_cwd("/home/app".into());
        let mut env = p.env().clone().unwrap();
        env.push("FOO=bar".into());
        p.set_env(Some(env));
        spec.set_process(Some(p));
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from host"), "{out}");
    assert_eq!(
        std::fs::read_to_string(host.path().join("new")).unwrap_or_default(),
        "written\n",
        "{out}"
    );
    for want in [
        "rw=ok",
        "ro=ok",
        "rootro=ok",
        "tmpfs=ok",
        "id=1000:1000:1000 10",
        "pwd=/home/app",
        "env=bar",
        "CapEff:\t0000000000000000",
    ] {
        assert!(out.contains(want), "{want} not in {out}");
    }
    // RLIMIT_NOFILE 1048576 asked, clamped to the host's hard limit.
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let want = hard.min(1_048_576);
    assert!(out.contains(&format!("nofile={want}:{want}")), "{out}");
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_range() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("userns");
    let (code, out) = run_capture(
        &b,
        &id,
        "cat /proc/self/uid_map; id -u; ls -l /dev/null",
        |spec| {
            use berth_runtime::oci::{
                LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
            };
            let mut linux = spec.linux().clone().unwrap();
            let mut ns: Vec<_> = linux
                .namespaces()
                .clone()
                .unwrap()
                .into_iter()
                .filter(|n| n.typ() != LinuxNamespaceType::Cgroup)
                .collect();
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .unwrap(),
            );
            linux.set_namespaces(Some(ns));
            let map = vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(100_000u32)
                .size(65_536u32)
                .build()
                .unwrap()];
            linux.set_uid_mappings(Some(map.clone()));
            linux.set_gid_mappings(Some(map));
            spec.set_linux(Some(linux));
            // cgroup v1 cannot be mounted from a user namespace: drop that mount.
            let mounts = spec
                .mounts()
                .clone()
                .unwrap()
                .into_iter()
                .filter(|m| m.typ().as_deref() != Some("cgroup"))
                .collect();
            spec.set_mounts(Some(mounts));
        },
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.split_whitespace()
            .collect::<Vec<_>>()
            .starts_with(&["0", "100000", "65536", "0"]),
        "{out}"
    );
}

#[test]
fn only_stdio_descriptors_reach_the_container() {
    let Some(_serial) = require_root() else {
        return;
    };
    // A descriptor the caller left inheritable must not leak into the container.
    let opened = nix::fcntl::open(
        "/etc/hostname",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let leaked = 77;
    nix::unistd::dup2(opened, leaked).unwrap();
    let _ = nix::unistd::close(opened);
    let b = Bundle::new();
    let id = unique_id("fds");
    let (code, out) = run_capture(&b, &id, "cd /proc/self/fd && echo fds=$(echo *)", |_| {});
    let _ = nix::unistd::close(leaked);
    assert_eq!(code, 0, "{out}");
    let fds: Vec<i32> = out
        .trim()
        .strip_prefix("fds=")
        .unwrap_or_default()
        .split(' ')
        .filter_map(|f| f.parse().ok())
        .collect();
    // 0, 1, 2 and the one the shell's glob opens on /proc/self/fd.
    assert!(!fds.contains(&leaked) && fds.len() <= 4, "{out}");
}
