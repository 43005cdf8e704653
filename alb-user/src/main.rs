//! `alb`: Linux bonding mode 6 (balance-alb) on eBPF.

use alb::{
    agent,
    control::{self, Request},
    status,
};
use alb_common::{link::Delays, maps::DEFAULT_MAX_CLIENTS};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alb",
    version,
    about = "Adaptive load balancing (bonding mode 6) on eBPF",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent in the foreground (the default).
    Run(RunArgs),
    /// Print the state of a running master.
    Status(StatusArgs),
    /// Remove what an agent that died left behind (programs, maps, master).
    Down(DownArgs),
    /// Add or remove a slave of a running master.
    #[command(subcommand)]
    Slave(SlaveCommand),
}

#[derive(Subcommand)]
enum SlaveCommand {
    /// Add IF as a slave, while the agent runs.
    Add(SlaveArgs),
    /// Remove slave IF, while the agent runs.
    Del(SlaveArgs),
}

#[derive(Args)]
struct SlaveArgs {
    #[arg(value_name = "IF")]
    iface: String,
    #[arg(long, default_value = "alb0")]
    master: String,
}

#[derive(Args)]
struct DownArgs {
    #[arg(long, default_value = "alb0")]
    master: String,
}

#[derive(Args)]
struct RunArgs {
    /// The master device; created (a veth pair) if missing.
    #[arg(long, default_value = "alb0")]
    master: String,
    /// A slave device; give it once per slave, in enslave order.
    #[arg(long = "iface", value_name = "IF", required = true)]
    ifaces: Vec<String>,
    /// Size of each client table (IPv4, IPv6).
    #[arg(long, default_value_t = DEFAULT_MAX_CLIENTS)]
    max_clients: u32,
    /// Milliseconds a slave's carrier must be back before it is used again.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    updelay: u64,
    /// Milliseconds a slave's carrier must be gone before it is given up.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    downdelay: u64,
    /// The slave preferred as active whenever it is up.
    #[arg(long, value_name = "IF")]
    primary: Option<String>,
    /// Seconds between learning frames from every slave.
    #[arg(long, value_name = "S", default_value_t = 1)]
    lp_interval: u64,
    /// Seconds between transmit rebalancing by measured load (0: never).
    #[arg(long, value_name = "S", default_value_t = 10)]
    rebalance_interval: u64,
}

#[derive(Args)]
struct StatusArgs {
    #[arg(long, default_value = "alb0")]
    master: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    if let Err(error) = run(cli) {
        eprintln!("alb: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Some(Command::Status(args)) => runtime.block_on(async {
            let status = status::collect(&args.master).await?;
            let text = if args.json { status::to_json(&status)? } else { status::to_text(&status) };
            println!("{text}");
            Ok(())
        }),
        Some(Command::Run(args)) => runtime.block_on(agent::run(options(args))),
        Some(Command::Down(args)) => runtime.block_on(agent::down(&args.master)),
        Some(Command::Slave(command)) => runtime.block_on(async {
            let (request, master) = match command {
                SlaveCommand::Add(args) => (Request::SlaveAdd(args.iface), args.master),
                SlaveCommand::Del(args) => (Request::SlaveDel(args.iface), args.master),
            };
            println!("alb: {}", control::send(&master, &request).await?);
            Ok(())
        }),
        None => runtime.block_on(agent::run(options(cli.run))),
    }
}

fn options(args: RunArgs) -> agent::Options {
    agent::Options {
        master: args.master,
        slaves: args.ifaces,
        max_clients: args.max_clients,
        delays: Delays { up_ms: args.updelay, down_ms: args.downdelay },
        primary: args.primary,
        lp_interval_s: args.lp_interval,
        rebalance_interval_s: args.rebalance_interval,
    }
}
