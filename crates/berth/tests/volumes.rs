//! Issue 14, volumes: `volume create|ls|inspect|rm|prune` with Docker's output, errors and
//! exit statuses; named and anonymous volumes in containers (`-v`, `--mount`,
//! `--volumes-from`, the image's `VOLUME`); a volume in use cannot be removed; the copy of
//! an image's content into a new volume never follows a symlink out of the image; bad
//! input leaves nothing behind; two processes creating one name end with one volume.
//!
//! Drives the binary named by `BERTH_TEST_BIN` (this build's berth when unset).
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

mod containers_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use containers_support::{stderr, stdout, Env};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The names `volume ls -q` prints.
fn volume_names(env: &Env) -> Vec<String> {
    env.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Directories under ROOT/volumes (other than trash in progress).
fn volume_dirs(env: &Env) -> Vec<String> {
    fs::read_dir(env.root().join("volumes"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn volume_verbs_print_and_fail_as_docker() {
    let Some(env) = Env::for_root_test("volume_verbs_print_and_fail_as_docker") else {
        return;
    };
    assert_eq!(
        env.ok(&["volume", "create", "--label", "team=a", "data1"]),
        "data1"
    );
    // Creating it again is not an error: the same volume, once.
    assert_eq!(env.ok(&["volume", "create", "data1"]), "data1");
    let anon = env.ok(&["volume", "create"]);
    assert_eq!(anon.len(), 64, "{anon}");
    let ls = env.ok(&["volume", "ls"]);
    let mut lines = ls.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["DRIVER", "VOLUME", "NAME"]
    );
    assert_eq!(
        ls.lines().filter(|l| l.starts_with("local")).count(),
        2,
        "{ls}"
    );
    assert_eq!(
        env.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]),
        "data1"
    );
    assert_eq!(
        env.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}}",
            "-f",
            "name=data"
        ]),
        "data1 local"
    );
    assert_eq!(env.ok(&["volume", "ls", "-q", "-f", "dangling=false"]), "");
    let bad = env.berth(&["volume", "ls", "-f", "bogus=1"]);
    assert_eq!(code(&bad), 1);
    assert_eq!(stderr(&bad).trim(), "Error: invalid filter 'bogus'");

    // inspect: Docker's document; the data lives under the store.
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "inspect", "data1"])).unwrap();
    let v = &doc[0];
    assert_eq!(v["Name"], "data1");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    let mp = env.root().join("volumes/data1/_data");
    assert_eq!(v["Mountpoint"], mp.display().to_string());
    assert!(mp.is_dir());
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Name}}:{{.Driver}}", "data1"]),
        "data1:local"
    );
    let missing = env.berth(&["volume", "inspect", "nope"]);
    assert_eq!(code(&missing), 1);
    assert_eq!(stderr(&missing).trim(), "Error: No such volume: nope");
    assert_eq!(stdout(&missing), "");

    // rm: the name on success; a missing one is status 1, unless -f.
    let missing = env.berth(&["volume", "rm", "nope"]);
    assert_eq!(code(&missing), 1);
    assert_eq!(stderr(&missing).trim(), "Error: get nope: no such volume");
    assert_eq!(env.ok(&["volume", "rm", "-f", "nope"]), "nope");
    assert_eq!(env.ok(&["volume", "rm", &anon]), anon);
    assert_eq!(volume_names(&env), ["data1"]);

    // Bad names and options: one line, status 1, nothing made.
    for (args, want) in [
        (
            vec!["volume", "create", "../escape"],
            "Error: create ../escape: \"../escape\" includes invalid characters for a local \
             volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to \
             pass a host directory, use absolute path",
        ),
        (vec!["volume", "create", "a"], "includes invalid characters"),
        (
            vec!["volume", "create", "-o", "bogus=1", "v2"],
            "Error: invalid option key: \"bogus\"",
        ),
        (
            vec!["volume", "create", "-o", "type=tmpfs", "v2"],
            "Error: missing required option: \"device\"",
        ),
        (
            vec!["volume", "create", "-d", "nfs-plugin", "v2"],
            "Error: error looking up volume plugin nfs-plugin: plugin \"nfs-plugin\" not found",
        ),
    ] {
        let o = env.berth(&args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(volume_names(&env), ["data1"]);
    let mut dirs = volume_dirs(&env);
    dirs.sort();
    assert_eq!(dirs, ["data1"]);
    assert!(!env.root().parent().unwrap().join("escape").exists());
}

#[test]
fn volumes_in_containers_and_in_use() {
    let Some(env) = Env::for_root_test("volumes_in_containers_and_in_use") else {
        return;
    };
    // A named volume made by `run`, shared by the next container.
    env.ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "shared:/d",
        "busybox",
        "sh",
        "-c",
        "echo hi > /d/f",
    ]);
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "shared:/x:ro",
            "busybox",
            "cat",
            "/x/f"
        ]),
        "hi"
    );
    let ro = env.berth(&[
        "run",
        "--rm",
        "-v",
        "shared:/x:ro",
        "busybox",
        "touch",
        "/x/g",
    ]);
    assert_ne!(code(&ro), 0);
    assert_eq!(
        fs::read_to_string(env.root().join("volumes/shared/_data/f")).unwrap(),
        "hi\n"
    );
    // In use by a stopped container: refused, with the container's ID.
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "w1"]);
    let o = env.berth(&["volume", "rm", "shared"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o).trim(),
        format!("Error: remove shared: volume is in use - [{id}]")
    );
    assert!(env.root().join("volumes/shared/_data/f").exists());
    // Used by a running one too, and not pruned while in use.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "w2",
        "-v",
        "shared:/d",
        "-v",
        "/anon",
        "busybox",
        "sleep",
        "60",
    ]);
    let o = env.berth(&["volume", "rm", "shared"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("volume is in use"), "{}", stderr(&o));
    assert!(env
        .ok(&["volume", "prune", "-a", "-f"])
        .ends_with("Total reclaimed space: 0B"));
    assert_eq!(volume_names(&env).len(), 2);
    let anon: Vec<String> = volume_names(&env)
        .into_iter()
        .filter(|n| n != "shared")
        .collect();
    assert_eq!(anon[0].len(), 64);
    // --volumes-from: the same volumes, read-only when asked.
    let out = env.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "w2:ro",
        "busybox",
        "sh",
        "-c",
        "cat /d/f; touch /anon/x 2>/dev/null || echo ro",
    ]);
    assert_eq!(out, "hi\nro");
    // system df counts them.
    let df = env.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(df.lines().any(|l| l == "Local Volumes 2 2"), "{df}");
    let dfv = env.ok(&["system", "df", "-v"]);
    assert!(
        dfv.lines()
            .any(|l| l.starts_with("shared ") && l.split_whitespace().nth(1) == Some("2")),
        "{dfv}"
    );

    // rm -v takes the anonymous volume, never a named one.
    env.ok(&["rm", "-f", "-v", "w2"]);
    assert_eq!(volume_names(&env), ["shared"]);
    assert!(!env.root().join("volumes").join(&anon[0]).exists());
    env.ok(&["rm", "w1"]);
    // A default prune keeps named volumes (Docker 23+); -a removes them.
    let out = env.ok(&["volume", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B");
    env.ok(&["run", "--name", "w3", "-v", "/tmpvol", "busybox", "true"]);
    env.ok(&["rm", "w3"]);
    let out = env.ok(&["volume", "prune", "-f", "--filter", "label=nope"]);
    assert_eq!(out, "Total reclaimed space: 0B");
    let out = env.ok(&["volume", "prune", "-f"]);
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    assert_eq!(volume_names(&env), ["shared"]);
    let out = env.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("shared"), "{out}");
    assert!(volume_names(&env).is_empty());
    assert!(volume_dirs(&env).is_empty(), "{:?}", volume_dirs(&env));
}

