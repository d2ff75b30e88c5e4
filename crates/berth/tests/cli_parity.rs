//! Small gaps versus Docker in the lifecycle and build CLI, each as the user sees it:
//! exec's error statuses, inspect's template errors, the exec/run pty size, `start -a`,
//! streaming `stats`, build errors and Ctrl-C during a build.

#[path = "containers_support/mod.rs"]
mod support;

use std::io::Write;
use std::process::Stdio;

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

/// Like Docker: `start -a` of a container created with `-i` does not hand it the caller's
/// stdin (its stdin stays open and empty); `start -ai` does.
#[test]
fn start_attaches_stdin_only_with_i() {
    let Some(env) = Env::for_root_test("start_attaches_stdin_only_with_i") else {
        return;
    };
    env.ok(&[
        "create",
        "-i",
        "--name",
        "parity-stdin",
        "busybox",
        "sh",
        "-c",
        "if read -t 2 line; then echo got:$line; else echo nothing; fi",
    ]);
    let feed = |args: &[&str]| {
        let mut child = env
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        // The pipe stays open: only a container that reads it sees the line.
        let mut input = child.stdin.take().expect("piped");
        input.write_all(b"hello\n").expect("write stdin");
        let out = child.wait_with_output().expect("wait berth");
        drop(input);
        out
    };
    let out = feed(&["start", "-a", "parity-stdin"]);
    assert_eq!(stdout(&out), "nothing\n", "{}", stderr(&out));
    let out = feed(&["start", "-ai", "parity-stdin"]);
    assert_eq!(stdout(&out), "got:hello\n", "{}", stderr(&out));
    env.ok(&["rm", "parity-stdin"]);
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

/// A build context in the test's directory holding `dockerfile`.
fn context(env: &Env, name: &str, dockerfile: &str) -> String {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir context");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    dir.display().to_string()
}

/// Entries of a directory (none when it does not exist).
fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn build_from_a_missing_image_is_one_clear_line_and_leaves_nothing() {
    let Some(env) =
        Env::for_root_test("build_from_a_missing_image_is_one_clear_line_and_leaves_nothing")
    else {
        return;
    };
    let before = env.ok(&["images", "-a", "-q", "--no-trunc"]);
    let ctx = context(&env, "ctx-nosuch", "FROM nosuchimg\nRUN true\n");
    let out = env.berth(&["build", "--progress", "plain", "-t", "parity-nosuch", &ctx]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    // Docker Hub is a closed loopback port here (BERTH_DOCKER_HUB): the pull is tried, as
    // Docker tries it, and fails in one line.
    let errors: Vec<_> = err.lines().filter(|l| l.starts_with("Error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with(
            "Error: Dockerfile:1: FROM nosuchimg: docker.io/library/nosuchimg:latest: image not \
             found locally and could not be pulled: "
        ),
        "{err}"
    );
    assert_eq!(env.ok(&["images", "-a", "-q", "--no-trunc"]), before);
    assert_eq!(entries(&env.root().join("tmp")), Vec::<String>::new());
    assert_eq!(entries(&env.runroot().join("build")), Vec::<String>::new());
}

#[test]
fn ctrl_c_during_a_run_step_kills_and_removes_its_container() {
    use std::io::BufRead;
    let Some(env) = Env::for_root_test("ctrl_c_during_a_run_step_kills_and_removes_its_container")
    else {
        return;
    };
    let before = env.ok(&["images", "-a", "-q", "--no-trunc"]);
    let ctx = context(
        &env,
        "ctx-sigint",
        "FROM busybox\nRUN echo step-started; sleep 100\n",
    );
    let mut child = env
        .cmd(&["build", "--progress", "plain", "-t", "parity-sigint", &ctx])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn build");
    let err = child.stderr.take().expect("piped");
    let mut lines = std::io::BufReader::new(err).lines();
    let mut shown = Vec::new();
    while !shown.iter().any(|l: &String| l.ends_with(" step-started")) {
        shown.push(lines.next().expect("a progress line").expect("utf-8"));
    }
    // The step's container is running: its state and cgroup exist (the state in the
    // build's staging entry, RUNROOT/build/step-*/<id>, beside its owner lock).
    let owners: Vec<String> = entries(&env.runroot().join("build"))
        .into_iter()
        .filter(|e| !e.ends_with(".lock"))
        .collect();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let running = entries(&env.runroot().join("build").join(&owners[0]));
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(Env::cgroup_exists(&running[0]) || cgroup_anywhere(&running[0]));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(kill.success());
    let started = std::time::Instant::now();
    shown.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("wait build");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(status.code(), Some(130), "{shown:?}");
    assert_eq!(
        shown.last().map(String::as_str),
        Some("Error: failed to solve: canceled")
    );
    // Nothing is left: no state, cgroup, scratch directory, mount or image.
    assert_eq!(entries(&env.runroot().join("build")), Vec::<String>::new());
    assert!(
        !cgroup_anywhere(&running[0]),
        "cgroup of {} left",
        running[0]
    );
    assert_eq!(entries(&env.root().join("tmp")), Vec::<String>::new());
    assert_eq!(env.mounts_here(), Vec::<String>::new());
    assert_eq!(env.ok(&["images", "-a", "-q", "--no-trunc"]), before);
}

/// Whether a cgroup directory named `name` exists under /sys/fs/cgroup (v1 or v2).
fn cgroup_anywhere(name: &str) -> bool {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return false;
    };
    let mut dirs: Vec<std::path::PathBuf> = vec!["/sys/fs/cgroup/berth".into()];
    dirs.extend(
        controllers
            .filter_map(Result::ok)
            .map(|e| e.path().join("berth")),
    );
    dirs.iter().any(|d| d.join(name).exists())
}

#[test]
fn system_df_verbose_shows_images_containers_volumes_and_build_cache() {
    let Some(env) =
        Env::for_root_test("system_df_verbose_shows_images_containers_volumes_and_build_cache")
    else {
        return;
    };
    let ctx = context(
        &env,
        "ctx-df",
        "FROM busybox\nRUN head -c 3000 /dev/zero > /blob\n",
    );
    env.ok(&["build", "-q", "-t", "parity-df:1", &ctx]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "parity-df-ctr",
        "busybox",
        "sh",
        "-c",
        "printf 12345 > /data; sleep 60",
    ]);
    assert!(support::eventually(5, || env.ok(&[
        "exec",
        "parity-df-ctr",
        "cat",
        "/data"
    ]) == "12345"));
    let out = env.ok(&["system", "df", "-v"]);
    let lines: Vec<&str> = out.lines().collect();
    let at = |title: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(title))
            .unwrap_or_else(|| panic!("no {title:?} in\n{out}"))
    };
    let (images, containers, volumes, cache) = (
        at("Images space usage:"),
        at("Containers space usage:"),
        at("Local Volumes space usage:"),
        at("Build cache usage: "),
    );
    assert!(
        images < containers && containers < volumes && volumes < cache,
        "{out}"
    );
    let cols = |l: &str| {
        l.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cols(lines[images + 2]),
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS"
        ]
    );
    let row = |repo: &str| {
        lines[images + 3..containers]
            .iter()
            .map(|l| cols(l))
            .find(|c| c[0] == repo)
            .unwrap_or_else(|| panic!("no {repo} row in\n{out}"))
    };
    let built = row("parity-df");
    assert_eq!(built[1], "1");
    assert_ne!(
        built[6], "0B",
        "the RUN layer is the unique part: {built:?}"
    );
    assert_eq!(built[7], "0");
    let base = row("busybox");
    assert_eq!(base[5], base[4], "busybox's layer is shared: {base:?}");
    assert_eq!(base[6], "0B");
    assert_eq!(base[7], "1");
    let ctr = cols(
        lines[containers + 3..volumes]
            .iter()
            .find(|l| l.ends_with("parity-df-ctr"))
            .unwrap_or_else(|| panic!("no container row in\n{out}")),
    );
    assert_eq!(ctr[1], "busybox");
    assert_eq!(ctr[3], "0");
    assert_eq!(ctr[4], "5B", "{ctr:?}");
    assert_eq!(cols(lines[volumes + 2]), ["VOLUME NAME", "LINKS", "SIZE"]);
    // One cached step (the RUN), its layer blob's size as the total.
    let total = lines[cache].trim_start_matches("Build cache usage: ");
    assert_ne!(total, "0B", "{out}");
    let entry = cols(lines[cache + 3]);
    assert_eq!(entry[1..3], ["regular", total], "{entry:?}");
    assert_eq!(lines.len(), cache + 4, "one cache entry: {out}");
    env.ok(&["rm", "-f", "parity-df-ctr"]);
}

