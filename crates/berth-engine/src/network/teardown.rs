//! Undoing a container's network setup, at stop (its endpoints stay) or removal.

use std::net::Ipv4Addr;

use berth_net::endpoint;
use berth_net::nft;

use super::firewall::dnat_entries;
use super::{Networks, Result};

impl Networks<'_> {
    /// Undoes [`Networks::network_setup`]: interfaces, namespace and published-port rows go,
    /// its addresses return to the pool and its name leaves its peers' hosts files. Without
    /// `release` (stop, a failed start) its endpoints stay, so it is still connected to its
    /// networks, and `start` gives it an address again, the same one when it is still free;
    /// with `release` (container removal) the endpoints go too. Keeps going past failures;
    /// safe to call again or on a container that never had a network.
    pub fn network_teardown(&self, container_id: &str, release: bool) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.network_teardown_timed(container_id, release);
        log::debug!("network teardown of {container_id}: {:?}", t0.elapsed());
        r
    }

    pub(super) fn network_teardown_timed(&self, container_id: &str, release: bool) -> Result<()> {
        let eps = self.store.container_endpoints(container_id)?;
        let ns = self.netns_path(container_id);
        // Unpinning the namespace is enough: when its last user is gone the kernel destroys
        // it with its veth peers, and a veth pair goes as a whole. Deleting the host ends
        // here instead would cost ~25 ms each (the kernel waits for an RCU grace period).
        let net_result = endpoint::teardown(self.net_ops(), Some(&ns), &[]);
        if self.firewall_on(false).unwrap_or(false) {
            let first = eps
                .iter()
                .find(|e| e.container_ifname == "eth0")
                .or(eps.first());
            if let Some(addr) = first.and_then(|e| e.address.parse::<Ipv4Addr>().ok()) {
                let ports = self.container_ports_by_id(container_id).unwrap_or_default();
                let entries = dnat_entries(ports.into_iter(), addr);
                if !entries.is_empty() {
                    // A legacy table goes first (its DNAT of this container must not stay
                    // to reach whoever gets the address next).
                    let _lock = self.network_lock().ok();
                    let _host = nft::lock().ok();
                    if let Err(e) = nft::ensure_table(self.firewall(), || self.nft_elements()) {
                        log::warn!("nftables: {e}");
                    }
                    nft::apply_each(self.firewall(), &nft::remove_dnat(&entries));
                }
            }
        }
        let ports_result = self.store.set_ports(container_id, &[]);
        if release {
            let _lock = self.network_lock()?;
            self.store.release_endpoints(container_id, None)?;
            for ep in &eps {
                let _ = self.sync_hosts(&ep.network_id, None);
            }
        } else if !eps.is_empty() {
            // Stopped: it stays connected to its networks but its addresses go back to the
            // pool (as Docker's), and its name leaves the hosts files of its peers on user
            // networks (the default bridge resolves no names) until it starts again.
            let _lock = self.network_lock()?;
            self.store.release_addresses(container_id)?;
            for ep in &eps {
                let resolving = self
                    .store
                    .resolve_network(&ep.network_id)
                    .is_ok_and(|n| n.name != "bridge");
                if resolving {
                    let _ = self.sync_hosts(&ep.network_id, None);
                }
            }
        }
        net_result?;
        ports_result?;
        Ok(())
    }
}
