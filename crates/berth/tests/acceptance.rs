//! A Docker user's acceptance pass: one regression test per bug found while using berth
//! as one would use `docker` (output shapes, exit codes, messages), each named after what
//! it checks.

#[path = "containers_support/mod.rs"]
mod support;

use support::{require_root, stderr, stdout, Env};

/// `ps` cuts the command itself to 20 characters (19 and `…`) inside its quotes, and the
/// columns after it stay aligned (padding counts characters, not bytes).
#[test]
fn ps_truncates_command_like_docker_and_keeps_columns_aligned() {
    if !require_root("ps_truncates_command_like_docker_and_keeps_columns_aligned") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "longcmd",
        "busybox",
        "sh",
        "-c",
        "echo $A; pwd; id",
    ]);
    env.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "shortcmd",
        "busybox",
        "echo",
        "hi",
    ]);
    let out = env.ok(&["ps", "-a"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(out.contains("\"sh -c echo $A; pwd;…\""), "{out}");
    assert!(out.contains("\"echo hi\""), "{out}");
    // The last column (NAMES) starts at the same character on every line.
    let at = |l: &str, what: &str| l.find(what).map(|b| l[..b].chars().count());
    let header = at(lines[0], "NAMES").expect("NAMES header");
    for l in &lines[1..] {
        let name = if l.contains("longcmd") {
            "longcmd"
        } else {
            "shortcmd"
        };
        assert_eq!(at(l, name), Some(header), "misaligned row: {l:?}\n{out}");
    }
}

/// `ps --format 'table …\t…'` aligns its columns as Docker's tabwriter does.
#[test]
fn ps_table_format_aligns_tab_separated_columns() {
    if !require_root("ps_table_format_aligns_tab_separated_columns") {
        return;
    }
    let env = Env::new();
    env.ok(&["create", "--name", "a-rather-long-name", "busybox", "true"]);
    env.ok(&["create", "--name", "xy", "busybox", "true"]);
    let out = env.ok(&["ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}"]);
    assert!(!out.contains('\t'), "tabs left in the table: {out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let status_at = lines[0].find("STATUS").expect("STATUS header");
    for l in &lines[1..] {
        assert_eq!(
            l.find("Created"),
            Some(status_at),
            "misaligned: {l:?}\n{out}"
        );
    }
}

/// `stats --no-stream --format` honours Go templates and Docker's field names
/// (`{{.Name}}`, `{{.MemUsage}}`, `{{.PIDs}}`), and `json` has Docker's keys.
#[test]
fn stats_format_uses_docker_fields_and_templates() {
    if !require_root("stats_format_uses_docker_fields_and_templates") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "statme",
        "-m",
        "64m",
        "busybox",
        "sleep",
        "30",
    ]);
    let out = env.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "statme",
    ]);
    let line = out.trim();
    assert!(line.starts_with("statme "), "{out}");
    assert!(line.contains(" / 64MiB "), "{out}");
    assert!(line.ends_with(" 1"), "{out}");
    let json = env.ok(&["stats", "--no-stream", "--format", "json", "statme"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    for key in [
        "BlockIO",
        "CPUPerc",
        "Container",
        "ID",
        "MemPerc",
        "MemUsage",
        "Name",
        "NetIO",
        "PIDs",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {json}");
    }
    let table = env.ok(&["stats", "--no-stream", "statme"]);
    assert!(
        table.starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %"),
        "{table}"
    );
    env.ok(&["rm", "-f", "statme"]);
}

/// `berth inspect IMAGE | head -1`: a reader that goes away ends berth quietly (status 141,
/// as a Go CLI killed by SIGPIPE), not with a panic and a backtrace.
#[test]
fn closed_stdout_ends_quietly_without_a_panic() {
    if !require_root("closed_stdout_ends_quietly_without_a_panic") {
        return;
    }
    let env = Env::new();
    let mut args = vec!["inspect"];
    args.extend(std::iter::repeat_n("busybox", 50));
    let mut child = env
        .cmd(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?} {err}",
        out.status
    );
}

