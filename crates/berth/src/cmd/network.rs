//! `berth network`: create, list, inspect, remove, prune, connect and disconnect networks,
//! with Docker's flags and output.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use anyhow::Context;
use clap::{Args, Subcommand};

use berth_engine::network::NetworkCreate;

use super::GlobalOpts;

/// `network COMMAND`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
}

/// `network create [OPTIONS] NETWORK`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the network (only `bridge`).
    #[arg(short, long)]
    pub driver: Option<String>,
    /// Subnet in CIDR format: one IPv4 and, with --ipv6, one IPv6.
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Enable IPv6 networking (an IPv6 --subnet, else a random unique local /64).
    #[arg(long)]
    pub ipv6: bool,
    /// IPv4 gateway for the subnet.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network (`key=value`).
    #[arg(long)]
    pub label: Vec<String>,
    /// The network's name.
    pub name: String,
}

/// `network ls [OPTIONS]`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output (`name=`, `id=`, `driver=`).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: 'table', 'table TEMPLATE', 'json' (one object per line), or a Go
    /// template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `network inspect NETWORK...`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Networks by name or ID.
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Format output: 'json' (the default) or a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `network rm NETWORK...`
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Networks by name or ID.
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Do not error if the network does not exist.
    #[arg(short, long)]
    pub force: bool,
}

/// `network prune [OPTIONS]`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `network connect [OPTIONS] NETWORK CONTAINER`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container.
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address on the network (else the next free one).
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// `network disconnect [OPTIONS] NETWORK CONTAINER`
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network.
    #[arg(short, long)]
    pub force: bool,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// Runs a `network` subcommand.
pub fn run(g: &GlobalOpts, c: NetworkCommand) -> anyhow::Result<i32> {
    daemon_status_1(|| match c {
        NetworkCommand::Create(a) => create(g, a),
        NetworkCommand::Ls(a) => ls(g, a),
        NetworkCommand::Inspect(a) => inspect(g, a),
        NetworkCommand::Rm(a) => rm(g, a),
        NetworkCommand::Prune(a) => prune(g, a),
        NetworkCommand::Connect(a) => {
            g.engine()?
                .networks()
                .network_connect(&a.network, &a.container, &a.alias, a.ip)?;
            Ok(0)
        }
        NetworkCommand::Disconnect(a) => {
            let _ = a.force;
            g.engine()?
                .networks()
                .network_disconnect(&a.network, &a.container)?;
            Ok(0)
        }
    })
}

/// Runs a subcommand; an error is one line as Docker's CLI prints what its daemon refused
/// (`Error: network with name X already exists`), exit status 1.
fn daemon_status_1(body: impl FnOnce() -> anyhow::Result<i32>) -> anyhow::Result<i32> {
    match body() {
        Ok(code) => Ok(code),
        Err(err) => {
            if let Some(crate::exit::ExitStatus(code)) = err.downcast_ref() {
                return Ok(*code);
            }
            let line: String = crate::exit::cause_line("Error: ", &err)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            eprintln!("{line}");
            Ok(1)
        }
    }
}

fn create(g: &GlobalOpts, a: CreateArgs) -> anyhow::Result<i32> {
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let (v6, v4): (Vec<String>, Vec<String>) = a.subnet.into_iter().partition(|s| s.contains(':'));
    if v4.len() > 1 || v6.len() > 1 {
        anyhow::bail!("at most one IPv4 and one IPv6 --subnet");
    }
    let id = g.engine()?.networks().network_create(&NetworkCreate {
        name: a.name,
        driver: a.driver,
        subnet: v4.into_iter().next(),
        subnet6: v6.into_iter().next(),
        ipv6: a.ipv6,
        gateway: a.gateway,
        internal: a.internal,
        labels,
    })?;
    println!("{id}");
    Ok(0)
}

fn ls(g: &GlobalOpts, a: LsArgs) -> anyhow::Result<i32> {
    let mut nets = g.engine()?.networks().network_list()?;
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        match k {
            "name" => nets.retain(|n| n.name.contains(v)),
            "id" => nets.retain(|n| n.id.starts_with(v)),
            "driver" => nets.retain(|n| n.driver == v),
            "label" => nets.retain(|n| match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(v),
            }),
            _ => anyhow::bail!("invalid filter '{k}'"),
        }
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let id = |s: &str| {
        if a.no_trunc {
            s.to_string()
        } else {
            s.chars().take(12).collect()
        }
    };
    if a.quiet {
        for n in &nets {
            writeln!(out, "{}", id(&n.id))?;
        }
        return Ok(0);
    }
    let row = |n: &berth_engine::network::NetworkSummary| {
        serde_json::json!({
            "ID": id(&n.id), "Name": n.name, "Driver": n.driver, "Scope": n.scope,
            "IPv6": n.ipv6.to_string(), "Internal": n.internal.to_string(),
            "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        })
    };
    match a.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for n in &nets {
                writeln!(out, "{}", row(n))?;
            }
            return Ok(0);
        }
        Some(f) if f != "table" && !f.is_empty() => {
            let format = super::images::ListFormat::parse(f)?;
            // `{{.Label "k"}}` indexes the labels as a map (Docker's `Label` method).
            let values: Vec<_> = nets
                .iter()
                .map(|n| {
                    let mut v = row(n);
                    v["Label"] = serde_json::json!(n.labels);
                    v
                })
                .collect();
            drop(out);
            format.print(
                &values,
                &[
                    ("ID", "NETWORK ID"),
                    ("Name", "NAME"),
                    ("Driver", "DRIVER"),
                    ("Scope", "SCOPE"),
                    ("IPv6", "IPV6"),
                    ("Internal", "INTERNAL"),
                    ("Labels", "LABELS"),
                ],
            )?;
            return Ok(0);
        }
        _ => {}
    }
    // Docker's tabwriter: every column as wide as its longest cell plus 3 (at least 10).
    let mut rows = vec![vec![
        "NETWORK ID".to_string(),
        "NAME".into(),
        "DRIVER".into(),
        "SCOPE".into(),
    ]];
    for n in &nets {
        rows.push(vec![
            id(&n.id),
            n.name.clone(),
            n.driver.clone(),
            n.scope.clone(),
        ]);
    }
    drop(out);
    super::images::print_table(&rows);
    Ok(0)
}

fn inspect(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
    // As `inspect`: a template that does not parse is refused first, status 64.
    let template = match super::inspect::parse_format(a.format.as_deref()) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let engine = g.engine()?;
    let e = engine.networks();
    let mut all = Vec::new();
    let mut status = 0;
    for n in &a.networks {
        match e.network_inspect(n) {
            Ok(v) => all.push(v),
            Err(err) => {
                eprintln!("Error: {err}");
                status = 1;
            }
        }
    }
    if let Some(t) = &template {
        let printed = super::inspect::print(&all, Some(t))?;
        return Ok(status.max(printed));
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(status)
}

fn rm(g: &GlobalOpts, a: RmArgs) -> anyhow::Result<i32> {
    let engine = g.engine()?;
    let e = engine.networks();
    let mut status = 0;
    for n in &a.networks {
        match e.network_remove(n) {
            Ok(_) => println!("{n}"),
            Err(err) if a.force && err.kind() == berth_engine::ErrorKind::NotFound => {}
            Err(err) => {
                eprintln!("Error: {err}");
                status = 1;
            }
        }
    }
    Ok(status)
}

fn prune(g: &GlobalOpts, a: PruneArgs) -> anyhow::Result<i32> {
    if !a.force {
        print!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let removed = g.engine()?.networks().network_prune()?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for n in removed {
            println!("{n}");
        }
    }
    Ok(0)
}
