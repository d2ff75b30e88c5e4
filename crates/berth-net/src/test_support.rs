//! Support for tests on a shared host: parallel test processes (nextest runs each test in
//! its own) each need a subnet and bridge name nobody else uses at the same time.

use std::io::Write;
use std::path::PathBuf;

/// A number from 0 to 255 that no other live test process holds under the same tag; freed
/// when dropped. Tests build their subnets and bridge names from it.
#[derive(Debug)]
pub struct Reservation {
    path: PathBuf,
    /// The reserved number.
    pub n: u8,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reserves a number under `tag` (a file per number in the temp dir, holding the owner's
/// PID; a file whose owner is gone is taken over).
///
/// # Panics
/// When all 256 numbers are held by live processes.
pub fn reserve(tag: &str) -> Reservation {
    let dir = std::env::temp_dir().join("berth-test-nets");
    let _ = std::fs::create_dir_all(&dir);
    let me = std::process::id();
    let start = me as usize;
    for i in 0..256usize {
        let n = ((start + i * 37) % 256) as u8;
        let path = dir.join(format!("{tag}-{n}"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{me}");
                    return Reservation { path, n };
                }
                Err(_) => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .map(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
                        .unwrap_or(true);
                    if alive {
                        break;
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    panic!("no free test network number under {tag}");
}
