//! The data path's event ring, as a stream of typed events for the agent.

use alb_common::{
    maps::{self, ClientKey, EventKind},
    wire::{Ipv4, Mac},
};
use anyhow::{Result, anyhow};
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

/// What the data path reports, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The transmit path dealt `slot` (on slave `slave`) to a new client;
    /// `mac` is its MAC if the frame named it.
    NewClient { key: ClientKey, slot: u32, slave: u32, mac: Option<Mac> },
    /// A known client (in `slot`) has a new MAC.
    ClientMacChanged { key: ClientKey, slot: u32, mac: Mac },
    /// The host broadcast an ARP request for `target` from `server`: every
    /// client of `server` that heard it now points at the MAC of `slave`.
    /// `target` is `server` itself for a gratuitous announcement.
    HostArpBroadcast { server: Ipv4, target: Ipv4, slave: u32 },
    /// A client ARP reached the master: `sender` (IP and MAC) asked for or
    /// answered about `target`.
    ArpSeen { sender: Ipv4, sender_mac: Mac, target: Ipv4 },
}

impl Event {
    /// Decodes a raw ring entry; `None` for an unknown kind.
    pub fn decode(raw: &maps::Event) -> Option<Self> {
        let mac = alb_common::wire::is_valid_unicast(&raw.mac).then_some(raw.mac);
        Some(match EventKind::from_u32(raw.kind)? {
            EventKind::NewClient => {
                Self::NewClient { key: raw.key, slot: raw.slot, slave: raw.slave, mac }
            }
            EventKind::ClientMacChanged => {
                Self::ClientMacChanged { key: raw.key, slot: raw.slot, mac: raw.mac }
            }
            EventKind::HostArpBroadcast => Self::HostArpBroadcast {
                server: raw.key.server_ip,
                target: raw.key.client_ip,
                slave: raw.slave,
            },
            EventKind::ArpSeen => Self::ArpSeen {
                sender: raw.key.client_ip,
                sender_mac: raw.mac,
                target: raw.key.server_ip,
            },
        })
    }
}

/// The ring buffer, watched by tokio.
pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl Events {
    pub(super) fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the ring buffer owns its descriptor and keeps it open,
        // unchanged, for as long as the AsyncFd owns the ring buffer.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|error| anyhow!("cannot watch the event ring: {error}"))?;
        Ok(Self { ring })
    }

    /// Waits for events and returns those ready, at most `max` (the rest
    /// stay for the next call, which then returns at once).
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Event>> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            let mut batch = Vec::new();
            while batch.len() < max {
                let Some(item) = ring.next() else { break };
                if item.len() >= size_of::<maps::Event>() {
                    // SAFETY: the ring only carries `maps::Event`s; read unaligned.
                    let raw = unsafe { item.as_ptr().cast::<maps::Event>().read_unaligned() };
                    batch.extend(Event::decode(&raw));
                }
            }
            if batch.len() < max {
                // Drained: wait for the next wake-up.
                guard.clear_ready();
            }
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: EventKind) -> maps::Event {
        maps::Event {
            kind: kind as u32,
            slave: 1,
            key: ClientKey { server_ip: [198, 18, 0, 1], client_ip: [198, 18, 0, 11] },
            mac: [2, 0, 0, 0, 0, 11],
            op: 2,
            slot: 7,
            _pad: 0,
        }
    }

    #[test]
    fn events_decode_by_kind() {
        let new = Event::decode(&raw(EventKind::NewClient));
        assert!(matches!(new, Some(Event::NewClient { slot: 7, slave: 1, mac: Some(_), .. })));
        let unknown_mac = maps::Event { mac: [0; 6], ..raw(EventKind::NewClient) };
        assert!(matches!(Event::decode(&unknown_mac), Some(Event::NewClient { mac: None, .. })));
        let arp = Event::decode(&raw(EventKind::ArpSeen));
        assert!(matches!(arp, Some(Event::ArpSeen { sender: [198, 18, 0, 11], .. })));
        let broadcast = Event::decode(&raw(EventKind::HostArpBroadcast));
        assert!(matches!(broadcast, Some(Event::HostArpBroadcast { server: [198, 18, 0, 1], .. })));
        assert_eq!(Event::decode(&maps::Event { kind: 99, ..raw(EventKind::ArpSeen) }), None);
    }
}
