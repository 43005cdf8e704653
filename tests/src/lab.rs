//! The seed topology in private network namespaces, and what tests need to
//! drive and observe it.
//!
//! ```text
//!  <prefix>-srv                <prefix>-sw                 <prefix>-c1 .. -cN
//!  [alb0: 198.18.0.1/24]       br0 (bridge, no STP)
//!    veth17 ------------------ veth18
//!    veth19 ------------------ veth20
//!    ...                       c1 ----------------------- eth0 198.18.0.11/24
//!                              c2 ----------------------- eth0 198.18.0.12/24
//! ```
//!
//! The master (`alb0`) is created by the agent, not by the lab;
//! [`Lab::add_server_addrs`] gives it the server's addresses once it exists.
//! Everything lives in namespaces the lab creates; the root namespace is never
//! touched.

use std::{
    fmt,
    ops::Sub,
    path::PathBuf,
    process::Output,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::{
    cmd, netns,
    proc::{self, Proc, Registry},
};

/// The prefix of `cargo xtask lab up`.
pub const DEFAULT_PREFIX: &str = "alb-lab";
/// The agent's default master device.
pub const DEFAULT_MASTER: &str = "alb0";
/// The server's IPv4 address (on the master).
pub const SERVER_IP4: &str = "198.18.0.1";
/// The server's IPv6 address (on the master).
pub const SERVER_IP6: &str = "2001:2::1";
/// Prefix length of the lab's IPv4 subnet, 198.18.0.0/24.
pub const PREFIX_LEN4: u8 = 24;
/// Prefix length of the lab's IPv6 subnet, 2001:2::/64.
pub const PREFIX_LEN6: u8 = 64;
/// Clients get 198.18.0.11 ..= 198.18.0.250.
pub const MAX_CLIENTS: usize = 240;
/// Slaves are veth17, veth19, ... veth143.
pub const MAX_SLAVES: usize = 64;
/// The bridge in the switch namespace.
pub const BRIDGE: &str = "br0";
/// A client's interface, in its own namespace.
pub const CLIENT_DEV: &str = "eth0";

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabConfig {
    /// Namespaces are `<prefix>-srv`, `<prefix>-sw`, `<prefix>-c<i>`.
    pub prefix: String,
    /// Number of client namespaces (1 ..= [`MAX_CLIENTS`]).
    pub clients: usize,
    /// Number of server slaves (1 ..= [`MAX_SLAVES`]).
    pub slaves: usize,
    /// The master device the agent creates in the server namespace.
    pub master: String,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            clients: 2,
            slaves: 2,
            master: DEFAULT_MASTER.to_owned(),
        }
    }
}

impl LabConfig {
    /// The seed lab (2 slaves, 2 clients) under a prefix unique to this
    /// process and call, `albt<pid>x<n>`, for tests.
    pub fn unique() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self { prefix: format!("albt{}x{n}", std::process::id()), ..Self::default() }
    }

    /// With `n` clients.
    #[must_use]
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    /// With `k` slaves.
    #[must_use]
    pub fn slaves(mut self, k: usize) -> Self {
        self.slaves = k;
        self
    }

    /// Under prefix `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            !self.prefix.is_empty()
                && self
                    .prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
            "lab prefix {:?} must be non-empty ASCII letters, digits, '-', '_' or '.'",
            self.prefix
        );
        ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "clients must be 1..={MAX_CLIENTS}, not {}",
            self.clients
        );
        ensure!(
            (1..=MAX_SLAVES).contains(&self.slaves),
            "slaves must be 1..={MAX_SLAVES}, not {}",
            self.slaves
        );
        ensure!(
            !self.master.is_empty() && self.master.len() <= 15,
            "master name {:?} must be 1..=15 bytes",
            self.master
        );
        Ok(())
    }
}

/// The server namespace of the lab with prefix `prefix`.
pub fn srv_ns(prefix: &str) -> String {
    format!("{prefix}-srv")
}

/// The switch namespace of the lab with prefix `prefix`.
pub fn sw_ns(prefix: &str) -> String {
    format!("{prefix}-sw")
}

/// The namespace of client `n` (1-based) of the lab with prefix `prefix`.
pub fn client_ns(prefix: &str, n: usize) -> String {
    format!("{prefix}-c{n}")
}

/// A locally administered MAC whose last two octets read as the decimal
/// number `n` (veth17 -> ..:00:17, veth101 -> ..:01:01).
fn lab_mac(kind: u8, n: usize) -> String {
    format!("02:a1:{kind:02x}:00:{:02}:{:02}", n / 100 % 100, n % 100)
}

