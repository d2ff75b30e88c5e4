//! `completion`: shell completion scripts, and man pages, generated from the CLI's own clap
//! model, so they never drift from the flags berth takes.

use std::path::PathBuf;

use clap::{Args, CommandFactory, ValueEnum};

/// The shells `completion` writes for (Docker's set, less PowerShell).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// bash (`source <(berth completion bash)`).
    Bash,
    /// zsh (`berth completion zsh > "${fpath[1]}/_berth"`).
    Zsh,
    /// fish (`berth completion fish > ~/.config/fish/completions/berth.fish`).
    Fish,
}

/// `completion SHELL`
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write the script for.
    pub shell: Shell,
}

/// Writes the completion script for `shell` to stdout.
pub fn run(a: CompletionArgs) -> anyhow::Result<i32> {
    let mut cmd = super::Cli::command();
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "berth", &mut std::io::stdout());
    Ok(0)
}

/// `_man DIR` (internal): one man page per verb, `berth.1`, `berth-run.1`,
/// `berth-network-create.1`, ...
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (made if missing).
    pub dir: PathBuf,
}

/// Writes the man pages of every visible verb into `a.dir`.
pub fn man(a: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&a.dir)?;
    let mut cmd = super::Cli::command();
    cmd.build();
    write_pages(&cmd, "berth", &a.dir)?;
    Ok(0)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
