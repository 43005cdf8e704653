//! alb's developer commands, run as `cargo xtask <command>`.

mod bench;
mod bootstrap;
mod cargo;
mod demo;
mod demo_vms;
mod lint;
mod package;
mod signals;
mod suite;
mod vm;

use std::process::{Command, ExitCode};

use alb_tests::{DEFAULT_PREFIX, Lab, LabConfig, SERVER_IP4, SERVER_IP6, netns, srv_ns};
use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "alb's developer commands: bootstrap, lab, run, demo, test, bench, vm-test, package"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: Debian packages (LLVM 22, bpftool, iproute2,
    /// ...), rust-src for nightly, bpf-linker 0.13.0, the bpffs mount.
    Bootstrap,
    /// Build or remove the seed lab (network namespaces, veth, a bridge).
    Lab {
        #[command(subcommand)]
        action: LabCmd,
    },
    /// Build the agent and run it with ARGS, in the lab's server namespace
    /// when there is one.
    Run {
        /// Run in this network namespace (default: alb-lab-srv if it
        /// exists, else the current one).
        #[arg(long)]
        netns: Option<String>,
        /// Arguments for `alb`, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the seed lab, run alb on it, drive traffic from the clients and
    /// show where it went; tear everything down.
    Demo {
        /// Number of clients.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Number of slaves.
        #[arg(long, default_value_t = 2)]
        slaves: usize,
        /// The seed scenario over IPv6 too (2001:2::1): every ping and
        /// iperf3 phase and every check for both families.
        #[arg(long)]
        ipv6: bool,
        /// N VMs on a bridge over the master (with its MAC and the server's
        /// addresses), pinged from every client and pinging every client;
        /// each VM MAC must sit on one switch port, the VMs spread.
        #[arg(long, default_value_t = 0)]
        vms: usize,
    },
    /// Build target/package/alb_<version>_<arch>.deb: the release agent, the
    /// systemd unit, an example config, the man page, shell completions.
    Package,
    /// rustfmt and clippy (warnings are errors) on every crate, the BPF
    /// crate included.
    Lint,
    /// Lint (as `lint`), then run all tests (`cargo test --workspace
    /// --exclude alb-ebpf`, one test at a time), then the seed, failover,
    /// runtime, service and hooks tests again on the clsact hook, then
    /// seed, privileges and cli in the Linux 5.10 guest (QEMU TCG).
    Test {
        /// Extra arguments for the test binaries (a filter, --nocapture),
        /// after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Measure alb against same-run baselines (per-packet cost, throughput,
    /// the layout experiment, aggregation, failover, scale, balance); write
    /// docs/benchmarks.{md,json,svg}.
    Bench {
        /// Tiny sizes, about a minute: a smoke run of the harness (writes to
        /// target/bench-quick/ unless --out is given).
        #[arg(long)]
        quick: bool,
        /// Where to write benchmarks.{md,json,svg} (default: docs/).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Only these sections (comma-separated): cost, throughput, layout,
        /// aggregation, failover, scale, balance, soak. The other sections
        /// of the benchmarks.json already there are kept.
        #[arg(long, value_delimiter = ',', value_name = "SECTION")]
        only: Vec<String>,
        /// Measure nothing: rewrite benchmarks.md and .svg from the
        /// benchmarks.json already in the output directory.
        #[arg(long, conflicts_with_all = ["quick", "only"])]
        render: bool,
        /// Throughput rounds during which other processes used more than
        /// this share of one CPU are discarded (and counted in the report).
        #[arg(long, value_name = "SHARE", default_value_t = 0.2)]
        busy_share: f64,
        /// How long the chaos soak runs [default: 10, 1 with --quick].
        #[arg(long, value_name = "N")]
        soak_minutes: Option<f64>,
        /// The seed of the soak's fault schedule, to replay a run
        /// [default: a fresh one, printed and recorded].
        #[arg(long, value_name = "S")]
        soak_seed: Option<u64>,
    },
    /// Run alb's integration test binaries in QEMU (TCG) guests booting
    /// Debian's packaged kernels (5.10, 6.1: clsact; 6.12: TCX); logs in
    /// target/vm-logs/.
    /// With --systemd: the package and the service under a real systemd.
    VmTest {
        /// Which kernels: 5.10, 6.1, 6.12 or all (repeatable) [default: all; with
        /// --systemd: 6.12].
        #[arg(long, value_parser = ["5.10", "6.1", "6.12", "all"])]
        kernel: Vec<String>,
        /// Instead of the scenarios: failover losses of the kernel's own
        /// balance-alb bond against alb, same guest; writes docs/kernels.md.
        #[arg(long)]
        compare: bool,
        /// Rounds per implementation with --compare.
        #[arg(long, default_value_t = 3, requires = "compare")]
        repeats: u32,
        /// Only the guest whose slaves are emulated NICs that filter
        /// (virtio-net, e1000e; clients on the host), which the default run
        /// boots after the veth one: every scenario with filter sync and
        /// again with --no-filter-sync, where those that need the filters
        /// must fail.
        #[arg(long, conflicts_with = "compare")]
        nics: bool,
        /// Boot Debian 12 with systemd as PID 1 instead, with the package
        /// (`cargo xtask package`), and run the test binaries there
        /// [default --tests: system, alb@alb0.service: install, readiness,
        /// watchdog, reload, restart, upgrade, journal, sandbox].
        #[arg(long, conflicts_with_all = ["compare", "nics"])]
        systemd: bool,
        /// The integration test binaries of alb-tests (tests/tests/NAME.rs)
        /// to run in the guest, each with --test-threads=1
        /// --include-ignored; the guest passes when every test each lists
        /// on the host ran and passed [default: seed, failover, runtime,
        /// cli, config, privileges, faults, vlan, ipv6, vms, events,
        /// counters, then the NIC guest].
        #[arg(long, value_delimiter = ',', value_name = "NAME,...", conflicts_with_all = ["compare", "nics"])]
        tests: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LabCmd {
    /// Build the lab and leave it running (the agent is not started).
    Up {
        /// Number of client namespaces.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Number of server slaves (veth17, veth19, ...).
        #[arg(long, default_value_t = 2)]
        slaves: usize,
        /// Namespace name prefix.
        #[arg(long, default_value = DEFAULT_PREFIX)]
        prefix: String,
    },
    /// Remove a lab: stop the processes left in its namespaces, delete them.
    Down {
        /// Namespace name prefix.
        #[arg(long, default_value = DEFAULT_PREFIX)]
        prefix: String,
        /// Remove every lab found (also those of interrupted test runs) and
        /// the logs kept from failed tests.
        #[arg(long, conflicts_with = "prefix")]
        all: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Bootstrap => bootstrap::run()?,
        Cmd::Lab { action } => lab(action)?,
        Cmd::Run { netns, args } => return run_agent(netns, &args),
        Cmd::Demo { clients, slaves, ipv6, vms } => {
            bootstrap::run()?;
            demo::run(clients, slaves, ipv6, vms)?;
        }
        Cmd::Lint => {
            bootstrap::run()?;
            lint::run()?;
        }
        Cmd::Package => {
            bootstrap::run()?;
            package::run()?;
        }
        Cmd::Test { args } => return suite::run(&args),
        Cmd::Bench { quick, out, only, render, busy_share, soak_minutes, soak_seed } => {
            let soak = bench::SoakOptions { minutes: soak_minutes, seed: soak_seed };
            bench::run(quick, out, only, render, busy_share, soak)?
        }
        Cmd::VmTest { kernel, compare, repeats, nics, systemd, tests } => {
            let ok = if systemd {
                vm::run(&kernel, None, true, &tests)?
            } else if nics {
                vm::nics::run(&kernel)?
            } else if compare {
                vm::run(&kernel, Some(repeats), false, &[])?
            } else if !tests.is_empty() {
                vm::run(&kernel, None, false, &tests)?
            } else {
                // Both guests: the named list of test binaries on veth,
                // then NICs that filter.
                let tests: Vec<String> =
                    vm::suite::DEFAULT_TESTS.iter().map(|&t| t.to_owned()).collect();
                let veth = vm::run(&kernel, None, false, &tests)?;
                vm::nics::run(&kernel)? && veth
            };
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lab(action: LabCmd) -> Result<()> {
    match action {
        LabCmd::Up { clients, slaves, prefix } => {
            let config = LabConfig { prefix, clients, slaves, ..LabConfig::default() };
            let lab = Lab::up(config)?;
            print_lab(&lab);
            lab.keep();
        }
        LabCmd::Down { prefix, all } => {
            let prefixes = if all { Lab::list()? } else { vec![prefix] };
            for prefix in prefixes {
                let removed = Lab::down(&prefix)?;
                if removed.is_empty() {
                    eprintln!("lab {prefix}: nothing to remove");
                } else {
                    eprintln!("lab {prefix}: removed {}", removed.join(" "));
                }
            }
            if all {
                let pruned = Lab::prune_logs()?;
                if !pruned.is_empty() {
                    eprintln!("removed the kept logs of {}", pruned.join(" "));
                }
            }
        }
    }
    Ok(())
}

fn print_lab(lab: &Lab) {
    let srv = lab.srv();
    let master = lab.master();
    println!("lab {} is up:", lab.prefix());
    let slaves: Vec<String> =
        lab.slaves().iter().map(|s| format!("{} {}", s.name, s.mac)).collect();
    println!("  {srv:<16} server: {}", slaves.join(", "));
    let ports: Vec<&str> = lab
        .slaves()
        .iter()
        .map(|s| s.port.as_str())
        .chain(lab.clients().iter().map(|c| c.port.as_str()))
        .collect();
    println!("  {:<16} switch: br0 over {}", lab.sw(), ports.join(" "));
    for c in lab.clients() {
        println!("  {:<16} client: {} {} {} {}", c.ns, c.dev, c.mac, c.ip4, c.ip6);
    }
    let ifaces = lab.agent_args().join(" ");
    let default_ns = lab.prefix() == DEFAULT_PREFIX;
    let netns_arg = if default_ns { String::new() } else { format!("--netns {srv} ") };
    let c1 = &lab.client(1).ns;
    println!(
        "\nNext:\n  \
         cargo xtask run {netns_arg}-- {ifaces}   # the agent, in the foreground\n  \
         ip -n {srv} addr add {SERVER_IP4}/24 dev {master}            # once {master} exists\n  \
         ip -n {srv} addr add {SERVER_IP6}/64 dev {master} nodad\n  \
         nsenter --net=/var/run/netns/{c1} ping {SERVER_IP4}\n  \
         ip -n {c1} neigh                                  # the MAC the client learned\n  \
         nsenter --net=/var/run/netns/{srv} target/debug/alb status\n  \
         bpftool map dump pinned {pins}/ALB_CLIENTS\n  \
         cargo xtask lab down{}",
        if default_ns { String::new() } else { format!(" --prefix {}", lab.prefix()) },
        pins = alb_tests::agent::pin_dir(master).display(),
    );
}

fn run_agent(ns: Option<String>, args: &[String]) -> Result<ExitCode> {
    bootstrap::run()?;
    let alb = cargo::build_agent(cargo::Profile::Debug)?;
    let ns = match ns {
        Some(ns) if !netns::exists(&ns) => bail!("no network namespace {ns}"),
        Some(ns) => Some(ns),
        None => Some(srv_ns(DEFAULT_PREFIX)).filter(|ns| netns::exists(ns)),
    };
    let mut cmd = match &ns {
        Some(ns) => {
            eprintln!("xtask: running alb in network namespace {ns} (nsenter --net)");
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={}", netns::path(ns).display())).arg("--").arg(&alb);
            cmd
        }
        None => {
            eprintln!("xtask: running alb in the current network namespace");
            Command::new(&alb)
        }
    };
    cmd.args(args);
    let status = signals::run_forwarding(cmd)?;
    Ok(ExitCode::from(u8::try_from(signals::exit_code(status)).unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_passes_everything_after_the_double_dash_to_alb() {
        let cli =
            Cli::try_parse_from(["xtask", "run", "--", "--iface", "veth17", "--iface", "veth19"])
                .expect("parses");
        let Cmd::Run { netns, args } = cli.command else { panic!("not run") };
        assert_eq!(netns, None);
        assert_eq!(args, ["--iface", "veth17", "--iface", "veth19"]);
    }

    #[test]
    fn bench_takes_quick_out_and_sections() {
        let cli = Cli::try_parse_from(["xtask", "bench", "--quick", "--only", "cost,balance"])
            .expect("parses");
        let Cmd::Bench { quick, out, only, render, busy_share, soak_minutes, soak_seed } =
            cli.command
        else {
            panic!("not bench")
        };
        assert!(quick && out.is_none() && !render && busy_share == 0.2);
        assert_eq!(only, ["cost", "balance"]);
        assert_eq!((soak_minutes, soak_seed), (None, None));
        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "--only",
            "soak",
            "--soak-minutes",
            "2",
            "--soak-seed",
            "42",
        ])
        .expect("parses");
        let Cmd::Bench { soak_minutes, soak_seed, .. } = cli.command else { panic!("not bench") };
        assert_eq!((soak_minutes, soak_seed), (Some(2.0), Some(42)));
    }

    #[test]
    fn lab_defaults_are_the_seed_lab() {
        let cli = Cli::try_parse_from(["xtask", "lab", "up"]).expect("parses");
        let Cmd::Lab { action: LabCmd::Up { clients, slaves, prefix } } = cli.command else {
            panic!("not lab up")
        };
        assert_eq!((clients, slaves, prefix.as_str()), (2, 2, DEFAULT_PREFIX));
        assert!(Cli::try_parse_from(["xtask", "lab", "down", "--all", "--prefix", "x"]).is_err());
    }
}
