//! `logs`: print a container's json-file log.

use std::io::Write;

use clap::Args;

use berth_engine::container::logs::{parse_since, LogOptions};

use super::GlobalOpts;

/// `logs [OPTIONS] CONTAINER`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (RFC 3339 or unix seconds) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// The container.
    pub container: String,
}

/// Prints the log: stdout entries to stdout, stderr entries to stderr.
pub fn run(g: &GlobalOpts, a: LogsArgs) -> anyhow::Result<i32> {
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        t => match t.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!("Error: invalid value {t:?} for --tail: a number or \"all\"");
                return Ok(1);
            }
        },
    };
    let since = match &a.since {
        Some(s) => match parse_since(s, berth_engine::container::now_nanos()) {
            Some(t) => Some(t),
            None => {
                eprintln!("Error: invalid value for \"since\": {s}");
                return Ok(1);
            }
        },
        None => None,
    };
    let lc = super::container::lifecycle(g)?;
    let c = match lc.find(&a.container) {
        Ok(c) => c,
        Err(e) => return Ok(super::container::daemon_error(&e)),
    };
    let opts = LogOptions {
        follow: a.follow,
        tail,
        since,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let ts = a.timestamps;
    let res = lc.logs(&c, &opts, &mut |e| {
        let text = if ts {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        if e.stream == "stderr" {
            let mut h = stderr.lock();
            h.write_all(text.as_bytes())?;
            h.flush()
        } else {
            let mut h = stdout.lock();
            h.write_all(text.as_bytes())?;
            h.flush()
        }
    });
    if let Err(e) = res {
        return Ok(super::container::daemon_error(&e));
    }
    Ok(0)
}
