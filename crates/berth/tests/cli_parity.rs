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

#[test]
fn inspect_refuses_a_broken_template_and_a_missing_field() {
    let Some(env) = Env::for_root_test("inspect_refuses_a_broken_template_and_a_missing_field")
    else {
        return;
    };
    env.ok(&["create", "--name", "parity-inspect", "busybox", "true"]);
    // A template that does not parse: refused before any lookup, status 64 as Docker.
    for cmd in ["inspect", "container"] {
        let mut argv = vec![cmd];
        if cmd == "container" {
            argv.push("inspect");
        }
        argv.extend(["-f", "{{.Bad", "parity-inspect"]);
        let out = env.berth(&argv);
        assert_eq!(out.status.code(), Some(64), "{argv:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "template parsing error: template: :1: unclosed action\n"
        );
        assert_eq!(stdout(&out), "");
    }
    // A field that is not there: Go's error, status 1, nothing printed but the empty line.
    let out = env.berth(&["inspect", "-f", "{{.NoSuchField}}", "parity-inspect"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "template parsing error: template: :1:2: executing \"\" at <.NoSuchField>: \
         map has no entry for key \"NoSuchField\"\n"
    );
    assert_eq!(stdout(&out), "\n");
    // Good templates still work, pipelines and range included.
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.Config.Cmd | json}} {{range .Config.Cmd}}<{{.}}>{{end}}",
            "parity-inspect"
        ]),
        "created [\"true\"] <true>"
    );
    env.ok(&["rm", "parity-inspect"]);
}

/// Runs `script` (a shell on a fresh pty of `rows`x`cols`) with `body`, where `$B` is this
/// test's berth command; returns what the pty showed, carriage returns removed.
fn on_a_pty(env: &Env, rows: u16, cols: u16, body: &str) -> String {
    let b = format!(
        "{} --root {} --runroot {}",
        support::BIN,
        env.root().display(),
        env.runroot().display()
    );
    let file = env.dir.path().join("on-a-pty.sh");
    std::fs::write(
        &file,
        format!("B='{b}'\nstty rows {rows} cols {cols}\n{body}\n"),
    )
    .expect("write script");
    let out = std::process::Command::new("timeout")
        .args(["60", "script", "-qec"])
        .arg(format!("sh {}", file.display()))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    assert!(out.status.success(), "script: {}", stderr(&out));
    stdout(&out).replace('\r', "")
}

#[test]
fn exec_and_run_ptys_get_the_callers_window_size_and_follow_it() {
    let test = "exec_and_run_ptys_get_the_callers_window_size_and_follow_it";
    if !support::require_tool(test, "script") {
        return;
    }
    let Some(env) = Env::for_root_test(test) else {
        return;
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "parity-pty",
        "busybox",
        "sleep",
        "60",
    ]);
    let shown = on_a_pty(
        &env,
        33,
        101,
        "$B exec -it parity-pty stty size\n\
         $B exec -t parity-pty stty size\n\
         $B run --rm -it busybox stty size",
    );
    assert_eq!(
        shown.lines().filter(|l| l.ends_with("33 101")).count(),
        3,
        "{shown:?}"
    );
    // A resize of the caller's terminal reaches the process on the pty (SIGWINCH, new size).
    let shown = on_a_pty(
        &env,
        33,
        101,
        "$B exec -t parity-pty sh -c 'stty size; trap \"stty size; exit 0\" WINCH; \
         while :; do sleep 0.1; done' &\n\
         sleep 1.5\n\
         stty rows 40 cols 120\n\
         wait",
    );
    let sizes: Vec<&str> = shown.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(sizes, ["33 101", "40 120"], "{shown:?}");
    env.ok(&["rm", "-f", "parity-pty"]);
}

#[test]
fn start_attach_streams_a_stopped_one_and_attaches_to_a_running_one() {
    let Some(env) =
        Env::for_root_test("start_attach_streams_a_stopped_one_and_attaches_to_a_running_one")
    else {
        return;
    };
    // A stopped container: its output streams, the CLI exits with its status.
    env.ok(&[
        "create",
        "--name",
        "parity-start",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let out = env.berth(&["start", "-a", "parity-start"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    // A running one: attached (output from now on), not restarted or killed; the CLI
    // exits with the container's status when it stops.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "parity-running",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 2; echo during; echo e2 >&2; sleep 1; exit 7",
    ]);
    assert!(support::eventually(5, || env
        .ok(&["logs", "parity-running"])
        .contains("before")));
    let pid = env.inspect("parity-running", "{{.State.Pid}}");
    let out = env.berth(&["start", "-a", "parity-running"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "during\n");
    assert_eq!(stderr(&out), "e2\n");
    assert_eq!(env.inspect("parity-running", "{{.State.ExitCode}}"), "7");
    assert_eq!(env.inspect("parity-running", "{{.RestartCount}}"), "0");
    assert_ne!(pid, "0");
    // Several containers cannot be attached at once (Docker's message, status 1).
    let out = env.berth(&["start", "-a", "parity-start", "parity-running"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "you cannot start and attach multiple containers at once\n"
    );
    env.ok(&["rm", "parity-start", "parity-running"]);
}

#[test]
fn stats_cpu_is_the_last_interval_and_the_stream_ends_with_its_containers() {
    use std::io::BufRead;
    let Some(env) = Env::for_root_test(
        "stats_cpu_is_the_last_interval_and_the_stream_ends_with_its_containers",
    ) else {
        return;
    };
    // Busy for 2 s, then idle: the average since the start stays far above zero, the CPU
    // use of the last interval (Docker's figure) is zero.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "parity-stats",
        "busybox",
        "sh",
        "-c",
        "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done; sleep 60",
    ]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let cpu = env.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}}",
        "parity-stats",
    ]);
    assert_eq!(cpu, "parity-stats 0.00%");
    // Without --no-stream: a table a second (not a terminal: one after the other) until
    // the container is gone.
    let mut child = env
        .cmd(&[
            "stats",
            "--format",
            "table {{.Name}}\t{{.PIDs}}",
            "parity-stats",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn stats");
    let out = child.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(out).lines();
    let mut tables = 0;
    while tables < 3 {
        let l = lines.next().expect("a line").expect("utf-8");
        if l.starts_with("NAME") {
            tables += 1;
        } else {
            assert!(l.starts_with("parity-stats "), "{l:?}");
        }
    }
    env.ok(&["rm", "-f", "parity-stats"]);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait stats");
    assert!(status.success(), "{status:?} after {rest:?}");
}
