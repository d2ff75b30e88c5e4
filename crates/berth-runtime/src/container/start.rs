//! `start`: let a created container exec its command.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::{read_sync, Container, Op, Status, FIFO_FILE};
use crate::error::{Error, Result};

impl Container {
    /// Starts a created container: writes the byte its init waits for on the exec fifo.
    /// When this process created the container, also waits for the exec and returns its
    /// error (command not found, ...).
    pub fn start(&mut self) -> Result<()> {
        self.check(Op::Start, "start")?;
        let exe_link = format!("/proc/{}/exe", self.state.pid);
        let init_exe = fs::read_link(&exe_link).ok();
        let path = self.state_dir.join(FIFO_FILE);
        // Non-blocking: with no reader (the init died) this fails instead of hanging.
        let mut fifo = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io("open exec fifo", &path, e))?;
        fifo.write_all(b"1")
            .map_err(|e| Error::io("write exec fifo", &path, e))?;
        drop(fifo);
        let _ = fs::remove_file(&path);
        self.state.status = Status::Running;
        self.save()?;
        if let Some(sync) = self.sync.take() {
            if read_sync(&sync)? {
                return Err(Error::Init {
                    step: "unexpected ready message after start".into(),
                    source: std::io::Error::from_raw_os_error(libc::EPROTO),
                });
            }
        } else if self.has_poststart_hooks() {
            // Another process created the container: poststart hooks wait until the init
            // has run its startContainer hooks and exec'd the command (its executable is
            // neither the init's nor the sealed exec stub's), as the spec orders them.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                match fs::read_link(&exe_link) {
                    Ok(exe)
                        if Some(&exe) != init_exe.as_ref()
                            && !exe.to_string_lossy().starts_with("/memfd:") =>
                    {
                        break
                    }
                    Ok(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                    Err(_) => break, // gone: nothing more to wait for
                }
            }
        }
        self.run_poststart_hooks();
        Ok(())
    }
}
