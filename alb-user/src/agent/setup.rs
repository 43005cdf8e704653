//! Bringing the data path up: the master, the programs and maps (fresh, or
//! adopted from an agent that died), and the agent's models of them.

use std::time::Instant;

use alb_common::{
    assign::{Slots, even_out, move_off, remap},
    maps::CLIENT_SLOTS,
};
use anyhow::{Result, bail};
use futures::Stream;

use super::{
    startup::{prepare_devices, primary_index, used_by_alb_here},
    state::{Agent, Announce, Model, Report, Resync},
};
use crate::{
    announce::{Announcer, worker::Teller},
    clients::{Clients, collapse::Collapses},
    config::Options,
    datapath::{self, Datapath, layout},
    filters::Filters,
    links::{Link, LinkReport, Netlink},
    master,
    slaves::SlaveSet,
    undo::Undo,
};

/// Refuses, before anything changes, pins this agent cannot adopt and
/// slaves another alb master already uses. `preloaded`: the pins are this
/// agent's own, loaded fresh (not yet published, so of no format yet).
pub(super) fn refuse_foreign_pins(options: &Options, preloaded: bool) -> Result<()> {
    let pins = datapath::pin_dir(&options.master);
    let adopting = !preloaded && datapath::has_pinned_state(&pins);
    if adopting {
        // The pins may carry live traffic: refuse before touching anything.
        datapath::check_pins(&pins, options.max_clients)?;
    }
    for slave in &options.slaves {
        let ours = adopting && layout::link_dir(&pins).join(layout::rx_record(slave)).exists();
        if !ours && used_by_alb_here(slave)? {
            bail!("interface {slave} is already a slave of another alb master");
        }
    }
    Ok(())
}

/// Creates (or adopts) the master, prepares the slaves, loads and attaches
/// the programs, and publishes the state, or adopts the state an earlier
/// agent left. Returns the agent and its link events, subscribed before
/// the devices were read so that no change falls between. `preloaded`:
/// programs and maps loaded (and pinned) before, fresh (`alb takeover`
/// loads them while the bond still runs).
pub(super) async fn setup(
    netlink: &Netlink,
    options: &Options,
    slaves: &[Link],
    undo: &mut Undo,
    preloaded: Option<Datapath>,
) -> Result<(Agent, impl Stream<Item = LinkReport> + use<>)> {
    let primary = primary_index(options);
    // A first MAC for a new master: the primary's, else the first slave's
    // (prepare_devices settles which slave owns it).
    let first_mac = slaves.get(primary.unwrap_or(0)).and_then(|s| s.mac);
    let mut master = master::create_or_adopt(netlink, &options.master, first_mac.as_ref()).await?;
    if master.created {
        undo.created_master = Some(master.link.index);
        undo.save(&options.master)?;
    }
    let link_events = netlink.watch_links()?;
    let (state, mac_owner) =
        prepare_devices(netlink, &mut master, slaves, primary, options.client_sampling, undo)
            .await?;
    let policy = (options.primary.clone(), options.primary_reselect);
    let mut set = SlaveSet::new(state, options.slaves.clone(), options.delays, policy, mac_owner);
    for (index, slave) in options.slaves.iter().enumerate() {
        set.set_speed(index, crate::ethtool::speed(slave));
    }

    let pins = datapath::pin_dir(&options.master);
    let adopting = preloaded.is_none() && datapath::has_pinned_state(&pins);
    undo.pins = Some(pins.clone());
    undo.save(&options.master)?;
    let mut datapath = match preloaded {
        Some(datapath) => datapath,
        None => Datapath::load(Some(&pins), options.max_clients)?,
    };
    datapath.attach(&options.master, &options.slaves)?;
    let usable = set.state.usable();
    let slots = Slots::weighted(&usable, set.capacity());
    let buckets = Vec::new();
    let mut agent = Agent {
        options: options.clone(),
        netlink: netlink.clone(),
        master,
        set,
        datapath,
        model: Model {
            clients: Clients::with_capacity(usize::try_from(options.max_clients)?),
            // Grown as IPv6 clients come: most hosts have few, and room for
            // a million up front would cost memory for none.
            clients6: Clients::default(),
            slots,
            buckets,
            collapses: Collapses::default(),
        },
        resync: Resync {
            events_lost: 0,
            resynced: Instant::now(),
            walk: None,
            adopted: adopting,
            resynced_once: !adopting,
        },
        announce: Announce {
            announcer: Announcer::new()?,
            teller: Teller::start(CLIENT_SLOTS as usize)?,
            groups_reported_on: None,
        },
        filters: Filters::new(!options.no_filter_sync),
        report: Report::default(),
        link_dir: layout::link_dir(&pins),
        map_writes: super::map_writes::MapWrites::default(),
    };
    // The kernel reported the groups through the first active slave itself.
    agent.announce.groups_reported_on = agent.set.state.active;
    if adopting {
        agent.adopt()?;
    } else {
        agent.datapath.publish(&agent.set.state, agent.model.slots.slaves())?;
        agent.model.buckets = agent.datapath.buckets()?;
        // The data path deals buckets in turn; slaves of different speeds
        // get shares by speed.
        let moves = even_out(&agent.model.buckets, &usable, agent.model.slots.capacity());
        agent.datapath.set_buckets(&moves)?;
        for (bucket, slave) in moves {
            agent.model.buckets[bucket] = slave;
        }
    }
    agent.resync.events_lost = agent.datapath.events_lost()?;
    if !agent.set.any_up() {
        netlink.set_up(agent.master.peer.index, false).await?;
    }
    // Raised only now that the programs run: a client that ARPs the moment
    // the master appears is answered at once, not after its 1 s retry.
    netlink.set_up(agent.master.link.index, true).await?;
    Ok((agent, link_events))
}

