//! The terminal side of `run -t` and `exec -t`: raw mode on the caller's terminal, stdin
//! copied to the pty, and the pty kept at the caller's window size (Docker resizes the
//! container's tty at start and on every SIGWINCH).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

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

/// The caller's window size as (rows, columns): stdin's terminal, else stdout's; None when
/// neither is a terminal (or reports 0x0).
pub fn caller_size() -> Option<(u16, u16)> {
    let from = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| (w.ws_row, w.ws_col))
    };
    from(std::io::stdin().as_fd()).or_else(|| from(std::io::stdout().as_fd()))
}

/// Gives the pty (its master) the caller's window size; the kernel then signals SIGWINCH to
/// the pty's foreground process group. Nothing happens when the caller has no terminal.
pub fn copy_window_size(master: impl AsFd) {
    if let Some((rows, cols)) = caller_size() {
        let _ = rustix::termios::tcsetwinsize(
            master,
            rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        );
    }
}
