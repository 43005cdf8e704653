//! What the links carry, on real drivers: jumbo frames once the master's
//! MTU changes (bonding gives every slave the master's MTU), and clients
//! dealt by link speed (bonding weighs slaves by speed: a 10G and a 1G
//! slave do not get equal shares). veth takes any MTU and refuses
//! `ethtool -s speed`; virtio-net and e1000e have limits of their own, and
//! virtio-net accepts an advertised speed. Neither depends on the filters,
//! so both run in the pass with filter sync only.

use std::{thread, time::Duration};

use alb_tests::Status;
use anyhow::{Context as _, Result};

use super::{
    host::{MASTER_IP4, NICS},
    pings::{Replies, Stream, finish},
    scenarios::Scenarios,
};

const QUICK: Duration = Duration::from_secs(30);
const SLOW: Duration = Duration::from_secs(90);

/// Jumbo: the largest ICMP payload a 9000-byte IPv4 packet holds.
const JUMBO_MTU: u32 = 9000;
const JUMBO_PAYLOAD: &str = "8972";

/// The speeds the speed scenario gives the NICs: virtio-net advertises
/// what `ethtool -s` sets; e1000e reports its 1000 Mb/s.
const FAST_MBPS: u32 = 10_000;
const SLOW_MBPS: u32 = 1_000;
/// Clients dealt in the speed scenario (namespaces c10 ..): with 10:1
/// weights, 20 of 22 go to the 10G NIC and 2 to the 1G one.
const WEIGHED_CLIENTS: std::ops::RangeInclusive<usize> = 10..=31;

