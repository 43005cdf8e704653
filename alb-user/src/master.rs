//! The master device: a veth pair, `<master>` for the host stack and its
//! hidden peer `<master>p`. This kernel has no bonding, team, dummy or
//! netkit driver; veth exists on every distribution kernel, takes
//! addresses, routes and sockets like a bond, and taking the peer down takes
//! the master's carrier down (docs/architecture.md).

use anyhow::{Result, bail};

use alb_common::wire::Mac;

use crate::links::{Link, Netlink};

/// The master as the agent runs it.
#[derive(Clone, Debug)]
pub struct Master {
    pub link: Link,
    pub peer: Link,
    /// The agent created the pair (and removes it on shutdown).
    pub created: bool,
}

/// The hidden peer's name.
pub fn peer_name(master: &str) -> String {
    format!("{master}p")
}

/// Checks that `name` can be a master name: the peer name must fit too.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 14 {
        bail!("master name {name:?} must have 1 to 14 characters (its peer is {name}p)");
    }
    if name.contains(['/', ' ', ':']) || name == "." || name == ".." {
        bail!("master name {name:?} is not a valid interface name");
    }
    Ok(())
}

/// Finds the master `name` (a veth pair left by an earlier agent) or
/// creates it, with the MAC `mac` if given. Refuses a name another kind of device
/// already has.
///
/// A MAC given at creation marks the device's address as set by user space
/// (`addr_assign_type` 3): udev then leaves it alone. Created with a random
/// one, the master got udev's own (99-default.link,
/// `MACAddressPolicy=persistent`) at some moment of the agent's setup,
/// sometimes after the agent had given it its slave's (vm-test --systemd).
pub async fn create_or_adopt(netlink: &Netlink, name: &str, mac: Option<&Mac>) -> Result<Master> {
    validate_name(name)?;
    let peer = peer_name(name);
    let (link, created) = match netlink.link_by_name(name).await? {
        Some(link) => {
            if link.kind.as_deref() != Some("veth") {
                bail!(
                    "master name {name} is taken by another device (kind {})",
                    link.kind.as_deref().unwrap_or("none")
                );
            }
            (link, false)
        }
        None => {
            if netlink.link_by_name(&peer).await?.is_some() {
                bail!("cannot create master {name}: a device named {peer} exists already");
            }
            netlink.create_veth_pair(name, &peer, mac).await?;
            (netlink.existing(name).await?, true)
        }
    };
    let Some(peer_link) = netlink.link_by_name(&peer).await? else {
        bail!("master name {name} is taken by a veth whose peer is not {peer}");
    };
    Ok(Master { link, peer: peer_link, created })
}
