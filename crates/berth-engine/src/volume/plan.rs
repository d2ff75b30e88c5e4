//! A container's mounts: from its flags, `--volumes-from` and its image's `VOLUME`s to the
//! list it keeps (at create), and from that list to the OCI mounts it starts with.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use berth_store::{Store, VolumeStoreError};

use super::{copy, data_dir, make_data_dir, mount, record_for_mount, VolumeError};
use crate::container::layered::LayeredTree;
use crate::container::options::{MountKind, OptionError, VolumeSpec};
use crate::container::{ContainerError, ContainerSpec};
use crate::spec::Mount;

fn clean(dest: &str) -> String {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// The container's mounts, in order: the flags' (`-v`, `--mount`), then those of the
/// `--volumes-from` containers, then an anonymous volume for each of the image's
/// `VOLUME`s; an earlier one at the same destination wins. Anonymous volumes get their
/// names here. A `--mount` bind whose source does not exist is Docker's error.
pub fn plan(
    store: &Store,
    flags: &[VolumeSpec],
    volumes_from: &[(String, Option<bool>)],
    image_volumes: &[String],
) -> Result<Vec<VolumeSpec>, ContainerError> {
    let mut out: Vec<VolumeSpec> = Vec::new();
    let taken =
        |out: &[VolumeSpec], dest: &str| out.iter().any(|m| clean(&m.destination) == clean(dest));
    for v in flags {
        if v.is_bind() && v.strict_source {
            let src = v.source.as_deref().unwrap_or("");
            if fs::metadata(src).is_err() {
                return Err(OptionError::Conflict(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                ))
                .into());
            }
        }
        out.push(v.clone());
    }
    for (name, ro) in volumes_from {
        let rec = store.resolve_container(name)?;
        let spec: ContainerSpec =
            serde_json::from_str(&rec.config).map_err(|e| ContainerError::ImageConfig {
                image: rec.id.clone(),
                detail: e.to_string(),
            })?;
        let legacy = spec.anonymous_volumes.iter().filter_map(|a| {
            let (n, d) = a.split_once(':')?;
            let mut v = VolumeSpec::anonymous_at(d);
            v.source = Some(n.to_string());
            Some(v)
        });
        for mut v in spec.volumes.into_iter().chain(legacy) {
            if v.mount_kind() == MountKind::Tmpfs || taken(&out, &v.destination) {
                continue;
            }
            if let Some(ro) = ro {
                v.read_only = *ro;
            }
            // The volume exists already: nothing to create or fill.
            v.volume_options.clear();
            v.volume_labels.clear();
            v.strict_source = false;
            out.push(v);
        }
    }
    for dest in image_volumes {
        if !dest.starts_with('/') || taken(&out, dest) {
            continue;
        }
        out.push(VolumeSpec::anonymous_at(&clean(dest)));
    }
    for v in &mut out {
        if v.is_volume() && v.source.is_none() {
            v.source = Some(super::random_name());
        }
    }
    Ok(out)
}

/// Creates the container's missing volumes and claims them all for `container_id` (one
/// transaction), makes their directories and fills new, empty ones from `tree` (unless
/// `nocopy`, or the volume has a device of its own). When it fails, the volumes this call
/// created go again.
pub fn claim(
    store: &Store,
    container_id: &str,
    mounts: &[VolumeSpec],
    tree: &LayeredTree,
) -> Result<(), VolumeError> {
    let mut new = Vec::new();
    let mut names = Vec::new();
    for v in mounts.iter().filter(|v| v.is_volume()) {
        let Some(name) = v.source.clone() else {
            continue;
        };
        new.push(record_for_mount(
            &name,
            v.anonymous,
            &v.volume_labels,
            &v.volume_options,
        )?);
        names.push(name);
    }
    if names.is_empty() {
        return Ok(());
    }
    let created = store.claim_volumes(container_id, &new, &names)?;
    let filled = (|| -> Result<(), VolumeError> {
        for v in mounts.iter().filter(|v| v.is_volume()) {
            let Some(name) = v.source.as_deref() else {
                continue;
            };
            let data = make_data_dir(store.root(), name)?;
            let rec = store
                .volume(name)?
                .ok_or_else(|| VolumeStoreError::NotFound(name.to_string()))?;
            let options: BTreeMap<String, String> =
                serde_json::from_str(&rec.options).unwrap_or_default();
            let has_device = options.get("type").is_some_and(|t| !t.is_empty());
            if !v.nocopy && !has_device {
                copy::copy_up(tree, &v.destination, &data)
                    .map_err(VolumeError::io("copying image content into", &data))?;
            }
        }
        Ok(())
    })();
    if let Err(e) = filled {
        let _ = store.release_volumes(container_id);
        for n in &created {
            let _ = super::remove(store, n);
        }
        return Err(e);
    }
    Ok(())
}