/// The namespace of VM `n` (1-based) of the lab with prefix `prefix`.
pub fn vm_ns(prefix: &str, n: usize) -> String {
    format!("{prefix}-v{n}")
}

/// The bridge a hypervisor host puts on its bond, in the server namespace.
pub const VM_BRIDGE: &str = "vmbr0";
/// Most VMs a lab takes: 198.18.0.201 ..= 198.18.0.220.
pub const MAX_VMS: usize = 20;

/// How a VM reaches the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmKind {
    /// A veth on [`VM_BRIDGE`], a bridge over the master (Proxmox, libvirt).
    Bridged,
    /// A macvlan in bridge mode on the master (containers).
    Macvlan,
}

/// One VM: a namespace behind the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// 1-based: VM `n` is `<prefix>-v<n>`.
    pub number: usize,
    pub ns: String,
    /// Its interface in its namespace.
    pub dev: String,
    /// `198.18.0.(200+n)`.
    pub ip4: String,
    /// `2001:2::(200+n)` (decimal digits).
    pub ip6: String,
    /// `02:a1:d0:00:00:0n`.
    pub mac: String,
}

/// One server slave and the switch port it is cabled to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slave {
    /// 0-based, in the order the agent is given them.
    pub index: usize,
    /// `veth17`, `veth19`, ... in the server namespace.
    pub name: String,
    /// Its MAC as the lab set it, `02:a1:b0:00:00:17` for veth17.
    pub mac: String,
    /// The peer in the switch namespace, on the bridge: `veth18`, ...
    pub port: String,
    /// The peer's MAC, `02:a1:b1:00:00:18` for veth18.
    pub port_mac: String,
}

/// One client namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// 1-based: client `n` is `<prefix>-c<n>`.
    pub number: usize,
    /// Its namespace.
    pub ns: String,
    /// Its interface, [`CLIENT_DEV`].
    pub dev: String,
    /// `198.18.0.(10+n)`.
    pub ip4: String,
    /// `2001:2::(10+n)` (the number written in decimal digits).
    pub ip6: String,
    /// `02:a1:c0:00:00:0n`.
    pub mac: String,
    /// Its switch port, `c<n>`.
    pub port: String,
}

/// Interface counters (`ip -s link`), as seen by the interface they belong
/// to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl LinkStats {
    /// The same traffic seen from the other end of a veth pair.
    #[must_use]
    pub fn swapped(self) -> Self {
        Self {
            rx_packets: self.tx_packets,
            rx_bytes: self.tx_bytes,
            rx_dropped: self.tx_dropped,
            tx_packets: self.rx_packets,
            tx_bytes: self.rx_bytes,
            tx_dropped: self.rx_dropped,
        }
    }

    fn from_json(link: &Value) -> Result<Self> {
        let stats = link
            .get("stats64")
            .or_else(|| link.get("stats"))
            .context("no stats in `ip -s -j link` output")?;
        let get = |dir: &str, field: &str| -> Result<u64> {
            stats[dir][field]
                .as_u64()
                .with_context(|| format!("no {dir}.{field} in `ip -s -j link` output"))
        };
        Ok(Self {
            rx_packets: get("rx", "packets")?,
            rx_bytes: get("rx", "bytes")?,
            rx_dropped: get("rx", "dropped")?,
            tx_packets: get("tx", "packets")?,
            tx_bytes: get("tx", "bytes")?,
            tx_dropped: get("tx", "dropped")?,
        })
    }
}

impl Sub for LinkStats {
    type Output = Self;

    /// Counter increase from `rhs` (earlier) to `self` (later).
    fn sub(self, rhs: Self) -> Self {
        Self {
            rx_packets: self.rx_packets.saturating_sub(rhs.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(rhs.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(rhs.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(rhs.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(rhs.tx_bytes),
            tx_dropped: self.tx_dropped.saturating_sub(rhs.tx_dropped),
        }
    }
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} pkts / {} B, tx {} pkts / {} B",
            self.rx_packets, self.rx_bytes, self.tx_packets, self.tx_bytes
        )
    }
}

/// What `ip -j -s link show` says about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    pub mac: String,
    /// `UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`, ...
    pub operstate: String,
    /// Interface flags (`UP`, `LOWER_UP`, `BROADCAST`, ...).
    pub flags: Vec<String>,
    pub mtu: u32,
    /// The device it is enslaved to, if any.
    pub master: Option<String>,
    pub stats: LinkStats,
}

impl LinkInfo {
    /// Administratively up (`IFF_UP`).
    pub fn admin_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Carrier present (`IFF_LOWER_UP`).
    pub fn lower_up(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }
}

