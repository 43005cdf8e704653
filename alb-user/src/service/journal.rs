//! Log lines the journal files at their priority.
//!
//! systemd connects a service's standard error to the journal and says so in
//! `JOURNAL_STREAM` (`device:inode` of that stream); the journal reads a
//! `<N>` prefix as the line's syslog priority (sd-daemon(3)). When standard
//! error is that stream, lines get the prefix and lose the timestamp (the
//! journal has its own); otherwise they stay as they are for a terminal.

use std::io::Write as _;

use log::Level;

/// Whether standard error is the journal stream systemd named.
pub fn stderr_is_journal() -> bool {
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    named.to_str().and_then(parse_stream) == Some((stderr.st_dev, stderr.st_ino))
}

/// `JOURNAL_STREAM`'s `device:inode`.
fn parse_stream(text: &str) -> Option<(u64, u64)> {
    let (device, inode) = text.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// The syslog priority of a log level (sd-daemon(3): `<3>` is LOG_ERR).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The logger of `alb`: `RUST_LOG` filters (default `info`); journal
/// priorities when standard error is the journal.
pub fn init_logger() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if stderr_is_journal() {
        builder
            .format(|out, record| writeln!(out, "<{}>{}", priority(record.level()), record.args()));
    } else {
        builder.format_target(false);
    }
    builder.init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_stream("8:123456"), Some((8, 123_456)));
        assert_eq!(parse_stream("8"), None);
        assert_eq!(parse_stream("x:1"), None);
    }

    #[test]
    fn priorities_are_syslogs() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
    }
}
