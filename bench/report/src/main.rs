//! berth-bench: measures berth side by side with its peers and reports the standing.
//!
//! - `time`: runs one command per tool, alternating tools run by run (so drift in the machine
//!   hits every tool alike), optionally waiting for a first HTTP 200 or recording peak RSS;
//!   appends one record per tool (median, min, max, samples) to a JSON-lines results file.
//! - `record`: appends a figure a script measured itself (wrk req/s, MB/s).
//! - `report`: turns the results file into `latest.md`, `latest.json` and one PNG chart per
//!   suite (bars with min/max whiskers, drawn with plotters).
//! - `wait-http`: waits for a first HTTP 200 (for scripts).

mod chart;
mod measure;
mod model;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use model::Record;

const USAGE: &str = "usage:
  berth-bench time --suite S --metric M [--unit ms|MB] [--target SPEC] [--runs N] [--warmup N]
                   [--higher-is-better] [--rss] [--http URL] [--timeout SECS]
                   [--prepare TOOL=CMD]... [--cleanup TOOL=CMD]... --cmd TOOL=CMD...
  berth-bench record --suite S --metric M --tool T --unit U (--value V [--min A --max B] | --error MSG)
                   [--target SPEC] [--higher-is-better]
  berth-bench report [--out DIR]
  berth-bench wait-http URL [--timeout SECS]

The results file is $BENCH_RESULTS (or --results FILE).
A target SPEC is a comma-separated list of: <=N, >=N (berth's median), <TOOL (berth better than
TOOL), Nx TOOL (berth at least N times better than TOOL; 0.9x TOOL: at least 90% as good).";

/// Errors of the command line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad or missing arguments.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// Measuring failed.
    #[error(transparent)]
    Measure(#[from] measure::MeasureError),
    /// Reporting failed.
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    rest: Vec<String>,
}

impl Args {
    fn take_all(&mut self, flag: &str) -> Result<Vec<String>, CliError> {
        let mut out = Vec::new();
        while let Some(i) = self.rest.iter().position(|a| a == flag) {
            if i + 1 >= self.rest.len() {
                return Err(CliError::Usage(format!("{flag} needs a value")));
            }
            out.push(self.rest.remove(i + 1));
            self.rest.remove(i);
        }
        Ok(out)
    }
    fn take(&mut self, flag: &str) -> Result<Option<String>, CliError> {
        Ok(self.take_all(flag)?.pop())
    }
    fn need(&mut self, flag: &str) -> Result<String, CliError> {
        self.take(flag)?.ok_or_else(|| CliError::Usage(format!("{flag} is required")))
    }
    fn flag(&mut self, flag: &str) -> bool {
        match self.rest.iter().position(|a| a == flag) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }
    fn num<T: std::str::FromStr>(&mut self, flag: &str, default: T) -> Result<T, CliError> {
        match self.take(flag)? {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| CliError::Usage(format!("{flag}: not a number: {v:?}"))),
        }
    }
    fn done(self) -> Result<(), CliError> {
        match self.rest.first() {
            None => Ok(()),
            Some(a) => Err(CliError::Usage(format!("unexpected argument {a:?}"))),
        }
    }
}

fn pairs(v: Vec<String>, flag: &str) -> Result<Vec<(String, String)>, CliError> {
    v.into_iter()
        .map(|s| {
            s.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| CliError::Usage(format!("{flag} wants TOOL=COMMAND, got {s:?}")))
        })
        .collect()
}

fn results_path(a: &mut Args) -> Result<PathBuf, CliError> {
    a.take("--results")?
        .or_else(|| std::env::var("BENCH_RESULTS").ok())
        .map(PathBuf::from)
        .ok_or_else(|| CliError::Usage("set BENCH_RESULTS or pass --results FILE".into()))
}

