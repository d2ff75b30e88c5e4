//! Root-only tests: the container is isolated the way Docker's defaults say.

mod common;

use common::{require_root, run_capture, unique_id, Bundle};

#[test]
fn pid1_hostname_caps_seccomp() {
    if !require_root() {
        return;
    }
    let b = Bundle::new();
    let id = unique_id("iso");
    let (code, out) = run_capture(
        &b,
        &id,
        "echo pid=$$; echo host=$(hostname); grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; ps -o pid | wc -l",
        |_| {},
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains(&format!("host={id}\n")), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn show_environment() {
    if !require_root() {
        return;
    }
    let b = Bundle::new();
    let id = unique_id("show");
    let (code, out) = run_capture(&b, &id, "cat /proc/self/status | grep -E 'Cap|Secc|NoNew'; cat /proc/self/mountinfo; ls -la /dev; ulimit -n; ulimit -Hn; cat /proc/self/cgroup; id", |_| {});
    println!("{out}");
    assert_eq!(code, 0);
}