/// The summary of one `ping` run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PingStats {
    pub transmitted: u32,
    pub received: u32,
    /// Average round trip in milliseconds, when any reply came.
    pub rtt_avg_ms: Option<f64>,
}

impl PingStats {
    /// Requests without a reply.
    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }

    fn parse(out: &str) -> Option<Self> {
        // "200 packets transmitted, 200 received, 0% packet loss, time 2189ms"
        let line = out.lines().find(|l| l.contains("packets transmitted"))?;
        let mut fields = line.split(", ");
        let transmitted = fields.next()?.split_whitespace().next()?.parse().ok()?;
        let received = fields.next()?.split_whitespace().next()?.parse().ok()?;
        // "rtt min/avg/max/mdev = 0.031/0.052/0.118/0.012 ms"
        let rtt_avg_ms = out
            .lines()
            .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
            .and_then(|v| v.split('/').nth(1))
            .and_then(|v| v.parse().ok());
        Some(Self { transmitted, received, rtt_avg_ms })
    }
}

impl fmt::Display for PingStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} replies", self.received, self.transmitted)?;
        if let Some(rtt) = self.rtt_avg_ms {
            write!(f, ", avg rtt {rtt:.3} ms")?;
        }
        Ok(())
    }
}

/// Polls `check` every 10 ms until it returns true or `timeout` passes;
/// `what` names the awaited condition in the error.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Fails unless this process runs as root (namespaces, devices and bpffs
/// need it).
pub fn require_root() -> Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "this needs root (network namespaces, devices, bpffs); run it as root"
    );
    Ok(())
}

/// A built lab. Dropping it stops the processes it started that are still
/// running and deletes every namespace it created (also on panic), unless
/// [`Lab::keep`] was called.
#[derive(Debug)]
pub struct Lab {
    config: LabConfig,
    srv: String,
    sw: String,
    slaves: Vec<Slave>,
    clients: Vec<Client>,
    created: Vec<String>,
    registry: Registry,
    log_dir: PathBuf,
    spawned: AtomicUsize,
    keep: bool,
}

impl Lab {
    /// Builds the topology `config` describes. Fails, leaving nothing behind,
    /// if any of its namespaces already exists.
    pub fn up(config: LabConfig) -> Result<Self> {
        config.validate()?;
        require_root()?;
        let prefix = &config.prefix;
        let slaves = (0..config.slaves)
            .map(|index| {
                let n = 17 + 2 * index;
                Slave {
                    index,
                    name: format!("veth{n}"),
                    mac: lab_mac(0xb0, n),
                    port: format!("veth{}", n + 1),
                    port_mac: lab_mac(0xb1, n + 1),
                }
            })
            .collect();
        let clients = (1..=config.clients)
            .map(|number| Client {
                number,
                ns: client_ns(prefix, number),
                dev: CLIENT_DEV.to_owned(),
                ip4: format!("198.18.0.{}", 10 + number),
                ip6: format!("2001:2::{}", 10 + number),
                mac: lab_mac(0xc0, number),
                port: format!("c{number}"),
            })
            .collect();
        let mut lab = Self {
            srv: srv_ns(prefix),
            sw: sw_ns(prefix),
            slaves,
            clients,
            created: Vec::new(),
            registry: Arc::new(Mutex::new(Vec::new())),
            log_dir: log_dir(prefix),
            spawned: AtomicUsize::new(0),
            keep: false,
            config,
        };
        let all: Vec<String> = [lab.srv.clone(), lab.sw.clone()]
            .into_iter()
            .chain(lab.clients.iter().map(|c| c.ns.clone()))
            .collect();
        if let Some(taken) = all.iter().find(|ns| netns::exists(ns)) {
            bail!(
                "namespace {taken} already exists (a lab with prefix {0:?} is up, or a \
                 previous run left it): remove it with `cargo xtask lab down --prefix {0}`",
                lab.config.prefix
            );
        }
        std::fs::create_dir_all(&lab.log_dir)
            .with_context(|| format!("cannot create {}", lab.log_dir.display()))?;
        for ns in all {
            netns::add(&ns)?;
            lab.created.push(ns);
        }
        lab.build().with_context(|| format!("cannot build lab {:?}", lab.config.prefix))?;
        Ok(lab)
    }