impl Agent {
    /// Takes over the maps of an agent that died: its clients, slots and
    /// buckets stay on their devices (its slave indices may differ from
    /// ours); only what points at a slave that is gone or down moves, and
    /// those clients are told, as a failover tells them.
    fn adopt(&mut self) -> Result<()> {
        let old_ifindex = self.datapath.slave_ifindexes()?;
        let new_ifindex: Vec<u32> = self.set.state.slaves.iter().map(|s| s.ifindex).collect();
        let mut buckets = self.datapath.buckets()?;
        for (bucket, slave) in remap(&buckets, &old_ifindex, &new_ifindex) {
            buckets[bucket] = slave;
        }
        self.model.slots = Slots::adopt(self.datapath.slots()?);
        self.model.slots.set_capacity(self.set.capacity());
        self.model.slots.remap(&old_ifindex, &new_ifindex);
        let all = |table: &[u32]| table.iter().copied().enumerate().collect::<Vec<_>>();
        self.datapath.set_buckets(&all(&buckets))?;
        self.datapath.set_slots(&all(self.model.slots.slaves()))?;
        self.datapath.publish_slaves(&self.set.state)?;

        let usable = self.set.state.usable();
        for (bucket, slave) in move_off(&buckets, &usable, &self.set.capacity()) {
            buckets[bucket] = slave;
        }
        self.datapath.set_buckets(&all(&buckets))?;
        self.model.buckets = buckets;
        // Clients per slot are not known before the table is read: the
        // slots of a slave that went down are spread by count.
        let moved = self.model.slots.move_off(&usable, &[]);
        self.datapath.set_slots(&moved)?;
        // The table is read as a walk over the loop's first turns (a
        // million clients take two seconds: signals must not wait); the
        // clients of the moved slots are told when it ends.
        self.start_walk(0, moved.clone());
        if !moved.is_empty() {
            // As a failover does: the switch learns the failed MACs through
            // the active slave, which accepts them (rx_failover).
            if let Some(active) = self.set.state.active {
                let via = self.set.state.slaves[active].ifindex;
                let down: Vec<_> = self
                    .set
                    .state
                    .slaves
                    .iter()
                    .filter(|s| s.ifindex != 0 && !s.up)
                    .map(|s| s.mac)
                    .collect();
                for mac in down {
                    self.learn(via, &mac);
                }
            }
        }
        Ok(())
    }
}
