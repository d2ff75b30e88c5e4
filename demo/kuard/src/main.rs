//! The kuard binary: parses flags, binds, serves.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use kuard::app::{App, Config};

const USAGE: &str = "usage: kuard [--address ADDR] [--liveness-fail-next N] [--readiness-fail-next N] [--fs-root DIR]

  --address ADDR           listen address, default :8080 (all interfaces); 127.0.0.1:0 picks a port
  --liveness-fail-next N   fail the next N /healthy probes (negative: fail for good)
  --readiness-fail-next N  fail the next N /ready probes (negative: fail for good)
  --fs-root DIR            the directory /fs/ shows, default /
  --version                print the version";

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let mut config = Config {
        argv: argv.clone(),
        ..Config::default()
    };
    let mut address = ":8080".to_string();
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> String {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match flag {
            "--address" | "-address" => address = value(flag),
            "--liveness-fail-next" => config.liveness_fail_next = int(flag, &value(flag)),
            "--readiness-fail-next" => config.readiness_fail_next = int(flag, &value(flag)),
            "--fs-root" => config.fs_root = PathBuf::from(value(flag)),
            "--version" => {
                println!("kuard {}", kuard::VERSION);
                return;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown flag {other:?}")),
        }
    }
    // Go-style ":8080" means every interface.
    let bind = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.clone()
    };
    let listener = TcpListener::bind(&bind)
        .unwrap_or_else(|e| fail(&format!("cannot listen on {address}: {e}")));
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(bind);
    // As PID 1 in a container the kernel ignores SIGTERM unless we handle it: exit promptly.
    match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    eprintln!("kuard: signal {sig}, exiting");
                    std::process::exit(0);
                }
            });
        }
        Err(e) => eprintln!("kuard: warning: cannot handle signals: {e}"),
    }
    let app = Arc::new(App::new(config));
    eprintln!("kuard {} listening on {local}", kuard::VERSION);
    if let Err(e) = kuard::http::serve(listener, app) {
        fail(&format!("serving on {local}: {e}"));
    }
}

fn int(flag: &str, v: &str) -> i64 {
    v.parse()
        .unwrap_or_else(|_| fail(&format!("{flag}: expected an integer, got {v:?}")))
}

fn fail(msg: &str) -> ! {
    eprintln!("kuard: error: {msg}");
    std::process::exit(2);
}
