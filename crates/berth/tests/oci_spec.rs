//! The OCI runtime spec where berth's runtime fell short (issue #16), driven through
//! `berth runtime create/start/run/state/delete` on `runc spec` bundles: hooks, rootfs
//! propagation, FIFO devices, namespaces joined by path (a Kubernetes pod's containers join
//! its sandbox's), no mount namespace, the cgroup fields beyond memory/cpu/pids, process
//! attributes, errnos; and the default PATH of images that `berth build` makes. Root only.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "containers_support/mod.rs"]
mod support;

use serde_json::{json, Value};
use support::{busybox_tar, BIN};

/// A bundle made by `berth runtime spec` with a busybox rootfs, and its own runroot.
struct Bundle {
    dir: tempfile::TempDir,
    runroot: tempfile::TempDir,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let mut ar = tar::Archive::new(std::fs::File::open(busybox_tar()).unwrap());
        ar.set_preserve_permissions(true);
        ar.unpack(&rootfs).unwrap();
        let b = Bundle {
            dir,
            runroot: tempfile::tempdir().unwrap(),
        };
        let out = b.berth(&["runtime", "spec", "-b", b.path().to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        std::fs::copy(
            b.path().join("config.json"),
            b.path().join("config.orig.json"),
        )
        .unwrap();
        b
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes config.json from `runc spec`'s: no terminal, `sh -c script`, then `extra`.
    fn configure(&self, script: &str, extra: impl FnOnce(&mut Value)) {
        let path = self.path().join("config.json");
        let orig = self.path().join("config.orig.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&orig).unwrap()).unwrap();
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = json!(["sh", "-c", script]);
        extra(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// Runs berth with output captured.
    fn berth(&self, args: &[&str]) -> Output {
        self.berth_with(args, true)
    }

    /// `create`/`start`: the container keeps the stdio it inherits, so stdout is /dev/null.
    fn berth_detached(&self, args: &[&str]) -> Output {
        self.berth_with(args, false)
    }

    fn berth_with(&self, args: &[&str], capture: bool) -> Output {
        let log = self.path().join("stderr.log");
        let mut cmd = Command::new(BIN);
        if !capture {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
        }
        let mut out = cmd
            .arg("--runroot")
            .arg(self.runroot.path())
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        if !capture {
            out.stderr = std::fs::read(&log).unwrap_or_default();
        }
        out
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_slice(&self.berth(&["runtime", "state", id]).stdout).unwrap_or(Value::Null)
    }

    /// Nothing left of container `id`: no state directory, no cgroup.
    fn assert_gone(&self, id: &str) {
        assert!(!self.runroot.path().join("runtime").join(id).exists());
        for c in ["memory", "pids", "cpu", "blkio", "unified", ""] {
            let d = Path::new("/sys/fs/cgroup").join(c).join("berth").join(id);
            assert!(!d.exists(), "{} left behind", d.display());
        }
    }
}

/// Kills and deletes a container when dropped (a failed assertion leaves nothing running).
struct Cleanup<'a>(&'a Bundle, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.berth(&["runtime", "delete", "--force", &self.1]);
    }
}

fn id(name: &str) -> String {
    format!("oci{}-{name}", std::process::id())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A hook appending `KIND <its stdin> <$HOOKVAR> <uts namespace>` to `log`.
fn logging_hook(kind: &str, log: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "echo \"{kind} $(cat) $HOOKVAR $(readlink /proc/self/ns/uts)\" >> {}",
            log.display()
        )],
        "env": ["HOOKVAR=hookenv"],
        "timeout": 10,
    })
}

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Each hook runs at its step with the state JSON on stdin, its own env, in the runtime's
/// namespaces or (createContainer, startContainer) the container's.
#[test]
fn hooks_run_at_each_step_with_the_state_on_stdin() {
    if !support::require_root("hooks_run_at_each_step_with_the_state_on_stdin") {
        return;
    }
    let b = Bundle::new();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    let id = id("hooks");
    // The container reports its own uts namespace, then waits to be killed.
    b.configure(
        "echo \"main $(readlink /proc/self/ns/uts)\" >> /hooklog/hooks.log; trap 'exit 0' TERM; while true; do sleep 0.05; done",
        |v| {
            v["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/hooklog", "type": "bind",
                "source": logdir.path(), "options": ["rbind", "rw"],
            }));
            // startContainer runs in the container: its path and log are the container's.
            let in_container = Path::new("/hooklog/hooks.log");
            v["hooks"] = json!({
                "prestart": [logging_hook("prestart", &log)],
                "createRuntime": [logging_hook("createRuntime", &log)],
                "createContainer": [logging_hook("createContainer", &log)],
                "startContainer": [logging_hook("startContainer", in_container)],
                "poststart": [logging_hook("poststart", &log)],
                "poststop": [logging_hook("poststop", &log)],
            });
        },
    );
    let _cleanup = Cleanup(&b, id.clone());
    let out = b.berth_detached(&[
        "runtime",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    let ctr_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_ne!(host_uts, ctr_uts);
    let lines = log_lines(&log);
    let kinds: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        ["prestart", "createRuntime", "createContainer"],
        "{lines:#?}"
    );
    for l in &lines {
        let (_, rest) = l.split_once(' ').unwrap();
        let json_end = rest.rfind('}').unwrap() + 1;
        let state: Value = serde_json::from_str(&rest[..json_end]).unwrap();
        assert_eq!(state["id"], id.as_str());
        assert_eq!(state["status"], "creating");
        assert_eq!(state["pid"], pid);
        assert_eq!(Path::new(state["bundle"].as_str().unwrap()), b.path());
        let tail: Vec<&str> = rest[json_end..].split_whitespace().collect();
        assert_eq!(tail[0], "hookenv", "{l}");
        // createContainer is in the container's namespaces, the others in the runtime's.
        let want = if l.starts_with("createContainer") {
            &ctr_uts
        } else {
            &host_uts
        };
        assert_eq!(Path::new(tail[1]), want, "{l}");
    }
    let out = b.berth_detached(&["runtime", "start", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(support::eventually(10, || log_lines(&log).len() >= 6));
    let lines = log_lines(&log);
    let kinds: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    // poststart runs once the command was exec'd: "main" may land before or after it.
    assert_eq!(
        &kinds[..4],
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer"
        ],
        "{lines:#?}"
    );
    assert!(
        kinds[4..].contains(&"main") && kinds[4..].contains(&"poststart"),
        "{lines:#?}"
    );
    assert!(lines[3].contains("\"status\":\"created\""), "{}", lines[3]);
    assert!(
        lines[3].ends_with(&format!("hookenv {}", ctr_uts.display())),
        "{}",
        lines[3]
    );
    let poststart = lines.iter().find(|l| l.starts_with("poststart")).unwrap();
    assert!(poststart.contains("\"status\":\"running\""), "{poststart}");
    assert!(b.berth(&["runtime", "kill", &id, "KILL"]).status.success());
    assert!(support::eventually(10, || b.state(&id)["status"] == "stopped"));
    let out = b.berth(&["runtime", "delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log_lines(&log);
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("poststop ") && last.contains("\"status\":\"stopped\""),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 7, "{lines:#?}");
    b.assert_gone(&id);
}

/// A failing create hook is an error: the container is torn down, poststop runs, nothing is
/// left; a hook past its timeout is killed; a failing poststart is only a warning.
#[test]
fn a_failing_create_hook_stops_the_container_and_runs_poststop() {
    if !support::require_root("a_failing_create_hook_stops_the_container_and_runs_poststop") {
        return;
    }
    let b = Bundle::new();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    for (kind, failing) in [
        (
            "prestart",
            json!({"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 3"]}),
        ),
        (
            "createRuntime",
            json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}),
        ),
        ("createContainer", json!({"path": "/no/such/hook"})),
        (
            "createRuntime",
            json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}),
        ),
    ] {
        let _ = std::fs::remove_file(&log);
        b.configure("echo should not run", |v| {
            v["hooks"] = json!({
                kind: [failing.clone()],
                "poststop": [logging_hook("poststop", &log)],
            });
        });
        let id = id(&format!("fail-{kind}"));
        let _cleanup = Cleanup(&b, id.clone());
        let started = std::time::Instant::now();
        let out = b.berth_detached(&[
            "runtime",
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ]);
        assert!(!out.status.success(), "{kind}: create succeeded");
        let err = stderr(&out);
        assert!(err.contains(&format!("{kind} hook #0")), "{kind}: {err}");
        if failing.get("timeout").is_some() {
            assert!(err.contains("timed out"), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        } else if kind == "prestart" {
            assert!(
                err.contains("exited with status 3") && err.contains("no way"),
                "{err}"
            );
        }
        let lines = log_lines(&log);
        assert_eq!(lines.len(), 1, "{kind}: poststop ran once: {lines:#?}");
        assert!(lines[0].contains("\"status\":\"stopped\""), "{lines:#?}");
        let out = b.berth(&["runtime", "state", &id]);
        assert!(!out.status.success());
        b.assert_gone(&id);
    }
    // A failing poststart: a warning, the container runs to its end.
    b.configure("echo ran; exit 3", |v| {
        v["hooks"] = json!({"poststart": [{"path": "/bin/false"}]});
    });
    let id = id("poststart");
    let out = b.berth(&["runtime", "run", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    assert!(
        stderr(&out).contains("poststart hook #0"),
        "{}",
        stderr(&out)
    );
    b.assert_gone(&id);
}

/// `rootfsPropagation: shared` made create fail with `pivot_root: Invalid argument`.
#[test]
fn rootfs_propagation_is_applied() {
    if !support::require_root("rootfs_propagation_is_applied") {
        return;
    }
    let b = Bundle::new();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for prop in [
        "shared", "rshared", "slave", "rslave", "private", "rprivate",
    ] {
        b.configure("awk '$5 == \"/\"' /proc/self/mountinfo", |v| {
            v["linux"]["rootfsPropagation"] = prop.into();
        });
        let id = id(&format!("prop-{prop}"));
        let out = b.berth(&["runtime", "run", &id]);
        assert!(out.status.success(), "{prop}: {}", stderr(&out));
        let root = stdout(&out);
        let optional = root.split(" - ").next().unwrap();
        assert_eq!(
            optional.contains("shared:"),
            prop.ends_with("shared"),
            "{prop}: {root}"
        );
        b.assert_gone(&id);
    }
    // Nothing propagated out to the host: no mount left under this bundle's directories
    // (other tests running at the same time mount and unmount elsewhere).
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mine = [b.dir.path().to_path_buf(), b.runroot.path().to_path_buf()];
    let points = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|p| mine.iter().any(|d| std::path::Path::new(p).starts_with(d)))
            .collect();
        v.sort();
        v
    };
    assert_eq!(points(&before), points(&after));
}