/// Command-line mistakes exit as Docker's CLI does: an unknown flag 125 (also before the
/// image of `run`/`create`, where it must not be taken for an image name), a missing
/// argument or an unknown verb 1, help 0.
#[test]
fn usage_errors_exit_with_dockers_statuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        std::process::Command::new(support::BIN)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    };
    let out = run(&["run", "--bogus", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("unknown flag: --bogus\n"),
        "{}",
        stderr(&out)
    );
    let out = run(&["create", "--bogus=1", "busybox"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown flag: --bogus"),
        "{}",
        stderr(&out)
    );
    assert_eq!(run(&["ps", "--bogus"]).status.code(), Some(125));
    assert_eq!(run(&["run"]).status.code(), Some(1));
    assert_eq!(run(&["nosuchverb"]).status.code(), Some(1));
    assert_eq!(run(&["ps", "--help"]).status.code(), Some(0));
    let bare = run(&[]);
    assert_eq!(bare.status.code(), Some(0));
    let help = format!("{}{}", stdout(&bare), stderr(&bare));
    assert!(help.contains("Commands:"), "{help}");
    assert!(!help.contains("_monitor"), "hidden verbs shown: {help}");
}

/// `ps` shows the host port the kernel chose for `-p 127.0.0.1::80` (as `port` does), not
/// the empty request, and no ports once the container stopped.
#[test]
fn ps_ports_show_the_bound_host_port() {
    if !require_root("ps_ports_show_the_bound_host_port") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "portsweb",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let bound = env.ok(&["port", "portsweb", "80"]);
    let ports = env.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ports, format!("{bound}->80/tcp"), "port said {bound}");
    assert!(!ports.contains(":->"), "{ports}");
    env.ok(&["stop", "-t", "0", "portsweb"]);
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Ports}}"]), "");
    env.ok(&["rm", "portsweb"]);
}

