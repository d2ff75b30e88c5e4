//! `commit`: a new image from a container: its image's layers and one more layer with the
//! changes of its rw layer, the config recording the container's settings and `--change`.
//!
//! The layer is written from the overlay upper directory by handles (`TarOut` with
//! whiteouts as `.wh.` entries and opaque directories marked), leaving out the runtime's
//! empty mount-point stubs, and stored in the same pass ([`Engine::commit_image`]). With
//! `--pause` (the default) a running container is frozen through its cgroup's freezer, as
//! `pause` does (v2 `cgroup.freeze`, v1 `freezer.state`), while the layer is written, and
//! thawed after, unless it was paused already.

use std::io::Write;
use std::os::fd::AsFd;

use berth_oci::Digest;
use rustix::fs::{Mode, OFlags};
use serde_json::{Map, Value};

use super::copy::{chan_pipe, CopyError, TarOut};
use super::{pause, procfs, Container, ContainerError, ContainerStatus, Lifecycle};
use crate::images::CommitImage;
use crate::{Engine, Error};

/// What `commit` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The container, as named.
    pub container: String,
    /// `REPO[:TAG]` to tag the image with.
    pub reference: Option<String>,
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-c` instructions.
    pub changes: Vec<String>,
    /// `--pause`: freeze a running container while its changes are read.
    pub pause: bool,
}

/// A frozen cgroup, thawed when dropped.
struct Frozen {
    cgroup: berth_runtime::cgroups::Cgroup,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = self.cgroup.set_frozen(false) {
            log::warn!("thawing the container after the commit: {e}");
        }
    }
}

/// Freezes the processes of `c` through the runtime's freezer (as `pause` does); `None`
/// when it is paused already (it stays so).
fn freeze(c: &Container) -> Result<Option<Frozen>, ContainerError> {
    if c.status == ContainerStatus::Paused {
        return Ok(None);
    }
    let cgroup = pause::container_cgroup(c.id())?;
    cgroup.set_frozen(true).map_err(pause::cgroup_error)?;
    Ok(Some(Frozen { cgroup }))
}

/// Docker's `Config` keys of the container's settings that an image records.
fn container_config(c: &Container) -> Map<String, Value> {
    let cfg = &c.spec.config;
    let mut m = Map::new();
    let opt = |v: &Option<Vec<String>>| match v {
        Some(v) => Value::from(v.clone()),
        None => Value::Null,
    };
    m.insert("Cmd".into(), opt(&cfg.cmd));
    m.insert("Entrypoint".into(), opt(&cfg.entrypoint));
    m.insert("Env".into(), Value::from(cfg.env.clone()));
    if !cfg.working_dir.is_empty() {
        m.insert("WorkingDir".into(), Value::from(cfg.working_dir.clone()));
    }
    if !cfg.user.is_empty() {
        m.insert("User".into(), Value::from(cfg.user.clone()));
    }
    if !cfg.labels.is_empty() {
        m.insert(
            "Labels".into(),
            Value::Object(
                cfg.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect(),
            ),
        );
    }
    if !cfg.exposed_ports.is_empty() {
        m.insert(
            "ExposedPorts".into(),
            Value::Object(cfg.exposed_ports.clone().into_iter().collect()),
        );
    }
    if let Some(s) = &cfg.stop_signal {
        m.insert("StopSignal".into(), Value::from(s.clone()));
    }
    m
}

impl Lifecycle {
    /// `commit`: stores the changes of a container as a new image of `engine`; returns its
    /// ID. Nothing is left behind on failure, and a frozen container is always thawed.
    pub fn commit(&self, engine: &Engine, req: &CommitRequest) -> Result<Digest, Error> {
        let c = self.find(&req.container)?;
        let base: Option<Digest> = c.record.image_id.parse().ok();
        let created_by = c
            .spec
            .config
            .entrypoint
            .iter()
            .flatten()
            .chain(c.spec.config.cmd.iter().flatten())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let image = CommitImage {
            base,
            container_id: c.id().to_owned(),
            container_config: container_config(&c),
            author: req.author.clone(),
            message: req.message.clone(),
            changes: req.changes.clone(),
            created_by,
            reference: req.reference.clone(),
        };
        image.validate()?;
        let running = c.status.is_active() && procfs::is_alive(c.record.pid, c.record.pid_start);
        let _frozen = if req.pause && running {
            freeze(&c)?
        } else {
            None
        };
        let lower = self.image_tree(&c)?;
        let skip = self.mount_stubs(&c, &lower);
        let upper = self.container_dir(c.id()).join("upper");
        let root = rustix::fs::open(
            &upper,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContainerError::io("opening", &upper)(e.into()))?;
        let (mut w, r) = chan_pipe();
        let name = req.container.clone();
        let (written, stored) = std::thread::scope(|s| {
            let h = s.spawn(move || {
                let mut tar = TarOut::new(&mut w, &name);
                tar.layer_whiteouts = true;
                tar.skip = skip;
                let r = tar
                    .append(root.as_fd(), b"")
                    .and_then(|()| tar.finish())
                    .and_then(|_| w.flush().map_err(CopyError::Write));
                drop(w);
                r
            });
            let stored = engine.commit_image(&image, r);
            let written = h.join().unwrap_or_else(|_| {
                Err(CopyError::Write(std::io::Error::other(
                    "layer writer panicked",
                )))
            });
            (written, stored)
        });
        match (written, stored) {
            (Err(e), _) if !is_broken_pipe(&e) => Err(copy_error(e)),
            (_, stored) => stored,
        }
    }
}

fn is_broken_pipe(e: &CopyError) -> bool {
    matches!(e, CopyError::Write(w) if w.kind() == std::io::ErrorKind::BrokenPipe)
}

fn copy_error(e: CopyError) -> Error {
    match e {
        CopyError::Container(c) => Error::Container(c),
        other => Error::InvalidArgument(other.to_string()),
    }
}
