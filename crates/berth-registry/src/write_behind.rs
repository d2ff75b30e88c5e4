//! Write-behind for blob files that are fsynced when complete: while a blob is written, a
//! helper thread flushes what is dirty so far (`fdatasync` on a second handle) every
//! [`KICK_EVERY`] bytes, so the disk works while the bytes still arrive and the final fsync
//! finds little left. A transfer then takes about max(network, disk) instead of their sum.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes written between two flushes started.
pub const KICK_EVERY: u64 = 16 << 20;

/// A file writer whose dirty pages are flushed in the background as it grows.
#[derive(Debug)]
pub struct WriteBehind {
    file: File,
    since_kick: u64,
    kick: Option<SyncSender<()>>,
    syncer: Option<JoinHandle<()>>,
    // The flushes' first error: a failed fdatasync reports a write-back error once, to
    // whichever handle asked, so it is kept for `finish` instead of being lost.
    error: Arc<Mutex<Option<io::Error>>>,
}

impl WriteBehind {
    /// Wraps `file`, positioned where the writes go. Without a second handle (out of file
    /// descriptors) it is a plain writer and the final fsync does all the work.
    pub fn new(file: File) -> WriteBehind {
        let error = Arc::new(Mutex::new(None));
        let (kick, syncer) = match file.try_clone() {
            Ok(handle) => {
                let (tx, rx) = sync_channel::<()>(1);
                let slot = error.clone();
                let spawned = std::thread::Builder::new()
                    .name("write-behind".into())
                    .spawn(move || {
                        while rx.recv().is_ok() {
                            if let Err(e) = handle.sync_data() {
                                if let Ok(mut s) = slot.lock() {
                                    s.get_or_insert(e);
                                }
                                return;
                            }
                        }
                    });
                match spawned {
                    Ok(h) => (Some(tx), Some(h)),
                    Err(_) => (None, None),
                }
            }
            Err(_) => (None, None),
        };
        WriteBehind {
            file,
            since_kick: 0,
            kick,
            syncer,
            error,
        }
    }

    /// The file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    fn stop(&mut self) -> io::Result<()> {
        drop(self.kick.take());
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops the background flushes and returns the file (for the caller's final fsync), or
    /// the error a background flush met.
    pub fn finish(mut self) -> io::Result<File> {
        self.stop()?;
        let file = self.file.try_clone()?;
        Ok(file)
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.wrote(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        self.wrote(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl WriteBehind {
    /// Counts `n` bytes written and starts a flush every [`KICK_EVERY`] bytes.
    fn wrote(&mut self, n: usize) -> io::Result<usize> {
        self.since_kick += n as u64;
        if self.since_kick >= KICK_EVERY {
            if let Some(k) = &self.kick {
                match k.try_send(()) {
                    // Busy with the previous flush: the next kick covers these bytes too.
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    Err(TrySendError::Disconnected(())) => {
                        // The flusher stopped on an error: report it now.
                        self.kick = None;
                        if let Some(e) = self.error.lock().ok().and_then(|mut e| e.take()) {
                            return Err(e);
                        }
                    }
                }
            }
            self.since_kick = 0;
        }
        Ok(n)
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut w = WriteBehind::new(File::create(&path).unwrap());
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..40 {
            w.write_all(&chunk).unwrap();
        }
        let f = w.finish().unwrap();
        f.sync_all().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40 << 20);
    }
}
