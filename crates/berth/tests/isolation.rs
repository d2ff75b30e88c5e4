//! Isolation as seen from inside a container started by `berth run` (issue 3,
//! "Isolation"): PID 1, hostname, capabilities, seccomp, masked and read-only paths, and
//! privileged operations that must fail.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

#[path = "containers_support/mod.rs"]
mod support;

use support::{stderr, stdout, Env};

fn run_sh(env: &Env, script: &str) -> (i32, String) {
    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn pid1_hostname_caps_seccomp() {
    let Some(env) = Env::for_root_test("pid1_hostname_caps_seccomp") else {
        return;
    };
    let out = env.berth(&[
        "run",
        "--name",
        "iso",
        "busybox",
        "sh",
        "-c",
        "echo pid=$$; hostname; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let id = env.inspect("iso", "{{.Id}}");
    assert!(text.contains("pid=1\n"), "{text}");
    assert!(
        text.contains(&format!("{}\n", &id[..12])),
        "hostname is not the short ID: {text}"
    );
    assert!(text.contains("CapEff:\t00000000a80425fb"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    env.ok(&["rm", "iso"]);
}

#[test]
fn masked_and_readonly_paths_and_forbidden_operations() {
    let Some(env) = Env::for_root_test("masked_and_readonly_paths_and_forbidden_operations") else {
        return;
    };
    // Masked files read empty (this kernel may lack /proc/kcore; check what the host has).
    for f in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if !std::path::Path::new(f).exists() {
            continue;
        }
        let (code, text) = run_sh(&env, &format!("wc -c < {f}"));
        assert_eq!((code, text.trim()), (0, "0"), "{f} is not masked");
    }
    let (code, _) = run_sh(&env, "echo 1 > /proc/sys/kernel/panic");
    assert_ne!(code, 0, "a write to /proc/sys succeeded");
    let (code, _) = run_sh(&env, "mount -t tmpfs none /mnt");
    assert_ne!(code, 0, "mount succeeded inside");
    let (code, _) = run_sh(&env, "unshare -m true");
    assert_ne!(code, 0, "unshare succeeded inside");
    let (code, text) = run_sh(&env, "ls /proc | grep -c '^[0-9]'");
    assert_eq!(code, 0);
    assert!(
        text.trim().parse::<u32>().unwrap_or(99) <= 3,
        "host processes visible: {text}"
    );
    let (code, text) = run_sh(&env, "ls /dev");
    assert_eq!(code, 0);
    assert!(
        !text.contains("sda") && !text.contains("vda") && text.contains("null"),
        "{text}"
    );
}

#[test]
fn user_workdir_env_readonly_and_tmpfs() {
    let Some(env) = Env::for_root_test("user_workdir_env_readonly_and_tmpfs") else {
        return;
    };
    let out = env.berth(&[
        "run", "--rm", "-u", "app", "-w", "/tmp", "-e", "GREETING=hi", "--read-only", "--tmpfs", "/scratch",
        "busybox", "sh", "-c",
        "id -u; id -G; pwd; echo $GREETING $HOME; touch /x 2>/dev/null && echo rootfs-writable; touch /scratch/y && echo tmpfs-ok",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000");
    assert!(
        lines[1].split(' ').any(|g| g == "10"),
        "supplementary group wheel missing: {}",
        lines[1]
    );
    assert_eq!(lines[2], "/tmp");
    assert_eq!(lines[3], "hi /home/app");
    assert!(
        !text.contains("rootfs-writable"),
        "--read-only rootfs was writable"
    );
    assert!(text.contains("tmpfs-ok"), "{text}");
}

#[test]
fn binds_capabilities_security_opts_and_terminals() {
    let Some(env) = Env::for_root_test("binds_capabilities_security_opts_and_terminals") else {
        return;
    };
    let host = env.dir.path().join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "hostfile\n").unwrap();
    let bind = format!("{}:/data:ro", host.display());
    let out = env.berth(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/f; echo x > /data/g 2>/dev/null || echo read-only",
    ]);
    assert_eq!(stdout(&out), "hostfile\nread-only\n", "{}", stderr(&out));
    let out = env.berth(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(stdout(&out).trim(), "CapEff:\t0000000000000000");
    let out = env.berth(&[
        "run",
        "--rm",
        "--cap-drop",
        "chown",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    // a80425fb without CHOWN (bit 0), with NET_ADMIN (bit 12).
    assert_eq!(stdout(&out).trim(), "CapEff:\t00000000a80435fa");
    let out = env.berth(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(stdout(&out).trim(), "Seccomp:\t0", "{}", stderr(&out));
    let out = env.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
        "--hostname",
        "myhost",
        "busybox",
        "sh",
        "-c",
        "hostname; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    assert_eq!(
        stdout(&out),
        "myhost\nNoNewPrivs:\t1\nSeccomp:\t0\n",
        "{}",
        stderr(&out)
    );
    let out = env.berth(&["run", "--rm", "-t", "busybox", "tty"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("/dev/pts/0"), "{}", stdout(&out));
    let mut child = env
        .cmd(&["run", "--rm", "-i", "busybox", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "through stdin\n");
}
