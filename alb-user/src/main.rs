//! `alb`: Linux bonding mode 6 (balance-alb) on eBPF.

use alb::{agent, status};
use alb_common::maps::DEFAULT_MAX_CLIENTS;
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
}

#[derive(Args)]
struct RunArgs {
    /// The master device; created (a veth pair) if missing.
    #[arg(long, default_value = "alb0")]
    master: String,
    /// A slave device; give it once per slave, in enslave order.
    #[arg(long = "iface", value_name = "IF", required = true)]
    ifaces: Vec<String>,
    /// Size of the client table.
    #[arg(long, default_value_t = DEFAULT_MAX_CLIENTS)]
    max_clients: u32,
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
        None => runtime.block_on(agent::run(options(cli.run))),
    }
}

fn options(args: RunArgs) -> agent::Options {
    agent::Options { master: args.master, slaves: args.ifaces, max_clients: args.max_clients }
}
