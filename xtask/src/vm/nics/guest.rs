//! The NIC guest: QEMU started inside the switch namespace with one tap
//! backend per emulated NIC, its console copied to the log, a command
//! channel on its second serial port (guest.sh runs each line and answers
//! "@@DONE <status>") and QMP, through which the host cuts a NIC's link
//! (`set_link`) and reads virtio-net's receive filter (`query-rx-filter`).

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use alb_tests::netns;
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::host::NICS;

/// The console log, shared by the console reader and the host's reports.
#[derive(Clone)]
pub(super) struct Log(Arc<Mutex<File>>);

impl Log {
    pub(super) fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(Arc::new(Mutex::new(file))))
    }

    pub(super) fn line(&self, line: &str) {
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = writeln!(file, "{line}") {
            eprintln!("vm-test: cannot write the log: {error}");
        }
    }
}

/// How long the guest may take to boot and load its modules (TCG on a
/// loaded machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// A running guest; dropping it stops QEMU.
pub(super) struct Guest {
    qemu: Child,
    console: Option<JoinHandle<()>>,
    channel: BufReader<UnixStream>,
    qmp: BufReader<UnixStream>,
    log: Log,
}

impl Guest {
    /// Boots `vmlinuz` + `initrd` under QEMU TCG inside namespace `ns`,
    /// with the NICs of [`NICS`] on their taps; waits for the command
    /// channel. `dir` holds the two sockets.
    pub(super) fn boot(
        vmlinuz: &Path,
        initrd: &Path,
        ns: &str,
        dir: &Path,
        log: Log,
    ) -> Result<Self> {
        let (ctl, qmp) = (dir.join("ctl.sock"), dir.join("qmp.sock"));
        for socket in [&ctl, &qmp] {
            alb_tests::tidy::remove(socket);
        }
        let mut argv: Vec<String> = [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "1024",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
        ]
        .map(str::to_owned)
        .to_vec();
        argv.push("-serial".into());
        argv.push(format!("unix:{},server=on,wait=off", ctl.display()));
        argv.push("-qmp".into());
        argv.push(format!("unix:{},server=on,wait=off", qmp.display()));
        argv.extend(["-kernel".into(), vmlinuz.display().to_string()]);
        argv.extend(["-initrd".into(), initrd.display().to_string()]);
        argv.push("-append".into());
        argv.push("console=ttyS0 quiet loglevel=1 panic=-1 tsc=reliable".into());
        for nic in &NICS {
            argv.push("-netdev".into());
            argv.push(format!("tap,id={},ifname={},script=no,downscript=no", nic.netdev, nic.tap));
            argv.push("-device".into());
            argv.push(format!("{},netdev={},mac={}", nic.model, nic.netdev, nic.mac));
        }
        let mut qemu = netns::command(ns, &argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start qemu-system-x86_64 (cargo xtask bootstrap installs it)")?;
        let stdout = qemu.stdout.take().context("qemu stdout")?;
        let console_log = log.clone();
        let console = thread::spawn(move || copy_console(stdout, &console_log));
        let mut guest = Self {
            channel: BufReader::new(connect(&ctl, &mut qemu)?),
            qmp: BufReader::new(connect(&qmp, &mut qemu)?),
            qemu,
            console: Some(console),
            log,
        };
        guest.wait_ready()?;
        guest.qmp_handshake()?;
        Ok(guest)
    }

    fn wait_ready(&mut self) -> Result<()> {
        self.channel.get_ref().set_read_timeout(Some(BOOT_TIMEOUT))?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.channel.read_line(&mut line).context("the guest never opened its channel")? == 0
            {
                bail!("the guest closed its command channel before it was ready");
            }
            if line.trim() == "@@READY" {
                return Ok(());
            }
        }
    }

    /// Runs one shell line in the guest; its exit status and output.
    pub(super) fn sh(&mut self, line: &str, timeout: Duration) -> Result<(i32, String)> {
        self.log.line(&format!("@@HOST guest$ {line}"));
        self.channel.get_ref().set_read_timeout(Some(timeout))?;
        self.channel.get_mut().write_all(format!("{line}\n").as_bytes())?;
        let mut output = String::new();
        let mut buf = String::new();
        loop {
            buf.clear();
            let read = self
                .channel
                .read_line(&mut buf)
                .with_context(|| format!("the guest did not finish `{line}` within {timeout:?}"))?;
            if read == 0 {
                bail!("the guest closed its command channel during `{line}`");
            }
            if let Some(status) = buf.trim_end().strip_prefix("@@DONE ") {
                let status = status.parse().unwrap_or(-1);
                self.log.line(&format!("@@HOST exit {status}: {}", output.trim_end()));
                return Ok((status, output));
            }
            output.push_str(&buf);
        }
    }

