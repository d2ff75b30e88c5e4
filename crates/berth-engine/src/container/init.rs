//! `--init`: a minimal init as the container's PID 1 that forwards signals to the command
//! and reaps every zombie (what Docker does with tini).
//!
//! The init is berth itself. The binary is dynamically linked and images need not carry a
//! C library, so the host's dynamic loader and the libraries berth has loaded (read from
//! /proc/self/maps) are bind-mounted read-only under `/dev/.berth-init` with the binary,
//! and the loader runs it: `ld.so --library-path /dev/.berth-init berth _init -- CMD...`.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::{ContainerError, Result};

/// Where the init's files appear inside the container.
pub const INIT_DIR: &str = "/dev/.berth-init";

/// The shared objects this process has mapped (loader included), from /proc/self/maps.
fn loaded_libraries() -> Vec<PathBuf> {
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        if let Some(path) = line.split_whitespace().nth(5) {
            if path.starts_with('/') && path.contains(".so") {
                let p = PathBuf::from(path);
                if !libs.contains(&p) {
                    libs.push(p);
                }
            }
        }
    }
    libs
}

/// The read-only binds and the argv that run `argv` under berth's init.
pub fn init_mounts(argv: &[String]) -> Result<(Vec<(PathBuf, String, bool)>, Vec<String>)> {
    let exe = std::env::current_exe().map_err(ContainerError::io(
        "finding berth's binary",
        "/proc/self/exe",
    ))?;
    let mut binds = vec![(exe, format!("{INIT_DIR}/berth"), true)];
    let mut loader = None;
    for lib in loaded_libraries() {
        let name = lib
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with("ld-linux") || name.starts_with("ld64") {
            loader = Some(format!("{INIT_DIR}/{name}"));
        }
        binds.push((lib, format!("{INIT_DIR}/{name}"), true));
    }
    let loader = loader.ok_or_else(|| ContainerError::Io {
        op: "finding the dynamic loader of",
        path: PathBuf::from("/proc/self/maps"),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let mut args = vec![
        loader,
        "--library-path".to_string(),
        INIT_DIR.to_string(),
        format!("{INIT_DIR}/berth"),
        "_init".to_string(),
        "--".to_string(),
    ];
    args.extend(argv.iter().cloned());
    Ok((binds, args))
}

/// PID 1's loop: starts `argv`, forwards signals to it, reaps every child, and exits with
/// the command's status when it ends.
pub fn run_init(argv: &[String]) -> i32 {
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("berth-init: no command");
        return 125;
    };
    // The child must start with an empty signal mask (it inherits ours), so forwarding is
    // set up right after the spawn; a signal in between is dropped, as for any PID 1.
    let child = match Command::new(cmd).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-init: exec {cmd}: {}", super::options::io_text(&e));
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let main = child.id() as i32;
    let _forwarding = super::signals::forward_to(main);
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == main => return code,
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == main => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
