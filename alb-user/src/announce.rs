//! Frames the agent sends itself (ARP updates to clients), through an
//! AF_PACKET socket straight onto a slave: they bypass the master and its
//! transmit program. The only module that sends frames.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use alb_common::{
    frames::{FRAME_LEN, UpdateForm, arp_update},
    maps::ClientKey,
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
        Ok(Self { socket: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Sends one complete Ethernet frame out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = u16::try_from(libc::AF_PACKET)?;
        address.sll_ifindex = i32::try_from(ifindex)?;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&frame[..6]);
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

    /// Tells a client that the server IP is at `slave_mac`: a gratuitous
    /// update (applied at once by Linux clients, whatever their ARP
    /// locktime) followed by the kernel's RLB form (spec §1.7) for clients
    /// that ignore gratuitous ARP.
    pub fn update_client(
        &self,
        slave_ifindex: u32,
        slave_mac: &Mac,
        key: &ClientKey,
        client_mac: &Mac,
    ) -> Result<()> {
        for form in [UpdateForm::Gratuitous, UpdateForm::Rlb] {
            let frame: [u8; FRAME_LEN] =
                arp_update(form, slave_mac, &key.server_ip, client_mac, &key.client_ip);
            self.send(slave_ifindex, &frame)?;
        }
        Ok(())
    }
}
