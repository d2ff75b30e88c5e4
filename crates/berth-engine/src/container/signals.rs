//! Forwarding the signals a process receives to another one: the foreground `run` to its
//! container (Docker's `--sig-proxy`) and berth's init to the container's command.

use nix::sys::signal::{kill, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Keeps forwarding for as long as it lives (the forwarding thread ends with the process).
#[derive(Debug)]
pub struct Forwarding;

/// The signals that are forwarded.
fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Blocks the forwarded signals in the calling thread, so that they stay pending until
/// [`forward_to`] picks them up (call before starting the target when no signal may be
/// lost; a child started by `std::process::Command` gets an empty mask again).
pub fn block() {
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None);
}

/// Blocks the usual termination signals in this thread and forwards them to `pid` from a
/// helper thread. Call after the container's process was forked (it must not inherit the
/// blocked mask).
pub fn forward_to(pid: i32) -> Forwarding {
    forward(pid, None)
}

/// [`forward_to`] for a process on a pty: SIGWINCH resizes the pty (`master`) to the
/// caller's window instead of being sent on, as Docker does for `-t`.
pub fn forward_to_tty(pid: i32, master: std::os::fd::OwnedFd) -> Forwarding {
    forward(pid, Some(master))
}

fn forward(pid: i32, master: Option<std::os::fd::OwnedFd>) -> Forwarding {
    let set = forwarded();
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return Forwarding;
    }
    let _ = std::thread::Builder::new()
        .name("sig-proxy".into())
        .spawn(move || {
            // A new thread may start with an empty mask: block here too, so the signals
            // stay pending for `sigwait` instead of hitting their default action.
            let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
            loop {
                match set.wait() {
                    Ok(Signal::SIGWINCH) if master.is_some() => {
                        if let Some(m) = &master {
                            super::tty::copy_window_size(m);
                        }
                    }
                    Ok(sig) => {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                    Err(_) => return,
                }
            }
        });
    Forwarding
}