#[test]
fn binds_mounts_and_their_bad_input() {
    let Some(env) = Env::for_root_test("binds_mounts_and_their_bad_input") else {
        return;
    };
    let host = env.dir.path().join("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("in"), "from host").unwrap();
    let h = host.display().to_string();
    // -v of a missing host path makes it, as Docker does.
    let missing = env.dir.path().join("made/by/run");
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/x", missing.display()),
        "busybox",
        "touch",
        "/x/f",
    ]);
    assert!(missing.join("f").exists());
    // --mount: bind (readonly), tmpfs with size and mode, volume with nocopy.
    let out = env.ok(&[
        "run", "--rm",
        "--mount", &format!("type=bind,source={h},target=/h,readonly"),
        "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "busybox", "sh", "-c",
        "cat /h/in; echo; touch /h/no 2>/dev/null || echo ro; stat -c %a /t; grep ' /t ' /proc/mounts",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("from host"));
    assert_eq!(lines.next(), Some("ro"));
    assert_eq!(lines.next(), Some("1770"));
    let t = lines.next().unwrap_or("");
    assert!(
        t.starts_with("tmpfs /t tmpfs") && t.contains("size=1024k"),
        "{t}"
    );
    // Docker orders mounts by the depth of their destination: a tmpfs inside a volume
    // shows, whatever the order of the flags.
    let out = env.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/a/b",
        "-v",
        "deep:/a",
        "busybox",
        "sh",
        "-c",
        "grep -c ' /a/b tmpfs' /proc/mounts; touch /a/b/x && ls /a",
    ]);
    assert_eq!(out, "1\nb");
    assert!(!env.root().join("volumes/deep/_data/b/x").exists());

    // Bad input: Docker's one line, 125, and no container or volume made.
    let before = volume_names(&env);
    for (args, want) in [
        (vec!["--mount", "type=bind,target=/x"], "invalid mount config for type \"bind\": field Source must not be empty"),
        (
            vec!["--mount", "type=bind,src=/tmp,target=/x,foo=bar"],
            "invalid argument \"type=bind,src=/tmp,target=/x,foo=bar\" for \"--mount\" flag: unexpected key 'foo' in 'foo=bar'",
        ),
        (vec!["--mount", "type=bind,src=/nonexistent-berth,dst=/x"], "bind source path does not exist: /nonexistent-berth"),
        (vec!["--mount", "type=volume,src=v9"], "field Target must not be empty"),
        (vec!["-v", "rel/dir:/x"], "create rel/dir: \"rel/dir\" includes invalid characters for a local volume name"),
        (vec!["-v", "./rel:/x"], "includes invalid characters for a local volume name"),
        (vec!["-v", "ok1:/x", "-v", "ok2:/x"], "Duplicate mount point: /x"),
        (vec!["--volumes-from", "no-such-ctr"], "no-such-ctr"),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(args.iter().copied());
        full.extend(["busybox", "true"]);
        let o = env.berth(&full);
        assert_eq!(code(&o), 125, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    assert_eq!(volume_names(&env), before);
    assert!(env.all_ids().is_empty());
    // A volume created with `-o type=...` that cannot be mounted: the start fails, the
    // volume and the container stay as they were (no half-made mount).
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "device=/nonexistent-berth",
        "-o",
        "o=bind",
        "badbind",
    ]);
    let o = env.berth(&["run", "--rm", "-v", "badbind:/x", "busybox", "true"]);
    assert_ne!(code(&o), 0);
    assert!(env.mounts_here().is_empty(), "{:?}", env.mounts_here());
}

