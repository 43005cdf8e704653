//! Living under a service manager: systemd's readiness and watchdog
//! protocol (`sd_notify`), and log lines with syslog priorities when
//! standard error is the journal. Outside systemd every call is a no-op.

pub mod journal;

use std::time::{Duration, Instant};

use log::{debug, warn};
use sd_notify::NotifyState;

/// The agent's side of `Type=notify` and `WatchdogSec=`.
#[derive(Debug)]
pub struct Notifier {
    /// How often to feed the watchdog: half its timeout, as sd_watchdog_enabled(3) advises.
    feed_every: Option<Duration>,
    next_feed: Option<Instant>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let feed_every = sd_notify::watchdog_enabled().map(|timeout| timeout / 2);
        if let Some(every) = feed_every {
            debug!("feeding systemd's watchdog every {every:?}");
        }
        Self { feed_every, next_feed: None }
    }

    /// `READY=1`, once the programs, maps, master and control socket all
    /// exist, with a one-line status.
    pub fn ready(&mut self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.next_feed = self.feed_every.map(|every| Instant::now() + every);
    }

    /// A new one-line status (`systemctl status` shows it).
    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }

    /// When the event loop must next wake to feed the watchdog.
    pub fn next_feed(&self) -> Option<Instant> {
        self.next_feed
    }

    /// Feeds the watchdog if it is due. Called from the event loop only, so
    /// a loop that hangs stops feeding and systemd restarts the agent.
    pub fn feed_if_due(&mut self, now: Instant) {
        if let (Some(at), Some(every)) = (self.next_feed, self.feed_every) {
            if now >= at {
                send(&[NotifyState::Watchdog]);
                self.next_feed = Some(now + every);
            }
        }
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        warn!("cannot notify the service manager: {error}");
    }
}
