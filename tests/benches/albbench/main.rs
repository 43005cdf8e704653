//! The measuring half of `cargo xtask bench`: what must run against the BPF
//! object (which only this crate may link, through alb-user) or inside a
//! lab namespace. Each mode prints one JSON document on standard output;
//! xtask builds this with `cargo bench --no-run`, runs it, and writes the
//! report.
//!
//! ```text
//! albbench cost     --repeat N --runs R [--case ID]
//! albbench scale    --master M --max-clients N --clients N --agent-pid P
//!                   [--repeat N] [--spread N] [--settle-ms MS] [--idle-ms MS]
//! albbench udp-send --to IP:PORT --pps N --secs S [--size B]
//! albbench udp-recv --port P --secs S [--gap-ms MS]
//! ```
//!
//! Needs root (BPF, bpffs).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod cost;
mod frames;
mod object;
mod raw;
mod scale;
mod udp;
mod walk;

use std::{collections::HashMap, process::ExitCode, str::FromStr, time::Duration};

use anyhow::{Context as _, Result, bail};

/// `--key value` pairs after the mode.
struct Args {
    mode: String,
    values: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Self> {
        // cargo bench passes `--bench`; nothing else here takes a bare flag.
        let mut argv = std::env::args().skip(1).filter(|a| a != "--bench");
        let mode =
            argv.next().context("usage: albbench cost|scale|udp-send|udp-recv --key value ...")?;
        let mut values = HashMap::new();
        while let Some(key) = argv.next() {
            let Some(name) = key.strip_prefix("--") else { bail!("unexpected argument {key:?}") };
            let value = argv.next().with_context(|| format!("{key} needs a value"))?;
            values.insert(name.to_owned(), value);
        }
        Ok(Self { mode, values })
    }

    fn get<T: FromStr>(&self, name: &str) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let value = self.values.get(name).with_context(|| format!("--{name} is required"))?;
        value.parse().with_context(|| format!("--{name} {value:?}"))
    }

    fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        if self.values.contains_key(name) { self.get(name) } else { Ok(default) }
    }
}

fn run() -> Result<serde_json::Value> {
    let args = Args::parse()?;
    match args.mode.as_str() {
        "cost" => cost::run(
            args.get_or("repeat", 1_000_000)?,
            args.get_or("runs", 5)?,
            args.values.get("case").map(String::as_str),
        ),
        "scale" => scale::run(&scale::Options {
            master: args.get("master")?,
            max_clients: args.get("max-clients")?,
            clients: args.get("clients")?,
            agent_pid: args.get("agent-pid")?,
            repeat: args.get_or("repeat", 1_000_000)?,
            spread: args.get_or("spread", 20_000)?,
            settle: Duration::from_millis(args.get_or("settle-ms", 2000)?),
            idle: Duration::from_millis(args.get_or("idle-ms", 11_000)?),
        }),
        "udp-send" => udp::send(
            args.get("to")?,
            args.get("pps")?,
            args.get("secs")?,
            args.get_or("size", 64)?,
        ),
        "udp-recv" => {
            udp::receive(args.get("port")?, args.get("secs")?, args.get_or("gap-ms", 3.0)?)
        }
        other => bail!("unknown mode {other:?}: cost, scale, udp-send or udp-recv"),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("albbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
