//! IEEE 802.1Q VLAN tags, in both forms the data path meets them:
//!
//! - **offloaded**: the tag sits in the skb's metadata (`vlan_present`,
//!   `vlan_tci` in `__sk_buff`), the frame is untagged. A VLAN device on the
//!   master (veth offloads) hands its frames to `alb_tx` this way, and the
//!   stack moves a received tag there before TC ingress runs; `bpf_redirect`
//!   keeps it.
//! - **in the frame**: ethertype 0x8100, then the tag control information,
//!   then the inner ethertype: frames sent where no offload applies
//!   (`txvlan off`, packet sockets) and BPF_PROG_TEST_RUN input.
//!
//! [`Tag::of`] reads which (the offloaded one wins; a second tag, 802.1ad or
//! QinQ, is not read: such a frame is "not IP" to alb and leaves by the
//! active slave, is delivered unwatched). [`Untagged`] shows a frame as if
//! its in-frame tag were not there, so every decision reads its headers at
//! the offsets of an untagged frame; [`Tag::at`] maps such an offset back
//! for a write. The VLAN ID is part of every client key: two VLANs are two
//! networks, whose clients may reuse the same addresses.

use crate::wire::Frame;

/// The 802.1Q tag protocol identifier (TPID).
pub const ETH_P_8021Q: u16 = 0x8100;
/// The VLAN ID bits of the tag control information (the rest: priority, DEI).
pub const VID_MASK: u16 = 0x0fff;
/// Bytes a tag adds to a frame.
pub const TAG_LEN: usize = 4;
/// Offset of the ethertype of an untagged frame, of the TPID of a tagged one.
pub const TYPE_OFFSET: usize = 12;

/// The VLAN a frame belongs to, and whether its tag is in the frame.
/// VLAN 0 is untagged (a priority tag, VID 0, too: Linux takes such frames
/// as untagged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tag {
    pub vid: u16,
    /// The tag is in the frame: the headers after it sit [`TAG_LEN`] bytes
    /// further on.
    pub in_frame: bool,
}

impl Tag {
    /// The tag of `frame`, given the skb's offloaded tag control
    /// information (`Some(vlan_tci)` when `vlan_present`).
    #[inline(always)]
    pub fn of<F: Frame + ?Sized>(frame: &F, offloaded: Option<u16>) -> Self {
        if let Some(tci) = offloaded {
            return Self { vid: tci & VID_MASK, in_frame: false };
        }
        match frame.read::<[u8; 4]>(TYPE_OFFSET) {
            Some([tpid_high, tpid_low, tci_high, tci_low])
                if u16::from_be_bytes([tpid_high, tpid_low]) == ETH_P_8021Q =>
            {
                Self { vid: u16::from_be_bytes([tci_high, tci_low]) & VID_MASK, in_frame: true }
            }
            _ => Self::default(),
        }
    }

    /// How far the headers after the Ethernet addresses are moved.
    #[inline(always)]
    pub const fn shift(self) -> usize {
        if self.in_frame { TAG_LEN } else { 0 }
    }

    /// The frame offset of `offset` as [`Untagged`] shows it: where a write
    /// of a field the decisions located must go.
    #[inline(always)]
    pub const fn at(self, offset: usize) -> usize {
        if offset >= TYPE_OFFSET { offset + self.shift() } else { offset }
    }
}

/// A frame shown without its in-frame tag: reads at or after the
/// ethertype's offset (12) are moved past the tag. A read before 12 must end
/// by 12 (the Ethernet addresses), as every read of the decisions does.
pub struct Untagged<'a, F: ?Sized> {
    frame: &'a F,
    tag: Tag,
}

impl<'a, F: Frame + ?Sized> Untagged<'a, F> {
    #[inline(always)]
    pub fn new(frame: &'a F, tag: Tag) -> Self {
        Self { frame, tag }
    }
}

impl<F: Frame + ?Sized> Frame for Untagged<'_, F> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        debug_assert!(
            offset >= TYPE_OFFSET || offset + size_of::<T>() <= TYPE_OFFSET,
            "a read across the tag"
        );
        self.frame.read(self.tag.at(offset))
    }
}

