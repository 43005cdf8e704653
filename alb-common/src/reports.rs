//! Multicast membership reports the agent sends through a new active slave
//! (bonding's resend_igmp): switches that snoop IGMP/MLD learned the
//! master's groups on the old active slave's port, and forward the streams
//! there until a report arrives on the new one.
//!
//! As the kernel's own rejoin after a bond failover (ip_mc_rejoin_groups,
//! ipv6_mc_rejoin_groups): current-state records, MODE_IS_EXCLUDE with no
//! sources (any-source joins), IGMPv2 when the link has seen a v1/v2
//! querier. Frames are built into a caller's buffer; each builder returns
//! the length, or `None` when the buffer is too small.

use crate::wire::{
    ETH_P_IP, ETH_P_IPV6, IPPROTO_HOPOPTS, IPPROTO_ICMPV6, IPPROTO_IGMP, Ipv4, Ipv6, Mac,
};

/// IGMPv3 reports go to all IGMPv3-capable routers.
pub const IGMPV3_ROUTERS: Ipv4 = [224, 0, 0, 22];
/// MLDv2 reports go to all MLDv2-capable routers (ff02::16).
pub const MLDV2_ROUTERS: Ipv6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];

const IGMPV2_REPORT: u8 = 0x16;
const IGMPV3_REPORT: u8 = 0x22;
const MLDV2_REPORT: u8 = 143;
/// A current-state record: the sender is in EXCLUDE mode (an any-source join).
const MODE_IS_EXCLUDE: u8 = 2;
/// IPv4 Router Alert option (RFC 2113), which IGMP reports carry.
const ROUTER_ALERT4: [u8; 4] = [0x94, 0x04, 0, 0];
/// Internetwork control, as the kernel sends IGMP.
const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;

/// Most group records in one frame of a 1500-byte MTU.
pub const IGMPV3_MAX_GROUPS: usize = (1500 - 24 - 8) / 8;
pub const MLDV2_MAX_GROUPS: usize = (1500 - 40 - 8 - 8) / 20;

