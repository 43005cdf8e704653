//! `alb down`: what an agent that died left behind goes.

use anyhow::{Context as _, Result, bail};

use super::startup::{ensure_bpffs, lock_master};
use crate::{datapath, links::Netlink, master, undo::Undo};

/// `alb down`: removes what an agent that died left behind (its pinned
/// programs and maps, the master it created, the sysctls it changed).
pub async fn down(master: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("alb down must run as root");
    }
    master::validate_name(master)?;
    let _lock = lock_master(master)
        .with_context(|| format!("stop the running agent of {master} with SIGTERM instead"))?;
    ensure_bpffs()?;
    let netlink = Netlink::connect()?;
    let pins = datapath::pin_dir(master);
    let mut record = Undo::load(master)?;
    if let Some(record) = &mut record {
        record.claim_netns(master)?;
    }
    let device = netlink.link_by_name(master).await?;
    let peer = netlink.link_by_name(&master::peer_name(master)).await?;
    if record.is_none() && !pins.exists() {
        println!("alb: nothing to remove for master {master}");
        return Ok(());
    }
    let mut undo = record.unwrap_or_default();
    undo.pins = Some(pins);
    // A master without a record is removed only if it is alb's veth pair.
    if undo.created_master.is_none() {
        if let (Some(device), Some(_)) = (&device, &peer) {
            if device.kind.as_deref() == Some("veth") {
                undo.created_master = Some(device.index);
            }
        }
    }
    undo.run(&netlink, master).await;
    println!("alb: master {master} removed");
    Ok(())
}
