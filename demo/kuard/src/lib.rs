//! kuard: berth's demo web app, one static binary that shows what a container sees.
//!
//! It plays the role of the demo app of the chapter "Creating and Running Containers": an
//! HTML page with the host name, addresses, version and the request; probes that can be made
//! to fail ([`probe`]); memory that can be allocated on request to watch `--memory` take
//! effect ([`mem`]); a CPU-bound workload ([`keygen`]); a read-only file browser
//! ([`fsbrowse`]); Prometheus metrics ([`metrics`]). [`http`] is a small HTTP/1.1 server on
//! std threads; [`app::App`] holds the routes. It knows nothing of berth itself.
//!
//! ```
//! use kuard::app::{App, Config};
//! use kuard::http::Request;
//! let app = App::new(Config::default());
//! let req = Request { method: "GET".into(), path: "/healthy".into(), version: "HTTP/1.1".into(), ..Request::default() };
//! assert_eq!(app.respond(&req).status, 200);
//! ```
#![deny(missing_docs)]

pub mod app;
pub mod fsbrowse;
pub mod http;
pub mod keygen;
pub mod mem;
pub mod metrics;
pub mod page;
pub mod probe;
pub mod sysinfo;

/// The version shown, from `KUARD_VERSION` at build time (`1` when unset).
pub const VERSION: &str = match option_env!("KUARD_VERSION") {
    Some(v) => v,
    None => "1",
};

/// Broad classes of the app's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client sent something invalid.
    InvalidArgument,
    /// Nothing at that path.
    NotFound,
    /// Not allowed to see it.
    PermissionDenied,
    /// Something failed on our side.
    Internal,
}
