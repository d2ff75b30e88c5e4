//! `berth port`: list a container's published ports, as Docker prints them.

use clap::Args;

use super::GlobalOpts;

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container (name, ID or ID prefix).
    pub container: String,
    /// Only this container port (`80`, `53/udp`).
    pub private_port: Option<String>,
}

/// Runs `port`.
pub fn run(g: &GlobalOpts, a: PortArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let ports = g
            .engine()?
            .networks()
            .container_ports(&a.container, a.private_port.as_deref())?;
        match &a.private_port {
            Some(p) => {
                if ports.is_empty() {
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    anyhow::bail!("No public port '{p}' published for {}", a.container);
                }
                for p in ports {
                    println!("{}", std::net::SocketAddr::new(p.host_ip, p.host_port));
                }
            }
            None => {
                for p in ports {
                    println!("{p}");
                }
            }
        }
        Ok(0)
    })
}
