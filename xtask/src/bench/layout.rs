//! The layout experiment (issue 14 item 7): could the slaves and the
//! master's veth peer live in a namespace of their own, so that receive
//! takes `bpf_redirect_peer` (straight into the master, in the same
//! softirq pass) instead of `bpf_redirect(master, BPF_F_INGRESS)` (queued
//! to the backlog and taken again)? Transmit then has to cross the veth
//! pair (the master's program cannot redirect to a device in another
//! namespace), so it gains the backlog pass receive loses.
//!
//! Two labs of one slave and one client, each with a master veth pair
//! `M`/`Mp` carrying the server address and slave 0's MAC, and four-
//! instruction forwarders ([`rawprog`]) in place of alb's programs:
//!
//! - *redirect* (alb's layout): slave and pair in the server namespace;
//!   slave ingress `bpf_redirect(M, BPF_F_INGRESS)`, M egress
//!   `bpf_redirect(slave)`;
//! - *peer*: slave and `Mp` in a namespace `<prefix>-bond`, M in the
//!   server namespace; slave ingress `bpf_redirect_peer(Mp)`, Mp ingress
//!   `bpf_redirect(slave)`.
//!
//! Both against the plain veth of the throughput figure, in paired rounds.

use alb_tests::{Lab, LabConfig, SERVER_IP4, netns};
use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{
    Ctx, learn_clients,
    net::{PORT, TESTS, client, servers},
    paired,
    rawprog::{self, BPF_F_INGRESS, Helper, Pinned},
};

/// The tests of the experiment: receive (up) and transmit (down).
const TEST_IDS: [&str; 4] = ["tcp1_up", "tcp1_down", "udp64_up", "udp64_down"];

/// A namespace the experiment made, deleted on drop (with its devices).
struct ExtraNs(String);

impl Drop for ExtraNs {
    fn drop(&mut self) {
        if let Err(e) = netns::delete(&self.0) {
            eprintln!("bench: cannot delete namespace {}: {e:#}", self.0);
        }
    }
}

/// What a layout lab holds besides the lab itself.
struct Layout {
    _pins: Vec<Pinned>,
    _ns: Option<ExtraNs>,
}

fn ifindex(lab: &Lab, ns: &str, dev: &str) -> Result<u32> {
    Ok(lab.link(ns, dev)?.ifindex)
}

/// `tc qdisc add dev DEV clsact; tc filter add dev DEV HOOK bpf da
/// object-pinned PIN` in `ns`.
fn attach(lab: &Lab, ns: &str, dev: &str, hook: &str, pin: &Pinned) -> Result<()> {
    lab.run(ns, &["tc", "qdisc", "add", "dev", dev, "clsact"])?;
    let path = pin.path.to_str().context("pin path")?;
    lab.run(ns, &["tc", "filter", "add", "dev", dev, hook, "bpf", "da", "object-pinned", path])?;
    Ok(())
}

/// The master pair: `M` in the server namespace with slave 0's MAC and
/// the server address, `Mp` in `peer_ns`.
fn master_pair(lab: &Lab, peer_ns: &str) -> Result<(String, String)> {
    let (srv, m) = (lab.srv(), lab.master().to_owned());
    let mp = format!("{m}p");
    let mac = &lab.slave(0).mac;
    lab.ip(
        srv,
        &["link", "add", &m, "address", mac, "type", "veth", "peer", "name", &mp, "netns", peer_ns],
    )?;
    lab.ip(srv, &["addr", "add", &format!("{SERVER_IP4}/24"), "dev", &m])?;
    lab.set_link(srv, &m, true)?;
    lab.set_link(peer_ns, &mp, true)?;
    Ok((m, mp))
}

fn redirect_layout(lab: &Lab, pins: &str) -> Result<Layout> {
    let srv = lab.srv();
    let slave = lab.slave(0).name.clone();
    let (m, _mp) = master_pair(lab, srv)?;
    let rx = rawprog::pin(
        Helper::Redirect,
        ifindex(lab, srv, &m)?,
        BPF_F_INGRESS,
        &std::path::Path::new(pins).join("redirect_rx"),
    )?;
    let tx = rawprog::pin(
        Helper::Redirect,
        ifindex(lab, srv, &slave)?,
        0,
        &std::path::Path::new(pins).join("redirect_tx"),
    )?;
    attach(lab, srv, &slave, "ingress", &rx)?;
    attach(lab, srv, &m, "egress", &tx)?;
    Ok(Layout { _pins: vec![rx, tx], _ns: None })
}