    fn build(&self) -> Result<()> {
        for ns in &self.created {
            self.ip(ns, &["link", "set", "lo", "up"])?;
        }
        // The switch sends nothing of its own: no IPv6 (no DAD, RS, MLD).
        self.sysctl(&self.sw, "net.ipv6.conf.default.disable_ipv6", "1")?;
        self.sysctl(&self.sw, "net.ipv6.conf.all.disable_ipv6", "1")?;
        self.ip(
            &self.sw,
            &[
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "ageing_time",
                "30000",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
            ],
        )?;
        self.ip(&self.sw, &["link", "set", BRIDGE, "up"])?;
        for slave in &self.slaves {
            self.ip(
                &self.srv,
                &[
                    "link",
                    "add",
                    &slave.name,
                    "address",
                    &slave.mac,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &slave.port,
                    "address",
                    &slave.port_mac,
                    "netns",
                    &self.sw,
                ],
            )?;
            self.ip(&self.sw, &["link", "set", &slave.port, "master", BRIDGE, "up"])?;
            self.ip(&self.srv, &["link", "set", &slave.name, "up"])?;
        }
        for client in &self.clients {
            // No router in the lab: router solicitations are only noise.
            self.sysctl(&client.ns, "net.ipv6.conf.default.router_solicitations", "0")?;
            self.ip(
                &client.ns,
                &[
                    "link",
                    "add",
                    &client.dev,
                    "address",
                    &client.mac,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &client.port,
                    "address",
                    &lab_mac(0xc1, client.number),
                    "netns",
                    &self.sw,
                ],
            )?;
            self.ip(&self.sw, &["link", "set", &client.port, "master", BRIDGE, "up"])?;
            self.ip(
                &client.ns,
                &["addr", "add", &format!("{}/{PREFIX_LEN4}", client.ip4), "dev", &client.dev],
            )?;
            self.ip(
                &client.ns,
                &[
                    "addr",
                    "add",
                    &format!("{}/{PREFIX_LEN6}", client.ip6),
                    "dev",
                    &client.dev,
                    "nodad",
                ],
            )?;
            self.ip(&client.ns, &["link", "set", &client.dev, "up"])?;
        }
        Ok(())
    }

    /// Removes what a lab with prefix `prefix` left behind: stops the
    /// processes still inside its namespaces (SIGTERM, SIGKILL after 5 s) and
    /// deletes the namespaces. Returns the namespaces it deleted.
    pub fn down(prefix: &str) -> Result<Vec<String>> {
        require_root()?;
        let names: Vec<String> =
            netns::list()?.into_iter().filter(|name| is_lab_ns(prefix, name)).collect();
        // Processes first: a namespace with a process inside outlives
        // `ip netns delete` (and so do its devices).
        for name in &names {
            for pid in netns::pids(name).unwrap_or_default() {
                let Ok(pid) = u32::try_from(pid) else {
                    continue;
                };
                eprintln!("lab: stopping process {pid} left in namespace {name}");
                proc::terminate(pid, Duration::from_secs(5));
            }
        }
        for name in &names {
            netns::delete(name)?;
        }
        crate::tidy::remove(&log_dir(prefix));
        Ok(names)
    }

    /// Removes the kept logs (see [`Lab::log_dir`]) of labs whose namespaces
    /// are all gone; returns their prefixes.
    pub fn prune_logs() -> Result<Vec<String>> {
        prune_logs_in(&log_root(), &netns::list()?)
    }

