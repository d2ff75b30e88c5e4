//! Runs each tool's command, alternating tools run by run, and times it (or takes its peak RSS).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::{stats, Record};

/// Why measuring could not happen at all (a tool's own failure is a record, not this).
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// Writing results failed.
    #[error("results file: {0}")]
    Io(#[from] std::io::Error),
    /// The URL is not `http://host:port/path`.
    #[error("bad URL {0:?}: expected http://HOST:PORT/PATH")]
    BadUrl(String),
    /// No HTTP 200 in time.
    #[error("no HTTP 200 from {0} within {1:?}")]
    HttpTimeout(String, Duration),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Suite name.
    pub suite: String,
    /// Metric name.
    pub metric: String,
    /// Unit of the figures.
    pub unit: String,
    /// Target spec.
    pub target: Option<String>,
    /// Timed runs per tool.
    pub runs: usize,
    /// Untimed warm-up runs per tool.
    pub warmup: usize,
    /// Whether more is better.
    pub higher_is_better: bool,
    /// Record peak RSS (MB) instead of time.
    pub rss: bool,
    /// After the command exits 0, wait for HTTP 200 here (timed).
    pub http: Option<String>,
    /// Longest one run may take.
    pub timeout_secs: f64,
    /// Untimed command before each run, per tool.
    pub prepare: Vec<(String, String)>,
    /// Untimed command after each run, per tool.
    pub cleanup: Vec<(String, String)>,
    /// The timed command, per tool, in the order to alternate.
    pub cmds: Vec<(String, String)>,
}

fn needs_shell(cmd: &str) -> bool {
    cmd.chars().any(|c| "|&;<>()$`\\\"'*?[#~={}%\n".contains(c))
}

/// A command line: run directly when it is plain words (no shell start-up in the timing),
/// through `sh -c` otherwise.
pub fn command(cmd: &str) -> Command {
    if needs_shell(cmd) {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(cmd);
        c
    } else {
        let mut words = cmd.split_whitespace();
        let mut c = Command::new(words.next().unwrap_or("true"));
        c.args(words);
        c
    }
}

fn err_file(tool: &str) -> PathBuf {
    // Under bench/run.sh the scratch dir goes away at the end, whatever happens to us.
    std::env::var_os("BENCH_WORK").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(format!("berth-bench-{}-{tool}.err", std::process::id()))
}

fn tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let t = lines[start..].join(" | ");
    if t.len() > 300 {
        format!("{}…", &t[..t.char_indices().nth(300).map(|(i, _)| i).unwrap_or(t.len())])
    } else {
        t
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(st),
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if start.elapsed() > timeout {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Err(format!("timed out after {timeout:?}"));
        }
        // Short sleeps keep the timing error well under a millisecond.
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn untimed(cmd: &str, tool: &str, timeout: Duration) -> Result<(), String> {
    let ef = err_file(tool);
    let err = std::fs::File::create(&ef).map_err(|e| e.to_string())?;
    let mut child = command(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let st = wait_child(&mut child, timeout)?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`{cmd}` failed ({st}): {}", tail(&ef)))
    }
}

/// One timed (or RSS-measured) run; returns milliseconds or megabytes.
fn once(plan: &Plan, tool: &str, cmd: &str) -> Result<f64, String> {
    let timeout = Duration::from_secs_f64(plan.timeout_secs);
    let ef = err_file(tool);
    let err = std::fs::File::create(&ef).map_err(|e| e.to_string())?;
    if plan.rss {
        // A helper process runs the command and reports its children's peak RSS, so each run
        // is measured on its own.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .arg("__rss")
            .arg(cmd)
            .stdin(Stdio::null())
            .stderr(err)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("`{cmd}` failed ({}): {}", out.status, tail(&ef)));
        }
        let kib: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| "no RSS reported".to_string())?;
        return Ok(kib / 1024.0);
    }
    let start = Instant::now();
    let mut child = command(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let st = wait_child(&mut child, timeout)?;
    if !st.success() {
        return Err(format!("`{cmd}` failed ({st}): {}", tail(&ef)));
    }
    if let Some(url) = &plan.http {
        let left = timeout.saturating_sub(start.elapsed());
        wait_http(url, left).map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}

/// Entry for the `__rss` helper: runs `cmd`, prints the peak RSS (KiB) of its process tree.
pub fn rss_helper(cmd: &str) -> i32 {
    let st = match command(cmd).stdin(Stdio::null()).stdout(Stdio::null()).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{cmd}: {e}");
            return 127;
        }
    };
    if !st.success() {
        return st.code().unwrap_or(1);
    }
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => {
            println!("{}", u.max_rss());
            0
        }
        Err(e) => {
            eprintln!("getrusage: {e}");
            1
        }
    }
}