/// `type: p` in linux.devices was refused.
#[test]
fn fifo_devices_are_created() {
    if !support::require_root("fifo_devices_are_created") {
        return;
    }
    let b = Bundle::new();
    b.configure(
        "ls -l /dev/myfifo; echo through > /dev/myfifo & cat /dev/myfifo",
        |v| {
            v["linux"]["devices"] = json!([
                {"path": "/dev/myfifo", "type": "p", "fileMode": 0o640, "uid": 0, "gid": 0}
            ]);
        },
    );
    let id = id("fifo");
    let out = b.berth(&["runtime", "run", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("prw-r-----"), "{text}");
    assert!(text.ends_with("through\n"), "{text}");
    b.assert_gone(&id);
}

/// A Kubernetes pod: a sandbox container owns the network, ipc, uts and pid namespaces;
/// the app container joins them by path (`shareProcessNamespace`), with its own mounts,
/// and its exit status still comes back.
#[test]
fn pod_containers_join_the_sandbox_namespaces_by_path() {
    if !support::require_root("pod_containers_join_the_sandbox_namespaces_by_path") {
        return;
    }
    let sandbox = Bundle::new();
    sandbox.configure("trap 'exit 0' TERM; while true; do sleep 0.05; done", |v| {
        v["hostname"] = "pod-sandbox".into();
    });
    let sid = id("sandbox");
    let _cleanup = Cleanup(&sandbox, sid.clone());
    let out = sandbox.berth_detached(&["runtime", "run", "--detach", &sid]);
    let out = if out.status.success() {
        out
    } else {
        // `run --detach` may not exist: create + start.
        let out = sandbox.berth_detached(&[
            "runtime",
            "create",
            "--bundle",
            sandbox.path().to_str().unwrap(),
            &sid,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        sandbox.berth_detached(&["runtime", "start", &sid])
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let spid = sandbox.state(&sid)["pid"].as_i64().unwrap();
    let app = Bundle::new();
    app.configure(
        "hostname; for n in net ipc pid; do readlink /proc/self/ns/$n; done; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 7",
        |v| {
            v["hostname"] = Value::Null;
            v["linux"]["namespaces"] = json!([
                {"type": "pid", "path": format!("/proc/{spid}/ns/pid")},
                {"type": "network", "path": format!("/proc/{spid}/ns/net")},
                {"type": "ipc", "path": format!("/proc/{spid}/ns/ipc")},
                {"type": "uts", "path": format!("/proc/{spid}/ns/uts")},
                {"type": "mount"},
            ]);
        },
    );
    let aid = id("app");
    let out = app.berth(&["runtime", "run", &aid]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pod-sandbox", "{text}");
    for (i, ns) in ["net", "ipc", "pid"].iter().enumerate() {
        let want = std::fs::read_link(format!("/proc/{spid}/ns/{ns}")).unwrap();
        assert_eq!(Path::new(lines[1 + i]), want, "{ns}: {text}");
    }
    // The sandbox's process is pid 1 of the shared pid namespace.
    assert!(lines[4].starts_with("sh -c trap"), "{text}");
    app.assert_gone(&aid);
    // The sandbox is untouched.
    assert_eq!(sandbox.state(&sid)["status"], "running");
}

/// A mount namespace joined by path (one persisted by `unshare --mount=FILE`), and a
/// container without a mount namespace at all (it chroots; mounts are refused, since they
/// would be the host's).
#[test]
fn mount_namespace_by_path_and_none() {
    if !support::require_root("mount_namespace_by_path_and_none")
        || !support::require_tool("mount_namespace_by_path_and_none", "unshare")
    {
        return;
    }
    let b = Bundle::new();
    // A persisted mount namespace: a private bind of a directory holds the ns file.
    let nsdir = tempfile::tempdir().unwrap();
    let holder = nsdir.path().join("holder");
    std::fs::create_dir(&holder).unwrap();
    let st = Command::new("mount")
        .args(["--bind"])
        .arg(&holder)
        .arg(&holder)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("mount")
        .args(["--make-private"])
        .arg(&holder)
        .status()
        .unwrap();
    assert!(st.success());
    let nsfile = holder.join("mnt");
    std::fs::write(&nsfile, "").unwrap();
    let st = Command::new("unshare")
        .arg(format!("--mount={}", nsfile.display()))
        .args(["--propagation", "private", "true"])
        .status()
        .unwrap();
    assert!(st.success());
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    b.configure("readlink /proc/self/ns/mnt", |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "mount");
        ns.push(json!({"type": "mount", "path": nsfile}));
    });
    let id1 = id("mntns");
    let out = b.berth(&["runtime", "run", &id1]);
    let _ = Command::new("umount").arg("-l").arg(&nsfile).status();
    let _ = Command::new("umount").arg("-l").arg(&holder).status();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = stdout(&out);
    assert!(seen.trim().starts_with("mnt:["), "{seen}");
    assert_ne!(Path::new(seen.trim()), host_mnt, "{seen}");
    b.assert_gone(&id1);

    // No mount namespace: the process sees the rootfs as / and nothing is mounted.
    std::fs::write(b.path().join("rootfs/marker"), "in rootfs\n").unwrap();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    b.configure(
        "cat /marker; readlink /proc/1/ns/mnt 2>/dev/null || echo no-proc",
        |v| {
            let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "mount");
            v["mounts"] = json!([]);
            v["linux"]["maskedPaths"] = json!([]);
            v["linux"]["readonlyPaths"] = json!([]);
            v["root"]["readonly"] = false.into();
        },
    );
    let id2 = id("nomntns");
    let out = b.berth(&["runtime", "run", &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in rootfs\nno-proc\n");
    assert_eq!(
        before,
        std::fs::read_to_string("/proc/self/mountinfo").unwrap()
    );
    b.assert_gone(&id2);
    // With mounts asked for, a clear refusal (they would be the host's).
    b.configure("true", |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "mount");
    });
    let out = b.berth(&["runtime", "run", &id2]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("need a mount namespace"),
        "{}",
        stderr(&out)
    );
    b.assert_gone(&id2);
}

/// The major:minor of the block device holding `/`, if it is one.
fn root_block_device() -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dev = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))?
        .split(' ')
        .nth(2)?
        .to_string();
    let (major, minor) = dev.split_once(':')?;
    let kind = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).ok()?;
    kind.contains("DEVTYPE=disk")
        .then(|| format!("{major}:{minor}"))
}

