//! Small gaps versus Docker in the lifecycle and build CLI, each as the user sees it:
//! exec's error statuses, inspect's template errors, the exec/run pty size, `start -a`,
//! streaming `stats`, build errors and Ctrl-C during a build.

#[path = "containers_support/mod.rs"]
mod support;

use support::{stderr, stdout, Env};

#[test]
fn exec_failures_exit_126_or_127_with_runcs_message() {
    let Some(env) = Env::for_root_test("exec_failures_exit_126_or_127_with_runcs_message") else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "parity-exec",
        "busybox",
        "sleep",
        "60",
    ]);
    let prefix = "OCI runtime exec failed: exec failed: unable to start container process: ";
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["-w", "/nonexistent", "parity-exec", "true"],
            126,
            "chdir to cwd (\"/nonexistent\") set in config.json failed: no such file or directory",
        ),
        (
            &["parity-exec", "nosuchcommand"],
            127,
            "exec: \"nosuchcommand\": executable file not found in $PATH",
        ),
        (
            &["parity-exec", "/no/such/binary"],
            127,
            "exec: \"/no/such/binary\": executable file not found in $PATH",
        ),
        (
            &["parity-exec", "/etc/passwd"],
            126,
            "exec: \"/etc/passwd\": permission denied",
        ),
        (
            &["parity-exec", "/etc"],
            126,
            "exec: \"/etc\": permission denied",
        ),
    ];
    for (args, code, detail) in cases {
        let mut argv = vec!["exec"];
        argv.extend_from_slice(args);
        let out = env.berth(&argv);
        assert_eq!(out.status.code(), Some(code), "{argv:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("{prefix}{detail}\n"), "{argv:?}");
        assert_eq!(stdout(&out), "", "{argv:?}");
    }
    // The container is untouched and a good exec still works in the same directory.
    assert_eq!(
        env.ok(&["exec", "-w", "/tmp", "parity-exec", "pwd"]),
        "/tmp"
    );
    assert_eq!(env.inspect("parity-exec", "{{.State.Status}}"), "running");
    env.ok(&["rm", "-f", "parity-exec"]);
}
