//! berth-runtime: an OCI runtime of berth's own. An OCI runtime spec (`config.json`) and a
//! rootfs go in; an isolated, resource-limited process comes out.
//!
//! It owns namespaces (pid, mount, uts, ipc, net, cgroup, user when asked; joining by path),
//! the container's filesystem (optional rootfs mounts such as the image's overlay, mounted
//! inside the new mount namespace, spec mounts, `/dev` with the standard devices, `pivot_root`,
//! masked and read-only paths), cgroups v1 and v2 ([`cgroups`]), capabilities, rlimits,
//! user and groups, seccomp ([`seccomp`], with Docker's default profile), terminals, and the
//! lifecycle with runc's semantics ([`create`], [`Container::start`], [`Container::kill`],
//! [`Container::delete`], [`run`] and [`Container::exec`]). It knows nothing of images,
//! registries or the store.
//!
//! Main types: [`ContainerConfig`] (what to create), [`Container`] (a created container, with
//! its [`State`]), [`spec::default_spec`] (Docker's defaults for the engine to fill in).
//! Setup syscalls go through [`syscalls::Syscalls`], so mount planning is unit-tested on
//! [`syscalls::RecordingSyscalls`]; all `unsafe` lives in [`sys`].
//!
//! Forking: a single-threaded caller (the `berth` CLI, the monitor) gets one raw `clone(2)`
//! into all namespaces; a multi-threaded caller (the builder's concurrent stages) gets the C
//! library's `fork()` so the child's allocator stays usable (see [`sys::fork_into`]).
//! The init moves itself into its cgroup ([`cgroups::SelfJoin`]): `0` into each v1
//! hierarchy's `tasks` file, and born in the v2 directory by `clone3(CLONE_INTO_CGROUP)` on
//! the raw-clone path; a pid written to `cgroup.procs` would wait for an RCU grace period.
//! Descriptors given in [`Stdio`] should be close-on-exec in the caller (they are dup'ed onto
//! 0, 1, 2 in the container), so that concurrent containers do not inherit each other's.
//!
//! The host's berth binary never runs in a container (the CVE-2019-5736 class). The forked
//! child is berth's binary until it execs; it does not exec the command itself but
//! `berth-exec`, a static `no_std` stub of under 2 KB (`src/sys/exec_stub.rs`, compiled by
//! `build.rs` with `$RUSTC` and embedded), from a sealed memfd made in the child
//! ([`sys::sealed_exec_stub`], [`sys::exec_sealed_stub`]); the stub execs the command and
//! reports a failed exec on the sync pipe. So when the command is a script whose
//! interpreter is `/proc/self/exe`, the kernel runs the stub again (which exits 127), and
//! a container process looking at `/proc/PID/exe` finds `/memfd:berth-exec (deleted)`,
//! which cannot be written. Until then the child is not dumpable (set in the caller before
//! the fork), so `/proc/PID/exe` of the child is closed to the container. This holds for
//! [`create`]/[`run`] (run, start, build's RUN, `berth runtime`) and [`Container::exec`].
//!
//! The lifecycle at a glance (runc's semantics; state in the directory the caller gives):
//!
//! | call | does |
//! |---|---|
//! | [`create`]`(ContainerConfig) -> Result<Container>` | namespaces, cgroup, filesystem, security; the process waits on `exec.fifo` |
//! | [`Container::start`]`(&mut self)` | lets it exec (with the exec error when this process created it) |
//! | [`run`]`(ContainerConfig) -> Result<Container>` | create + start, no fifo (the fast path) |
//! | [`Container::load`]`(&Path)`, [`Container::state`], [`Container::status`] | look again (stale pids detected by start time) |
//! | [`Container::kill`]`(Signal, all)`, [`Container::wait`] | signal; wait (exit status when we are the parent) |
//! | [`Container::exec`]`(&Process, Stdio, Option<Console>) -> ExecProcess` | another process inside (namespaces + cgroup joined) |
//! | [`Container::oom_killed`], [`Container::stats`] | OOM kill seen by the cgroup; memory/CPU/pids usage |
//! | [`Container::delete`]`(force)` | kill (if forced), remove cgroup and state |
//!
//! OCI hooks ([`hooks`]) run at their points of the lifecycle: `prestart`, `createRuntime`
//! and `createContainer` (the latter in the container's namespaces) while the init waits
//! before `pivot_root`, `startContainer` in the container before the exec, `poststart`
//! after it, `poststop` after `delete`. Namespaces given by path are joined (the user
//! namespace first; a pid namespace with one more fork, the caller becoming a child
//! subreaper to wait for the grandchild); without a mount namespace the process only
//! chroots. What the spec asks and this host cannot do is refused ([`Error::Unsupported`]),
//! never ignored.
//!
//! Errors carry an [`ErrorKind`]: `CommandNotFound` (Docker's 127) and
//! `CommandNotExecutable` (126) for the container's command, `Conflict` for a wrong status.
//!
//! ```no_run
//! use berth_runtime::{run, spec::default_spec, ContainerConfig};
//!
//! let mut spec = default_spec(&["echo", "hello"]);
//! spec.set_hostname(Some("c1".into()));
//! spec.root_mut().as_mut().unwrap().set_path("/var/lib/berth/containers/c1/rootfs".into());
//! let cfg = ContainerConfig::new("c1", "/run/berth/runtime/c1", "/var/lib/berth/containers/c1", spec);
//! let mut container = run(cfg)?;                  // created and started
//! let status = container.wait()?;                 // Some(ExitStatus { code: 0, .. })
//! let oom = container.oom_killed();
//! container.delete(false)?;                       // removes its cgroup and state
//! # let _ = (status, oom);
//! # Ok::<(), berth_runtime::Error>(())
//! ```
#![deny(missing_docs)]

pub mod cgroups;
mod container;
mod error;
pub mod hooks;
pub mod mounts;
pub mod process;
pub mod pty;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod sys;
pub mod syscalls;

pub use container::{
    create, run, validate_id, Container, ContainerConfig, ExecProcess, ExitStatus, Op, State,
    Status,
};
pub use error::{Error, ErrorKind, HookFailure, Result};
pub use mounts::RootfsMount;
pub use process::{Console, Stdio};
pub use seccomp::{default_seccomp, default_seccomp_for};

/// Signals, as [`Container::kill`] takes them.
pub use nix::sys::signal::Signal;
/// Re-export of the OCI runtime spec types the API takes.
pub use oci_spec::runtime as oci;
