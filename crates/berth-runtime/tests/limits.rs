//! Root-only tests of cgroup limits: memory (OOM kill detected), pids, CPU values.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use berth_runtime::oci::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};
use berth_runtime::{run, ContainerConfig};
use common::{require_root, unique_id, Bundle};

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn memory_limit_oom_kill_is_detected() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("oom");
    let mut spec = b.spec(&id, "exec dd if=/dev/zero of=/dev/shm/fill bs=1M count=100");
    // /dev/shm of the default spec is 64 MiB: make room for 100 MB.
    let mut mounts = spec.mounts().clone().unwrap();
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/dev/shm") {
            m.set_options(Some(vec![
                "nosuid".into(),
                "nodev".into(),
                "mode=1777".into(),
                "size=200m".into(),
            ]));
        }
    }
    spec.set_mounts(Some(mounts));
    let mem = LinuxMemoryBuilder::default()
        .limit(64i64 << 20)
        .swap(64i64 << 20)
        .build()
        .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .memory(mem)
            .build()
            .unwrap(),
    ));
    spec.set_linux(Some(linux));
    let mut c = run(ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec)).unwrap();
    let cg = c.cgroup().unwrap().clone();
    let memdir = cg.controller_dir("memory").unwrap().to_path_buf();
    if cg.v2 {
        assert_eq!(read(&memdir, "memory.max"), "67108864");
    } else {
        assert_eq!(read(&memdir, "memory.limit_in_bytes"), "67108864");
    }
    let st = c.wait().unwrap().unwrap();
    assert_eq!(st.code, 137, "killed by SIGKILL");
    assert!(c.oom_killed(), "OOM kill not detected");
    c.delete(false).unwrap();
    assert!(!memdir.exists());
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("pids");
    // Try to start 60 sleepers; with pids.max 20 forks fail.
    let script = "(for i in $(seq 60); do sleep 3 & done) 2>/dev/null; \
        d=/sys/fs/cgroup/pids; [ -e $d/pids.current ] || d=/sys/fs/cgroup; \
        read t < $d/pids.current; read ev < $d/pids.events; echo tasks=$t; echo events=$ev";
    let mut spec = b.spec(&id, script);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
            .build()
            .unwrap(),
    ));
    spec.set_linux(Some(linux));
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut cfg = ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec);
    cfg.stdio.stdout = Some(w);
    let mut c = run(cfg).unwrap();
    let cg = c.cgroup().unwrap().clone();
    assert_eq!(read(cg.controller_dir("pids").unwrap(), "pids.max"), "20");
    let mut out = String::new();
    use std::io::Read;
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    c.wait().unwrap();
    let tasks: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("tasks="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(tasks <= 20, "{out}");
    let refused: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("events=max "))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(refused > 0, "no fork was refused: {out}");
    c.delete(true).unwrap();
}

#[test]
fn cpu_and_memory_values_land_in_the_cgroup_files() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("cpu");
    let mut spec = b.spec(&id, "sleep 5");
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(128i64 << 20)
                .swap(256i64 << 20)
                .reservation(64i64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(100i64).build().unwrap())
        .build()
        .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    let c = run(ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec)).unwrap();
    let cg = c.cgroup().unwrap().clone();
    if cg.v2 {
        let d = cg.dirs[0].clone();
        assert_eq!(read(&d, "memory.max"), (128u64 << 20).to_string());
        assert_eq!(read(&d, "memory.swap.max"), (128u64 << 20).to_string());
        assert_eq!(read(&d, "memory.low"), (64u64 << 20).to_string());
        assert_eq!(
            read(&d, "cpu.weight"),
            berth_runtime::cgroups::shares_to_weight(512).to_string()
        );
        assert_eq!(read(&d, "cpu.max"), "50000 100000");
        assert_eq!(read(&d, "cpuset.cpus"), "0");
        assert_eq!(read(&d, "pids.max"), "100");
    } else {
        let m = cg.controller_dir("memory").unwrap();
        assert_eq!(read(m, "memory.limit_in_bytes"), (128u64 << 20).to_string());
        if m.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read(m, "memory.memsw.limit_in_bytes"),
                (256u64 << 20).to_string()
            );
        }
        assert_eq!(
            read(m, "memory.soft_limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        let cpu = cg.controller_dir("cpu").unwrap();
        assert_eq!(read(cpu, "cpu.shares"), "512");
        assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(
            read(cg.controller_dir("cpuset").unwrap(), "cpuset.cpus"),
            "0"
        );
        assert_eq!(read(cg.controller_dir("pids").unwrap(), "pids.max"), "100");
    }
    let stats = c.stats().unwrap();
    assert!(stats.memory_usage > 0 && stats.pids >= 1, "{stats:?}");
    assert_eq!(stats.memory_limit, Some(128 << 20));
    // The container's own process is in it.
    assert!(cg.pids().contains(&c.pid().as_raw()));
    c.delete(true).unwrap();
    for d in &cg.dirs {
        assert!(!d.exists());
    }
}