/// Measures every tool of `plan`, alternating; one record per tool.
pub fn run(plan: &Plan) -> Result<Vec<Record>, MeasureError> {
    let timeout = Duration::from_secs_f64(plan.timeout_secs);
    let lookup = |list: &[(String, String)], tool: &str| list.iter().find(|(t, _)| t == tool).map(|(_, c)| c.clone());
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); plan.cmds.len()];
    let mut errors: Vec<Option<String>> = vec![None; plan.cmds.len()];
    eprintln!("[{}] {}: {} tools, {} warm-up + {} runs each, alternating", plan.suite, plan.metric, plan.cmds.len(), plan.warmup, plan.runs);
    for round in 0..plan.warmup + plan.runs {
        for (i, (tool, cmd)) in plan.cmds.iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            let result = (|| {
                if let Some(p) = lookup(&plan.prepare, tool) {
                    untimed(&p, tool, timeout)?;
                }
                let v = once(plan, tool, cmd);
                if let Some(c) = lookup(&plan.cleanup, tool) {
                    if let Err(e) = untimed(&c, tool, timeout) {
                        eprintln!("  warning: {tool} cleanup: {e}");
                    }
                }
                v
            })();
            match result {
                Ok(v) if round >= plan.warmup => samples[i].push(v),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("  {tool}: {e}");
                    errors[i] = Some(e);
                }
            }
        }
        let _ = std::io::stderr().flush();
    }
    for (tool, _) in &plan.cmds {
        let _ = std::fs::remove_file(err_file(tool));
    }
    Ok(plan
        .cmds
        .iter()
        .enumerate()
        .map(|(i, (tool, _))| {
            let st = if errors[i].is_none() { stats(&samples[i]) } else { None };
            Record {
                suite: plan.suite.clone(),
                metric: plan.metric.clone(),
                unit: plan.unit.clone(),
                higher_is_better: plan.higher_is_better,
                target: plan.target.clone(),
                tool: tool.clone(),
                median: st.map(|s| s.0),
                min: st.map(|s| s.1),
                max: st.map(|s| s.2),
                runs: samples[i].len(),
                samples: samples[i].clone(),
                error: errors[i].clone(),
            }
        })
        .collect())
}

/// Polls `url` until it answers 200.
pub fn wait_http(url: &str, timeout: Duration) -> Result<(), MeasureError> {
    let bad = || MeasureError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = hostport.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut head = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && &head[9..12] == b"200" {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            return Err(MeasureError::HttpTimeout(url.to_string(), timeout));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_only_when_needed() {
        assert!(!needs_shell("berth run --rm --network none busybox true"));
        assert!(needs_shell("a && b"));
        assert!(needs_shell("FOO=1 b"));
    }

    #[test]
    fn alternates_and_records_failures() {
        let plan = Plan {
            suite: "t".into(),
            metric: "m".into(),
            unit: "ms".into(),
            target: None,
            runs: 3,
            warmup: 1,
            higher_is_better: false,
            rss: false,
            http: None,
            timeout_secs: 5.0,
            prepare: vec![],
            cleanup: vec![],
            cmds: vec![("ok".into(), "true".into()), ("bad".into(), "sh -c 'echo boom >&2; exit 3'".into())],
        };
        let recs = run(&plan).unwrap();
        assert_eq!(recs[0].runs, 3);
        assert!(recs[0].median.unwrap() < 1000.0);
        assert!(recs[1].error.as_deref().unwrap().contains("boom"), "{:?}", recs[1].error);
    }
}