/// The OCI mounts of a container's volumes, binds and `--mount` tmpfs, as it starts: a
/// volume's data directory is made again when missing, and mounted first when it has a
/// device; a missing `-v` bind source is created as Docker does (a directory, 0755).
pub fn oci_mounts(store: &Store, cs: &ContainerSpec) -> Result<Vec<Mount>, VolumeError> {
    let mut out = Vec::new();
    let legacy = cs.anonymous_volumes.iter().filter_map(|a| {
        let (n, d) = a.split_once(':')?;
        let mut v = VolumeSpec::anonymous_at(d);
        v.source = Some(n.to_string());
        Some(v)
    });
    for v in cs.volumes.iter().cloned().chain(legacy) {
        let mut options: Vec<String> = Vec::new();
        let source: PathBuf = match v.mount_kind() {
            MountKind::Tmpfs => {
                options.extend(["nosuid", "nodev", "noexec"].map(String::from));
                if let Some(size) = v.tmpfs_size {
                    options.push(format!("size={size}"));
                }
                options.push(format!("mode={:o}", v.tmpfs_mode.unwrap_or(0o1777)));
                if v.read_only {
                    options.push("ro".into());
                }
                out.push(Mount {
                    destination: v.destination.clone(),
                    typ: "tmpfs".into(),
                    source: PathBuf::from("tmpfs"),
                    options,
                });
                continue;
            }
            MountKind::Bind => {
                let src = PathBuf::from(v.source.clone().unwrap_or_default());
                if !v.strict_source && fs::symlink_metadata(&src).is_err() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&src)
                        .map_err(VolumeError::io("creating mount source path", &src))?;
                }
                src
            }
            MountKind::Volume => {
                let Some(name) = v.source.as_deref() else {
                    continue;
                };
                let data = make_data_dir(store.root(), name)?;
                // A container an older berth made has volumes without rows: their data.
                match store.volume(name)? {
                    Some(rec) => mount::source_for(&rec, &data)?,
                    None => data,
                }
            }
        };
        options.push(if v.nonrecursive { "bind" } else { "rbind" }.into());
        options.push(v.propagation_or_default().to_string());
        if v.read_only {
            options.push("ro".into());
        }
        out.push(Mount {
            destination: v.destination.clone(),
            typ: "bind".into(),
            source,
            options,
        });
    }
    Ok(out)
}

/// The names of the anonymous volumes a container has (`rm -v` removes them).
pub fn anonymous_names(cs: &ContainerSpec) -> Vec<String> {
    let mut names: Vec<String> = cs
        .volumes
        .iter()
        .filter(|v| v.is_volume() && v.anonymous)
        .filter_map(|v| v.source.clone())
        .collect();
    names.extend(
        cs.anonymous_volumes
            .iter()
            .filter_map(|a| a.split_once(':').map(|(n, _)| n.to_string())),
    );
    names
}

/// One entry of `inspect`'s `Mounts`, as Docker shows it.
pub fn inspect_mount(root: &Path, v: &VolumeSpec) -> serde_json::Value {
    let mode = if v.read_only { "ro" } else { "" };
    match v.mount_kind() {
        MountKind::Bind => serde_json::json!({
            "Type": "bind",
            "Source": v.source.clone().unwrap_or_default(),
            "Destination": v.destination,
            "Mode": mode,
            "RW": !v.read_only,
            "Propagation": v.propagation_or_default(),
        }),
        MountKind::Volume => {
            let name = v.source.clone().unwrap_or_default();
            serde_json::json!({
                "Type": "volume",
                "Name": name,
                "Source": data_dir(root, &name),
                "Destination": v.destination,
                "Driver": "local",
                "Mode": mode,
                "RW": !v.read_only,
                "Propagation": "",
            })
        }
        MountKind::Tmpfs => serde_json::json!({
            "Type": "tmpfs",
            "Source": "",
            "Destination": v.destination,
            "Mode": mode,
            "RW": !v.read_only,
            "Propagation": "",
        }),
    }
}