/// blockIO, network, hugepageLimits, kernel memory: written where the host has the files,
/// refused clearly where not (they were ignored silently).
#[test]
fn cgroup_fields_are_applied_or_refused() {
    if !support::require_root("cgroup_fields_are_applied_or_refused") {
        return;
    }
    let b = Bundle::new();
    let v1 = Path::new("/sys/fs/cgroup/blkio").is_dir();
    if let (Some(dev), true) = (root_block_device(), v1) {
        let (major, minor) = dev.split_once(':').unwrap();
        let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
        b.configure(
            "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device",
            |v| {
                v["linux"]["resources"]["blockIO"] = json!({
                    "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
                });
            },
        );
        let id = id("blkio");
        let out = b.berth(&["runtime", "run", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{dev} 1048576\n{dev} 300\n"));
        b.assert_gone(&id);
    }
    // Kernel memory: applied where the kernel still enforces it, refused where it takes the
    // write and ignores it (Linux 5.16 and later) or has no such file (v2).
    b.configure(
        "cat /sys/fs/cgroup/memory/memory.kmem.limit_in_bytes",
        |v| {
            v["linux"]["resources"]["memory"] = json!({"kernel": 67108864});
        },
    );
    let id_k = id("kmem");
    let out = b.berth(&["runtime", "run", &id_k]);
    if out.status.success() {
        assert_eq!(stdout(&out), "67108864\n");
    } else {
        let err = stderr(&out);
        assert!(
            err.contains("memory.kernel") && err.contains("unsupported"),
            "{err}"
        );
    }
    b.assert_gone(&id_k);
    // What this host lacks is refused by name, with nothing left behind.
    let missing = |c: &str| !Path::new("/sys/fs/cgroup").join(c).exists();
    let mut cases = vec![];
    if missing("net_cls") {
        cases.push(("network.classID", json!({"network": {"classID": 1048577}})));
    }
    if missing("net_prio") {
        cases.push((
            "network.priorities",
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
        ));
    }
    if missing("hugetlb") {
        cases.push((
            "hugepageLimits",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1048576}]}),
        ));
    }
    if !Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        && !Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists()
    {
        cases.push(("blockIO.weight", json!({"blockIO": {"weight": 500}})));
    }
    assert!(
        !cases.is_empty() || !v1,
        "this host supports every field: nothing to refuse"
    );
    for (field, res) in cases {
        b.configure("echo ran", |v| {
            for (k, val) in res.as_object().unwrap() {
                v["linux"]["resources"][k] = val.clone();
            }
        });
        let id = id("refuse");
        let out = b.berth(&["runtime", "run", &id]);
        assert!(
            !out.status.success(),
            "{field} was accepted: {}",
            stdout(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains(field) && err.contains("unsupported"),
            "{field}: {err}"
        );
        assert_eq!(stdout(&out), "");
        b.assert_gone(&id);
    }
}

