//! The resources beyond memory, CPU, pids and devices: `blockIO`, `network` (classID,
//! priorities), `hugepageLimits`, kernel memory (`memory.kernel`, `memory.kernelTCP`) and
//! `rdma`. Each is written where this host's cgroups have a file for it; a field the host
//! cannot enforce is refused with [`CgroupError::Unsupported`], as runc does, never
//! ignored.

use std::path::Path;

use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

use super::{write, Cgroup, CgroupError};

fn unsupported(what: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported { what: what.into() }
}

/// runc's conversion of a blkio weight (10..=1000) to an io.weight (1..=10000).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// `2MB` → `2MB` as the kernel's file names have it (`hugetlb.2MB.limit_in_bytes`);
/// `2M`/`2Mi`/`2MiB` are accepted as the same size.
fn page_size_name(size: &str) -> Option<String> {
    let digits: String = size.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = &size[digits.len()..];
    if digits.is_empty() {
        return None;
    }
    let unit = match unit {
        "KB" | "K" | "Ki" | "KiB" | "kB" => "KB",
        "MB" | "M" | "Mi" | "MiB" => "MB",
        "GB" | "G" | "Gi" | "GiB" => "GB",
        _ => return None,
    };
    Some(format!("{digits}{unit}"))
}

fn throttles(
    list: &Option<Vec<LinuxThrottleDevice>>,
) -> impl Iterator<Item = &LinuxThrottleDevice> {
    list.iter().flatten()
}