fn peer_layout(lab: &Lab, pins: &str) -> Result<Layout> {
    let bond = format!("{}-bond", lab.prefix());
    netns::add(&bond)?;
    let ns = ExtraNs(bond.clone());
    lab.ip(&bond, &["link", "set", "lo", "up"])?;
    let slave = lab.slave(0).name.clone();
    lab.ip(lab.srv(), &["link", "set", &slave, "netns", &bond])?;
    lab.set_link(&bond, &slave, true)?;
    let (_m, mp) = master_pair(lab, &bond)?;
    let rx = rawprog::pin(
        Helper::RedirectPeer,
        ifindex(lab, &bond, &mp)?,
        0,
        &std::path::Path::new(pins).join("peer_rx"),
    )?;
    let tx = rawprog::pin(
        Helper::Redirect,
        ifindex(lab, &bond, &slave)?,
        0,
        &std::path::Path::new(pins).join("peer_tx"),
    )?;
    attach(lab, &bond, &slave, "ingress", &rx)?;
    attach(lab, &bond, &mp, "ingress", &tx)?;
    Ok(Layout { _pins: vec![rx, tx], _ns: Some(ns) })
}

/// The experiment: `config` makes the labs' configurations, `plain` is the
/// throughput figure's baseline lab.
pub(crate) fn run(
    ctx: &Ctx,
    config: &dyn Fn(&str, usize, usize) -> LabConfig,
    plain: &Lab,
) -> Result<Value> {
    let s = &ctx.sizes;
    let pins = format!("/sys/fs/bpf/albbench{}", std::process::id());
    std::fs::create_dir_all(&pins).with_context(|| format!("cannot create {pins} (bpffs)"))?;
    let result = (|| {
        let (lr, lp) = (Lab::up(config("r", 1, 1))?, Lab::up(config("q", 1, 1))?);
        let _layouts = (redirect_layout(&lr, &pins)?, peer_layout(&lp, &pins)?);
        let _servers = (servers(plain, 1)?, servers(&lr, 1)?, servers(&lp, 1)?);
        for lab in [plain, &lr, &lp] {
            learn_clients(lab, &[1])?;
        }
        let mut tests = Vec::new();
        for test in TESTS.iter().filter(|t| TEST_IDS.contains(&t.id)) {
            eprintln!("bench: layout {} ({} rounds)", test.id, s.layout_rounds);
            let arm = |name, lab, n| paired::Arm {
                name,
                run: Box::new(move || client(lab, n, PORT, s.iperf_secs, s.omit_secs, test)),
            };
            let arms = [arm("plain", plain, 1), arm("redirect", &lr, 1), arm("peer", &lp, 1)];
            let label = format!("layout/{}", test.id);
            let secs = f64::from(s.iperf_secs + test.omit(s.omit_secs));
            let budget = paired::budget(s.layout_rounds, arms.len(), secs);
            let rounds = paired::run(
                &label,
                &arms,
                s.layout_rounds,
                s.layout_rounds * 3 / 2,
                budget,
                ctx.busy_share,
            )?;
            let mut row = rounds.json();
            row["id"] = json!(test.id);
            row["what"] = json!(test.what);
            row["unit"] = json!(test.unit);
            row["redirect_vs_plain"] = rounds.compare(&label, 1, 0);
            row["peer_vs_plain"] = rounds.compare(&label, 2, 0);
            row["peer_vs_redirect"] = rounds.compare(&label, 2, 1);
            tests.push(row);
        }
        Ok(json!({
            "rounds": s.layout_rounds,
            "busy_share": ctx.busy_share,
            "secs": s.iperf_secs,
            "omit_secs": s.omit_secs,
            "method": "two labs of one slave and one client with a master veth pair M/Mp (slave \
                       0's MAC, 198.18.0.1/24 on M) and four-instruction TC forwarders loaded \
                       with bpf(2) instead of alb's programs; redirect (alb's layout): slave \
                       ingress bpf_redirect(M, BPF_F_INGRESS), M egress bpf_redirect(slave); \
                       peer: slave and Mp in a namespace of their own, slave ingress \
                       bpf_redirect_peer(Mp), Mp ingress bpf_redirect(slave); paired rounds \
                       with the plain veth of figure 2",
            "tests": tests,
        }))
    })();
    let _ignored = std::fs::remove_dir(&pins);
    result
}
