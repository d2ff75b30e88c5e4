//! Root-only tests of device access on cgroup v2 (issue #3): the BPF device program built
//! from the spec's rules, attached to a real v2 cgroup (on a hybrid host, a directory of the
//! unified hierarchy, which takes device programs whatever its controllers), decides what a
//! process in it may mknod and open.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::cgroups::devices::{self, container_rules, DeviceRule};
use berth_runtime::cgroups::CgroupLayout;
use berth_runtime::oci::LinuxDeviceCgroup;
use common::{require_root, run_capture, unique_id, Bundle};

/// A v2 cgroup of the test's own, removed when dropped.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let root = match CgroupLayout::detect().unwrap() {
            CgroupLayout::V2 { root } => root,
            CgroupLayout::V1 {
                unified: Some(u), ..
            } => u,
            CgroupLayout::V1 { unified: None, .. } => {
                panic!("no cgroup v2 hierarchy mounted (pure v1 host): device programs need one")
            }
        };
        let dir = root.join(unique_id(name));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The shell that joined it has exited; the attached program goes with the directory.
        std::fs::remove_dir(&self.0).unwrap_or_else(|e| eprintln!("rmdir {:?}: {e}", self.0));
    }
}

/// Docker's device rules, as the default spec has them (deny all; the runtime adds the
/// standard devices).
fn docker_rules() -> Vec<DeviceRule> {
    let spec = berth_runtime::spec::default_spec(&["true"]);
    let res = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
    container_rules(res.devices().as_deref().unwrap()).unwrap()
}

fn rules(json: &str) -> Vec<DeviceRule> {
    let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
    spec.iter()
        .filter_map(|r| DeviceRule::from_oci(r).unwrap())
        .collect()
}

/// A block device that root opens outside any device program: a disk where the host lets
/// root open one, else a loop or zram device (`major`, `minor`). The node is made in `dir`
/// as `control` and opened: what the program must take away.
fn openable_block_device(dir: &Path) -> (u32, u32) {
    let mut names: Vec<_> = std::fs::read_dir("/sys/block")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Disks first.
    names.sort_by_key(|n| {
        (
            ["loop", "ram", "zram", "nbd"]
                .iter()
                .any(|p| n.starts_with(p)),
            n.clone(),
        )
    });
    let control = dir.join("control");
    for name in names {
        let dev = std::fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap();
        let (maj, min) = dev.trim().split_once(':').unwrap();
        let _ = std::fs::remove_file(&control);
        let st = Command::new("mknod")
            .arg(&control)
            .args(["b", maj, min])
            .status()
            .unwrap();
        assert!(st.success());
        if std::fs::File::open(&control).is_ok() {
            return (maj.parse().unwrap(), min.parse().unwrap());
        }
    }
    panic!("no block device in /sys/block that root can open here");
}

/// Runs `script` in `sh`, which first moves itself into the cgroup; stdout and stderr
/// together.
fn run_in(cg: &TestCgroup, dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo 0 > '{}/cgroup.procs' || exit 99\ncd '{}' || exit 98\n{script}",
            cg.0.display(),
            dir.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `verb name: ok` or `verb name: <error>`, one line per attempt.
const TRY: &str = r#"
t() { what="$1"; shift; if err=$("$@" 2>&1 >/dev/null); then echo "$what: ok"; else echo "$what: ${err##*: }"; fi; }
"#;

#[test]
fn docker_default_rules_refuse_a_block_device_and_dev_mem_in_a_v2_cgroup() {
    let Some(_serial) = require_root() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (maj, min) = openable_block_device(dir.path());

    let cg = TestCgroup::new("devices-docker");
    devices::attach(&cg.0, &docker_rules()).unwrap();
    let out = run_in(
        &cg,
        dir.path(),
        &format!(
            "{TRY}
t 'mknod disk' mknod disk b {maj} {min}
t 'mknod mem' mknod mem c 1 1
t 'mknod null' mknod null c 1 3
t 'read disk' head -c1 disk
t 'read control' head -c1 control
t 'read mem' head -c1 mem
t 'write null' sh -c 'echo hi > null'
t 'read null' head -c1 null
t 'read zero' head -c1 /dev/zero
t 'read full' head -c1 /dev/full
"
        ),
    );
    assert_eq!(
        out,
        "mknod disk: ok
mknod mem: ok
mknod null: ok
read disk: Operation not permitted
read control: Operation not permitted
read mem: Operation not permitted
write null: ok
read null: ok
read zero: ok
read full: ok
",
    );
}

#[test]
fn a_later_rule_overrides_an_earlier_one_per_access() {
    let Some(_serial) = require_root() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cg = TestCgroup::new("devices-order");
    // Everything, then no writes to /dev/zero, then no mknod at all; reads of 1:5 stay.
    devices::attach(
        &cg.0,
        &rules(
            r#"[{"allow": true, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "w"},
                {"allow": false, "type": "a", "access": "m"}]"#,
        ),
    )
    .unwrap();
    let out = run_in(
        &cg,
        dir.path(),
        &format!(
            "{TRY}
t 'mknod null' mknod null c 1 3
t 'read zero' head -c1 /dev/zero
t 'write zero' sh -c 'echo hi > /dev/zero'
t 'write null' sh -c 'echo hi > /dev/null'
"
        ),
    );
    assert_eq!(
        out,
        "mknod null: Operation not permitted
read zero: ok
write zero: Operation not permitted
write null: ok
"
    );
}

