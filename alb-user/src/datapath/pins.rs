//! Where the maps and links are pinned, and whether pins found there can be
//! adopted by this agent.

use std::{fs, path::Path};

use alb_common::{
    maps::{
        CLIENT_SLOTS, CURSORS, ClientEntry, ClientKey, ClientKey6, ClientSlot, Config,
        EVENT_RING_BYTES, HostKey6, MAX_SERVERS, MAX_SLAVES, MAX_VMS, PIN_FORMAT, ServerKey, Slave,
        SlaveStats, TAIL_CALLS, TX_BUCKETS, Traffic, TxBucket, VmEntry, VmKey, names,
    },
    reason::Reason,
};
use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, MapData};

use super::layout;

/// The shape each pinned map must have to be adopted by this agent:
/// (name, key size, value size, entries).
fn expected_layout(max_clients: u32) -> [(&'static str, u32, u32, u32); 15] {
    fn size<T>() -> u32 {
        u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
    }
    let slaves = u32::try_from(MAX_SLAVES).unwrap_or(u32::MAX);
    [
        (names::CONFIG, 4, size::<Config>(), 1),
        (names::SLAVES, 4, size::<Slave>(), slaves),
        (names::CLIENTS, size::<ClientKey>(), size::<ClientEntry>(), max_clients),
        (names::CLIENTS6, size::<ClientKey6>(), size::<ClientEntry>(), max_clients),
        (names::HOSTS6, size::<HostKey6>(), 4, max_clients),
        (names::SLOTS, 4, size::<ClientSlot>(), CLIENT_SLOTS),
        (names::TX_BUCKETS, 4, size::<TxBucket>(), TX_BUCKETS),
        (names::BUCKET_LOAD, 4, size::<Traffic>(), TX_BUCKETS),
        (names::SLAVE_STATS, 4, size::<SlaveStats>(), slaves),
        (names::COUNTERS, 4, 8, Reason::COUNT),
        (names::RR_CURSOR, 4, 8, CURSORS),
        (names::EVENTS, 0, 0, EVENT_RING_BYTES),
        (names::PROGS, 4, 4, TAIL_CALLS),
        (names::VMS, size::<VmKey>(), size::<VmEntry>(), MAX_VMS),
        (names::SERVERS, size::<ServerKey>(), 4, MAX_SERVERS),
    ]
}

/// Whether `dir` holds the pinned state of an earlier agent.
pub fn has_pinned_state(dir: &Path) -> bool {
    dir.join(names::CONFIG).exists()
}

/// Checks that the pinned maps in `dir` have the format and layout this
/// agent uses, so adopting them cannot misread their contents.
pub fn check_pins(dir: &Path, max_clients: u32) -> Result<()> {
    let path = dir.join(names::CONFIG);
    let format = MapData::from_pin(&path)
        .map_err(anyhow::Error::from)
        .and_then(|map| Ok(Array::<MapData, Config>::try_from(aya::maps::Map::Array(map))?))
        .and_then(|config| Ok(config.get(&0, 0)?.format))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if format != PIN_FORMAT {
        bail!(
            "the pinned maps in {} have format {format}, this agent uses format {PIN_FORMAT} \
             (left by another alb version); remove them with `alb down` (traffic stops \
             until the agent starts again)",
            dir.display()
        );
    }
    for (name, key, value, entries) in expected_layout(max_clients) {
        let path = dir.join(name);
        let info = MapData::from_pin(&path)
            .and_then(|map| map.info())
            .with_context(|| format!("cannot open {}", path.display()))?;
        let found = (info.key_size(), info.value_size(), info.max_entries());
        if found != (key, value, entries) {
            bail!(
                "pinned map {} has key/value/entries {found:?}, this agent expects {:?} \
                 (another alb version or --max-clients); remove the old state with `alb down`",
                path.display(),
                (key, value, entries)
            );
        }
    }
    Ok(())
}

/// Removes the pin directory of a master (maps of an earlier run), and
/// the directory of every master's pins with it when no other is left.
pub fn remove_pins(dir: &Path) -> Result<()> {
    // clsact filters are not BPF objects: unpinning does not remove them.
    let records = super::attach::remove_records(&layout::link_dir(dir));
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", dir.display()));
        }
    }
    if let Some(parent) = dir.parent() {
        // Fails while other masters' pins are there, as it should.
        if let Err(error) = fs::remove_dir(parent) {
            if !matches!(
                error.kind(),
                std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::NotFound
            ) {
                log::warn!("cannot remove {}: {error}", parent.display());
            }
        }
    }
    records
}
