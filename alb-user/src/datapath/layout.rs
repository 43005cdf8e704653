//! The bpffs layout, in one place: each master's pin directory
//! (`/sys/fs/bpf/alb/<master>/`, its maps named by `maps::names`) and its
//! `links/` directory of attachment records, `tx` (the master's egress) and
//! `rx-<slave>` (a slave's ingress). The names are `alb_common::maps::pins`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use alb_common::maps::pins::{LINKS, ROOT, RX_PREFIX, TX};

pub use alb_common::maps::pins::BPFFS;

/// `/sys/fs/bpf/alb/<master>`: the pins of one master's maps.
pub fn pin_dir(master: &str) -> PathBuf {
    Path::new(ROOT).join(master)
}

/// `<pins>/links`: the attachment records of the master pinned in `pins`.
pub fn link_dir(pins: &Path) -> PathBuf {
    pins.join(LINKS)
}

/// The name of the transmit program's record.
pub const TX_RECORD: &str = TX;

/// The name of slave `slave`'s receive record, `rx-<slave>`.
pub fn rx_record(slave: &str) -> String {
    format!("{RX_PREFIX}{slave}")
}

/// Inside a clsact record: the device's clsact qdisc is alb's to remove
/// with its filter (alb added it).
pub const QDISC_ADDED: &str = "qdisc-added";

/// What a record in a links directory stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// `rx-<slave>`: the receive program on that slave's ingress.
    Rx { slave: String },
    /// `tx`: the transmit program on the egress of `master` (the name of
    /// the pin directory that holds `links/`).
    Tx { master: String },
}

/// The record at `path` (`<pins>/links/<name>`), if its name is one.
pub fn record(path: &Path) -> Option<Record> {
    let name = path.file_name()?.to_str()?;
    if let Some(slave) = name.strip_prefix(RX_PREFIX) {
        return Some(Record::Rx { slave: slave.to_owned() });
    }
    if name == TX {
        let master = path.parent()?.parent()?.file_name()?.to_str()?;
        return Some(Record::Tx { master: master.to_owned() });
    }
    None
}

/// The master whose links directory holds the record at `path`.
pub fn master_of(path: &Path) -> Option<String> {
    Some(path.parent()?.parent()?.file_name()?.to_str()?.to_owned())
}

/// The links directory of every master that has pins (none if bpffs holds
/// no alb pins).
pub fn every_link_dir() -> Vec<PathBuf> {
    let Ok(masters) = fs::read_dir(ROOT) else { return Vec::new() };
    masters.filter_map(Result::ok).map(|master| link_dir(&master.path())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_and_read_back() {
        let links = link_dir(&pin_dir("alb0"));
        assert_eq!(links, Path::new("/sys/fs/bpf/alb/alb0/links"));
        assert_eq!(
            record(&links.join(rx_record("veth17"))),
            Some(Record::Rx { slave: "veth17".to_owned() })
        );
        assert_eq!(record(&links.join(TX_RECORD)), Some(Record::Tx { master: "alb0".to_owned() }));
        assert_eq!(record(&links.join("ALB_CONFIG")), None);
    }
}