/// The Ethernet address of IPv4 multicast group `group` (RFC 1112).
pub const fn ipv4_multicast_mac(group: &Ipv4) -> Mac {
    [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
}

/// The Ethernet address of IPv6 multicast group `group` (RFC 2464).
pub const fn ipv6_multicast_mac(group: &Ipv6) -> Mac {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// The Internet checksum of `data`, starting from the partial sum `sum`.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(out: &mut [u8], dst: &Mac, src: &Mac, ether_type: u16) {
    out[0..6].copy_from_slice(dst);
    out[6..12].copy_from_slice(src);
    out[12..14].copy_from_slice(&ether_type.to_be_bytes());
}

/// An IPv4 header with the Router Alert option (24 bytes) at `out[14..]`.
fn ipv4_header(out: &mut [u8], src: &Ipv4, dst: &Ipv4, payload: usize) -> Option<()> {
    let total = u16::try_from(24 + payload).ok()?;
    let header = &mut out[14..38];
    header[0] = 0x46;
    header[1] = TOS_INTERNETWORK_CONTROL;
    header[2..4].copy_from_slice(&total.to_be_bytes());
    header[4..6].copy_from_slice(&[0, 0]);
    header[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    header[8] = 1;
    header[9] = IPPROTO_IGMP;
    header[10..12].copy_from_slice(&[0, 0]);
    header[12..16].copy_from_slice(src);
    header[16..20].copy_from_slice(dst);
    header[20..24].copy_from_slice(&ROUTER_ALERT4);
    let sum = checksum(header, 0);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    Some(())
}

/// One IGMPv3 report from `src_mac`/`src_ip` joining every group of
/// `groups` (at most [`IGMPV3_MAX_GROUPS`]).
pub fn igmpv3_report(
    src_mac: &Mac,
    src_ip: &Ipv4,
    groups: &[Ipv4],
    out: &mut [u8],
) -> Option<usize> {
    let igmp_len = 8 + 8 * groups.len();
    let len = 14 + 24 + igmp_len;
    if groups.is_empty() || groups.len() > IGMPV3_MAX_GROUPS || out.len() < len {
        return None;
    }
    ethernet(out, &ipv4_multicast_mac(&IGMPV3_ROUTERS), src_mac, ETH_P_IP);
    ipv4_header(out, src_ip, &IGMPV3_ROUTERS, igmp_len)?;
    let igmp = &mut out[38..len];
    igmp[0] = IGMPV3_REPORT;
    igmp[1..6].fill(0);
    igmp[6..8].copy_from_slice(&u16::try_from(groups.len()).ok()?.to_be_bytes());
    for (record, group) in igmp[8..].chunks_exact_mut(8).zip(groups) {
        record[0] = MODE_IS_EXCLUDE;
        record[1..4].fill(0);
        record[4..8].copy_from_slice(group);
    }
    let sum = checksum(igmp, 0);
    igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(len)
}

/// One IGMPv2 membership report for `group`, sent to the group itself.
pub fn igmpv2_report(src_mac: &Mac, src_ip: &Ipv4, group: &Ipv4, out: &mut [u8]) -> Option<usize> {
    let len = 14 + 24 + 8;
    if out.len() < len {
        return None;
    }
    ethernet(out, &ipv4_multicast_mac(group), src_mac, ETH_P_IP);
    ipv4_header(out, src_ip, group, 8)?;
    let igmp = &mut out[38..len];
    igmp[0] = IGMPV2_REPORT;
    igmp[1..4].fill(0);
    igmp[4..8].copy_from_slice(group);
    let sum = checksum(igmp, 0);
    igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(len)
}

/// One MLDv2 report from `src_mac`/`src_ip` (the master's link-local
/// address, or `::` before it has one) joining every group of `groups` (at
/// most [`MLDV2_MAX_GROUPS`]).
pub fn mldv2_report(
    src_mac: &Mac,
    src_ip: &Ipv6,
    groups: &[Ipv6],
    out: &mut [u8],
) -> Option<usize> {
    let icmp_len = 8 + 20 * groups.len();
    let payload = 8 + icmp_len;
    let len = 14 + 40 + payload;
    if groups.is_empty() || groups.len() > MLDV2_MAX_GROUPS || out.len() < len {
        return None;
    }
    ethernet(out, &ipv6_multicast_mac(&MLDV2_ROUTERS), src_mac, ETH_P_IPV6);
    let header = &mut out[14..54];
    header[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    header[4..6].copy_from_slice(&u16::try_from(payload).ok()?.to_be_bytes());
    header[6] = IPPROTO_HOPOPTS;
    header[7] = 1;
    header[8..24].copy_from_slice(src_ip);
    header[24..40].copy_from_slice(&MLDV2_ROUTERS);
    // Hop-by-hop: Router Alert (MLD, value 0) and a 2-byte PadN.
    out[54..62].copy_from_slice(&[IPPROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
    let icmp = &mut out[62..len];
    icmp[0] = MLDV2_REPORT;
    icmp[1..6].fill(0);
    icmp[6..8].copy_from_slice(&u16::try_from(groups.len()).ok()?.to_be_bytes());
    for (record, group) in icmp[8..].chunks_exact_mut(20).zip(groups) {
        record[0] = MODE_IS_EXCLUDE;
        record[1..4].fill(0);
        record[4..20].copy_from_slice(group);
    }
    // The pseudo-header: source, destination, length, next header.
    let mut sum = 0u32;
    for address in [src_ip, &MLDV2_ROUTERS] {
        for pair in address.chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
    }
    sum += u32::try_from(icmp_len).ok()? + u32::from(IPPROTO_ICMPV6);
    let sum = checksum(icmp, sum);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [2, 0xa1, 0xb0, 0, 0, 0x17];

    /// A checksum over data that includes its own checksum field is 0.
    fn verifies(data: &[u8], sum: u32) -> bool {
        checksum(data, sum) == 0
    }

    #[test]
    fn igmpv3_report_joins_each_group() {
        let mut out = [0u8; 1514];
        let groups = [[239, 1, 1, 1], [239, 2, 3, 4]];
        let len = igmpv3_report(&MAC, &[198, 18, 0, 1], &groups, &mut out).expect("fits");
        assert_eq!(len, 14 + 24 + 8 + 16);
        assert_eq!(&out[0..6], &[1, 0, 0x5e, 0, 0, 0x16]);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        assert!(verifies(&out[14..38], 0), "IPv4 header checksum");
        assert_eq!((out[14 + 8], out[14 + 9]), (1, IPPROTO_IGMP), "TTL 1, IGMP");
        assert_eq!(&out[14 + 20..14 + 24], &ROUTER_ALERT4);
        assert!(verifies(&out[38..len], 0), "IGMP checksum");
        assert_eq!(out[38], 0x22);
        assert_eq!(&out[44..46], &[0, 2], "two records");
        assert_eq!(&out[46..54], &[2, 0, 0, 0, 239, 1, 1, 1]);
        assert_eq!(&out[54..62], &[2, 0, 0, 0, 239, 2, 3, 4]);
    }

    #[test]
    fn igmpv2_report_goes_to_the_group() {
        let mut out = [0u8; 64];
        let len = igmpv2_report(&MAC, &[198, 18, 0, 1], &[239, 129, 1, 1], &mut out).expect("fits");
        assert_eq!(&out[0..6], &[1, 0, 0x5e, 1, 1, 1], "the group's MAC, high bit of byte 1 off");
        assert_eq!(&out[30..34], &[239, 129, 1, 1], "IP destination: the group");
        assert!(verifies(&out[38..len], 0));
        assert_eq!(out[38], 0x16);
    }

    #[test]
    fn mldv2_report_carries_router_alert_and_a_valid_checksum() {
        let mut out = [0u8; 1514];
        let source: Ipv6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xb0, 0xff, 0xfe, 0, 0, 0x17];
        let group: Ipv6 = [0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2];
        let len = mldv2_report(&MAC, &source, &[group], &mut out).expect("fits");
        assert_eq!(len, 14 + 40 + 8 + 8 + 20);
        assert_eq!(&out[0..6], &[0x33, 0x33, 0, 0, 0, 0x16]);
        assert_eq!((out[20], out[21]), (IPPROTO_HOPOPTS, 1), "hop-by-hop, hop limit 1");
        assert_eq!(&out[54..58], &[IPPROTO_ICMPV6, 0, 5, 2], "router alert");
        let icmp = &out[62..len];
        assert_eq!(icmp[0], 143);
        let mut sum = 0u32;
        for address in [&source, &MLDV2_ROUTERS] {
            for pair in address.chunks_exact(2) {
                sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
            }
        }
        sum += icmp.len() as u32 + 58;
        assert!(verifies(icmp, sum), "ICMPv6 checksum with the pseudo-header");
        assert_eq!(&icmp[12..28], &group);
    }

    #[test]
    fn too_many_groups_or_a_short_buffer_build_nothing() {
        let mut out = [0u8; 1514];
        let many = [[239, 0, 0, 1]; IGMPV3_MAX_GROUPS + 1];
        assert_eq!(igmpv3_report(&MAC, &[0; 4], &many, &mut out), None);
        assert_eq!(igmpv3_report(&MAC, &[0; 4], &[], &mut out), None);
        assert_eq!(igmpv3_report(&MAC, &[0; 4], &[[239, 0, 0, 1]], &mut out[..40]), None);
        let full = [[239, 0, 0, 1]; IGMPV3_MAX_GROUPS];
        let len = igmpv3_report(&MAC, &[0; 4], &full, &mut out).expect("fits");
        assert!(len <= 1514, "a full report fits a 1500-byte MTU");
    }
}