/// `exec -t` shows the process's output (it writes to a pty whose master berth must copy
/// out) and exits with its status; `run -it`/`exec -it` without a terminal on stdin are
/// refused as Docker does.
#[test]
fn exec_with_tty_shows_output_and_it_needs_a_terminal() {
    if !require_root("exec_with_tty_shows_output_and_it_needs_a_terminal") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "ttyexec",
        "busybox",
        "sleep",
        "30",
    ]);
    let out = env.berth(&["exec", "-t", "ttyexec", "sh", "-c", "tty; echo out; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("out\r\n"), "{text:?}");
    let out = env.berth(&["exec", "-it", "ttyexec", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "the input device is not a TTY\n");
    let out = env.berth(&["run", "-it", "--rm", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "the input device is not a TTY\n");
    env.ok(&["rm", "-f", "ttyexec"]);
}

/// A verb's `--help` lists its own options first, as Docker's does; the global `--root`,
/// `--runroot` and `--log-level` come after, under their own heading.
#[test]
fn verb_help_lists_its_options_before_the_global_ones() {
    for verb in ["ps", "run", "logs", "images", "push"] {
        let out = std::process::Command::new(support::BIN)
            .args([verb, "--help"])
            .output()
            .expect("run berth");
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        let options = help.find("\nOptions:\n").expect("Options section");
        let global = help
            .find("\nGlobal Options:\n")
            .expect("Global Options section");
        assert!(options < global, "{help}");
        let root = help.find("--root <ROOT>").expect("--root listed");
        assert!(root > global, "--root among {verb}'s own options:\n{help}");
    }
}

/// `pull` from a registry on another host shows the path on that registry (`x`, not
/// `library/x`), a bad reference is refused before any "Pulling from" line, and an
/// unreachable registry is one Docker-worded line without ureq's text repeated.
#[test]
fn pull_names_the_registry_path_and_reports_one_clean_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        std::process::Command::new(support::BIN)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .args(args)
            .env("HOME", dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = run(&["pull", &format!("127.0.0.1:{port}/x:2")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "2: Pulling from x\n");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("connect: connection refused"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    let out = run(&["pull", "Bad/Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("must be lowercase"),
        "{}",
        stderr(&out)
    );
}

/// Refusals read as Docker's: a push or pull without credentials says `unauthorized:
/// authentication required` (no `Get "…/blobs/uploads/"`: an upload is a POST); a wrong
/// password at login names the `/v2/` check.
#[test]
fn registry_refusals_are_worded_as_docker() {
    if !require_root("registry_refusals_are_worded_as_docker") {
        return;
    }
    if std::process::Command::new("htpasswd")
        .arg("-h")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "htpasswd missing under CI"
        );
        eprintln!("skipping: htpasswd (apache2-utils) missing");
        return;
    }
    let env = Env::new();
    let ht = env.dir.path().join("htpasswd");
    let made = std::process::Command::new("htpasswd")
        .args(["-Bbc", ht.to_str().expect("utf-8"), "alice", "s3cret"])
        .output()
        .expect("htpasswd");
    assert!(made.status.success());
    let storage = env.dir.path().join("storage");
    let (server, addr) =
        support::serve_registry(&storage, &["--htpasswd", ht.to_str().expect("utf-8")]);
    let home = env.dir.path().join("home");
    let berth = |args: &[&str]| env.cmd(args).env("HOME", &home).output().expect("berth");
    let image = format!("{addr}/p/bb:1");
    env.ok(&["tag", "busybox", &image]);
    let push = berth(&["push", &image]);
    let pull = berth(&["pull", &image]);
    let login = berth(&["login", "-u", "alice", "-p", "wrong", &addr]);
    drop(server);
    assert_eq!(push.status.code(), Some(1));
    assert_eq!(
        stderr(&push),
        "Error: unauthorized: authentication required\n"
    );
    assert_eq!(pull.status.code(), Some(1));
    assert!(
        stderr(&pull).ends_with("unauthorized: authentication required\n"),
        "{}",
        stderr(&pull)
    );
    assert_eq!(login.status.code(), Some(1));
    assert!(
        stderr(&login).ends_with(&format!(
            "Error: Get \"http://{addr}/v2/\": unauthorized: incorrect username or password\n"
        )),
        "{}",
        stderr(&login)
    );
    assert!(
        !home.join(".docker/config.json").exists(),
        "a refused login stored credentials"
    );
}

/// `run -w /new/dir` makes the missing working directory as Docker does (root's, 0755),
/// and a directory the image already has keeps its mode on the way (`/tmp` stays 1777).
#[test]
fn run_makes_a_missing_working_directory() {
    if !require_root("run_makes_a_missing_working_directory") {
        return;
    }
    let env = Env::new();
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-w",
        "/tmp/new/dir",
        "busybox",
        "sh",
        "-c",
        "pwd; stat -c '%a %U' /tmp /tmp/new/dir",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/tmp/new/dir\n1777 root\n755 root\n");
}

/// `run` of an image that is not here but names a registry pulls it first, as Docker does
/// (the pull's lines on stderr, the container's output alone on stdout).
#[test]
fn run_pulls_a_missing_image_from_its_registry() {
    if !require_root("run_pulls_a_missing_image_from_its_registry") {
        return;
    }
    let env = Env::new();
    let storage = env.dir.path().join("storage");
    let (server, addr) = support::serve_registry(&storage, &[]);
    let home = env.dir.path().join("home");
    let berth = |args: &[&str]| env.cmd(args).env("HOME", &home).output().expect("berth");
    let image = format!("{addr}/auto/bb:1");
    env.ok(&["tag", "busybox", &image]);
    let push = berth(&["push", &image]);
    assert!(push.status.success(), "{}", stderr(&push));
    env.ok(&["rmi", &image]);
    let run = berth(&["run", "--rm", "--network", "none", &image, "echo", "ran"]);
    let missing = berth(&["run", "--rm", &format!("{addr}/auto/nope:1"), "true"]);
    drop(server);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(stdout(&run), "ran\n");
    let err = stderr(&run);
    assert!(
        err.starts_with(&format!(
            "Unable to find image '{image}' locally\n1: Pulling from auto/bb\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {image}\n")),
        "{err}"
    );
    assert_eq!(missing.status.code(), Some(125), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
}

/// `top` prints `ps -ef`'s columns as Docker's CLI lays them out (at least 20 wide) with a
/// real STIME (`HH:MM`), not a dash.
#[test]
fn top_shows_ps_ef_columns_and_start_time() {
    if !require_root("top_shows_ps_ef_columns_and_start_time") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "topme",
        "busybox",
        "sleep",
        "30",
    ]);
    let out = env.ok(&["top", "topme"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{:<20}{:<20}", "UID", "PID")),
        "{out}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "root", "{out}");
    let stime = row[4];
    assert!(
        stime.len() == 5 && stime.as_bytes()[2] == b':' || stime.len() == 5,
        "STIME {stime:?} in {out}"
    );
    assert_ne!(stime, "-", "{out}");
    assert_eq!(row[7..].join(" "), "sleep 30", "{out}");
    env.ok(&["rm", "-f", "topme"]);
}

/// `stats` sees a busy container's CPU use (cgroup v1 `cpuacct.usage`, or v2 `cpu.stat`
/// `usage_usec` on hosts without cpuacct, where it used to read 0.00%).
#[test]
fn stats_shows_cpu_use_of_a_busy_container() {
    if !require_root("stats_shows_cpu_use_of_a_busy_container") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    let cpu = env.ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"]);
    let pct: f64 = cpu
        .trim()
        .trim_end_matches('%')
        .parse()
        .expect("a percentage");
    assert!(pct > 10.0, "a spinning shell at {cpu}");
    env.ok(&["rm", "-f", "busy"]);
}

/// `logs --since` takes Docker's zone-less forms too (`2006-01-02`, `2006-01-02T15:04`,
/// `2006-01-02T15:04:05`), not only RFC 3339, durations and unix seconds.
#[test]
fn logs_since_accepts_dockers_date_forms() {
    if !require_root("logs_since_accepts_dockers_date_forms") {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "dated",
        "busybox",
        "echo",
        "hello",
    ]);
    for (since, want) in [
        ("2000-01-01", "hello\n"),
        ("2000-01-01T10:00", "hello\n"),
        ("2000-01-01T10:00:00", "hello\n"),
        ("2099-01-01", ""),
        ("2099-01-01T10:00:00", ""),
    ] {
        let out = env.berth(&["logs", "--since", since, "dated"]);
        assert_eq!(out.status.code(), Some(0), "{since}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "--since {since}");
    }
    env.ok(&["rm", "dated"]);
}

/// `exec`'s usage reads `<CONTAINER> <COMMAND [ARG...]>` (it printed the pair twice), a
/// missing command exits 1 and an unknown flag 125, as Docker's CLI.
#[test]
fn exec_usage_names_container_and_command() {
    let run = |args: &[&str]| {
        std::process::Command::new(support::BIN)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    };
    let help = stdout(&run(&["exec", "--help"]));
    assert!(
        help.contains("Usage: berth exec [OPTIONS] <CONTAINER> <COMMAND [ARG...]>..."),
        "{help}"
    );
    assert_eq!(run(&["exec", "somebox"]).status.code(), Some(1));
    assert_eq!(
        run(&["exec", "--bogus", "somebox", "true"]).status.code(),
        Some(125)
    );
}

/// `images REPO` and `--filter reference=` show only the matching tags of an image, not
/// every tag of an image that has one matching tag.
#[test]
fn images_reference_shows_only_matching_tags() {
    if !require_root("images_reference_shows_only_matching_tags") {
        return;
    }
    let env = Env::new();
    env.ok(&["tag", "busybox", "bb:1"]);
    let fmt = "{{.Repository}}:{{.Tag}}";
    assert_eq!(env.ok(&["images", "--format", fmt, "bb"]), "bb:1");
    assert_eq!(
        env.ok(&["images", "--format", fmt, "--filter", "reference=busy*"]),
        "busybox:latest"
    );
    assert_eq!(
        env.ok(&["images", "--format", fmt, "--filter", "reference=nothing"]),
        ""
    );
}

/// `rmi` of the last tag of an image a container uses names that container once (it was
/// listed twice: `container:<64 hex>` and `running container <12 hex>`).
#[test]
fn rmi_in_use_names_each_container_once() {
    if !require_root("rmi_in_use_names_each_container_once") {
        return;
    }
    let env = Env::new();
    let id = env.ok(&["create", "--network", "none", "busybox", "true"]);
    let out = env.berth(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("container:"), "{err}");
    assert_eq!(err.matches(&id[..12]).count(), 1, "{err}");
    env.ok(&["rm", &id]);
}
