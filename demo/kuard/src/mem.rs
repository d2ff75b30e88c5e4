//! Memory on request: allocate and touch bytes, keep them, free them.

use std::sync::Mutex;

/// Why an allocation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemError {
    /// No `size` parameter.
    #[error("missing size: use /mem/api/alloc?size=BYTES (or 300M, 1G)")]
    MissingSize,
    /// `size` is not a positive number of bytes.
    #[error("invalid size {0:?}: expected a positive number of bytes like 1048576, 300M or 1G")]
    InvalidSize(String),
    /// `size` is more than the machine has.
    #[error("size {size} bytes exceeds this machine's memory ({total} bytes)")]
    TooLarge {
        /// The size asked for.
        size: u64,
        /// The machine's memory.
        total: u64,
    },
    /// The allocator refused.
    #[error("could not allocate {0} bytes")]
    AllocFailed(u64),
}

impl MemError {
    /// The class of this error (all are the caller's input).
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidArgument
    }
}

/// Parses `1048576`, `300M`, `300MB`, `300MiB`, `1g`, `512k` into bytes (binary units).
pub fn parse_size(s: &str) -> Result<u64, MemError> {
    let bad = || MemError::InvalidSize(s.to_string());
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let v = n.checked_mul(mult).ok_or_else(bad)?;
    if v == 0 {
        return Err(bad());
    }
    Ok(v)
}

/// Memory held on purpose.
#[derive(Debug, Default)]
pub struct Ballast {
    chunks: Mutex<Vec<Vec<u8>>>,
}

impl Ballast {
    /// Allocates `size` bytes, writes to every page so they are resident, and keeps them.
    /// `limit` is the most one allocation may ask for (the machine's memory).
    pub fn alloc(&self, size: u64, limit: u64) -> Result<(), MemError> {
        if size > limit {
            return Err(MemError::TooLarge { size, total: limit });
        }
        let n = usize::try_from(size).map_err(|_| MemError::AllocFailed(size))?;
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| MemError::AllocFailed(size))?;
        // A non-zero fill writes every page, so the memory really is used (and counted
        // against the cgroup) instead of staying a lazy zero mapping.
        v.resize(n, 0x5a);
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(v);
        Ok(())
    }

    /// Frees everything held; returns the bytes freed.
    pub fn clear(&self) -> u64 {
        let mut c = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.iter().map(|v| v.len() as u64).sum();
        c.clear();
        c.shrink_to_fit();
        n
    }

    /// Bytes held and number of allocations.
    pub fn held(&self) -> (u64, usize) {
        let c = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        (c.iter().map(|v| v.len() as u64).sum(), c.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("300M"), Ok(300 << 20));
        assert_eq!(parse_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        for bad in [
            "",
            "-1",
            "abc",
            "0",
            "1x",
            "1.5G",
            "99999999999999999999",
            "18446744073709551615G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alloc_and_clear() {
        let b = Ballast::default();
        b.alloc(1 << 20, 1 << 30).unwrap();
        b.alloc(4096, 1 << 30).unwrap();
        assert_eq!(b.held(), ((1 << 20) + 4096, 2));
        assert_eq!(
            b.alloc(2 << 30, 1 << 30),
            Err(MemError::TooLarge {
                size: 2 << 30,
                total: 1 << 30
            })
        );
        assert_eq!(b.clear(), (1 << 20) + 4096);
        assert_eq!(b.held(), (0, 0));
    }
}
