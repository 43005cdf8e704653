//! A device's speed and duplex, as ethtool reads them (`SIOCETHTOOL`,
//! `ETHTOOL_GSET`): for `alb status` (bonding's Speed and Duplex lines)
//! and for `primary_reselect better`. One of two ioctl users: filters/
//! adds and removes multicast addresses with SIOCADDMULTI/SIOCDELMULTI.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use alb_common::active::Speed;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSET: u32 = 0x0000_0001;
const SPEED_UNKNOWN: u32 = u32::MAX;
const DUPLEX_HALF: u8 = 0;
const DUPLEX_FULL: u8 = 1;

/// `struct ethtool_cmd` (linux/ethtool.h), the legacy settings the kernel
/// still fills from a driver's link settings.
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// `struct ifreq` with its `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolCmd,
    _pad: [u8; 16],
}

/// The speed and duplex of device `name` in the current network namespace;
/// unknown where the driver does not say (or the device is gone).
pub fn speed(name: &str) -> Speed {
    read(name).unwrap_or_default()
}

fn read(name: &str) -> Option<Speed> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cmd = EthtoolCmd { cmd: ETHTOOL_GSET, ..EthtoolCmd::default() };
    let mut request = IfreqData { name: [0; libc::IFNAMSIZ], data: &raw mut cmd, _pad: [0; 16] };
    for (slot, byte) in request.name.iter_mut().zip(name.bytes()) {
        *slot = byte.cast_signed();
    }
    // SAFETY: SIOCETHTOOL reads `request` (a NUL-terminated name and a
    // pointer to `cmd`) and writes `cmd`, both of which outlive the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL, &raw mut request) };
    if rc != 0 {
        return None;
    }
    let mbps = (u32::from(cmd.speed_hi) << 16) | u32::from(cmd.speed);
    Some(Speed {
        mbps: (mbps != SPEED_UNKNOWN && mbps != 0).then_some(mbps),
        full_duplex: match cmd.duplex {
            DUPLEX_FULL => Some(true),
            DUPLEX_HALF => Some(false),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_request_has_the_kernels_layout() {
        // struct ethtool_cmd is 44 bytes; struct ifreq is 40 on 64-bit.
        assert_eq!(size_of::<super::EthtoolCmd>(), 44);
        assert_eq!(size_of::<super::IfreqData>(), 40);
        assert_eq!(super::speed("nosuchdevice0"), alb_common::active::Speed::default());
    }
}