    /// The prefixes of the labs whose server and switch namespaces exist.
    pub fn list() -> Result<Vec<String>> {
        let names = netns::list()?;
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix("-srv"))
            .filter(|p| names.contains(&sw_ns(p)))
            .map(str::to_owned)
            .collect())
    }

    /// Leaves the namespaces in place when the lab is dropped
    /// (`cargo xtask lab up`). Processes it started are still stopped.
    pub fn keep(mut self) {
        self.keep = true;
    }

    /// What the lab was built from.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// The lab's prefix.
    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The server namespace.
    pub fn srv(&self) -> &str {
        &self.srv
    }

    /// The switch namespace.
    pub fn sw(&self) -> &str {
        &self.sw
    }

    /// The master device's name (created by the agent).
    pub fn master(&self) -> &str {
        &self.config.master
    }

    /// The server's slaves, in order.
    pub fn slaves(&self) -> &[Slave] {
        &self.slaves
    }

    /// Slave `index` (0-based: 0 is veth17).
    pub fn slave(&self, index: usize) -> &Slave {
        &self.slaves[index]
    }

    /// The slave whose lab MAC is `mac`, if any.
    pub fn slave_by_mac(&self, mac: &str) -> Option<&Slave> {
        self.slaves.iter().find(|s| s.mac.eq_ignore_ascii_case(mac))
    }

    /// The clients, in order.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// Client `number` (1-based: 1 is `<prefix>-c1`).
    pub fn client(&self, number: usize) -> &Client {
        &self.clients[number - 1]
    }

    /// `--iface veth17 --iface veth19 ...`: the agent's arguments for every
    /// slave.
    pub fn agent_args(&self) -> Vec<String> {
        self.slaves.iter().flat_map(|s| ["--iface".to_owned(), s.name.clone()]).collect()
    }

    /// Where spawned processes' logs go: `$TMPDIR/alb-lab/<prefix>/`,
    /// removed with the lab unless it is dropped during a panic.
    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dir
    }

    /// `ip -n <ns> args...`; fails unless it exits 0, returns its output.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        cmd::ip(&full)
    }

    /// Runs `argv` in namespace `ns` and returns its output, whatever its
    /// exit status.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<Output> {
        cmd::output(&mut netns::command(ns, argv))
    }

    /// Runs `argv` in namespace `ns`; fails unless it exits 0, returns its
    /// standard output.
    pub fn run(&self, ns: &str, argv: &[&str]) -> Result<String> {
        cmd::run(&mut netns::command(ns, argv))
    }

    /// Sets sysctl `key` to `value` in namespace `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        self.run(ns, &["sysctl", "-q", "-w", &format!("{key}={value}")]).map(drop)
    }

    /// Starts `argv` in namespace `ns` as a long-running process; see
    /// [`Proc`].
    pub fn spawn(&self, ns: &str, argv: &[&str]) -> Result<Proc> {
        self.spawn_env(ns, argv, &[])
    }

    /// [`Lab::spawn`] with extra environment variables.
    pub fn spawn_env(&self, ns: &str, argv: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
        let program = argv.first().context("spawn: empty command")?;
        let name = program.rsplit('/').next().unwrap_or(program);
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let log = self.log_dir.join(format!("{n:02}-{name}.log"));
        let mut command = netns::command(ns, argv);
        command.envs(env.iter().copied());
        Proc::start(command, name, log, Arc::clone(&self.registry))
    }

    /// `ping -c count -i interval target` from namespace `ns` (IPv4 or IPv6
    /// by the target's form). Lost replies are not an error: read them from
    /// the result.
    pub fn ping(
        &self,
        ns: &str,
        target: &str,
        count: u32,
        interval: Duration,
    ) -> Result<PingStats> {
        self.ping_sized(ns, target, count, interval, 56)
    }

    /// [`Lab::ping`] with `size` bytes of payload (`ping -s`): large pings
    /// stand out from background frames in byte counters.
    pub fn ping_sized(
        &self,
        ns: &str,
        target: &str,
        count: u32,
        interval: Duration,
        size: u32,
    ) -> Result<PingStats> {
        let interval_s = format!("{:.3}", interval.as_secs_f64());
        let count = count.to_string();
        let size = size.to_string();
        // No -w: with a deadline, ping keeps sending until `count` replies.
        let argv =
            ["ping", "-n", "-q", "-c", &count, "-i", &interval_s, "-W", "1", "-s", &size, target];
        let out = self.exec(ns, &argv)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        PingStats::parse(&stdout).with_context(|| {
            format!(
                "`ping {target}` in {ns} gave no summary ({}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    }

    /// The MAC namespace `ns` has resolved `ip` to, if it has a usable
    /// neighbour entry (not INCOMPLETE or FAILED).
    pub fn neigh_mac(&self, ns: &str, ip: &str) -> Result<Option<String>> {
        let out = self.ip(ns, &["-j", "neigh", "show", "to", ip])?;
        let entries = parse_json_list(&out, "ip -j neigh")?;
        Ok(entries
            .iter()
            .filter(|e| e["dst"].as_str() == Some(ip))
            .filter(|e| {
                !e["state"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|v| v == "FAILED" || v == "INCOMPLETE"))
            })
            .find_map(|e| e["lladdr"].as_str().map(str::to_owned)))
    }

    /// Empties the neighbour (ARP and ND) table of namespace `ns`.
    pub fn flush_neigh(&self, ns: &str) -> Result<()> {
        self.ip(ns, &["neigh", "flush", "all"]).map(drop)
    }

    /// Whether device `dev` exists in namespace `ns`.
    pub fn link_exists(&self, ns: &str, dev: &str) -> Result<bool> {
        let out = cmd::output(&mut cmd::command("ip", &["-n", ns, "link", "show", "dev", dev]))?;
        Ok(out.status.success())
    }

    /// Waits up to `timeout` for device `dev` to appear in namespace `ns`.
    pub fn wait_for_link(&self, ns: &str, dev: &str, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("{dev} in {ns}"), || self.link_exists(ns, dev))
    }

    /// Waits up to `timeout` for the master to exist in the server
    /// namespace and be administratively up.
    pub fn wait_for_master(&self, timeout: Duration) -> Result<()> {
        let (srv, master) = (&self.srv, &self.config.master);
        wait_until(timeout, &format!("{master} up in {srv}"), || {
            Ok(self.link_exists(srv, master)? && self.link(srv, master)?.admin_up())
        })
    }

    /// What `ip -j -s link show dev <dev>` says in namespace `ns`.
    pub fn link(&self, ns: &str, dev: &str) -> Result<LinkInfo> {
        let out = self.ip(ns, &["-j", "-s", "link", "show", "dev", dev])?;
        let list = parse_json_list(&out, "ip -j link")?;
        let link = list.first().with_context(|| format!("no link {dev} in {ns}"))?;
        let str_of = |field: &str| link[field].as_str().map(str::to_owned);
        Ok(LinkInfo {
            ifindex: link["ifindex"]
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .context("no ifindex in `ip -j link`")?,
            name: str_of("ifname").context("no ifname in `ip -j link`")?,
            mac: str_of("address").unwrap_or_default(),
            operstate: str_of("operstate").unwrap_or_default(),
            flags: link["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            mtu: link["mtu"].as_u64().and_then(|m| u32::try_from(m).ok()).unwrap_or_default(),
            master: str_of("master"),
            stats: LinkStats::from_json(link)?,
        })
    }

    /// The MAC of device `dev` in namespace `ns`.
    pub fn link_mac(&self, ns: &str, dev: &str) -> Result<String> {
        Ok(self.link(ns, dev)?.mac)
    }

    /// Counters of switch port `port` (`veth18`, `c1`, ...) as the switch
    /// sees them: tx is what the switch sent towards the server or client.
    pub fn port_stats(&self, port: &str) -> Result<LinkStats> {
        Ok(self.link(&self.sw, port)?.stats)
    }

    /// Traffic of slave `index` from the server's point of view, measured on
    /// its switch port: rx is what the server received on that slave (the
    /// port's egress), tx what the server sent out of it (the port's
    /// ingress). Unlike the slave's own counters, this sees frames that BPF
    /// redirects past the slave's stack.
    pub fn slave_traffic(&self, index: usize) -> Result<LinkStats> {
        Ok(self.port_stats(&self.slaves[index].port)?.swapped())
    }

    /// [`Lab::slave_traffic`] for every slave, in order; subtract two of
    /// these to get what crossed each slave in between.
    pub fn traffic_snapshot(&self) -> Result<Vec<LinkStats>> {
        (0..self.slaves.len()).map(|i| self.slave_traffic(i)).collect()
    }

    /// Sets device `dev` in namespace `ns` administratively up or down.
    pub fn set_link(&self, ns: &str, dev: &str, up: bool) -> Result<()> {
        self.ip(ns, &["link", "set", dev, if up { "up" } else { "down" }]).map(drop)
    }

    /// Gives the master the server's addresses, 198.18.0.1/24 and
    /// 2001:2::1/64 (no DAD), as a user does on a bond. Idempotent.
    pub fn add_server_addrs(&self) -> Result<()> {
        let master = self.config.master.as_str();
        self.ip(
            &self.srv,
            &["addr", "replace", &format!("{SERVER_IP4}/{PREFIX_LEN4}"), "dev", master],
        )?;
        self.ip(
            &self.srv,
            &["addr", "replace", &format!("{SERVER_IP6}/{PREFIX_LEN6}"), "dev", master, "nodad"],
        )?;
        Ok(())
    }
}

impl Lab {
    /// Adds `count` VMs of `kind` behind the master, which must exist (the
    /// agent made it). Bridged: a bridge [`VM_BRIDGE`] over the master with
    /// the master's MAC, holding the server's addresses (as hypervisor
    /// hosts set it), and a veth per VM on it. Macvlan: a macvlan in bridge
    /// mode per VM on the master, moved into the VM's namespace; the
    /// server's addresses stay on the master. VMs get 198.18.0.(200+n)/24
    /// and 2001:2::(200+n)/64 (no DAD). Their namespaces go with the lab.
    pub fn add_vms(&mut self, kind: VmKind, count: usize) -> Result<Vec<Vm>> {
        ensure!((1..=MAX_VMS).contains(&count), "VMs must be 1..={MAX_VMS}, not {count}");
        ensure!(self.clients.len() < 190, "client addresses would meet the VMs' (.201 on)");
        let master = self.config.master.clone();
        let srv = self.srv.clone();
        if kind == VmKind::Bridged {
            let mac = self.link_mac(&srv, &master)?;
            self.ip(&srv, &["link", "add", VM_BRIDGE, "address", &mac, "type", "bridge"])?;
            self.ip(&srv, &["link", "set", &master, "master", VM_BRIDGE])?;
            for (address, extra) in [
                (format!("{SERVER_IP4}/{PREFIX_LEN4}"), None),
                (format!("{SERVER_IP6}/{PREFIX_LEN6}"), Some("nodad")),
            ] {
                // The addresses live on the bridge now, not on the master.
                let _gone = self.ip(&srv, &["addr", "del", &address, "dev", &master]);
                let mut args = vec!["addr", "replace", address.as_str(), "dev", VM_BRIDGE];
                args.extend(extra);
                self.ip(&srv, &args)?;
            }
            self.ip(&srv, &["link", "set", VM_BRIDGE, "up"])?;
        }
        let mut vms = Vec::new();
        for number in 1..=count {
            let ns = vm_ns(&self.config.prefix, number);
            ensure!(!netns::exists(&ns), "namespace {ns} already exists");
            netns::add(&ns)?;
            self.created.push(ns.clone());
            let vm = Vm {
                number,
                dev: match kind {
                    VmKind::Bridged => CLIENT_DEV.to_owned(),
                    VmKind::Macvlan => format!("mv{number}"),
                },
                ip4: format!("198.18.0.{}", 200 + number),
                ip6: format!("2001:2::{}", 200 + number),
                mac: lab_mac(0xd0, number),
                ns,
            };
            match kind {
                VmKind::Bridged => {
                    let port = format!("vm{number}");
                    self.ip(
                        &vm.ns,
                        &[
                            "link", "add", &vm.dev, "address", &vm.mac, "type", "veth", "peer",
                            "name", &port, "netns", &srv,
                        ],
                    )?;
                    self.ip(&srv, &["link", "set", &port, "master", VM_BRIDGE, "up"])?;
                }
                VmKind::Macvlan => {
                    self.ip(
                        &srv,
                        &[
                            "link", "add", "link", &master, "name", &vm.dev, "address", &vm.mac,
                            "type", "macvlan", "mode", "bridge",
                        ],
                    )?;
                    self.ip(&srv, &["link", "set", &vm.dev, "netns", &vm.ns])?;
                }
            }
            self.ip(
                &vm.ns,
                &["addr", "add", &format!("{}/{PREFIX_LEN4}", vm.ip4), "dev", &vm.dev],
            )?;
            self.ip(
                &vm.ns,
                &["addr", "add", &format!("{}/{PREFIX_LEN6}", vm.ip6), "dev", &vm.dev, "nodad"],
            )?;
            self.ip(&vm.ns, &["link", "set", &vm.dev, "up"])?;
            vms.push(vm);
        }
        Ok(vms)
    }

    /// The switch ports (`bridge fdb` in the switch namespace) that have
    /// learned `mac`, dynamic entries only.
    pub fn switch_ports_of(&self, mac: &str) -> Result<Vec<String>> {
        let out = cmd::run(&mut netns::command(
            &self.sw,
            &["bridge", "-j", "fdb", "show", "br", BRIDGE],
        ))?;
        let entries = parse_json_list(&out, "bridge -j fdb")?;
        Ok(entries
            .iter()
            .filter(|e| e["mac"].as_str().is_some_and(|m| m.eq_ignore_ascii_case(mac)))
            .filter(|e| e["vlan"].is_null() || e["vlan"].as_u64().is_some())
            .filter(|e| {
                !e["flags"].as_array().is_some_and(|f| f.iter().any(|v| v == "self"))
                    && e["state"].as_str() != Some("permanent")
            })
            .filter_map(|e| e["ifname"].as_str().map(str::to_owned))
            .collect())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let leftovers =
            std::mem::take(&mut *self.registry.lock().unwrap_or_else(PoisonError::into_inner));
        for pid in leftovers {
            proc::terminate_group(pid, proc::STOP_TIMEOUT);
        }
        if self.keep {
            return;
        }
        for ns in self.created.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                eprintln!("lab: {e:#}");
            }
        }
        // ALB_KEEP_LOGS=1 keeps them after a success too (reading what the
        // agent did in a benchmark run).
        if thread::panicking() || std::env::var_os("ALB_KEEP_LOGS").is_some_and(|v| v == "1") {
            eprintln!("lab: logs kept in {}", self.log_dir.display());
        } else {
            crate::tidy::remove(&self.log_dir);
        }
    }
}

