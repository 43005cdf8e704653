//! Frames the agent sends itself (ARP updates and neighbour advertisements
//! to clients, learning frames),
//! through an AF_PACKET socket straight onto a slave: they bypass the master
//! and its transmit program. The only module that sends frames; telling
//! many clients at once is the paced [`worker`]'s job. A client of a VLAN
//! is told in a frame tagged with its VLAN (the client's key carries it).
//! The frames are tagged in place: AF_PACKET passes them as they are.

pub mod rejoin;
pub mod worker;

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use alb_common::{
    frames::{ADVERT_FRAME_LEN, UpdateForm, arp_update, neighbour_advert},
    maps::{ClientKey, ClientKey6},
    vlan::{TAG_LEN, insert_tag},
    wire::Mac,
};
use anyhow::{Context as _, Result};

/// A raw socket that sends frames out of one device at a time.
pub struct Announcer {
    socket: OwnedFd,
}

impl Announcer {
    pub fn new() -> Result<Self> {
        // Protocol 0: this socket only sends, it receives nothing.
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("cannot open an AF_PACKET socket");
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // Straight to the driver, past the qdisc layer (as pktgen does): a
        // failover's updates are many small frames at once.
        let on: libc::c_int = 1;
        // SAFETY: setsockopt(2) with a pointer to a live int and its size.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                std::ptr::from_ref(&on).cast(),
                u32::try_from(size_of::<libc::c_int>())?,
            )
        };
        if set != 0 {
            log::debug!("PACKET_QDISC_BYPASS: {}", io::Error::last_os_error());
        }
        Ok(Self { socket })
    }

    /// Sends one complete Ethernet frame out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> Result<()> {
        let address = link_address(ifindex)?;
        // SAFETY: the buffer and address are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&address).cast(),
                u32::try_from(size_of::<libc::sockaddr_ll>())?,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("cannot send a frame on ifindex {ifindex}"));
        }
        Ok(())
    }

    /// Sends one frame out of `ifindex`, tagged for VLAN `vlan` (as it is
    /// for VLAN 0).
    pub fn send_tagged(&self, ifindex: u32, frame: &[u8], vlan: u16) -> Result<()> {
        if vlan == 0 {
            return self.send(ifindex, frame);
        }
        let mut tagged = vec![0u8; frame.len() + TAG_LEN];
        let len = insert_tag(frame, vlan, &mut tagged).context("no Ethernet header to tag")?;
        self.send(ifindex, &tagged[..len])
    }

    /// Sends whole frames out of `ifindex`, many per system call
    /// (sendmmsg); returns how many left. Stops early only when the socket
    /// refuses more for now (a full device queue).
    pub fn send_many<F: AsRef<[u8]>>(&self, ifindex: u32, frames: &[F]) -> Result<usize> {
        let mut address = link_address(ifindex)?;
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|frame| {
                let frame = frame.as_ref();
                libc::iovec { iov_base: frame.as_ptr().cast_mut().cast(), iov_len: frame.len() }
            })
            .collect();
        let address_len = u32::try_from(size_of::<libc::sockaddr_ll>())?;
        let mut messages: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iovec| {
                // SAFETY: msghdr is plain data; all-zero is a valid value.
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = std::ptr::from_mut(&mut address).cast();
                header.msg_namelen = address_len;
                header.msg_iov = std::ptr::from_mut(iovec);
                header.msg_iovlen = 1;
                libc::mmsghdr { msg_hdr: header, msg_len: 0 }
            })
            .collect();
        let mut sent = 0;
        while sent < messages.len() {
            let rest = &mut messages[sent..];
            // SAFETY: every header points at a live frame and at `address`,
            // which outlive the call.
            let result = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    rest.as_mut_ptr(),
                    u32::try_from(rest.len()).unwrap_or(u32::MAX),
                    0,
                )
            };
            if result < 0 {
                let error = io::Error::last_os_error();
                if matches!(error.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) && sent > 0 {
                    break;
                }
                return Err(error)
                    .with_context(|| format!("cannot send frames on ifindex {ifindex}"));
            }
            if result == 0 {
                break;
            }
            sent += usize::try_from(result).unwrap_or(0);
        }
        Ok(sent)
    }
}