/// personality, ioPriority and scheduler are honoured; AppArmor, SELinux and Intel RDT are
/// refused by name where the host has none.
#[test]
fn process_attributes_are_honoured_or_refused() {
    if !support::require_root("process_attributes_are_honoured_or_refused") {
        return;
    }
    let b = Bundle::new();
    b.configure(
        "uname -m; trap 'exit 0' TERM; while true; do sleep 0.05; done",
        |v| {
            v["linux"]["personality"] = json!({"domain": "LINUX32"});
            v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
            v["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
        },
    );
    let id1 = id("attrs");
    let _cleanup = Cleanup(&b, id1.clone());
    let out = b.berth_detached(&[
        "runtime",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &id1,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = b.state(&id1)["pid"].as_i64().unwrap().to_string();
    let ionice = Command::new("ionice").args(["-p", &pid]).output().unwrap();
    assert_eq!(stdout(&ionice).trim(), "idle");
    let chrt = Command::new("chrt").args(["-p", &pid]).output().unwrap();
    assert!(stdout(&chrt).contains("SCHED_BATCH"), "{}", stdout(&chrt));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let nice: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split(' ')
        .nth(17)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(nice, 5);
    assert!(b.berth(&["runtime", "kill", &id1, "KILL"]).status.success());
    assert!(support::eventually(10, || b.state(&id1)["status"] == "stopped"));
    assert!(b.berth(&["runtime", "delete", &id1]).status.success());
    // The personality reaches the command: a 32-bit machine name.
    b.configure("uname -m", |v| {
        v["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    let id2 = id("linux32");
    let out = b.berth(&["runtime", "run", &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(stdout(&out).trim(), "i686");
    }
    b.assert_gone(&id2);
    let mut refusals: Vec<(&str, Value)> = vec![];
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map_or(true, |s| s.trim() != "Y")
    {
        refusals.push((
            "AppArmor is not enabled",
            json!({"process": {"apparmorProfile": "berth-test"}}),
        ));
    }
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        refusals.push((
            "SELinux is not enabled",
            json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
        ));
    }
    refusals.push((
        "linux.intelRdt",
        json!({"linux": {"intelRdt": {"closID": "berth", "l3CacheSchema": "L3:0=f"}}}),
    ));
    for (want, patch) in refusals {
        b.configure("echo ran", |v| {
            for (section, fields) in patch.as_object().unwrap() {
                for (k, val) in fields.as_object().unwrap() {
                    v[section][k] = val.clone();
                }
            }
        });
        let id = id("refused");
        let out = b.berth(&["runtime", "run", &id]);
        assert!(!out.status.success(), "{want}: ran");
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
        b.assert_gone(&id);
    }
}

/// A capability failure reported `Input/output error` (the errno lost on the way).
#[test]
fn a_capability_failure_keeps_its_errno() {
    if !support::require_root("a_capability_failure_keeps_its_errno") {
        return;
    }
    let b = Bundle::new();
    // An inheritable capability outside the bounding set cannot be set: EPERM.
    b.configure("echo ran", |v| {
        v["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_SYS_ADMIN"],
        });
    });
    let id = id("caps");
    let out = b.berth(&["runtime", "run", &id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(!err.contains("Input/output error"), "{err}");
    b.assert_gone(&id);
}

/// `runc spec` bundles keep working as before (hooks and all are optional).
#[test]
fn runc_spec_bundle_still_runs() {
    if !support::require_root("runc_spec_bundle_still_runs") {
        return;
    }
    let b = Bundle::new();
    b.configure("echo hello from $(hostname)", |_| {});
    let id = id("plain");
    let out = b.berth(&["runtime", "run", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from runc\n");
    b.assert_gone(&id);
}

/// Images that `berth build` makes get Docker's default PATH when the base has none (an
/// imported rootfs here), so runc runs their `sh -c` CMD (it looks commands up in the
/// config's PATH only).
#[test]
fn built_images_get_the_default_path_and_run_under_runc() {
    if !support::require_root("built_images_get_the_default_path_and_run_under_runc") {
        return;
    }
    let env = support::Env::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCMD [\"sh\", \"-c\", \"echo built image runs\"]\n",
    )
    .unwrap();
    env.ok(&[
        "build",
        "-q",
        "-t",
        "oci16-path:1",
        ctx.path().to_str().unwrap(),
    ]);
    let inspect: Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "oci16-path:1"])).unwrap();
    let config = &inspect[0]["Config"];
    let envs: Vec<String> = serde_json::from_value(config["Env"].clone()).unwrap();
    assert!(
        envs.contains(
            &"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        ),
        "{envs:?}"
    );
    let cmd: Vec<String> = serde_json::from_value(config["Cmd"].clone()).unwrap();
    // The image's rootfs (busybox) with its config, as containerd would hand it to runc.
    let b = Bundle::new();
    b.configure("unused", |v| {
        v["process"]["args"] = json!(cmd);
        v["process"]["env"] = json!(envs);
    });
    let runc_present = Command::new("runc").arg("--version").output().is_ok();
    if std::env::var_os("CI").is_some() {
        assert!(runc_present, "runc is not installed");
    }
    if runc_present {
        let runc_root = tempfile::tempdir().unwrap();
        let out = Command::new("runc")
            .arg("--root")
            .arg(runc_root.path())
            .args(["run", &id("runc-path")])
            .current_dir(b.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "runc: {}", stderr(&out));
        assert_eq!(stdout(&out), "built image runs\n");
    }
    let out = b.berth(&["runtime", "run", &id("berth-path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "built image runs\n");
    let _ = PathBuf::new();
}
