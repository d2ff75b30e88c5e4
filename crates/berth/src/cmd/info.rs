//! `info`: the host and the store, as Docker's `info` shows them.

use clap::Args;

use super::GlobalOpts;

/// `info [OPTIONS]`
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a custom template ('json', or a Go template).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

/// Docker's binary sizes (`%.4g` of GiB: `3.842GiB`, `15.5GiB`).
fn gib(bytes: u64) -> String {
    let x = bytes as f64 / (1u64 << 30) as f64;
    let int_digits = if x < 1.0 {
        1
    } else {
        (x.log10().floor() as usize) + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{x:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}GiB")
}

/// Prints the information; warnings go to stderr after it, as Docker prints them.
pub fn run(g: &GlobalOpts, a: InfoArgs) -> anyhow::Result<i32> {
    let info = g.engine()?.info()?;
    let data = serde_json::to_value(&info)?;
    if let Some(code) = super::gotemplate::print_formatted(a.format.as_deref(), &data) {
        return Ok(code);
    }
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line("Client:".into());
    line(format!(" Version:    {}", info.server_version));
    line(" Context:    default".into());
    line(" Debug Mode: false".into());
    line(String::new());
    line("Server:".into());
    line(format!(" Containers: {}", info.containers));
    line(format!("  Running: {}", info.containers_running));
    line(format!("  Paused: {}", info.containers_paused));
    line(format!("  Stopped: {}", info.containers_stopped));
    line(format!(" Images: {}", info.images));
    line(format!(" Server Version: {}", info.server_version));
    line(format!(" Storage Driver: {}", info.driver));
    for [k, v] in &info.driver_status {
        line(format!("  {k}: {v}"));
    }
    line(format!(" Logging Driver: {}", info.logging_driver));
    line(format!(" Cgroup Driver: {}", info.cgroup_driver));
    line(format!(" Cgroup Version: {}", info.cgroup_version));
    line(" Plugins:".into());
    line("  Volume: local".into());
    line("  Network: bridge host none".into());
    line("  Log: json-file".into());
    line(format!(
        " Runtimes: {}",
        info.runtimes.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    line(format!(" Default Runtime: {}", info.default_runtime));
    line(" Init Binary: berth _init".into());
    line(" Security Options:".into());
    for s in &info.security_options {
        let mut parts = s.split(',');
        if let Some(name) = parts.next() {
            line(format!("  {}", name.trim_start_matches("name=")));
        }
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                let mut k = k.to_string();
                if let Some(f) = k.get_mut(0..1) {
                    f.make_ascii_uppercase();
                }
                line(format!("   {k}: {v}"));
            }
        }
    }
    line(format!(" Kernel Version: {}", info.kernel_version));
    line(format!(" Operating System: {}", info.operating_system));
    line(format!(" OSType: {}", info.os_type));
    line(format!(" Architecture: {}", info.architecture));
    line(format!(" CPUs: {}", info.ncpu));
    line(format!(" Total Memory: {}", gib(info.mem_total)));
    line(format!(" Name: {}", info.name));
    line(format!(" ID: {}", info.id));
    line(format!(" Docker Root Dir: {}", info.docker_root_dir));
    line(" Debug Mode: false".into());
    if !info.networks.is_empty() {
        line(format!(" Networks: {}", info.networks.join(" ")));
    }
    line(" Experimental: false".into());
    line(" Live Restore Enabled: false".into());
    print!("{o}");
    if !info.warnings.is_empty() {
        eprintln!();
        for w in &info.warnings {
            eprintln!("{w}");
        }
    }
    Ok(0)
}