#[test]
fn volumes_with_driver_options() {
    let Some(env) = Env::for_root_test("volumes_with_driver_options") else {
        return;
    };
    // type=tmpfs: mounted on _data when first used, shared, unmounted by volume rm.
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m",
        "tv",
    ]);
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        "busybox",
        "sh",
        "-c",
        "echo x > /t/f; grep ' /t ' /proc/mounts",
    ]);
    assert!(
        out.starts_with("tmpfs /t tmpfs") && out.contains("size=2048k"),
        "{out}"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "tv:/t", "busybox", "cat", "/t/f"]),
        "x"
    );
    let data = env.root().join("volumes/tv/_data");
    assert!(!env.mounts_here().is_empty());
    env.ok(&["volume", "rm", "tv"]);
    assert!(env.mounts_here().is_empty(), "{:?}", env.mounts_here());
    assert!(!data.exists());
    // type=none,o=bind: the device path itself.
    let dev = env.dir.path().join("device");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("hello"), "dev").unwrap();
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &format!("device={}", dev.display()),
        "-o",
        "o=bind",
        "bv",
    ]);
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "bv:/b", "busybox", "cat", "/b/hello"]),
        "dev"
    );
    env.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=bv,target=/b",
        "busybox",
        "touch",
        "/b/new",
    ]);
    assert!(dev.join("new").exists());
    // --mount volume-opt/volume-label make a new volume with them.
    env.ok(&[
        "run",
        "--rm",
        "--mount",
        "src=lv,dst=/l,volume-label=k=v,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
        "busybox",
        "true",
    ]);
    assert_eq!(
        env.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Labels.k}} {{.Options.type}}",
            "lv"
        ]),
        "v tmpfs"
    );
    env.ok(&["volume", "rm", "lv", "bv"]);
    assert!(env.mounts_here().is_empty(), "{:?}", env.mounts_here());
}

