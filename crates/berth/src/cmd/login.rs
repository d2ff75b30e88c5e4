//! `berth login`: check credentials against a registry, then store them in the
//! Docker-compatible `config.json` (`DOCKER_CONFIG` or `~/.docker`).

use std::io::{BufRead, IsTerminal, Read, Write};

use berth_engine::registry::LoginRequest;
use clap::{ArgAction, Args};

use super::pull::daemon_error;
use super::GlobalOpts;

/// `login [OPTIONS] [SERVER]`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: arguments are visible to other users).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Require HTTPS and verify certificates (`--tls-verify=false` allows plain HTTP).
    #[arg(long = "tls-verify", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub tls_verify: Option<bool>,
}

fn prompt(label: &str) -> anyhow::Result<String> {
    let mut out = std::io::stderr();
    write!(out, "{label}: ")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs `login`.
pub fn run(g: &GlobalOpts, a: LoginArgs) -> anyhow::Result<i32> {
    if a.password.is_some() && a.password_stdin {
        eprintln!("Error: --password and --password-stdin are mutually exclusive");
        return Ok(1);
    }
    if a.password_stdin && a.username.is_none() {
        eprintln!("Error: Must provide --username with --password-stdin");
        return Ok(1);
    }
    let interactive = std::io::stdin().is_terminal();
    let username = match a.username.clone() {
        Some(u) => u,
        None if interactive => prompt("Username")?,
        None => {
            eprintln!("Error: Cannot perform an interactive login from a non TTY device");
            return Ok(1);
        }
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Some(p) = a.password.clone() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if interactive {
        prompt("Password")?
    } else {
        eprintln!("Error: Cannot perform an interactive login from a non TTY device");
        return Ok(1);
    };
    if username.is_empty() || password.is_empty() {
        eprintln!("Error: Username and password are required");
        return Ok(1);
    }
    let engine = g.engine()?;
    match engine.login(&LoginRequest {
        server: a.server.clone(),
        username,
        password,
        tls_verify: a.tls_verify,
    }) {
        Ok(_) => {
            println!("Login Succeeded");
            Ok(0)
        }
        Err(e) => Ok(daemon_error(&anyhow::Error::from(e))),
    }
}
