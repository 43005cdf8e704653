//! Running command-line tools with errors that say what was run (also used
//! by xtask).

use std::{
    ffi::OsStr,
    process::{Command, Output},
};

use anyhow::{Context as _, Result, bail};

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