    /// [`Guest::sh`] that must exit 0.
    pub(super) fn sh_ok(&mut self, line: &str, timeout: Duration) -> Result<String> {
        let (status, output) = self.sh(line, timeout)?;
        if status != 0 {
            bail!("`{line}` in the guest exited {status}: {}", output.trim());
        }
        Ok(output)
    }

    fn qmp_handshake(&mut self) -> Result<()> {
        self.qmp.get_ref().set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut greeting = String::new();
        self.qmp.read_line(&mut greeting).context("no QMP greeting")?;
        self.qmp_execute("qmp_capabilities", &json!({})).map(drop)
    }

    /// One QMP command; its "return" value.
    pub(super) fn qmp_execute(&mut self, command: &str, arguments: &Value) -> Result<Value> {
        let request = json!({ "execute": command, "arguments": arguments });
        self.qmp.get_mut().write_all(format!("{request}\n").as_bytes())?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.qmp.read_line(&mut line).with_context(|| format!("QMP {command}"))? == 0 {
                bail!("QEMU closed QMP during {command}");
            }
            let reply: Value = serde_json::from_str(&line)
                .with_context(|| format!("QMP {command} answered {line:?}"))?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(error) = reply.get("error") {
                bail!("QMP {command}: {error}");
            }
            return Ok(reply["return"].clone());
        }
    }

    /// Cuts or restores the link of NIC backend `netdev` (the guest sees
    /// carrier loss, as at a pulled cable, where its driver reports it).
    pub(super) fn set_link(&mut self, netdev: &str, up: bool) -> Result<()> {
        self.log.line(&format!("@@HOST qmp set_link {netdev} {}", if up { "on" } else { "off" }));
        self.qmp_execute("set_link", &json!({ "name": netdev, "up": up })).map(drop)
    }

    /// virtio-net's receive filter as QEMU applies it (QEMU reports none
    /// for e1000e).
    pub(super) fn rx_filter(&mut self) -> Result<Value> {
        let filters = self.qmp_execute("query-rx-filter", &json!({}))?;
        filters
            .as_array()
            .and_then(|all| all.first())
            .cloned()
            .context("QEMU reported no receive filter")
    }

    /// Lets the guest stop its agent and power off; waits for QEMU.
    pub(super) fn shut_down(mut self) -> Result<()> {
        self.log.line("@@HOST guest$ quit");
        self.channel.get_mut().write_all(b"quit\n")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.qemu.try_wait()? {
                if !status.success() {
                    bail!("QEMU exited with {status}");
                }
                return Ok(());
            }
            thread::sleep(Duration::from_millis(100));
        }
        bail!("the guest did not power off within 60 s")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if matches!(self.qemu.try_wait(), Ok(None)) {
            if let Err(error) = self.qemu.kill() {
                eprintln!("vm-test: cannot stop QEMU (pid {}): {error}", self.qemu.id());
            }
        }
        if let Err(error) = self.qemu.wait() {
            eprintln!("vm-test: cannot reap QEMU (pid {}): {error}", self.qemu.id());
        }
        if let Some(console) = self.console.take() {
            if console.join().is_err() {
                eprintln!("vm-test: the console reader panicked");
            }
        }
    }
}

/// Connects to one of QEMU's sockets once QEMU has created it.
fn connect(path: &PathBuf, qemu: &mut Child) -> Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => return Ok(stream),
            Err(error) if Instant::now() >= deadline => {
                return Err(error).with_context(|| format!("cannot connect to {}", path.display()));
            }
            Err(_) => {}
        }
        if let Some(status) = qemu.try_wait()? {
            bail!("QEMU exited at start ({status})");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the console into the log; echoes the guest's INFO lines.
fn copy_console(stdout: std::process::ChildStdout, log: &Log) {
    for line in BufReader::new(stdout).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r');
        log.line(line);
        if let Some(super::super::Line::Info(text)) = super::super::parse(line) {
            println!("         {text}");
        }
    }
}