/// The longest frame the teller sends: a tagged neighbour advertisement.
const OUTGOING_MAX: usize = ADVERT_FRAME_LEN + TAG_LEN;

/// A frame for one client, tagged with its VLAN when it has one: one type
/// for both, so a batch for clients of several VLANs is one sendmmsg.
#[derive(Clone, Copy)]
pub struct Outgoing {
    bytes: [u8; OUTGOING_MAX],
    len: usize,
}

impl Outgoing {
    /// `frame` (at most [`ADVERT_FRAME_LEN`] bytes) for VLAN `vlan`.
    fn new(frame: &[u8], vlan: u16) -> Self {
        let mut bytes = [0u8; OUTGOING_MAX];
        let len = insert_tag(frame, vlan, &mut bytes).unwrap_or(0);
        Self { bytes, len }
    }
}

impl AsRef<[u8]> for Outgoing {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The frame of `form` that tells a client that the server IP is at
/// `slave_mac`: the gratuitous form is applied at once by Linux clients,
/// whatever their ARP locktime; the kernel's RLB form (docs/bonding.md §2.5) serves
/// clients that ignore gratuitous ARP. Tagged with the client's VLAN.
pub fn client_update(
    form: UpdateForm,
    slave_mac: &Mac,
    key: &ClientKey,
    client_mac: &Mac,
) -> Outgoing {
    let frame = arp_update(form, slave_mac, &key.server_ip, client_mac, &key.client_ip);
    Outgoing::new(&frame, key.vlan)
}

/// The unsolicited neighbour advertisement (override flag set) that tells
/// an IPv6 client that the server address is at `slave_mac`: Linux applies
/// it at once (Neighbor Discovery has no lock time). Tagged with the
/// client's VLAN.
pub fn client_advert(slave_mac: &Mac, key: &ClientKey6, client_mac: &Mac) -> Outgoing {
    let frame = neighbour_advert(slave_mac, &key.server_ip, client_mac, &key.client_ip);
    Outgoing::new(&frame, key.vlan)
}

/// Where a frame for `ifindex` goes: the device, nothing else (the
/// destination MAC is in the frame).
fn link_address(ifindex: u32) -> Result<libc::sockaddr_ll> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = u16::try_from(libc::AF_PACKET)?;
    address.sll_ifindex = i32::try_from(ifindex)?;
    address.sll_halen = 6;
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLAVE: Mac = [2, 0xa1, 0xb0, 0, 0, 0x19];
    const CLIENT: Mac = [2, 0xa1, 0xc0, 0, 0, 1];

    #[test]
    fn a_client_of_a_vlan_is_told_in_a_frame_tagged_with_it() {
        let key = ClientKey::new([198, 18, 0, 1], [198, 18, 0, 11], 200);
        let tagged = client_update(UpdateForm::Gratuitous, &SLAVE, &key, &CLIENT);
        let frame = tagged.as_ref();
        assert_eq!(frame.len(), 64);
        assert_eq!(frame[12..18], [0x81, 0x00, 0x00, 200, 0x08, 0x06]);
        assert_eq!(frame[26..32], SLAVE, "the ARP sender, behind the tag");
        let untagged =
            client_update(UpdateForm::Gratuitous, &SLAVE, &ClientKey { vlan: 0, ..key }, &CLIENT);
        assert_eq!(untagged.as_ref().len(), 60);
        assert_eq!(untagged.as_ref()[12..14], [0x08, 0x06]);
        let key6 = ClientKey6::new([0x20; 16], [0xfe; 16], 7);
        let advert = client_advert(&SLAVE, &key6, &CLIENT);
        assert_eq!(advert.as_ref().len(), ADVERT_FRAME_LEN + TAG_LEN);
        assert_eq!(advert.as_ref()[12..18], [0x81, 0x00, 0x00, 7, 0x86, 0xdd]);
    }
}
