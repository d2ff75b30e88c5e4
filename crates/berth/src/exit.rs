//! Error reporting and exit codes, decided in one place.
//!
//! Docker's convention: 125 when the engine itself fails (bad flag value, unknown image,
//! name conflict), 126 when the container command cannot be invoked, 127 when it is not
//! found, otherwise the container's own exit status.

use crate::cmd::GlobalOpts;

/// Exit status for an error of the engine itself.
pub const ENGINE_ERROR: i32 = 125;

/// An error that carries the exit status it should produce.
#[derive(Debug)]
pub struct ExitStatus(pub i32);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

/// Prints `err` as one line with its chain of causes and returns the exit status.
pub fn report(err: &anyhow::Error) -> i32 {
    if let Some(ExitStatus(code)) = err.downcast_ref::<ExitStatus>() {
        return *code;
    }
    let code = err
        .chain()
        .find_map(|e| {
            e.downcast_ref::<berth_engine::Error>()
                .map(|e| e.exit_code())
        })
        .unwrap_or(ENGINE_ERROR);
    print_error(err);
    code
}

/// Prints `err` as one `Error: ...` line on stderr, its causes joined with `: ` (causes
/// whose text is already on the line are skipped). Verbs that Docker answers with status 1
/// (`rmi`, `tag`, `load`, ...) print with this and return `Ok(1)`.
pub fn print_error(err: &anyhow::Error) {
    let line = cause_line("Error: ", err);
    // One line, always: causes may quote input bytes (a tar header, a file name).
    let line: String = line
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect();
    eprintln!("{line}");
}

/// `prefix` then `err` and its causes joined with `: `, skipping causes whose text is
/// already on the line (wrappers often repeat their source's message).
pub(crate) fn cause_line(prefix: &str, err: &anyhow::Error) -> String {
    let mut line = String::from(prefix);
    let mut first = true;
    for cause in err.chain() {
        let text = cause.to_string();
        if !first {
            if line.contains(&text) {
                continue;
            }
            line.push_str(": ");
        }
        line.push_str(&text);
        first = false;
    }
    line
}

/// Docker's status for a failed verb other than the container-starting ones.
pub const CLI_ERROR: i32 = 1;

/// Runs a verb body; an error is printed as one line and becomes exit status 1, as Docker
/// does for `images`, `rmi`, `tag`, `save`, `load`, `import`, `history`, `image ...`.
pub fn status_1(body: impl FnOnce() -> anyhow::Result<i32>) -> anyhow::Result<i32> {
    match body() {
        Ok(code) => Ok(code),
        Err(err) => {
            if let Some(ExitStatus(code)) = err.downcast_ref::<ExitStatus>() {
                return Ok(*code);
            }
            print_error(&err);
            Ok(CLI_ERROR)
        }
    }
}

/// Sets up `log` output to stderr at the level asked for (`--log-level`, default `warn`;
/// `RUST_LOG` refines it per module).
pub fn init_logging(global: &GlobalOpts) {
    let level = global.log_level.as_deref().unwrap_or("warn");
    let filter = match level.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "panic" => log::LevelFilter::Error,
        "warn" | "warning" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Warn,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(filter);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format_timestamp(None).format_target(false);
    let _ = b.try_init();
}

/// Makes a closed stdout (`berth inspect X | head`) end the process quietly with 141, as
/// a Go CLI killed by SIGPIPE does, instead of a panic and a backtrace. Rust ignores
/// SIGPIPE, and restoring it process-wide would let a vanished peer kill the monitor or
/// the registry server, so only `print!`'s broken-pipe panic is turned into the exit.
pub fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The exit status of a command line that did not parse, as Docker's CLI: help and version
/// 0, a bad flag or flag value 125, a missing argument or an unknown verb 1.
pub fn usage_status(kind: clap::error::ErrorKind) -> i32 {
    use clap::error::ErrorKind as K;
    match kind {
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        K::InvalidSubcommand
        | K::MissingRequiredArgument
        | K::MissingSubcommand
        | K::TooFewValues
        | K::WrongNumberOfValues => 1,
        _ => 125,
    }
}