impl Scenarios<'_> {
    /// The master's MTU goes to 9000 in the guest; the agent gives it to
    /// both NICs (their drivers accept it), and each client's 9000-byte
    /// pings cross its own NIC unfragmented (`-M do`), both ways. Back to
    /// 1500 at the end.
    pub(super) fn mtu(&mut self) -> Result<()> {
        let clients = self.on_nic;
        self.switch.set_mtu(&clients, JUMBO_MTU)?;
        let result = self.jumbo(clients);
        self.switch.set_mtu(&clients, 1500)?;
        self.guest.sh_ok("ip link set alb0 mtu 1500", QUICK)?;
        let restored = self.guest.sh_ok("wait_nic_mtu 1500", QUICK)?;
        self.wait_settled(Duration::from_secs(2))?;
        self.check("mtu.slaves-back-to-1500", None, restored.contains("nic17 1500 nic19 1500"), {
            restored.trim()
        });
        result
    }

    fn jumbo(&mut self, clients: [usize; 2]) -> Result<()> {
        self.guest.sh_ok(&format!("ip link set alb0 mtu {JUMBO_MTU}"), QUICK)?;
        let seen = self.guest.sh_ok(&format!("wait_nic_mtu {JUMBO_MTU}"), QUICK)?;
        let want = format!("nic17 {JUMBO_MTU} nic19 {JUMBO_MTU}");
        self.check("mtu.slaves-take-masters-mtu", None, seen.contains(&want), seen.trim());
        // e1000e resets for a new MTU and renegotiates its link, as real
        // NICs do: its clients fail over and come back first.
        self.wait_settled(Duration::from_secs(2))?;
        let options = ["-M", "do", "-s", JUMBO_PAYLOAD];
        for (nic, c) in NICS.iter().zip(clients) {
            let before = self.switch.tap_packets(nic.tap)?;
            let replies = Stream::start_with(
                &format!("c{c}-jumbo"),
                &self.switch.client(c),
                MASTER_IP4,
                20,
                &options,
            )?
            .finish()?;
            let after = self.switch.tap_packets(nic.tap)?;
            let (into, out_of) = (after.1 - before.1, after.0 - before.0);
            self.check(
                &format!("mtu.jumbo-pings-via-{}", nic.guest_name),
                None,
                replies.answered.len() >= 18 && into >= 18 && out_of >= 18,
                &format!(
                    "c{c}, {JUMBO_PAYLOAD}-byte payload, don't fragment: {}; {} in {into} out \
                     {out_of}",
                    replies.describe(),
                    nic.tap
                ),
            );
        }
        Ok(())
    }

    /// nic17 (virtio-net) advertises 10 Gb/s, nic19 (e1000e) 1 Gb/s; a
    /// fresh agent reads the speeds and deals 22 new clients 10:1. Each
    /// client's ARP entry says which NIC it was dealt (the MAC it learned),
    /// and every one of them is answered. nic17 is set back to 1 Gb/s (as
    /// e1000e: equal weights) and the agent restarted for what follows.
    pub(super) fn speed(&mut self) -> Result<()> {
        let restart = "agent_stop && agent_start";
        self.guest
            .sh_ok(&format!("ethtool -s nic17 speed {FAST_MBPS} duplex full && {restart}"), SLOW)?;
        // A new agent made a new alb0.
        self.wait_settled(Duration::ZERO)?;
        self.master_addresses()?;
        let result = self.weighed_clients();
        for c in WEIGHED_CLIENTS {
            // One not added (the scenario stopped early) has nothing to
            // remove; dropping the switch removes any left.
            if let Err(error) = self.switch.remove_client(c) {
                self.report.info(&format!("speed: c{c} not removed: {error:#}"));
            }
        }
        self.guest
            .sh_ok(&format!("ethtool -s nic17 speed {SLOW_MBPS} duplex full && {restart}"), SLOW)?;
        self.wait_settled(Duration::from_secs(1))?;
        self.master_addresses()?;
        result
    }

    fn weighed_clients(&mut self) -> Result<()> {
        let json = self.guest.sh_ok("/usr/bin/alb status --json", QUICK)?;
        let status = Status::parse(json.as_bytes())?;
        let speeds: Vec<(String, Option<u32>)> =
            status.slaves.iter().map(|s| (s.name.clone(), s.speed_mbps)).collect();
        let want = [("nic17", FAST_MBPS), ("nic19", SLOW_MBPS)];
        self.check(
            "speed.agent-reads-speeds",
            None,
            want.iter().all(|(name, mbps)| speeds.contains(&((*name).to_owned(), Some(*mbps)))),
            &format!("{speeds:?}"),
        );
        for c in WEIGHED_CLIENTS {
            self.switch.add_client(c)?;
        }
        // Give the new ports a moment to forward (no STP: at once).
        thread::sleep(Duration::from_millis(200));
        let streams: Vec<Stream> = WEIGHED_CLIENTS
            .map(|c| Stream::start(&format!("c{c}"), &self.switch.client(c), MASTER_IP4, 5))
            .collect::<Result<_>>()?;
        let results = finish(streams)?;
        let silent: Vec<&str> = results
            .iter()
            .filter(|(_, replies): &&(String, Replies)| replies.answered.len() < 3)
            .map(|(name, _)| name.as_str())
            .collect();
        self.check(
            "speed.every-client-answered",
            None,
            silent.is_empty(),
            &format!("{} clients, answered fewer than 3 of 5: {silent:?}", results.len()),
        );
        let mut dealt = [0usize; 2];
        let mut unknown = Vec::new();
        for c in WEIGHED_CLIENTS {
            let seen = self.switch.client_ip(c, &["neigh", "show", MASTER_IP4])?;
            match NICS.iter().position(|nic| seen.contains(nic.mac)) {
                Some(n) => dealt[n] += 1,
                None => unknown.push(format!("c{c}: {}", seen.trim())),
            }
        }
        // 10:1 over 22 clients dealt in turn from fresh slots is 20:2; one
        // client either way allows for a client dealt by something else
        // first (the guest's own traffic).
        let total = WEIGHED_CLIENTS.count();
        let slow_share = dealt[1];
        self.check(
            "speed.clients-dealt-by-speed",
            None,
            unknown.is_empty() && (1..=3).contains(&slow_share) && dealt[0] + slow_share == total,
            &format!(
                "{total} clients: nic17 ({FAST_MBPS} Mb/s) {}, nic19 ({SLOW_MBPS} Mb/s) {}{}",
                dealt[0],
                dealt[1],
                if unknown.is_empty() { String::new() } else { format!("; unknown {unknown:?}") }
            ),
        );
        let json = self.guest.sh_ok("/usr/bin/alb status --json", QUICK)?;
        let status = Status::parse(json.as_bytes()).context("alb status after dealing")?;
        let counts: Vec<(String, u64)> =
            status.slaves.iter().map(|s| (s.name.clone(), s.clients)).collect();
        self.report.info(&format!("speed: the agent's client counts {counts:?}"));
        Ok(())
    }
}
