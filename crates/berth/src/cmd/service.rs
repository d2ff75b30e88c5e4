//! `berth system service`: serve Docker's Engine API (the `berth-api` crate) on unix
//! sockets or TCP, so the `docker` CLI, Docker's SDKs and compose drive berth.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalOpts;

/// `system service [OPTIONS]`
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Address to listen on: unix:///path or tcp://host:port (repeatable).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/berth.sock"
    )]
    pub hosts: Vec<String>,
    /// Exit after this many seconds without a request (0: run until stopped).
    #[arg(short, long, default_value_t = 0)]
    pub timeout: u64,
    /// Require TLS client certificates on tcp:// addresses.
    #[arg(long)]
    pub tlsverify: bool,
    /// CA certificates that client certificates must chain to.
    #[arg(long)]
    pub tlscacert: Option<PathBuf>,
    /// The server's TLS certificate.
    #[arg(long)]
    pub tlscert: Option<PathBuf>,
    /// The server's TLS key.
    #[arg(long)]
    pub tlskey: Option<PathBuf>,
}

/// Runs the service until SIGINT/SIGTERM or the idle timeout.
pub fn run(g: &GlobalOpts, a: ServiceArgs) -> anyhow::Result<i32> {
    let listen = a
        .hosts
        .iter()
        .map(|h| berth_api::Listen::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let tls = match (a.tlsverify, a.tlscacert, a.tlscert, a.tlskey) {
        (false, None, None, None) => None,
        (true, Some(ca), Some(cert), Some(key)) => Some(berth_api::TlsFiles { ca, cert, key }),
        _ => anyhow::bail!("--tlsverify needs --tlscacert, --tlscert and --tlskey"),
    };
    for l in &listen {
        if let berth_api::Listen::Tcp(addr) = l {
            if tls.is_none() && addr.ip().is_loopback() {
                eprintln!("WARNING: serving the API on tcp://{addr} without TLS: any local user can reach it, and it is root-equivalent");
            }
        }
    }
    // Opened once up front: a bad root fails here, not at the first request.
    drop(g.engine()?);
    // A working directory of its own, empty: nothing a request names relative to it exists.
    let cwd = g.runroot.join("api");
    std::fs::create_dir_all(&cwd)?;
    std::env::set_current_dir(&cwd)?;
    let config = berth_api::ServiceConfig {
        root: g.root.clone(),
        runroot: g.runroot.clone(),
        exe: std::env::current_exe()?,
        listen,
        idle_timeout: (a.timeout > 0).then(|| Duration::from_secs(a.timeout)),
        socket_group: berth_api::socket_group_from_config(&g.root),
        tls,
    };
    berth_api::serve(config, |addr| eprintln!("API listening on {addr}"))?;
    Ok(0)
}
