//! The clsact qdisc of a slave, on the clsact hook: alb adds one where the
//! device has none, and removes it with its last filter, so that `alb down`
//! and `alb slave del` give the device back as it was (a qdisc that was
//! there stays, whatever filters it holds). aya adds the qdisc but cannot
//! list filters or delete a qdisc: those are two rtnetlink requests here,
//! sent synchronously as aya sends its own (the callers are synchronous).

use std::io;

use anyhow::{Context as _, Result};
use rtnetlink::{
    packet_core::{
        NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    },
    packet_route::{
        RouteNetlinkMessage,
        tc::{TcHandle, TcMessage},
    },
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

/// The parents of a clsact qdisc's two filter lists.
const INGRESS: TcHandle = TcHandle { major: 0xffff, minor: TcHandle::MIN_INGRESS };
const EGRESS: TcHandle = TcHandle { major: 0xffff, minor: TcHandle::MIN_EGRESS };

/// Whether device `ifindex` has any tc filter left on its clsact qdisc,
/// in either direction.
pub(super) fn filters_left(ifindex: u32) -> Result<bool> {
    for parent in [INGRESS, EGRESS] {
        let mut message = TcMessage::with_index(index(ifindex)?);
        message.header.parent = parent;
        let replies = request(RouteNetlinkMessage::GetTrafficFilter(message), NLM_F_DUMP)
            .with_context(|| format!("cannot list the tc filters of device {ifindex}"))?;
        if replies.iter().any(|m| matches!(m, RouteNetlinkMessage::NewTrafficFilter(_))) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes the clsact qdisc of device `ifindex` (and so any filter on it);
/// a device or qdisc already gone is not an error.
pub(super) fn delete_clsact(ifindex: u32) -> Result<()> {
    let mut message = TcMessage::with_index(index(ifindex)?);
    message.header.parent = TcHandle::CLSACT;
    message.header.handle = TcHandle { major: 0xffff, minor: 0 };
    match request(RouteNetlinkMessage::DelQueueDiscipline(message), NLM_F_ACK) {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(error.raw_os_error(), Some(libc::ENODEV | libc::ENOENT | libc::EINVAL)) =>
        {
            Ok(())
        }
        Err(error) => Err(error)
            .with_context(|| format!("cannot delete the clsact qdisc of device {ifindex}")),
    }
}

fn index(ifindex: u32) -> Result<i32> {
    i32::try_from(ifindex).with_context(|| format!("interface index {ifindex} out of range"))
}

/// Sends one request and collects the messages of its answer (a dump's
/// parts, or nothing for an acknowledged change); a NACK is its errno.
fn request(message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    socket.send(&bytes, 0)?;
    let mut replies = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut at = 0;
        while at < datagram.len() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[at..])
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
            let length = usize::try_from(reply.header.length).unwrap_or(usize::MAX);
            match reply.payload {
                NetlinkPayload::Done(_) => return Ok(replies),
                NetlinkPayload::Error(error) if error.code.is_some() => return Err(error.to_io()),
                // The acknowledgement of a change.
                NetlinkPayload::Error(_) => return Ok(replies),
                NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                _ => {}
            }
            if length == 0 {
                break;
            }
            // Messages in one datagram are 4-byte aligned.
            at += length.next_multiple_of(4);
        }
    }
}