/// The whole runtime path on a hybrid host: with `BERTH_CGROUP_DEVICES=bpf` the container's
/// v1 devices cgroup is left open (`a *:* rwm`) and the program on its unified-hierarchy
/// directory is what refuses the disk; on a v2 host that is the default path.
#[test]
fn container_cannot_open_a_disk_node_it_made() {
    let Some(_serial) = require_root() else {
        return;
    };
    if !CgroupLayout::detect().unwrap().is_v2() {
        // Read by the runtime in this test's own process (nextest runs each test alone).
        std::env::set_var(devices::HYBRID_BPF_ENV, "bpf");
    }
    let scratch = tempfile::tempdir().unwrap();
    let (maj, min) = openable_block_device(scratch.path());
    let b = Bundle::new();
    let id = unique_id("devices");
    let (code, out) = run_capture(
        &b,
        &id,
        &format!(
            "cat /sys/fs/cgroup/devices/devices.list 2>/dev/null
mknod /tmp/sda b {maj} {min} && head -c1 /tmp/sda 2>&1; echo status=$?
mknod /tmp/null c 1 3 && echo hi > /tmp/null && echo null=ok"
        ),
        |_| {},
    );
    assert_eq!(code, 0, "{out}");
    let v1_open = if CgroupLayout::detect().unwrap().is_v2() {
        ""
    } else {
        "a *:* rwm\n"
    };
    assert_eq!(
        out,
        format!("{v1_open}head: /tmp/sda: Operation not permitted\nstatus=1\nnull=ok\n")
    );
}

/// The kernel's verifier takes the program of every subset of a rule pool (allow and deny,
/// wildcards first, last and in between), not only Docker's.
#[test]
fn the_verifier_takes_every_rule_combination() {
    let Some(_serial) = require_root() else {
        return;
    };
    let pool = rules(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "access": "r"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": false, "type": "b", "major": 8, "access": "rw"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "c", "minor": 3, "access": "w"},
            {"allow": true, "type": "b", "major": 4000000000, "minor": 7, "access": "w"}]"#,
    );
    for mask in 1u32..(1 << pool.len()) {
        let subset: Vec<DeviceRule> = (0..pool.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| pool[i])
            .collect();
        let insns: Vec<[u8; 8]> = devices::program(&subset)
            .unwrap()
            .iter()
            .map(devices::Insn::encode)
            .collect();
        let mut log = vec![0u8; 1 << 16];
        let loaded = berth_runtime::sys::bpf::prog_load(
            berth_runtime::sys::bpf::PROG_TYPE_CGROUP_DEVICE,
            &insns,
            "berth_test",
            Some(&mut log),
        );
        assert!(
            loaded.is_ok(),
            "{subset:?}: {loaded:?}\n{}",
            String::from_utf8_lossy(&log).trim_end_matches('\0')
        );
    }
}

/// A rule the kernel cannot take is one error naming it, on the v1 path and the BPF path,
/// and leaves no cgroup or state behind.
#[test]
fn a_bad_device_rule_is_refused_and_leaves_nothing() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    for bpf in [false, true] {
        if bpf {
            std::env::set_var(devices::HYBRID_BPF_ENV, "bpf");
        } else {
            std::env::remove_var(devices::HYBRID_BPF_ENV);
        }
        let id = unique_id("baddev");
        let mut spec = b.spec(&id, "true");
        let mut linux = spec.linux().clone().unwrap();
        let mut res = linux.resources().clone().unwrap();
        res.set_devices(Some(
            serde_json::from_str(
                r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwx"}]"#,
            )
            .unwrap(),
        ));
        linux.set_resources(Some(res));
        spec.set_linux(Some(linux));
        let err = berth_runtime::run(berth_runtime::ContainerConfig::new(
            &id,
            b.state_dir(&id),
            b.path(),
            spec,
        ))
        .map(|_| ())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cgroup: invalid device access (expected r, w, m): rwx",
            "bpf={bpf}"
        );
        assert!(!b.state_dir(&id).exists());
        for h in ["devices", "memory", "unified", ""] {
            let d = Path::new("/sys/fs/cgroup").join(h).join("berth").join(&id);
            assert!(!d.exists(), "{} left behind", d.display());
        }
    }
}
