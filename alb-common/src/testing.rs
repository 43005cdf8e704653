//! Frame builders for the unit tests of this crate: the fixtures' own
//! (`alb_tests::fixtures::frames`, a dev-dependency), under the names these
//! tests use.

pub(crate) use alb_tests::fixtures::frames::{
    arp as arp_frame, fix_icmpv6_checksum as fix_nd_checksum, ipv4_bare as ipv4_frame,
    ipv6_bare as ipv6_frame, lla as lla_option, nd as nd_frame, tagged,
};
