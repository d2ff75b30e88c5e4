//! `version`: berth's version, in Docker's layout or through `--format`.

use clap::Args;
use serde_json::json;

use super::GlobalOpts;

/// The Engine API version berth's API face speaks.
const API_VERSION: &str = "1.43";

/// `version [OPTIONS]`
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format output using a custom template ('json', or a Go template).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Prints the client's and the engine's versions (one binary: the same).
pub fn run(_g: &GlobalOpts, a: VersionArgs) -> anyhow::Result<i32> {
    let v = env!("CARGO_PKG_VERSION");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let side = json!({
        "Version": v, "ApiVersion": API_VERSION, "Os": "linux", "Arch": arch(),
        "GitCommit": "", "GoVersion": "", "BuildTime": "",
    });
    let mut server = side.clone();
    server["KernelVersion"] = json!(kernel);
    server["MinAPIVersion"] = json!("1.24");
    server["Components"] = json!([{"Name": "Engine", "Version": v, "Details": {"ApiVersion": API_VERSION, "Os": "linux", "Arch": arch(), "KernelVersion": kernel}}]);
    let data = json!({"Client": side, "Server": server});
    if let Some(code) = super::gotemplate::print_formatted(a.format.as_deref(), &data) {
        return Ok(code);
    }
    println!("Client:");
    println!(" Version:           {v}");
    println!(" API version:       {API_VERSION}");
    println!(" OS/Arch:           linux/{}", arch());
    println!();
    println!("Server: berth (daemonless)");
    println!(" Engine:");
    println!("  Version:          {v}");
    println!("  API version:      {API_VERSION} (minimum version 1.24)");
    println!("  OS/Arch:          linux/{}", arch());
    println!("  Kernel Version:   {kernel}");
    Ok(0)
}