#[test]
fn build_on_a_terminal_redraws_its_steps_in_place_and_plain_stays_lines() {
    let test = "build_on_a_terminal_redraws_its_steps_in_place_and_plain_stays_lines";
    if !support::require_tool(test, "script") {
        return;
    }
    let Some(env) = Env::for_root_test(test) else {
        return;
    };
    let ctx = context(
        &env,
        "ctx-tty",
        "FROM busybox\nRUN for i in 1 2 3; do echo line$i; sleep 0.3; done\n",
    );
    // auto on a terminal: the live view, redrawn over itself (cursor up, erase line).
    let shown = on_a_pty(&env, 30, 100, &format!("$B build -t parity-tty {ctx}"));
    assert!(shown.contains("\x1b[2K[+] Building "), "{shown:?}");
    assert!(
        shown.contains("A\x1b[2K[+] Building "),
        "no redraw in {shown:?}"
    );
    assert!(
        shown.contains(" => => # line1"),
        "no output tail in {shown:?}"
    );
    let last = shown.rsplit("[+] Building ").next().unwrap_or_default();
    assert!(last.contains("(2/2) FINISHED"), "{last:?}");
    assert!(last.contains(" => [2/2] RUN for i in 1 2 3"), "{last:?}");
    assert!(
        !last.contains(" => => # "),
        "the last frame has no output tail: {last:?}"
    );
    assert!(last.contains(" => => naming to docker.io/library/parity-tty:latest"));
    // --progress plain on the same terminal: BuildKit's plain lines, no escapes.
    let shown = on_a_pty(
        &env,
        30,
        100,
        &format!("$B build --no-cache --progress plain -t parity-tty {ctx}"),
    );
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains("#2 [2/2] RUN for i in 1 2 3"), "{shown:?}");
    assert!(shown.contains(" line2\n"), "{shown:?}");
}
