//! Root-only tests of the lifecycle: create/start/state/kill/delete, run, exec, pty, errors.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::time::Duration;

use berth_runtime::{create, run, Console, Container, ContainerConfig, ErrorKind, Signal, Status};
use common::{require_root, unique_id, Bundle};

fn cgroup_dirs_gone(c: &Container) -> Vec<std::path::PathBuf> {
    c.cgroup().unwrap().dirs.clone()
}

#[test]
fn create_start_kill_delete() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("life");
    let cfg = ContainerConfig::new(
        &id,
        b.state_dir(&id),
        b.path(),
        b.spec(&id, "trap 'exit 7' TERM; while true; do sleep 0.05; done"),
    );
    let mut c = create(cfg).unwrap();
    assert_eq!(c.status(), Status::Created);
    let dirs = cgroup_dirs_gone(&c);
    // A second container with the same ID is refused.
    let dup = create(ContainerConfig::new(
        &id,
        b.state_dir(&id),
        b.path(),
        b.spec(&id, "true"),
    ));
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::AlreadyExists);
    // Another process's view: load from the state dir.
    let mut other = Container::load(&b.state_dir(&id)).unwrap();
    assert_eq!(other.state().status, Status::Created);
    c.start().unwrap();
    assert_eq!(c.status(), Status::Running);
    assert_eq!(c.start().unwrap_err().kind(), ErrorKind::Conflict);
    let again = Container::load(&b.state_dir(&id)).unwrap();
    assert_eq!(again.delete(false).unwrap_err().kind(), ErrorKind::Conflict);
    std::thread::sleep(Duration::from_millis(100));
    c.kill(Signal::SIGTERM, false).unwrap();
    let st = c.wait().unwrap().unwrap();
    assert_eq!(st.code, 7);
    assert_eq!(c.status(), Status::Stopped);
    c.delete(false).unwrap();
    assert!(!b.state_dir(&id).exists());
    for d in dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    assert_eq!(
        Container::load(&b.state_dir(&id)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn force_delete_kills_a_running_container() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("force");
    let c = run(ContainerConfig::new(
        &id,
        b.state_dir(&id),
        b.path(),
        b.spec(&id, "sleep 60"),
    ))
    .unwrap();
    let pid = c.pid();
    let dirs = cgroup_dirs_gone(&c);
    // Delete from another handle, as `berth runtime delete -f` would.
    Container::load(&b.state_dir(&id))
        .unwrap()
        .delete(true)
        .unwrap();
    drop(c);
    let _ = nix::sys::wait::waitpid(pid, None);
    assert!(!b.state_dir(&id).exists());
    for d in dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

#[test]
fn missing_and_non_executable_commands_leave_nothing() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    std::fs::write(b.rootfs().join("noexec"), "#!/bin/sh\n").unwrap();
    for (args, kind) in [
        (vec!["/nonexistent"], ErrorKind::CommandNotFound),
        (vec!["nosuchcmd"], ErrorKind::CommandNotFound),
        (vec!["/noexec"], ErrorKind::CommandNotExecutable),
    ] {
        let id = unique_id("bad");
        let mut spec = b.spec(&id, "true");
        let mut p = spec.process().clone().unwrap();
        p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        spec.set_process(Some(p));
        let err = run(ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec)).unwrap_err();
        assert_eq!(err.kind(), kind, "{args:?}: {err}");
        assert!(!b.state_dir(&id).exists());
        assert!(!std::path::Path::new("/sys/fs/cgroup/memory/berth")
            .join(&id)
            .exists());
        assert!(!std::path::Path::new("/sys/fs/cgroup/berth")
            .join(&id)
            .exists());
    }
    // A bad spec is refused before anything is made.
    let id = unique_id("badspec");
    let mut spec = b.spec(&id, "true");
    spec.set_root(None);
    assert_eq!(
        run(ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        run(ContainerConfig::new(
            "../x",
            b.state_dir("x"),
            b.path(),
            b.spec("x", "true")
        ))
        .unwrap_err()
        .kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("exec");
    let mut c = run(ContainerConfig::new(
        &id,
        b.state_dir(&id),
        b.path(),
        b.spec(&id, "echo marker > /tmp/m; sleep 60"),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut p = b.spec(&id, "echo host=$(hostname) pid=$$ ns=$(cat /tmp/m); grep -E '^(CapEff|Seccomp):' /proc/self/status; grep -E '(memory|^0:):' /proc/self/cgroup | head -1; ls /proc | grep -c '^[0-9]'").process().clone().unwrap();
    p.set_env(Some(vec!["PATH=/bin:/usr/bin".into()]));
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let stdio = berth_runtime::Stdio {
        stdout: Some(w),
        ..Default::default()
    };
    let e = c.exec(&p, stdio, None).unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert_eq!(e.wait().unwrap().code, 0);
    assert!(out.contains(&format!("host={id}")), "{out}");
    assert!(out.contains("ns=marker"), "{out}");
    assert!(!out.contains("pid=1 "), "{out}");
    assert!(
        out.contains("CapEff:\t00000000a80425fb") && out.contains("Seccomp:\t2"),
        "{out}"
    );
    assert!(
        out.contains("memory:/\n") || out.contains("0::/\n"),
        "in the container's cgroup namespace root: {out}"
    );
    // exec of a missing command is an error, not a process.
    let mut bad = p.clone();
    bad.set_args(Some(vec!["nope".into()]));
    assert_eq!(
        c.exec(&bad, Default::default(), None).unwrap_err().kind(),
        ErrorKind::CommandNotFound
    );
    c.kill(Signal::SIGKILL, false).unwrap();
    assert_eq!(c.wait().unwrap().unwrap().code, 137);
    c.delete(false).unwrap();
}

/// Lines of `/proc/PID/cgroup` (host view) that do not name the container's cgroup.
fn cgroup_lines_elsewhere(pid: i32, id: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter(|l| !l.ends_with(&format!("/berth/{id}")))
        .map(String::from)
        .collect()
}

/// The init moves itself into the cgroup (v1 `tasks`; clone3 into the v2 one), sets its own
/// oom_score_adj, and so does an exec'd process: every hierarchy, including a hybrid host's
/// unified one, holds both.
#[test]
fn init_and_exec_are_in_every_hierarchy_of_the_cgroup() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("cgjoin");
    let mut spec = b.spec(&id, "sleep 60");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_oom_score_adj(Some(321));
    let mut c = run(ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec)).unwrap();
    let pid = c.pid().as_raw();
    assert_eq!(cgroup_lines_elsewhere(pid, &id), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "321"
    );
    let p = b.spec(&id, "sleep 60").process().clone().unwrap();
    let e = c.exec(&p, Default::default(), None).unwrap();
    assert_eq!(
        cgroup_lines_elsewhere(e.pid.as_raw(), &id),
        Vec::<String>::new()
    );
    c.kill(Signal::SIGKILL, true).unwrap();
    let _ = e.wait();
    let _ = c.wait();
    c.delete(true).unwrap();
}

#[test]
fn terminal_gets_a_pty_master() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("pty");
    let mut spec = b.spec(&id, "tty; stty size");
    let mut p = spec.process().clone().unwrap();
    p.set_terminal(Some(true));
    p.set_console_size(Some(
        berth_runtime::oci::BoxBuilder::default()
            .height(33u64)
            .width(101u64)
            .build()
            .unwrap(),
    ));
    spec.set_process(Some(p));
    let mut cfg = ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec);
    cfg.console = Some(Console::Return);
    let mut c = run(cfg).unwrap();
    let master = c.take_pty_master().expect("pty master");
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Read until the slave side closes (EIO).
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out);
    assert_eq!(c.wait().unwrap().unwrap().code, 0);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("33 101"), "{out}");
    c.delete(false).unwrap();
}