impl Cgroup {
    /// Applies the extra resources on a v1 (or hybrid) host.
    pub(super) fn apply_extra_v1(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            let kmem = [
                ("memory.kernel", mem.kernel(), "memory.kmem.limit_in_bytes"),
                (
                    "memory.kernelTCP",
                    mem.kernel_tcp(),
                    "memory.kmem.tcp.limit_in_bytes",
                ),
            ];
            for (field, value, file) in kmem {
                let Some(v) = value else { continue };
                let path = self
                    .controller_dir("memory")
                    .map(|d| d.join(file))
                    .filter(|p| p.exists())
                    .ok_or_else(|| {
                        unsupported(format!(
                            "{field}: this kernel has no {file} (memory cgroup)"
                        ))
                    })?;
                write(&path, &v.to_string())?;
                // Since Linux 5.16 the kernel takes the write and ignores it: check.
                if v >= 0 {
                    let now = super::read_u64(&path)?;
                    let wanted = v as u64;
                    if now > wanted || wanted - now >= 65_536 {
                        return Err(unsupported(format!(
                            "{field}: this kernel ignores {file} (kernel memory limits are deprecated since Linux 5.16)"
                        )));
                    }
                }
            }
        }
        if let Some(bio) = res.block_io() {
            let dir = self.controller_dir("blkio").ok_or_else(|| {
                unsupported("blockIO: the blkio cgroup controller is not mounted on this host")
            })?;
            // BFQ's files when the scheduler is BFQ, CFQ's on older kernels.
            let pick = |names: &[&str], field: &str| {
                names
                    .iter()
                    .map(|n| dir.join(n))
                    .find(|p| p.exists())
                    .ok_or_else(|| {
                        unsupported(format!(
                            "blockIO.{field}: the blkio controller of this host has no {} (no BFQ or CFQ I/O scheduler)",
                            names.join(" or ")
                        ))
                    })
            };
            if let Some(w) = bio.weight() {
                write(
                    &pick(&["blkio.weight", "blkio.bfq.weight"], "weight")?,
                    &w.to_string(),
                )?;
            }
            if let Some(w) = bio.leaf_weight() {
                write(&pick(&["blkio.leaf_weight"], "leafWeight")?, &w.to_string())?;
            }
            for d in bio.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    let f = pick(
                        &["blkio.weight_device", "blkio.bfq.weight_device"],
                        "weightDevice",
                    )?;
                    write(&f, &format!("{}:{} {w}", d.major(), d.minor()))?;
                }
                if let Some(w) = d.leaf_weight() {
                    let f = pick(&["blkio.leaf_weight_device"], "weightDevice.leafWeight")?;
                    write(&f, &format!("{}:{} {w}", d.major(), d.minor()))?;
                }
            }
            for (list, file) in [
                (
                    bio.throttle_read_bps_device(),
                    "blkio.throttle.read_bps_device",
                ),
                (
                    bio.throttle_write_bps_device(),
                    "blkio.throttle.write_bps_device",
                ),
                (
                    bio.throttle_read_iops_device(),
                    "blkio.throttle.read_iops_device",
                ),
                (
                    bio.throttle_write_iops_device(),
                    "blkio.throttle.write_iops_device",
                ),
            ] {
                for d in throttles(list) {
                    write(
                        &dir.join(file),
                        &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                    )?;
                }
            }
        }
        if let Some(net) = res.network() {
            if let Some(class) = net.class_id() {
                let dir = self.controller_dir("net_cls").ok_or_else(|| {
                    unsupported("network.classID: the net_cls cgroup controller is not mounted on this host")
                })?;
                write(&dir.join("net_cls.classid"), &class.to_string())?;
            }
            for p in net.priorities().iter().flatten() {
                let dir = self.controller_dir("net_prio").ok_or_else(|| {
                    unsupported("network.priorities: the net_prio cgroup controller is not mounted on this host")
                })?;
                write(
                    &dir.join("net_prio.ifpriomap"),
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        for h in res.hugepage_limits().iter().flatten() {
            let dir = self.controller_dir("hugetlb").ok_or_else(|| {
                unsupported(
                    "hugepageLimits: the hugetlb cgroup controller is not mounted on this host",
                )
            })?;
            self.hugetlb_file(dir, h.page_size(), "limit_in_bytes", h.limit())?;
        }
        if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
            self.rdma(res, "rdma.max")?;
        }
        Ok(())
    }

    /// Applies the extra resources on a v2 host (the directory `dir`).
    pub(super) fn apply_extra_v2(
        &self,
        dir: &Path,
        res: &LinuxResources,
    ) -> Result<(), CgroupError> {
        if let Some(mem) = res.memory() {
            if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
                return Err(unsupported(
                    "memory.kernel and memory.kernelTCP: cgroup v2 has no kernel memory limit",
                ));
            }
        }
        if let Some(bio) = res.block_io() {
            let need = |file: &str, field: &str| {
                let p = dir.join(file);
                if p.exists() {
                    Ok(p)
                } else {
                    Err(unsupported(format!(
                        "blockIO.{field}: this host's cgroup has no {file} (io controller, or the BFQ scheduler, missing)"
                    )))
                }
            };
            if let Some(w) = bio.weight() {
                match need("io.bfq.weight", "weight") {
                    Ok(p) => write(&p, &w.to_string())?,
                    Err(_) => write(
                        &need("io.weight", "weight")?,
                        &format!("default {}", blkio_weight_to_io_weight(w)),
                    )?,
                }
            }
            if bio.leaf_weight().is_some() {
                return Err(unsupported(
                    "blockIO.leafWeight: cgroup v2 has no leaf weight",
                ));
            }
            for d in bio.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    write(
                        &need("io.bfq.weight", "weightDevice")?,
                        &format!("{}:{} {w}", d.major(), d.minor()),
                    )?;
                }
            }
            for (list, key) in [
                (bio.throttle_read_bps_device(), "rbps"),
                (bio.throttle_write_bps_device(), "wbps"),
                (bio.throttle_read_iops_device(), "riops"),
                (bio.throttle_write_iops_device(), "wiops"),
            ] {
                for d in throttles(list) {
                    write(
                        &need("io.max", "throttle")?,
                        &format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                    )?;
                }
            }
        }
        if res.network().is_some() {
            return Err(unsupported(
                "network (classID, priorities): cgroup v2 has no net_cls or net_prio controller",
            ));
        }
        for h in res.hugepage_limits().iter().flatten() {
            self.hugetlb_file(dir, h.page_size(), "max", h.limit())?;
        }
        if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
            self.rdma(res, "rdma.max")?;
        }
        Ok(())
    }

    fn hugetlb_file(
        &self,
        dir: &Path,
        page_size: &str,
        suffix: &str,
        limit: i64,
    ) -> Result<(), CgroupError> {
        let name = page_size_name(page_size).ok_or_else(|| CgroupError::InvalidValue {
            what: "hugepageLimits.pageSize",
            value: page_size.to_string(),
        })?;
        let file = dir.join(format!("hugetlb.{name}.{suffix}"));
        if !file.exists() {
            return Err(unsupported(format!(
                "hugepageLimits: this host has no {name} huge pages ({} missing)",
                file.display()
            )));
        }
        let v = if limit < 0 && suffix == "max" {
            "max".to_string()
        } else {
            limit.to_string()
        };
        write(&file, &v)
    }

    fn rdma(&self, res: &LinuxResources, file: &str) -> Result<(), CgroupError> {
        let dir = self.controller_dir("rdma").ok_or_else(|| {
            unsupported("rdma: the rdma cgroup controller is not available on this host")
        })?;
        let path = dir.join(file);
        if !path.exists() {
            return Err(unsupported(format!("rdma: {} is missing", path.display())));
        }
        for (device, limit) in res.rdma().iter().flatten() {
            let mut v = device.clone();
            if let Some(h) = limit.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = limit.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            write(&path, &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_page_sizes_convert_like_runc() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(page_size_name("2MB").as_deref(), Some("2MB"));
        assert_eq!(page_size_name("1Gi").as_deref(), Some("1GB"));
        assert_eq!(page_size_name("64KB").as_deref(), Some("64KB"));
        assert_eq!(page_size_name("huge"), None);
    }
}
