//! The data path's event ring, as a stream of typed events for the agent.

use alb_common::{
    maps::{self, ClientKey, ClientKey6, EventKind},
    ring::NEW_CLIENT6_UNTOLD,
    wire::{Ipv4, Mac},
};
use std::time::{Duration, Instant};

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
    /// The host broadcast an ARP request for `target` from `server` in
    /// VLAN `vlan`: every client of `server` in that VLAN that heard it now
    /// points at the MAC of `slave`. `target` is `server` itself for a
    /// gratuitous announcement.
    HostArpBroadcast { server: Ipv4, target: Ipv4, slave: u32, vlan: u16 },
    /// A client ARP reached the master in VLAN `vlan`: `sender` (IP and
    /// MAC) asked for or answered about `target`.
    ArpSeen { sender: Ipv4, sender_mac: Mac, target: Ipv4, vlan: u16 },
    /// The transmit path dealt `slot` (on slave `slave`) to a new IPv6
    /// client; `mac` is its MAC if the frame named it; `told`: the host's
    /// message carried the slave's MAC to it (an answer to a reachability
    /// probe does not).
    NewClient6 { key: ClientKey6, slot: u32, slave: u32, mac: Option<Mac>, told: bool },
    /// A known IPv6 client (in `slot`) has a new MAC.
    ClientMacChanged6 { key: ClientKey6, slot: u32, mac: Mac },
    /// A frame from VM MAC `mac` (a source other than the master's) pinned
    /// it to `slot`, on slave `slave`.
    NewVm { mac: Mac, slot: u32, slave: u32 },
}

impl Event {
    /// Decodes a ring entry (an [`maps::Event`] or an [`maps::Event6`],
    /// by its kind); `None` for an unknown kind or a short entry.
    pub fn from_ring(item: &[u8]) -> Option<Self> {
        let kind = EventKind::from_u32(u32::from_ne_bytes(*item.first_chunk::<4>()?))?;
        if kind.is_ipv6() {
            if item.len() < size_of::<maps::Event6>() {
                return None;
            }
            // SAFETY: the entry holds an Event6 (its kind says so, and it is
            // long enough); read unaligned.
            Self::decode6(&unsafe { item.as_ptr().cast::<maps::Event6>().read_unaligned() })
        } else {
            if item.len() < size_of::<maps::Event>() {
                return None;
            }
            // SAFETY: as above, for an Event.
            Self::decode(&unsafe { item.as_ptr().cast::<maps::Event>().read_unaligned() })
        }
    }

    /// Decodes an IPv6 ring entry; `None` for an unknown kind.
    pub fn decode6(raw: &maps::Event6) -> Option<Self> {
        let mac = alb_common::wire::is_valid_unicast(&raw.mac).then_some(raw.mac);
        Some(match EventKind::from_u32(raw.kind)? {
            EventKind::NewClient6 => Self::NewClient6 {
                key: raw.key,
                slot: raw.slot,
                slave: raw.slave,
                mac,
                told: raw.op != NEW_CLIENT6_UNTOLD,
            },
            EventKind::ClientMacChanged6 => {
                Self::ClientMacChanged6 { key: raw.key, slot: raw.slot, mac: raw.mac }
            }
            _ => return None,
        })
    }

    /// Decodes an IPv4 ring entry; `None` for an unknown kind.
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
                vlan: raw.key.vlan,
            },
            EventKind::ArpSeen => Self::ArpSeen {
                sender: raw.key.client_ip,
                sender_mac: raw.mac,
                target: raw.key.server_ip,
                vlan: raw.key.vlan,
            },
            EventKind::NewVm => Self::NewVm { mac: raw.mac, slot: raw.slot, slave: raw.slave },
            EventKind::NewClient6 | EventKind::ClientMacChanged6 => return None,
        })
    }
}

/// How often the agent drains the ring without a wake-up. Events the
/// agent need not act on at once (`alb_common::ring::wakes_agent`: a new
/// client, a new VM MAC) are written without waking it and wait for this.
/// 100 ms: bonding's own monitor tick (miimon's usual value); the model
/// learns a client before a person or a scrape could ask for it and long
/// before a rebalance (seconds) uses it; 10 idle wake-ups a second cost
/// microseconds; and the 1 MiB ring (32,768 events) holds a 100 ms burst of
/// 100,000 new clients a second three times over, where a 1 s period would
/// lose events at that rate.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(100);

