//! `--pull` of run/create/build, `run` of a Docker Hub image (served here by a registry on
//! loopback named with `BERTH_DOCKER_HUB`), and `rmi` refusing to untag an image a running
//! container uses when its tag and repository digest are its only references.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

mod containers_support;

use containers_support::{require_root, serve_registry, stderr, stdout, Env};

/// An env whose Docker Hub is a registry on loopback holding `library/hubbox:1` (busybox).
fn with_hub(env: &Env) -> (containers_support::Proc, String) {
    let (server, addr) = serve_registry(&env.dir.path().join("hub"), &[]);
    let up = format!("{addr}/library/hubbox:1");
    env.ok(&["tag", "busybox", &up]);
    let push = env
        .cmd(&["push", &up])
        .env("HOME", env.dir.path())
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", stderr(&push));
    env.ok(&["rmi", &up]);
    (server, addr)
}

#[test]
fn run_pulls_a_missing_docker_hub_image_as_docker_does() {
    if !require_root("run_pulls_a_missing_docker_hub_image_as_docker_does") {
        return;
    }
    let env = Env::new();
    let (_hub, addr) = with_hub(&env);
    let berth = |args: &[&str]| {
        env.cmd(args)
            .env("HOME", env.dir.path())
            .env("BERTH_DOCKER_HUB", &addr)
            .output()
            .unwrap()
    };
    // `--pull never`: Docker's words, status 125, nothing pulled.
    let never = berth(&["run", "--rm", "--pull", "never", "hubbox:1", "true"]);
    assert_eq!(never.status.code(), Some(125), "{}", stderr(&never));
    assert_eq!(stderr(&never), "Error: No such image: hubbox:1\n");
    assert_eq!(env.ok(&["images", "-q", "hubbox"]), "");

    // The default (`missing`): a bare name is Docker Hub's, and it is pulled.
    let run = berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "hubbox:1",
        "echo",
        "ran",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(stdout(&run), "ran\n");
    let err = stderr(&run);
    assert!(
        err.starts_with(
            "Unable to find image 'hubbox:1' locally\n1: Pulling from library/hubbox\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("Status: Downloaded newer image for hubbox:1\n"),
        "{err}"
    );

    // `always` pulls though the image is here (no "Unable to find" line).
    let always = berth(&[
        "create",
        "--pull",
        "always",
        "--name",
        "pp-always",
        "hubbox:1",
        "true",
    ]);
    assert_eq!(always.status.code(), Some(0), "{}", stderr(&always));
    let err = stderr(&always);
    assert!(err.starts_with("1: Pulling from library/hubbox\n"), "{err}");
    assert!(!err.contains("Unable to find"), "{err}");
    env.ok(&["rm", "pp-always"]);

    // A bad value: Docker's message, 125, no container.
    let bad = berth(&["run", "--pull", "sometimes", "hubbox:1", "true"]);
    assert_eq!(bad.status.code(), Some(125), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains(
            "invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\""
        ),
        "{}",
        stderr(&bad)
    );
    assert_eq!(env.all_ids(), Vec::<String>::new());
}

#[test]
fn a_missing_hub_image_fails_in_one_line_when_the_hub_is_unreachable() {
    if !require_root("a_missing_hub_image_fails_in_one_line_when_the_hub_is_unreachable") {
        return;
    }
    let env = Env::new();
    // Port 9 on loopback: nothing listens (the harness's default for every test).
    let out = env
        .cmd(&["run", "--rm", "nosuchhubimage"])
        .env("BERTH_DOCKER_HUB", "127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    // Docker's two lines: no "Pulling from" when the registry never answered.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0], "Unable to find image 'nosuchhubimage:latest' locally",
        "{err}"
    );
    assert!(
        lines.last().unwrap().starts_with("Error: ")
            && lines.last().unwrap().contains("127.0.0.1:9"),
        "{err}"
    );
    assert_eq!(env.all_ids(), Vec::<String>::new());
}

#[test]
fn build_pull_never_refuses_a_missing_base_and_pull_always_pulls() {
    if !require_root("build_pull_never_refuses_a_missing_base_and_pull_always_pulls") {
        return;
    }
    let env = Env::new();
    let (_hub, addr) = with_hub(&env);
    let ctx = env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM hubbox:1\nRUN true\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    let berth = |args: &[&str]| {
        env.cmd(args)
            .env("HOME", env.dir.path())
            .env("BERTH_DOCKER_HUB", &addr)
            .output()
            .unwrap()
    };
    let never = berth(&[
        "build",
        "--pull=never",
        "--progress",
        "plain",
        "-t",
        "pp-b",
        ctx,
    ]);
    assert_eq!(never.status.code(), Some(1), "{}", stderr(&never));
    assert!(
        stderr(&never).contains("not pulled (--pull=never)"),
        "{}",
        stderr(&never)
    );
    let missing = berth(&["build", "--progress", "plain", "-t", "pp-b", ctx]);
    assert_eq!(missing.status.code(), Some(0), "{}", stderr(&missing));
    let bare = berth(&["build", "--pull", "--progress", "plain", "-t", "pp-b2", ctx]);
    assert_eq!(bare.status.code(), Some(0), "{}", stderr(&bare));
    let bad = berth(&["build", "--pull=sometimes", "-t", "pp-b3", ctx]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        stderr(&bad).contains("invalid pull option: 'sometimes'"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn rmi_refuses_the_last_tag_and_digest_of_an_image_a_container_runs() {
    if !require_root("rmi_refuses_the_last_tag_and_digest_of_an_image_a_container_runs") {
        return;
    }
    let env = Env::new();
    let (_reg, addr) = serve_registry(&env.dir.path().join("reg"), &[]);
    let image = format!("{addr}/pp/app:1");
    let berth = |args: &[&str]| env.cmd(args).env("HOME", env.dir.path()).output().unwrap();
    // The image's only name is the registry's (busybox:latest untagged).
    env.ok(&["tag", "busybox", &image]);
    env.ok(&["rmi", "busybox"]);
    assert!(berth(&["push", &image]).status.success());
    env.ok(&["rmi", &image]);
    let pull = berth(&["pull", &image]);
    assert!(pull.status.success(), "{}", stderr(&pull));
    // The pulled image has its tag and its repository digest.
    let digests = env.ok(&[
        "inspect",
        "-f",
        "{{len .RepoDigests}} {{len .RepoTags}}",
        &image,
    ]);
    assert_eq!(digests, "1 1");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pp-user",
        "--network",
        "none",
        &image,
        "sleep",
        "60",
    ]);
    let out = env.berth(&["rmi", &image]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "Error: conflict: unable to remove repository reference \"{image}\" (must be forced) "
        )),
        "{err}"
    );
    // Still tagged, digest kept.
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{len .RepoDigests}} {{len .RepoTags}}",
            &image
        ]),
        "1 1"
    );
    env.ok(&["rm", "-f", "pp-user"]);
    let out = env.berth(&["rmi", &image]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn another_user_is_told_berth_needs_root() {
    if !require_root("another_user_is_told_berth_needs_root")
        || !containers_support::require_tool("another_user_is_told_berth_needs_root", "setpriv")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Docker's statuses: 125 for the container verbs, 1 for images.
    for (verb, code) in [
        (&["ps"][..], 125),
        (&["images"], 1),
        (&["run", "--rm", "busybox", "true"], 125),
    ] {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .arg(containers_support::BIN)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .args(verb)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{verb:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "Error: berth needs root (rootless mode is not supported yet)\n",
            "{verb:?}"
        );
    }
    assert!(!dir.path().join("root").exists());
}

#[test]
fn push_and_pull_all_tags_of_a_repository() {
    if !require_root("push_and_pull_all_tags_of_a_repository") {
        return;
    }
    let env = Env::new();
    let (_reg, addr) = serve_registry(&env.dir.path().join("reg"), &[]);
    let repo = format!("{addr}/pp/all");
    let berth = |args: &[&str]| env.cmd(args).env("HOME", env.dir.path()).output().unwrap();
    for t in ["1", "2", "latest"] {
        env.ok(&["tag", "busybox", &format!("{repo}:{t}")]);
    }
    let push = berth(&["push", "-a", &repo]);
    assert_eq!(push.status.code(), Some(0), "{}", stderr(&push));
    let out = stdout(&push);
    assert!(
        out.starts_with(&format!("The push refers to repository [{repo}]\n")),
        "{out}"
    );
    assert_eq!(out.matches(": digest: sha256:").count(), 3, "{out}");
    let bad = berth(&["push", "-a", &format!("{repo}:1")]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad), "tag can't be used with --all-tags/-a\n");

    for t in ["1", "2", "latest"] {
        env.ok(&["rmi", &format!("{repo}:{t}")]);
    }
    let pull = berth(&["pull", "-a", &repo]);
    assert_eq!(pull.status.code(), Some(0), "{}", stderr(&pull));
    let out = stdout(&pull);
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {repo}\n{repo}\n"
        )),
        "{out}"
    );
    let mut tags: Vec<String> = env
        .ok(&["images", &repo, "--format", "{{.Tag}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    tags.sort();
    assert_eq!(tags, ["1", "2", "latest"]);
    // Each pushed and pulled tag is an image event.
    let events = env.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    for t in ["1", "2", "latest"] {
        for action in ["push", "pull"] {
            let want = format!("{action} {repo}:{t}");
            assert!(events.lines().any(|l| l == want), "{want} in {events}");
        }
    }
}
