//! berth-build: turns a Dockerfile and a build context into image layers and a config.
//!
//! It owns Dockerfile parsing ([`dockerfile`]), word expansion ([`expand`]), `.dockerignore`
//! rules ([`ignore`]), the build context ([`context`]), the step executor and its cache
//! ([`exec`], [`cache`]), layer tars for COPY/ADD ([`layertar`]), read-only merged views of
//! layer snapshots ([`view`]) and image analysis ([`analyze`]). It knows nothing of HTTP servers,
//! CLI flags, the store's database or how containers are run: RUN steps go through the
//! [`exec::StepRunner`] trait and image/layer storage through [`exec::BuildBackend`], which
//! `berth-engine` implements; tests use fakes.
//!
//! ```
//! use berth_build::dockerfile::{parse, InstructionKind};
//! let df = parse("FROM busybox AS base\nRUN echo hi > /x\n", "Dockerfile").unwrap();
//! assert_eq!(df.stages[0].name.as_deref(), Some("base"));
//! assert!(matches!(df.stages[0].instructions[0].kind, InstructionKind::Run(_)));
//! ```

pub mod analyze;
pub mod cache;
pub mod context;
pub mod dockerfile;
pub mod exec;
pub mod expand;
pub mod ignore;
pub mod imageconfig;
pub mod layertar;
pub mod view;

/// What kind of failure an error is, for exit codes and matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The user's input is wrong (Dockerfile, flags, paths).
    InvalidArgument,
    /// Something named does not exist (file, stage, image).
    NotFound,
    /// A RUN step's command failed.
    StepFailed,
    /// The file system or another backend failed.
    Io,
    /// Not possible here (remote sources while offline).
    Unsupported,
}
