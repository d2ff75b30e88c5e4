//! Volumes made with driver options (`volume create -o type=tmpfs -o device=tmpfs -o
//! o=size=10m`, `-o type=none -o device=/srv -o o=bind`), as Docker's local driver mounts
//! them: the device on the volume's `_data` when a container first needs it.
//!
//! A bind (`o=bind`) needs no mount on the host: the container binds the device path
//! directly. Other types are mounted once on `_data` (under a lock on the volume's
//! directory, so two starts at once mount it once) and stay mounted until the volume is
//! removed (Docker unmounts when the last container stops; berth has no daemon to notice
//! that, so a tmpfs volume keeps its content until `volume rm`).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::{VolumeError, VolumeRecord};

/// Whether the options ask for a bind of `device` (`type=none`/`bind` with `o=bind`).
pub fn is_bind(options: &BTreeMap<String, String>) -> bool {
    let o = options.get("o").map(String::as_str).unwrap_or("");
    o.split(',').any(|f| f == "bind" || f == "rbind")
        || options.get("type").is_some_and(|t| t == "bind")
}

/// The host path a container binds for the volume `rec` whose data directory is `data`:
/// the device of a bind volume, else `data` (mounted first when the volume has a type).
pub fn source_for(rec: &VolumeRecord, data: &Path) -> Result<PathBuf, VolumeError> {
    let options: BTreeMap<String, String> = serde_json::from_str(&rec.options).unwrap_or_default();
    let Some(ty) = options.get("type").filter(|t| !t.is_empty()) else {
        return Ok(data.to_path_buf());
    };
    let device = options.get("device").cloned().unwrap_or_default();
    if is_bind(&options) {
        let p = PathBuf::from(&device);
        if !p.is_dir() && !p.is_file() {
            return Err(VolumeError::Mount {
                path: data.to_path_buf(),
                device,
                detail: "flags: 0x1000: no such file or directory".into(),
            });
        }
        return Ok(p);
    }
    let dir = data.parent().unwrap_or(data);
    let lock = File::open(dir).map_err(VolumeError::io("opening", dir))?;
    rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| VolumeError::io("locking", dir)(e.into()))?;
    if is_mountpoint(data) {
        return Ok(data.to_path_buf());
    }
    let mut flags = MsFlags::empty();
    let mut data_opts = Vec::new();
    let o = options.get("o").map(String::as_str).unwrap_or("");
    for f in o.split(',').filter(|f| !f.is_empty()) {
        match f {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            other => data_opts.push(other.to_string()),
        }
    }
    if let Some(size) = options.get("size") {
        data_opts.push(format!("size={size}"));
    }
    let data_text = data_opts.join(",");
    nix::mount::mount(
        Some(device.as_str()),
        data,
        Some(ty.as_str()),
        flags,
        (!data_text.is_empty()).then_some(data_text.as_str()),
    )
    .map_err(|e| VolumeError::Mount {
        path: data.to_path_buf(),
        device: device.clone(),
        detail: format!("type: {ty}, options: {o}: {}", e.desc()),
    })?;
    Ok(data.to_path_buf())
}

/// Whether `path` is a mount point (in this mount namespace).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    text.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape(mp) == want.as_ref())
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(n) = u8::from_str_radix(digits, 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts whatever is mounted on a volume's `_data` (all of it, lazily); nothing mounted
/// is fine.
pub fn unmount_data(data: &Path) -> std::io::Result<()> {
    while is_mountpoint(data) {
        nix::mount::umount2(data, MntFlags::MNT_DETACH)
            .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
    }
    Ok(())
}