/// Writes `frame` with an 802.1Q tag for VLAN `vid` (priority 0) into
/// `out`, the agent's frames for a client of a VLAN; returns its length, or
/// `None` when `out` is too short or `frame` has no Ethernet header.
/// VLAN 0 copies the frame untagged.
pub fn insert_tag(frame: &[u8], vid: u16, out: &mut [u8]) -> Option<usize> {
    if frame.len() < TYPE_OFFSET + 2 {
        return None;
    }
    if vid == 0 {
        out.get_mut(..frame.len())?.copy_from_slice(frame);
        return Some(frame.len());
    }
    let len = frame.len() + TAG_LEN;
    let out = out.get_mut(..len)?;
    let (addresses, rest) = frame.split_at(TYPE_OFFSET);
    out[..TYPE_OFFSET].copy_from_slice(addresses);
    out[TYPE_OFFSET..TYPE_OFFSET + 2].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
    out[TYPE_OFFSET + 2..TYPE_OFFSET + 4].copy_from_slice(&(vid & VID_MASK).to_be_bytes());
    out[TYPE_OFFSET + TAG_LEN..].copy_from_slice(rest);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        testing::{arp_frame, tagged},
        wire::{ArpHdr, ETH_P_ARP, EthHdr},
    };

    const CLIENT: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const MASTER: [u8; 6] = [2, 0, 0, 0, 0, 17];

    fn arp() -> std::vec::Vec<u8> {
        arp_frame(CLIENT, MASTER, 2, MASTER, [198, 18, 0, 1], CLIENT, [198, 18, 0, 11])
    }

    #[test]
    fn an_in_frame_tag_is_read_and_skipped() {
        let frame = tagged(&arp(), 100);
        let tag = Tag::of(&frame[..], None);
        assert_eq!(tag, Tag { vid: 100, in_frame: true });
        let view = Untagged::new(&frame[..], tag);
        assert_eq!(view.read::<[u8; 2]>(12), Some(ETH_P_ARP.to_be_bytes()));
        let arp: ArpHdr = view.read(EthHdr::LEN).expect("an ARP header after the tag");
        assert_eq!(arp.spa, [198, 18, 0, 1]);
        assert_eq!(view.read::<[u8; 6]>(0), Some(CLIENT));
        assert_eq!(tag.at(EthHdr::LEN + ArpHdr::SHA_OFFSET), 14 + 4 + 8);
        assert_eq!(tag.at(6), 6);
    }

    #[test]
    fn the_offloaded_tag_wins_and_leaves_offsets_alone() {
        let plain = arp();
        let tag = Tag::of(&plain[..], Some(0x2000 | 200));
        assert_eq!(tag, Tag { vid: 200, in_frame: false }, "priority bits are not the VID");
        assert_eq!(tag.at(EthHdr::LEN), EthHdr::LEN);
        // A second tag in the frame (QinQ) is not looked through.
        let double = tagged(&plain, 300);
        let tag = Tag::of(&double[..], Some(200));
        let view = Untagged::new(&double[..], tag);
        assert_eq!(view.read::<[u8; 2]>(12), Some(ETH_P_8021Q.to_be_bytes()));
    }

    #[test]
    fn untagged_and_short_frames_have_no_tag() {
        assert_eq!(Tag::of(&arp()[..], None), Tag::default());
        let frame = tagged(&arp(), 100);
        assert_eq!(Tag::of(&frame[..15], None), Tag::default(), "the TCI is cut off");
        let priority_only = tagged(&arp(), 0);
        assert_eq!(Tag::of(&priority_only[..], None), Tag { vid: 0, in_frame: true });
    }

    #[test]
    fn insert_tag_makes_what_the_reader_reads() {
        let frame = arp();
        let mut out = [0u8; 128];
        let len = insert_tag(&frame, 4094, &mut out).expect("room");
        assert_eq!(len, frame.len() + TAG_LEN);
        assert_eq!(&out[..len], &tagged(&frame, 4094)[..]);
        assert_eq!(insert_tag(&frame, 0, &mut out), Some(frame.len()));
        assert_eq!(&out[..frame.len()], &frame[..]);
        assert_eq!(insert_tag(&frame, 7, &mut out[..frame.len()]), None, "no room for the tag");
        assert_eq!(insert_tag(&frame[..13], 7, &mut out), None);
    }
}