/// The ring buffer, watched by tokio and drained on a timer.
pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
    /// When the ring is drained next without a wake-up.
    drain_at: Instant,
}

impl Events {
    pub(super) fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the ring buffer owns its descriptor and keeps it open,
        // unchanged, for as long as the AsyncFd owns the ring buffer.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|error| anyhow!("cannot watch the event ring: {error}"))?;
        Ok(Self { ring, drain_at: Instant::now() + DRAIN_PERIOD })
    }

    /// Waits for events and returns those ready, at most `max` (the rest
    /// stay for the next call, which then returns at once): on a wake-up
    /// from the data path, or every [`DRAIN_PERIOD`] for events written
    /// without one. Cancel-safe (the event loop's `select!` drops it every
    /// turn): the drain time is kept across calls.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Event>> {
        loop {
            match tokio::time::timeout_at(self.drain_at.into(), self.ring.readable_mut()).await {
                Ok(guard) => {
                    let mut guard = guard?;
                    let batch = drain(guard.get_inner_mut(), max);
                    if batch.len() < max {
                        // Drained: wait for the next wake-up.
                        guard.clear_ready();
                    }
                    if !batch.is_empty() {
                        return Ok(batch);
                    }
                }
                Err(_elapsed) => {
                    let batch = drain(self.ring.get_mut(), max);
                    if batch.len() < max {
                        // Drained; a full batch leaves the time passed, so
                        // the next call drains on at once.
                        self.drain_at = Instant::now() + DRAIN_PERIOD;
                    }
                    if !batch.is_empty() {
                        return Ok(batch);
                    }
                }
            }
        }
    }

    /// The events in the ring now, at most `max`, without waiting.
    pub fn ready(&mut self, max: usize) -> Vec<Event> {
        drain(self.ring.get_mut(), max)
    }
}

/// Reads at most `max` events from `ring`.
fn drain(ring: &mut RingBuf<MapData>, max: usize) -> Vec<Event> {
    let mut batch = Vec::new();
    while batch.len() < max {
        let Some(item) = ring.next() else { break };
        batch.extend(Event::from_ring(&item));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: EventKind) -> maps::Event {
        maps::Event {
            kind: kind as u32,
            slave: 1,
            key: ClientKey::new([198, 18, 0, 1], [198, 18, 0, 11], 100),
            mac: [2, 0, 0, 0, 0, 11],
            op: 2,
            slot: 7,
        }
    }

    #[test]
    fn events_decode_by_kind() {
        let new = Event::decode(&raw(EventKind::NewClient));
        assert!(matches!(new, Some(Event::NewClient { slot: 7, slave: 1, mac: Some(_), .. })));
        let unknown_mac = maps::Event { mac: [0; 6], ..raw(EventKind::NewClient) };
        assert!(matches!(Event::decode(&unknown_mac), Some(Event::NewClient { mac: None, .. })));
        let arp = Event::decode(&raw(EventKind::ArpSeen));
        assert!(matches!(arp, Some(Event::ArpSeen { sender: [198, 18, 0, 11], vlan: 100, .. })));
        let broadcast = Event::decode(&raw(EventKind::HostArpBroadcast));
        assert!(matches!(broadcast, Some(Event::HostArpBroadcast { server: [198, 18, 0, 1], .. })));
        assert_eq!(Event::decode(&maps::Event { kind: 99, ..raw(EventKind::ArpSeen) }), None);
    }

    #[test]
    fn ring_entries_decode_by_family() {
        let key = ClientKey6::new([0x20; 16], [0xfe; 16], 4094);
        let raw6 = maps::Event6 {
            kind: EventKind::NewClient6 as u32,
            slave: 1,
            key,
            mac: [2, 0, 0, 0, 0, 11],
            op: 1,
            slot: 9,
            _pad: 0,
        };
        // SAFETY: plain data viewed as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(&raw6).cast::<u8>(), size_of_val(&raw6))
        };
        assert_eq!(
            Event::from_ring(bytes),
            Some(Event::NewClient6 { key, slot: 9, slave: 1, mac: Some(raw6.mac), told: false })
        );
        assert_eq!(Event::from_ring(&bytes[..56]), None, "too short for an Event6");
        let raw4 = raw(EventKind::NewClient);
        // SAFETY: as above.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(&raw4).cast::<u8>(), size_of_val(&raw4))
        };
        assert!(matches!(Event::from_ring(bytes), Some(Event::NewClient { slot: 7, .. })));
    }
}