/// [`Lab::prune_logs`] over log directory `root`, given the namespaces that
/// exist.
fn prune_logs_in(root: &std::path::Path, names: &[String]) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(format!("cannot read {}", root.display())),
    };
    let mut pruned = Vec::new();
    for entry in entries {
        let prefix = entry?.file_name().to_string_lossy().into_owned();
        if names.iter().any(|n| is_lab_ns(&prefix, n)) {
            continue;
        }
        std::fs::remove_dir_all(root.join(&prefix))
            .with_context(|| format!("cannot remove {}", root.join(&prefix).display()))?;
        pruned.push(prefix);
    }
    pruned.sort();
    Ok(pruned)
}

fn log_root() -> PathBuf {
    std::env::temp_dir().join("alb-lab")
}

fn log_dir(prefix: &str) -> PathBuf {
    log_root().join(prefix)
}

fn is_lab_ns(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let numbered = |kind: char| {
        rest.strip_prefix(kind)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    // `bond`: the slaves' namespace of the bench's layout experiment.
    rest == "srv" || rest == "sw" || rest == "bond" || numbered('c') || numbered('v')
}

fn parse_json_list(out: &str, what: &str) -> Result<Vec<Value>> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(out).with_context(|| format!("cannot parse `{what}` output"))?;
    match value {
        Value::Array(list) => Ok(list),
        other => bail!("`{what}` printed {other}, not a list"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_read_as_the_device_number() {
        assert_eq!(lab_mac(0xb0, 17), "02:a1:b0:00:00:17");
        assert_eq!(lab_mac(0xb1, 18), "02:a1:b1:00:00:18");
        assert_eq!(lab_mac(0xb0, 101), "02:a1:b0:00:01:01");
        assert_eq!(lab_mac(0xc0, 1), "02:a1:c0:00:00:01");
    }

    #[test]
    fn lab_namespaces_are_recognised_by_prefix() {
        assert!(is_lab_ns("alb-lab", "alb-lab-srv"));
        assert!(is_lab_ns("alb-lab", "alb-lab-sw"));
        assert!(is_lab_ns("alb-lab", "alb-lab-c12"));
        assert!(is_lab_ns("alb-lab", "alb-lab-v2"));
        assert!(is_lab_ns("alb-lab", "alb-lab-bond"), "the bench layout experiment's slaves");
        assert!(!is_lab_ns("alb-lab", "alb-lab-c"));
        assert!(!is_lab_ns("alb-lab", "alb-lab-cx"));
        assert!(!is_lab_ns("alb-lab", "alb-lab2-srv"));
        assert!(!is_lab_ns("alb", "alb-lab-srv"));
    }

    #[test]
    fn kept_logs_are_pruned_only_for_labs_that_are_gone() {
        let root = std::env::temp_dir().join(format!("alb-lab-prune-{}", std::process::id()));
        for prefix in ["gone", "alive"] {
            std::fs::create_dir_all(root.join(prefix)).expect("mkdir");
            std::fs::write(root.join(prefix).join("00-alb.log"), "x").expect("write");
        }
        let names = vec!["alive-srv".to_owned(), "alive-sw".to_owned(), "other-srv".to_owned()];
        assert_eq!(prune_logs_in(&root, &names).expect("prune"), ["gone"]);
        assert!(root.join("alive").exists() && !root.join("gone").exists());
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert!(prune_logs_in(&root, &names).expect("no root").is_empty());
    }

    #[test]
    fn ping_summary_is_parsed() {
        let out = "PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.\n\n\
                   --- 198.18.0.1 ping statistics ---\n\
                   200 packets transmitted, 198 received, 1% packet loss, time 2189ms\n\
                   rtt min/avg/max/mdev = 0.031/0.052/0.118/0.012 ms\n";
        let stats = PingStats::parse(out).expect("parsed");
        assert_eq!(stats.transmitted, 200);
        assert_eq!(stats.received, 198);
        assert_eq!(stats.lost(), 2);
        assert_eq!(stats.rtt_avg_ms, Some(0.052));
        let none = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2030ms\n";
        let stats = PingStats::parse(none).expect("parsed");
        assert_eq!((stats.transmitted, stats.received), (3, 0));
        assert_eq!(stats.rtt_avg_ms, None);
    }

    #[test]
    fn config_is_validated() {
        assert!(LabConfig::default().validate().is_ok());
        assert!(LabConfig::default().clients(0).validate().is_err());
        assert!(LabConfig::default().slaves(MAX_SLAVES + 1).validate().is_err());
        assert!(LabConfig::default().prefix("a b").validate().is_err());
        assert_ne!(LabConfig::unique().prefix, LabConfig::unique().prefix);
    }
}
