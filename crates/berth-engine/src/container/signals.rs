//! Forwarding the signals a foreground `run` receives to the container's process, as
//! Docker's `--sig-proxy` does.

use nix::sys::signal::{kill, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Keeps forwarding for as long as it lives (the forwarding thread ends with the process).
#[derive(Debug)]
pub struct Forwarding;

/// Blocks the usual termination signals in this thread and forwards them to `pid` from a
/// helper thread. Call after the container's process was forked (it must not inherit the
/// blocked mask).
pub fn forward_to(pid: i32) -> Forwarding {
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
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return Forwarding;
    }
    let _ = std::thread::Builder::new()
        .name("sig-proxy".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => {
                    let _ = kill(Pid::from_raw(pid), sig);
                }
                Err(_) => return,
            }
        });
    Forwarding
}