#[test]
fn concurrent_runs_from_a_multithreaded_caller() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = std::sync::Arc::new(Bundle::new());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A thread that keeps the allocator busy, as a builder's other stages would.
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut v: Vec<Vec<u8>> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                v.push(vec![1u8; 4096]);
                if v.len() > 256 {
                    v.clear();
                }
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let id = unique_id(&format!("mt{t}-{i}"));
                    let cfg = ContainerConfig::new(
                        &id,
                        b.state_dir(&id),
                        b.path(),
                        b.spec(&id, "exit 3"),
                    );
                    let mut c = run(cfg).unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(c.wait().unwrap().unwrap().code, 3);
                    c.delete(false).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

#[test]
fn console_socket_receives_the_pty_master() {
    let Some(_serial) = require_root() else {
        return;
    };
    let b = Bundle::new();
    let id = unique_id("consock");
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        use std::os::fd::AsFd;
        let (conn, _) = listener.accept().unwrap();
        let (master, name) = berth_runtime::pty::recv_fd(conn.as_fd()).unwrap();
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (
            String::from_utf8_lossy(&name).into_owned(),
            String::from_utf8_lossy(&out).into_owned(),
        )
    });
    let mut spec = b.spec(&id, "echo on-a-tty; tty");
    let mut p = spec.process().clone().unwrap();
    p.set_terminal(Some(true));
    spec.set_process(Some(p));
    let mut cfg = ContainerConfig::new(&id, b.state_dir(&id), b.path(), spec);
    cfg.console = Some(Console::Socket(sock_path));
    let mut c = create(cfg).unwrap();
    c.start().unwrap();
    assert_eq!(c.wait().unwrap().unwrap().code, 0);
    let (name, out) = receiver.join().unwrap();
    assert_eq!(name, "/dev/pts/0");
    assert!(
        out.contains("on-a-tty") && out.contains("/dev/pts/0"),
        "{out}"
    );
    c.delete(false).unwrap();
}
