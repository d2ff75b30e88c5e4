//! `berth-runc`: runc's command line as go-runc (containerd's shim) drives it, on a
//! `runc spec` bundle, next to runc itself where their answers can be compared. Root only
//! for the container verbs.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "containers_support/mod.rs"]
mod support;

use support::{busybox_tar, require_root, require_tool, BIN};

/// `DIR/berth-runc` linked to the berth binary.
fn berth_runc(dir: &Path) -> PathBuf {
    let link = dir.join("berth-runc");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    link
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

#[test]
fn version_is_in_runcs_three_line_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&berth_runc(dir.path()), &["--version"]);
    assert!(out.status.success());
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    // go-runc's parseVersion: "runc version " then "commit: " and "spec: " lines.
    assert!(lines[0].starts_with("runc version "), "{lines:?}");
    assert!(lines[1].starts_with("commit: "), "{lines:?}");
    assert_eq!(lines[2], "spec: 1.0.2-dev");
}

#[test]
fn features_has_runcs_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&berth_runc(dir.path()), &["features"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"pid".into()));
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&"CAP_SYS_ADMIN".into()));
    assert_eq!(v["linux"]["cgroup"]["v1"], true);
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert!(v["mountOptions"]
        .as_array()
        .unwrap()
        .contains(&"rbind".into()));
    // Every key runc's document has, berth's has too.
    if require_tool("features_has_runcs_shape", "runc") {
        let r: serde_json::Value =
            serde_json::from_slice(&run(Path::new("runc"), &["features"]).stdout).unwrap();
        for k in r.as_object().unwrap().keys() {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["hooks"], r["hooks"]);
        for k in r["linux"].as_object().unwrap().keys() {
            assert!(v["linux"].get(k).is_some(), "missing linux.{k}");
        }
    }
}

