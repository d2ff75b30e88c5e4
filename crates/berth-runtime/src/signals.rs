//! Signal forwarding for a foreground container: the caller blocks the signals a user sends
//! (before creating the container, whose init unblocks them again), then a thread waits for
//! them and passes each one to the container's init, as runc does.

use std::thread::JoinHandle;

use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// The signals that are forwarded: everything a terminal or a process manager sends.
const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Blocks the forwarded signals in the calling thread (threads spawned later inherit it).
/// Call before [`crate::run`] so none can kill the caller before forwarding starts.
pub fn block_forwarded() -> Result<SigSet> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Error::sys("block signals", e))?;
    Ok(set)
}

/// Starts a thread that sends every signal of `set` that arrives to `pid`. It ends with the
/// process (it is never joined).
pub fn forward_to(set: SigSet, pid: Pid) -> JoinHandle<()> {
    std::thread::spawn(move || loop {
        match set.wait() {
            Ok(sig) => {
                if nix::sys::signal::kill(pid, sig).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    })
}
