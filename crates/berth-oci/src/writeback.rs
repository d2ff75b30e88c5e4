//! Write-behind for blob files that are fsynced when complete: as a blob grows, the writeback
//! of what is written so far is started every [`KICK_EVERY`] bytes without waiting for it, so
//! the disk works while the bytes still arrive and the final fsync finds little left to do.
//! A transfer then takes about max(network, disk) instead of their sum.
//!
//! The kick is `posix_fadvise(POSIX_FADV_DONTNEED)`: it starts the writeback of the file's
//! dirty pages (WB_SYNC_NONE, no wait) and drops the pages already written, which nothing
//! reads soon. Dropping them matters: keeping big blobs cached measured about 50% more system
//! time, in reclaim. (An `fdatasync` on a helper thread every 16 MB measured the same push
//! throughput, with a thread and a flush of the disk's cache per kick.)

use std::fs::File;
use std::io::{self, Write};

/// Bytes written between two kicks.
pub const KICK_EVERY: u64 = 8 << 20;

/// Starts the writeback of `file`'s dirty pages without waiting for it.
pub fn start_writeback(file: &File) -> io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed).map_err(io::Error::from)
}

/// A file writer whose dirty pages are sent to the disk as it grows.
#[derive(Debug)]
pub struct WriteBehind {
    file: File,
    since_kick: u64,
}

impl WriteBehind {
    /// Wraps `file`, positioned where the writes go.
    pub fn new(file: File) -> WriteBehind {
        WriteBehind {
            file,
            since_kick: 0,
        }
    }

    /// The file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Returns the file (for the caller's final fsync).
    pub fn into_inner(self) -> File {
        self.file
    }

    fn wrote(&mut self, n: usize) -> io::Result<usize> {
        self.since_kick += n as u64;
        if self.since_kick >= KICK_EVERY {
            self.since_kick = 0;
            start_writeback(&self.file)?;
        }
        Ok(n)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_and_leaves_little_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut w = WriteBehind::new(File::create(&path).unwrap());
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..40 {
            w.write_all(&chunk).unwrap();
        }
        let f = w.into_inner();
        f.sync_all().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40 << 20);
        assert!(std::fs::read(&path).unwrap().iter().all(|b| *b == 7));
    }
}