#[test]
fn errors_go_to_the_log_as_json_lines_like_runc() {
    let dir = tempfile::tempdir().unwrap();
    let bin = berth_runc(dir.path());
    let log = dir.path().join("log.json");
    let root = dir.path().join("root");
    let args = [
        "--root",
        root.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "delete",
        "nosuch",
    ];
    let out = run(&bin, &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "container does not exist");
    let line = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["level"], "error");
    assert_eq!(v["msg"], "container does not exist");
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    // delete --force of a missing container succeeds (the shim's cleanup relies on it).
    let mut forced = args.to_vec();
    forced.insert(7, "--force");
    assert!(run(&bin, &forced).status.success());
    // --systemd-cgroup is refused with a reason, not ignored.
    let out = run(
        &bin,
        &[
            "--root",
            root.to_str().unwrap(),
            "--systemd-cgroup",
            "state",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--systemd-cgroup is not supported"));
}

/// A `runc spec` bundle of busybox running `script`.
fn bundle(dir: &Path, script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let b = dir.join("bundle");
    let rootfs = b.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let mut ar = tar::Archive::new(std::fs::File::open(busybox_tar()).unwrap());
    ar.set_preserve_permissions(true);
    ar.unpack(&rootfs).unwrap();
    let out = Command::new(BIN)
        .args(["runtime", "spec", "-b"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = b.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    b
}

/// The lifecycle the shim drives, on berth-runc and on runc: create (pid file), state,
/// start, exec --process --detach, ps --format json, pause / state paused / resume,
/// update --resources -, events --stats, kill, delete; a systemd-form cgroupsPath lands
/// where systemd would put it.
#[test]
fn shim_lifecycle_matches_runc() {
    if !require_root("shim_lifecycle_matches_runc")
        || !require_tool("shim_lifecycle_matches_runc", "runc")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let berth = berth_runc(dir.path());
    let slice = format!("berthtest{}.slice", std::process::id());
    let b = bundle(dir.path(), "sleep 1000", |v| {
        v["linux"]["cgroupsPath"] = format!("{slice}:bt:c1").into();
    });
    let mut results = Vec::new();
    for (name, bin) in [("berth", berth.as_path()), ("runc", Path::new("runc"))] {
        let root = dir.path().join(format!("root-{name}"));
        let r = root.to_str().unwrap();
        let pidf = dir.path().join(format!("{name}.pid"));
        // runc's systemd form needs --systemd-cgroup: runc gets the cgroupfs path instead.
        if name == "runc" {
            let path = b.join("config.json");
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v["linux"]["cgroupsPath"] = format!("/{slice}/bt-c1.scope").into();
            std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        }
        let out = Command::new(bin)
            .args(["--root", r, "create", "--bundle"])
            .arg(&b)
            .arg("--pid-file")
            .arg(&pidf)
            .args(["--no-pivot", "--no-new-keyring", "c1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success(), "{name} create");
        let pid: i32 = std::fs::read_to_string(&pidf)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let state = |bin: &Path| -> serde_json::Value {
            serde_json::from_slice(&run(bin, &["--root", r, "state", "c1"]).stdout).unwrap()
        };
        let created = state(bin);
        assert_eq!(created["pid"], pid, "{name}");
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cgroup.contains(&format!("/{slice}/bt-c1.scope")),
            "{name}: {cgroup}"
        );
        assert!(run(bin, &["--root", r, "start", "c1"]).status.success());
        let proc_json = dir.path().join("process.json");
        std::fs::write(
            &proc_json,
            r#"{"terminal":false,"user":{"uid":0,"gid":0},"args":["sleep","999"],"cwd":"/","env":["PATH=/bin"]}"#,
        )
        .unwrap();
        let epid = dir.path().join(format!("{name}-exec.pid"));
        let out = Command::new(bin)
            .args(["--root", r, "exec", "--process"])
            .arg(&proc_json)
            .arg("--detach")
            .arg("--pid-file")
            .arg(&epid)
            .arg("c1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success(), "{name} exec");
        let exec_pid: i32 = std::fs::read_to_string(&epid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let ps: Vec<i32> = serde_json::from_slice(
            &run(bin, &["--root", r, "ps", "--format", "json", "c1"]).stdout,
        )
        .unwrap();
        assert!(
            ps.contains(&pid) && ps.contains(&exec_pid),
            "{name}: {ps:?}"
        );
        assert!(run(bin, &["--root", r, "pause", "c1"]).status.success());
        let paused = state(bin)["status"].clone();
        assert!(run(bin, &["--root", r, "resume", "c1"]).status.success());
        let resumed = state(bin)["status"].clone();
        let mut up = Command::new(bin)
            .args(["--root", r, "update", "--resources", "-", "c1"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            up.stdin
                .take()
                .unwrap()
                .write_all(br#"{"memory":{"limit":33554432}}"#)
                .unwrap();
        }
        assert!(up.wait().unwrap().success(), "{name} update");
        let ev: serde_json::Value =
            serde_json::from_slice(&run(bin, &["--root", r, "events", "--stats", "c1"]).stdout)
                .unwrap();
        assert!(run(bin, &["--root", r, "kill", "c1", "9"]).status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while state(bin)["status"] != "stopped" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let stopped = state(bin)["status"].clone();
        let again = run(bin, &["--root", r, "kill", "c1", "9"]);
        let exec_gone = !Path::new(&format!("/proc/{exec_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{exec_pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true);
        assert!(run(bin, &["--root", r, "delete", "c1"]).status.success());
        let after = run(bin, &["--root", r, "state", "c1"]);
        results.push((
            created["status"].clone(),
            paused,
            resumed,
            ev["type"].clone(),
            ev["data"]["memory"]["usage"]["limit"].clone(),
            stopped,
            text(&again.stderr).contains("container not running"),
            exec_gone,
            after.status.success(),
            text(&after.stderr).contains("does not exist"),
        ));
    }
    for d in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(d.path().join(&slice));
    }
    let berth = &results[0];
    assert_eq!(berth.0, "created");
    assert_eq!(berth.1, "paused");
    assert_eq!(berth.2, "running");
    assert_eq!(berth.3, "stats");
    assert_eq!(berth.4, 33554432);
    assert_eq!(berth.5, "stopped");
    assert!(
        berth.6,
        "kill of a stopped container says 'container not running'"
    );
    assert!(berth.7, "the exec'd process died with the init");
    assert!(!berth.8);
    assert!(berth.9);
    assert_eq!(
        results[0], results[1],
        "berth-runc (left) and runc (right) differ"
    );
}

/// cgroup v2 on this hybrid host: in a mount namespace of its own whose /sys/fs/cgroup is
/// the cgroup2 hierarchy alone, berth-runc sees a pure v2 layout. A systemd-form
/// cgroupsPath lands at systemd's path, `pause` freezes through `cgroup.freeze` (the kernel
/// reports `frozen 1`), `resume` thaws, `delete` removes the scope.
#[test]
fn v2_pause_and_systemd_cgroups_path() {
    if !require_root("v2_pause_and_systemd_cgroups_path")
        || !require_tool("v2_pause_and_systemd_cgroups_path", "unshare")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = berth_runc(dir.path());
    let slice = format!("berthv2x{}.slice", std::process::id());
    let b = bundle(dir.path(), "sleep 1000", |v| {
        v["linux"]["cgroupsPath"] = format!("{slice}:t:c1").into();
    });
    let script = format!(
        r#"set -e
mount -t cgroup2 none /sys/fs/cgroup
R="{bin} --root {root}"
$R run -d -b {bundle} c1 </dev/null >/dev/null 2>&1
P=$($R state c1 | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
echo "cgroup $(grep '^0::' /proc/$P/cgroup)"
$R pause c1
echo "paused $($R state c1 | grep -c '"status": "paused"') $(grep frozen /sys/fs/cgroup/{slice}/t-c1.scope/cgroup.events)"
$R resume c1
echo "resumed $($R state c1 | grep -c '"status": "running"') $(grep frozen /sys/fs/cgroup/{slice}/t-c1.scope/cgroup.events)"
$R delete -f c1
echo "scope left $(test -d /sys/fs/cgroup/{slice}/t-c1.scope && echo yes || echo no)"
rmdir /sys/fs/cgroup/{slice}
"#,
        bin = bin.display(),
        root = dir.path().join("root").display(),
        bundle = b.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(
        stdout,
        format!(
            "cgroup 0::/{slice}/t-c1.scope\npaused 1 frozen 1\nresumed 1 frozen 0\nscope left no"
        )
    );
    assert!(!Path::new("/sys/fs/cgroup/unified").join(&slice).exists());
}
