//! The terminal side of `run -t`: raw mode on the caller's terminal, stdin copied to the pty.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// The caller's terminal in raw mode; restored when dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode (None when stdin is not a terminal).
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Copies our stdin to `master` from a helper thread until either side closes.
pub fn copy_stdin_to(master: OwnedFd) {
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut m = File::from(master);
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if m.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
}
