//! Running command-line tools with errors that say what was run (also used
//! by xtask).

use std::{
    ffi::OsStr,
    io::Read as _,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::{sys::signal::Signal, unistd::Pid};

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` to completion and returns its output, whatever its exit status.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output().with_context(|| format!("cannot start `{}`", describe(cmd)))
}

/// Runs `cmd` to completion and returns its output, whatever its exit
/// status, unless it takes longer than `timeout`: then it gets SIGTERM
/// (SIGKILL 5 s later, by its PID) and that is an error with what it
/// printed.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let timeout = crate::scaled(timeout);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    // Both pipes are drained as the command writes, so it never blocks on
    // a full pipe while we wait.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error ends the output early; what was read is kept.
                if let Err(error) = pipe.read_to_end(&mut bytes) {
                    bytes.extend_from_slice(format!("\n[output cut: {error}]").as_bytes());
                }
            }
            bytes
        })
    };
    let boxed = |pipe: Box<dyn std::io::Read + Send>| pipe;
    let stdout = drain(child.stdout.take().map(|p| boxed(Box::new(p))));
    let stderr = drain(child.stderr.take().map(|p| boxed(Box::new(p))));
    let deadline = Instant::now() + timeout;
    let mut status = None;
    let mut term_sent: Option<Instant> = None;
    while status.is_none() {
        status =
            child.try_wait().with_context(|| format!("cannot wait for `{}`", describe(cmd)))?;
        if status.is_some() {
            break;
        }
        let now = Instant::now();
        match term_sent {
            None if now >= deadline => {
                let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
                crate::tidy::signal(pid, Signal::SIGTERM);
                term_sent = Some(now);
            }
            Some(at) if now >= at + Duration::from_secs(5) => {
                if let Err(error) = child.kill() {
                    eprintln!("cannot kill `{}`: {error}", describe(cmd));
                }
                status = Some(child.wait()?);
            }
            _ => thread::sleep(Duration::from_millis(5)),
        }
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if term_sent.is_some() {
        bail!(
            "`{}` was still running after {timeout:?}; stopped it. It printed:\n{}{}",
            describe(cmd),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    let status = status.context("no exit status")?;
    Ok(Output { status, stdout, stderr })
}

/// Runs `cmd`, fails unless it exits 0, and returns its standard output.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program args...` as a [`Command`].
pub fn command<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// `ip args...`, failing unless it exits 0; returns standard output.
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    run(&mut command("ip", args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_within_returns_both_streams_and_stops_a_slow_command() {
        let out = output_within(
            &mut command("sh", &["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("sh");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

        let start = Instant::now();
        let slow = output_within(&mut command("sleep", &["30"]), Duration::from_millis(100));
        let error = format!("{:#}", slow.expect_err("sleep 30 is stopped"));
        assert!(error.contains("still running after 100ms"), "{error}");
        assert!(start.elapsed() < Duration::from_secs(5), "stopped at once: {:?}", start.elapsed());
    }
}
