//! berth-engine: the use cases that join the other crates (run, build, pull, push, images, ...).
//!
//! The CLI and any later API face call this crate; it calls the store, the runtime, the
//! network code, the builder and the registry client. It parses no arguments and prints
//! nothing: it returns values that the caller renders.
//!
//! Main types: [`Engine`] (one per invocation, opened on a root), [`Error`] (with
//! [`Error::exit_code`] following Docker's 125/126/127 convention).

use std::path::PathBuf;

/// Where the engine keeps its state.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: database, blobs, layers, containers.
    pub root: PathBuf,
    /// Runtime state: monitor pids, sockets, mount points.
    pub runroot: PathBuf,
}

/// The engine's error kinds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input the user gave is not valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The process exit status Docker would use for this error.
    pub fn exit_code(&self) -> i32 {
        125
    }
}

/// One engine, opened on a root.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    /// Opens (creating if needed) the state under `config.root`.
    pub fn open(config: EngineConfig) -> Result<Self, Error> {
        Ok(Engine { config })
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}
