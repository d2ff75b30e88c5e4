//! `attach`: follow a running container's output (and its end), forward signals to it, and
//! leave with the detach keys.
//!
//! berth has no daemon, so a detached container's stdin is a pipe its monitor holds, which
//! no other process can reach yet: `attach` reads the caller's terminal only to see the
//! detach sequence; other input is not delivered to the container.

use std::sync::{Arc, Mutex};

use clap::{ArgAction, Args};

use berth_engine::container::tty::{
    copy_stdin_until_detach, parse_detach_keys, RawMode, DEFAULT_DETACH_KEYS,
};
use berth_engine::container::ContainerStatus;

use super::GlobalOpts;

/// `attach [OPTIONS] CONTAINER`
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The container.
    pub container: String,
}

/// Attaches; returns the container's exit status when it ends, 0 on detach.
pub fn run(g: &GlobalOpts, a: AttachArgs) -> anyhow::Result<i32> {
    let keys = match parse_detach_keys(a.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(1);
        }
    };
    let lc = super::container::lifecycle(g)?;
    let c = match lc.find(&a.container) {
        Ok(c) => c,
        Err(e) => return Ok(super::container::daemon_error(&e)),
    };
    match c.status {
        ContainerStatus::Paused => {
            eprintln!("Error: You cannot attach to a paused container, unpause it first");
            return Ok(1);
        }
        s if !s.is_active() => {
            eprintln!("Error: You cannot attach to a stopped container, start it first");
            return Ok(1);
        }
        _ => {}
    }
    berth_engine::events::emit_container(lc.root(), &c, "attach", &[]);
    let _forward = a
        .sig_proxy
        .then(|| berth_engine::container::signals::forward_to(c.record.pid as i32));
    if !a.no_stdin && c.spec.config.open_stdin {
        let raw = Arc::new(Mutex::new(if c.spec.config.tty {
            RawMode::enter()
        } else {
            None
        }));
        let held = raw.clone();
        let root = lc.root().to_path_buf();
        let detached = c.clone();
        copy_stdin_until_detach(None, keys, move || {
            if let Ok(mut r) = held.lock() {
                r.take();
            }
            berth_engine::events::emit_container(&root, &detached, "detach", &[]);
            std::process::exit(0);
        });
        let code = lc.attach_output(&c, &mut print_entry);
        if let Ok(mut r) = raw.lock() {
            r.take();
        }
        return match code {
            Ok(code) => Ok(code as i32),
            Err(e) => Ok(super::container::daemon_error(&e)),
        };
    }
    match lc.attach_output(&c, &mut print_entry) {
        Ok(code) => Ok(code as i32),
        Err(e) => Ok(super::container::daemon_error(&e)),
    }
}

/// One log entry to our stdout or stderr, as its stream was.
fn print_entry(e: &berth_engine::container::logs::LogEntry) -> std::io::Result<()> {
    use std::io::Write;
    if e.stream == "stderr" {
        let mut h = std::io::stderr().lock();
        h.write_all(e.log.as_bytes())?;
        h.flush()
    } else {
        let mut h = std::io::stdout().lock();
        h.write_all(e.log.as_bytes())?;
        h.flush()
    }
}
