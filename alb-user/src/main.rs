//! `alb`: Linux bonding mode 6 (balance-alb) on eBPF.
#![expect(
    unused_crate_dependencies,
    reason = "the command line over the library, which uses the rest"
)]

use std::path::PathBuf;

use alb::{
    agent,
    config::{self, Settings},
    control::{self, Request},
    import, status, takeover,
};
use anyhow::{Context as _, Result, anyhow};
use clap::{Args, CommandFactory as _, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alb",
    version,
    about = "Adaptive load balancing (bonding mode 6) on eBPF",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    long_about = "Adaptive load balancing (Linux bonding mode 6, balance-alb) on eBPF: \
        spreads a host's traffic over several interfaces on one network with no help from \
        the switch. Each IPv4 client is told by ARP the MAC of one slave, so receive traffic \
        is spread per client; transmit traffic is spread per destination.",
    after_long_help = "FILES:\n  \
        /etc/alb/MASTER.toml           the configuration of a master (alb@MASTER.service)\n  \
        /run/alb/MASTER.sock           the control socket (alb status, alb slave)\n  \
        /run/alb/MASTER.state          what the agent changed, to undo on stop or alb down\n  \
        /sys/fs/bpf/alb/MASTER/        the pinned maps and programs\n\n\
        SERVICE:\n  \
        systemctl enable --now alb@alb0 runs master alb0 with --keep-datapath: a restart \
        or an upgrade loses no packet; alb down --master alb0 removes the master."
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
    /// Remove the data path and master an agent left behind (stopped with
    /// --keep-datapath, or killed): programs, maps, master, sysctls.
    Down(MasterArgs),
    /// Add or remove a slave of a running master.
    #[command(subcommand)]
    Slave(SlaveCommand),
    /// Change a running master.
    #[command(subcommand)]
    Set(SetCommand),
    /// Config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Make a running agent read its config file again (as SIGHUP does);
    /// exits 1, with the reasons, when the file is not applied.
    Reload(MasterArgs),
    /// Translate a kernel bond's definition (balance-alb) into an alb config
    /// (TOML, on stdout); every option that does not map is a line
    /// PATH:LINE: option: why on stderr.
    Import(ImportArgs),
    /// Replace a running kernel bond (balance-alb or balance-tlb) by alb's
    /// master of the same name, with its slaves, MAC, addresses and routes,
    /// and run the agent in the foreground until SIGTERM.
    Takeover(BondArgs),
    /// Stop the agent `alb takeover BOND` runs and build the kernel bond
    /// again: its mode, options, slaves in order, MAC, and the master's
    /// addresses and routes.
    Handback(BondArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, alb(8), as roff (`cargo xtask package` installs it).
    #[command(hide = true)]
    Man,
}

#[derive(Subcommand)]
enum SlaveCommand {
    /// Add IF as a slave, while the agent runs.
    Add(SlaveArgs),
    /// Remove slave IF, while the agent runs.
    Del(DelArgs),
}

#[derive(Args)]
struct DelArgs {
    #[command(flatten)]
    slave: SlaveArgs,
    /// Remove IF even if it is the last slave, or the last usable one (the
    /// master is then off the network).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct SlaveArgs {
    #[arg(value_name = "IF")]
    iface: String,
    #[arg(long, default_value = "alb0")]
    master: String,
}

/// A command that names only the master.
#[derive(Args)]
struct MasterArgs {
    #[arg(long, default_value = "alb0")]
    master: String,
}

#[derive(Args)]
struct RunArgs {
    /// A config file (TOML) giving these options; the command line wins
    /// [default: /etc/alb/<master>.toml, if it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    /// Test switch, never a file key: leave the slaves' receive filters
    /// alone (a test shows what then breaks on NICs that filter).
    #[arg(long, hide = true)]
    no_filter_sync: bool,
}

#[derive(Subcommand)]
enum SetCommand {
    /// Make IF the active slave now (refused if its link is down), as
    /// bonding's active_slave.
    Active(SlaveArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file: every error as PATH:LINE: message.
    Check {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

#[derive(Args)]
struct ImportArgs {
    /// The tool whose configuration PATH is.
    #[arg(value_name = "FORMAT")]
    format: import::Format,
    /// netplan: a YAML file; ifupdown: an interfaces file; networkd: a
    /// directory of .netdev/.network files; nm: a keyfile or a directory of
    /// them; sysfs: the name of a running bond.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Which bond, when PATH defines several.
    #[arg(long, value_name = "NAME")]
    bond: Option<String>,
    /// Also write the master's addresses, routes and DHCP setting into DIR,
    /// in the source tool's own format.
    #[arg(long, value_name = "DIR")]
    address_config: Option<PathBuf>,
    /// Where sysfs is mounted (tests give a directory tree).
    #[arg(long, hide = true, value_name = "DIR", default_value = "/sys")]
    sysfs_root: PathBuf,
}

#[derive(Args)]
struct BondArgs {
    /// The bond's name (alb's master takes it).
    #[arg(value_name = "BOND")]
    bond: String,
    /// Where sysfs is mounted (tests mount one of their network namespace).
    #[arg(long, hide = true, value_name = "DIR", default_value = "/sys")]
    sysfs_root: PathBuf,
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
    let cli = Cli::try_parse().unwrap_or_else(|error| usage_error(&error));
    alb::service::journal::init_logger();
    if let Err(error) = run(cli) {
        // The journal files it as an error (sd-daemon(3)); a terminal sees no prefix.
        let priority = if alb::service::journal::stderr_is_journal() { "<3>" } else { "" };
        eprintln!("{priority}alb: {error:#}");
        std::process::exit(1);
    }
}

/// clap's refusals read as alb's other errors: one line `alb: ...`, with
/// clap's exit status 2 for a usage error (1 is a refused or failed
/// command). Help and the version print as clap prints them.
fn usage_error(error: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    // clap's message is its first paragraph (the possible values, a
    // missing argument's name and tips are on lines of their own).
    let text = error.render().to_string();
    let message: Vec<&str> =
        text.lines().take_while(|line| !line.trim().is_empty()).map(str::trim).collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("alb: {message} (alb --help lists the options)");
    std::process::exit(2);
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
        Some(Command::Run(args)) => runtime.block_on(agent::run(options(args)?)),
        Some(Command::Down(args)) => runtime.block_on(agent::down(&args.master)),
        Some(Command::Slave(command)) => runtime.block_on(async {
            let (request, master) = match command {
                SlaveCommand::Add(args) => (Request::SlaveAdd(args.iface), args.master),
                SlaveCommand::Del(args) => (
                    Request::SlaveDel { name: args.slave.iface, force: args.force },
                    args.slave.master,
                ),
            };
            println!("alb: {}", control::send(&master, &request).await?);
            Ok(())
        }),
        Some(Command::Set(SetCommand::Active(args))) => runtime.block_on(async {
            let request = Request::SetActive(args.iface);
            println!("alb: {}", control::send(&args.master, &request).await?);
            Ok(())
        }),
        Some(Command::Reload(args)) => runtime.block_on(async {
            println!("alb: {}", control::send(&args.master, &Request::Reload).await?);
            Ok(())
        }),
        Some(Command::Config(ConfigCommand::Check { path })) => check_config(&path),
        Some(Command::Import(args)) => import_bond(&args),
        Some(Command::Takeover(args)) => {
            runtime.block_on(takeover::takeover(&args.bond, &args.sysfs_root))
        }
        Some(Command::Handback(args)) => {
            runtime.block_on(takeover::handback(&args.bond, &args.sysfs_root))
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "alb", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Man) => {
            let man = clap_mangen::Man::new(Cli::command()).section("8");
            man.render(&mut std::io::stdout())?;
            Ok(())
        }
        None => runtime.block_on(agent::run(options(cli.run)?)),
    }
}

/// `alb config check PATH`: every error on a line of its own, or one line
/// saying what the file runs.
fn check_config(path: &std::path::Path) -> Result<()> {
    // A path that is no readable file is one error, not a file's lines.
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let errors = config::check(path);
    if errors.is_empty() {
        let source = config::Source { path: path.to_owned(), cli: Settings::default() };
        let options = config::load(&source).map_err(|errors| anyhow!(errors.join("\n")))?;
        println!(
            "{}: OK (master {}, slaves {})",
            path.display(),
            options.master,
            options.slaves.join(", ")
        );
        return Ok(());
    }
    for error in &errors {
        eprintln!("{error}");
    }
    std::process::exit(1);
}

/// `alb import`: the config on stdout, a note per option that does not map
/// on stderr, the master's addressing into `--address-config DIR`.
fn import_bond(args: &ImportArgs) -> Result<()> {
    if args.address_config.is_some() && args.format == import::Format::Sysfs {
        return Err(anyhow!(
            "--address-config: sysfs holds no addresses; give the file of the tool that configures the bond"
        ));
    }
    let request =
        import::Request { bond: args.bond.clone(), sysfs_root: Some(args.sysfs_root.clone()) };
    let imported =
        import::import(args.format, &args.path, &request).map_err(|error| anyhow!(error))?;
    if let Some(dir) = &args.address_config {
        let written = match &imported.address_config {
            Some(address_config) => write_address_config(dir, address_config)?,
            None => "nothing written: the bond's source gives the master no addressing".to_owned(),
        };
        eprintln!("alb: {written}");
    }
    print!("{}", imported.config);
    for note in &imported.notes {
        eprintln!("{note}");
    }
    Ok(())
}

/// Writes the master's addressing into `dir`; what it wrote, as a line.
fn write_address_config(dir: &std::path::Path, config: &import::AddressConfig) -> Result<String> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let path = dir.join(&config.file_name);
    let mode = if config.private { 0o600 } else { 0o644 };
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&path).map_err(
            |error| anyhow!("--address-config: cannot create {}: {error}", path.display()),
        )?;
    file.write_all(config.text.as_bytes())
        .map_err(|error| anyhow!("--address-config: cannot write {}: {error}", path.display()))?;
    Ok(format!("wrote the master's addressing to {}: {}", path.display(), config.advice))
}

/// The agent's options: the command line over the config file. Several
/// problems are several lines, each after `alb: `.
fn options(args: RunArgs) -> Result<config::Options> {
    let mut options = config::resolve(args.settings, args.config)
        .map_err(|errors| anyhow!(errors.join("\nalb: ")))?;
    options.no_filter_sync = args.no_filter_sync;
    Ok(options)
}