fn run(args: Vec<String>) -> Result<(), CliError> {
    let Some((verb, rest)) = args.split_first() else {
        return Err(CliError::Usage("no command".into()));
    };
    let mut a = Args { rest: rest.to_vec() };
    match verb.as_str() {
        "time" => {
            let results = results_path(&mut a)?;
            let rss = a.flag("--rss");
            let plan = measure::Plan {
                suite: a.need("--suite")?,
                metric: a.need("--metric")?,
                unit: a.take("--unit")?.unwrap_or_else(|| if rss { "MB".into() } else { "ms".into() }),
                target: a.take("--target")?,
                runs: a.num("--runs", 20)?,
                warmup: a.num("--warmup", 2)?,
                higher_is_better: a.flag("--higher-is-better"),
                rss,
                http: a.take("--http")?,
                timeout_secs: a.num("--timeout", 30.0)?,
                prepare: pairs(a.take_all("--prepare")?, "--prepare")?,
                cleanup: pairs(a.take_all("--cleanup")?, "--cleanup")?,
                cmds: pairs(a.take_all("--cmd")?, "--cmd")?,
            };
            a.done()?;
            if plan.cmds.is_empty() {
                return Err(CliError::Usage("at least one --cmd TOOL=COMMAND".into()));
            }
            for r in measure::run(&plan)? {
                print_record(&r);
                model::append(&results, &r).map_err(measure::MeasureError::from)?;
            }
            Ok(())
        }
        "record" => {
            let results = results_path(&mut a)?;
            let suite = a.need("--suite")?;
            let metric = a.need("--metric")?;
            let tool = a.need("--tool")?;
            let unit = a.need("--unit")?;
            let target = a.take("--target")?;
            let higher_is_better = a.flag("--higher-is-better");
            let error = a.take("--error")?;
            let value: Option<f64> = match a.take("--value")? {
                Some(v) => Some(v.parse().map_err(|_| CliError::Usage(format!("--value: not a number: {v:?}")))?),
                None => None,
            };
            let min = a.num("--min", value.unwrap_or(f64::NAN))?;
            let max = a.num("--max", value.unwrap_or(f64::NAN))?;
            a.done()?;
            if value.is_none() && error.is_none() {
                return Err(CliError::Usage("record needs --value or --error".into()));
            }
            let r = Record {
                suite,
                metric,
                unit,
                higher_is_better,
                target,
                tool,
                median: value,
                min: value.map(|_| min),
                max: value.map(|_| max),
                runs: usize::from(value.is_some()),
                samples: value.into_iter().collect(),
                error,
            };
            print_record(&r);
            model::append(&results, &r).map_err(measure::MeasureError::from)?;
            Ok(())
        }
        "report" => {
            let results = results_path(&mut a)?;
            let out = PathBuf::from(a.take("--out")?.unwrap_or_else(|| "bench/results".into()));
            a.done()?;
            let records = model::load(&results).map_err(report::ReportError::from)?;
            report::write_all(&records, &out)?;
            println!("wrote {}/latest.md, latest.json and one chart per suite", out.display());
            Ok(())
        }
        "wait-http" => {
            let timeout = a.num("--timeout", 10.0)?;
            let url = a.rest.first().cloned().ok_or_else(|| CliError::Usage("wait-http URL".into()))?;
            measure::wait_http(&url, std::time::Duration::from_secs_f64(timeout))?;
            Ok(())
        }
        "__rss" => {
            let cmd = a.rest.first().cloned().ok_or_else(|| CliError::Usage("__rss CMD".into()))?;
            std::process::exit(measure::rss_helper(&cmd));
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(CliError::Usage(format!("unknown command {other:?}"))),
    }
}

fn print_record(r: &Record) {
    match (&r.error, r.median) {
        (Some(e), _) => println!("  {:<10} {:<44} FAILED: {e}", r.tool, r.metric),
        (None, Some(m)) => println!(
            "  {:<10} {:<44} median {} {} (min {}, max {}, {} runs)",
            r.tool,
            r.metric,
            model::fmt_num(m),
            r.unit,
            model::fmt_num(r.min.unwrap_or(m)),
            model::fmt_num(r.max.unwrap_or(m)),
            r.runs
        ),
        (None, None) => {}
    }
}
