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

/// Docker's default detach sequence, Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses a `--detach-keys` value as Docker does: comma-separated keys, each a single
/// character or `ctrl-<c>` with `<c>` one of `a-z @ [ \ ] ^ _`.
pub fn parse_detach_keys(value: &str) -> Result<Vec<u8>, super::OptionError> {
    let bad = || super::OptionError::Conflict(format!("Invalid detach keys ({value}) provided"));
    let mut out = Vec::new();
    for key in value.split(',') {
        let lower = key.to_ascii_lowercase();
        if let Some(c) = lower.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if key.len() == 1 && key.is_ascii() {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Watches a byte stream for a detach sequence: bytes that could start it are held back
/// until it is clear whether they do, as Docker's escape proxy does.
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    /// A scanner for `keys` (from [`parse_detach_keys`]).
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// Feeds `input`; returns the bytes to pass on and whether the sequence was typed
    /// (then nothing after it is passed on).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held back goes through.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// [`copy_stdin_to`] that stops at the detach sequence `keys` and then calls `detached`.
pub fn copy_stdin_until_detach(
    master: Option<OwnedFd>,
    keys: Vec<u8>,
    detached: impl FnOnce() + Send + 'static,
) {
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut m = master.map(File::from);
            let mut scan = DetachScanner::new(keys);
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (pass, detach) = scan.feed(&buf[..n]);
                if let Some(m) = m.as_mut() {
                    if m.write_all(&pass).is_err() {
                        return;
                    }
                }
                if detach {
                    detached();
                    return;
                }
            }
        });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match_across_reads() {
        assert_eq!(parse_detach_keys(DEFAULT_DETACH_KEYS).unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-x,a").unwrap(), [24, b'a']);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ls\x10"), (b"ls".to_vec(), false));
        assert_eq!(s.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
    }
}
