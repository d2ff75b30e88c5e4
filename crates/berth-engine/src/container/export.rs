//! `export`: a container's file system (image layers and rw layer merged, without its
//! mounts and volumes) as a tar stream.
//!
//! The overlay is mounted privately and read-only (the rw layer as its top lower layer,
//! see [`Lifecycle::mount_rootfs_detached`]), so a running container's rw layer is never
//! shared with a second writable overlay; the tree is walked by handles, as `cp` does.

use std::io::{BufWriter, Write};
use std::os::fd::AsFd;

use super::copy::{CopyError, TarOut, CHUNK};
use super::{Container, Lifecycle};

impl Lifecycle {
    /// Writes the file system of `c` (named `name` in errors) to `out` as a tar; returns
    /// the bytes of file content written.
    pub fn export(&self, c: &Container, name: &str, out: &mut dyn Write) -> Result<u64, CopyError> {
        let root = self.mount_rootfs_detached(c, false)?;
        let mut w = BufWriter::with_capacity(CHUNK, out);
        let mut tar = TarOut::new(&mut w, name);
        tar.append(root.as_fd(), b"")?;
        let n = tar.finish()?;
        w.flush().map_err(CopyError::Write)?;
        Ok(n)
    }
}
