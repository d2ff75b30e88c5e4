//! berth-engine: the use cases that join the other crates (run, build, pull, push, images, ...).
//!
//! The CLI and any later API face call this crate; it calls the store, the runtime, the
//! network code, the builder and the registry client. It parses no arguments and prints
//! nothing: it returns values that the caller renders.
//!
//! Main types: [`Engine`] (one per invocation, opened on a root, holding the
//! [`berth_store::Store`]), [`Error`] (with [`Error::kind`] and [`Error::exit_code`]
//! following Docker's 125/126/127 convention). Image use cases live in [`images`]:
//! [`Engine::import`], [`Engine::save`], [`Engine::load`], [`Engine::list_images`],
//! [`Engine::tag`], [`Engine::remove_image`], [`Engine::inspect_image`],
//! [`Engine::history`], [`Engine::prune_images`], [`Engine::disk_usage`],
//! [`Engine::resolve_image`].
//! Container use cases live in [`container`]: [`container::Lifecycle`] (create, start,
//! stop, kill, rm, ps, inspect, logs, wait, exec, top, stats, prune) and the per-container
//! monitor ([`container::monitor`]); [`spec`] turns an image configuration and validated
//! flags into the OCI runtime spec.
//!
//! ```no_run
//! use berth_engine::{Engine, EngineConfig};
//! let engine = Engine::open(EngineConfig {
//!     root: "/var/lib/berth".into(),
//!     runroot: "/run/berth".into(),
//! })?;
//! for image in engine.list_images(&Default::default())? {
//!     println!("{} {}", image.id.short(), image.size);
//! }
//! # Ok::<(), berth_engine::Error>(())
//! ```

use std::path::PathBuf;

pub mod build;
pub mod container;
pub mod disk_usage;
pub mod events;
pub mod images;
pub mod info;
pub mod network;
pub mod network_container;
pub mod registry;
pub mod spec;
pub mod system;
pub mod volume;

/// Where the engine keeps its state.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: database, blobs, layers, containers.
    pub root: PathBuf,
    /// Runtime state: monitor pids, sockets, mount points.
    pub runroot: PathBuf,
}

/// What kind of failure an [`Error`] is; decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing named does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// Input the user gave is not valid.
    InvalidArgument,
    /// The request conflicts with the current state (in use, ambiguous).
    Conflict,
    /// berth does not support what was asked.
    Unsupported,
    /// The system failed (I/O, database).
    Internal,
}

/// The engine's errors. Add a variant per failure (carrying what it concerns) and its arm
/// in [`Error::kind`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input the user gave is not valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The local store failed or refused.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// An image reference does not parse.
    #[error(transparent)]
    Reference(#[from] berth_oci::ReferenceError),
    /// A manifest or config is not valid.
    #[error(transparent)]
    Manifest(#[from] berth_oci::ManifestError),
    /// An image archive is not valid or cannot be written.
    #[error(transparent)]
    Archive(#[from] berth_oci::archive::ArchiveError),
    /// An image operation failed (see [`images::ImageError`]).
    #[error(transparent)]
    Image(#[from] images::ImageError),
    /// A build, builder prune or image analysis failed (see [`build::BuildFailure`]).
    #[error(transparent)]
    Build(#[from] build::BuildFailure),
    /// A network operation failed (see [`network::NetworkError`]).
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    /// A container operation failed (see [`container::ContainerError`]).
    #[error(transparent)]
    Container(#[from] container::ContainerError),
    /// A registry operation failed (see [`registry::RegistryError`]).
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// A volume operation failed (see [`volume::VolumeError`]).
    #[error(transparent)]
    Volume(#[from] volume::VolumeError),
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use berth_store::ErrorKind as S;
        match self {
            Error::InvalidArgument(_) | Error::Reference(_) => ErrorKind::InvalidArgument,
            Error::Store(e) => match e.kind() {
                S::NotFound => ErrorKind::NotFound,
                S::AlreadyExists => ErrorKind::AlreadyExists,
                S::InvalidArgument | S::DataLoss => ErrorKind::InvalidArgument,
                S::Conflict => ErrorKind::Conflict,
                S::Internal => ErrorKind::Internal,
            },
            Error::Manifest(e) => match e.kind() {
                berth_oci::manifest::ManifestErrorKind::NotFound => ErrorKind::NotFound,
                berth_oci::manifest::ManifestErrorKind::Unsupported => ErrorKind::Unsupported,
                berth_oci::manifest::ManifestErrorKind::InvalidArgument => {
                    ErrorKind::InvalidArgument
                }
            },
            Error::Archive(e) => match e.kind() {
                berth_oci::archive::ArchiveErrorKind::Io => ErrorKind::Internal,
                berth_oci::archive::ArchiveErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            },
            Error::Image(e) => e.kind(),
            Error::Build(e) => e.kind(),
            Error::Network(e) => e.kind(),
            Error::Registry(e) => e.kind(),
            Error::Volume(e) => e.kind(),
            Error::Container(e) => match e.kind() {
                container::ErrorKind::NotFound => ErrorKind::NotFound,
                container::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                container::ErrorKind::Conflict => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
        }
    }

    /// The process exit status Docker would use for this error from `run`/`create`: 125 for
    /// every error of the engine itself. (Verbs that Docker answers with 1, like `rmi`,
    /// decide that in the CLI.)
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Container(e) => e.exit_code(),
            _ => 125,
        }
    }
}

/// One engine, opened on a root.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    store: berth_store::Store,
}

impl Engine {
    /// Opens (creating if needed) the state under `config.root`: the store's layout and
    /// database, migrated to the current schema.
    pub fn open(config: EngineConfig) -> Result<Self, Error> {
        let store = berth_store::Store::open(&config.root)?;
        // Monitor sockets, netns files and mount points: closed to other users (0700).
        berth_store::private_dir(&config.runroot)?;
        // RUN steps of builds that were killed: processes, cgroups, state (build::runner).
        build::runner::sweep_dead_steps(&config.runroot);
        Ok(Engine { config, store })
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The local store (blobs, layers, images, and the database for other tables).
    pub fn store(&self) -> &berth_store::Store {
        &self.store
    }
}