/// Builds `volimg`: `/data` holds a file, a directory, and symlinks to host paths
/// (`/etc/shadow`, `/etc`, a relative escape); `/alias` is a symlink to the image's `/etc`;
/// both are `VOLUME`s.
fn build_volume_image(env: &Env) {
    let ctx = env.dir.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir -p /data/sub && echo image > /data/sub/f && chown 123:45 /data/sub && chmod 750 /data/sub \
          && ln -s /etc/shadow /data/shadow && ln -s /etc /data/etcdir \
          && ln -s ../../../../../../etc/hostname /data/rel && ln -s /etc /alias \
          && chmod 711 /data\n\
         VOLUME [\"/data\", \"/alias\"]\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "volimg", ctx.to_str().unwrap()]);
}

#[test]
fn image_volume_is_copied_up_inside_the_image_only() {
    let Some(env) = Env::for_root_test("image_volume_is_copied_up_inside_the_image_only") else {
        return;
    };
    build_volume_image(&env);
    let before_etc: Vec<_> = fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    env.ok(&["create", "--name", "c1", "volimg", "true"]);
    let names = volume_names(&env);
    assert_eq!(names.len(), 2, "{names:?}");
    let mounts: serde_json::Value =
        serde_json::from_str(&env.inspect("c1", "{{json .Mounts}}")).unwrap();
    let source_of = |dest: &str| -> std::path::PathBuf {
        let m = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}: {mounts}"));
        Path::new(m["Source"].as_str().unwrap()).to_path_buf()
    };
    let data = source_of("/data");
    assert!(data.starts_with(env.root().join("volumes")));
    // Content and metadata come from the image.
    assert_eq!(fs::read_to_string(data.join("sub/f")).unwrap(), "image\n");
    let md = fs::metadata(data.join("sub")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (123, 45, 0o750));
    assert_eq!(fs::metadata(&data).unwrap().mode() & 0o7777, 0o711);
    // The links are links, never what they point at on the host.
    for (name, target) in [
        ("shadow", "/etc/shadow"),
        ("etcdir", "/etc"),
        ("rel", "../../../../../../etc/hostname"),
    ] {
        let p = data.join(name);
        assert!(
            fs::symlink_metadata(&p).unwrap().file_type().is_symlink(),
            "{name}"
        );
        assert_eq!(fs::read_link(&p).unwrap(), Path::new(target));
    }
    let regular: Vec<_> = walk(&data);
    assert_eq!(
        regular,
        vec![data.join("sub/f")],
        "only the image's one file was copied"
    );
    // /alias -> /etc is resolved inside the image: the image's /etc, not the host's.
    let alias = source_of("/alias");
    let passwd = fs::read_to_string(alias.join("passwd")).unwrap();
    assert_ne!(passwd, fs::read_to_string("/etc/passwd").unwrap());
    assert!(
        !alias.join("shadow").exists()
            || fs::read_to_string("/etc/shadow").ok()
                != fs::read_to_string(alias.join("shadow")).ok()
    );
    // Nothing was written on the host.
    let after_etc: Vec<_> = fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before_etc.len(), after_etc.len());
    // In the container, the volume shows the image's content.
    assert_eq!(env.ok(&["start", "-a", "c1"]), "");
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "c1",
            "busybox",
            "cat",
            "/data/sub/f"
        ]),
        "image"
    );
    // volume-nocopy: a new volume stays empty.
    let out = env.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,dst=/data,volume-nocopy",
        "volimg",
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(out, "");
    // rm -v removes the image's anonymous volumes.
    env.ok(&["rm", "-v", "c1"]);
    let left: Vec<String> = volume_names(&env)
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(walk(&e.path()));
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn two_processes_creating_one_name_make_one_volume() {
    let Some(env) = Env::for_root_test("two_processes_creating_one_name_make_one_volume") else {
        return;
    };
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.cmd(&["volume", "create", "--label", "x=1", "race"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "race");
    }
    // Containers racing for a new volume too.
    let children: Vec<_> = (0..4)
        .map(|i| {
            env.cmd(&[
                "run",
                "--rm",
                "-v",
                "race2:/v",
                "busybox",
                "sh",
                "-c",
                &format!("touch /v/{i}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut names = volume_names(&env);
    names.sort();
    assert_eq!(names, ["race", "race2"]);
    assert_eq!(
        fs::read_dir(env.root().join("volumes/race2/_data"))
            .unwrap()
            .count(),
        4
    );
}
