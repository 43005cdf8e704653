//! A second handle on one of the agent's own maps (the config array), for
//! the privilege probe (`privileges::bpf_needs`): it reads the entry and
//! writes the same value back, the two bpf() commands the agent's later
//! work is made of, from whichever thread calls it (capabilities are per
//! thread).

use std::{io, os::fd::AsFd as _};

use alb_common::maps::{Config, names};
use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, Map, MapData, MapError};

/// The config array, opened again through a duplicate of its descriptor.
pub struct MapAccess {
    config: Array<MapData, Config>,
}

impl MapAccess {
    pub(super) fn new(map: &Map) -> Result<Self> {
        let Map::Array(data) = map else { bail!("map {} is not an array", names::CONFIG) };
        let fd = data.fd().as_fd().try_clone_to_owned().context("cannot duplicate a map fd")?;
        let data = MapData::from_fd(fd).context("cannot open the config map again")?;
        Ok(Self { config: Array::try_from(Map::Array(data))? })
    }

    /// BPF_MAP_LOOKUP_ELEM of entry 0, then BPF_MAP_UPDATE_ELEM of the same
    /// value (nothing changes: only the agent writes this map, and it waits
    /// for the probe). The error is the kernel's (EPERM when refused).
    pub fn read_and_write_back(&mut self) -> io::Result<()> {
        let value = self.config.get(&0, 0).map_err(into_io)?;
        self.config.set(0, value, 0).map_err(into_io)
    }
}

fn into_io(error: MapError) -> io::Error {
    match error {
        MapError::SyscallError(syscall) => syscall.io_error,
        other => io::Error::other(other),
    }
}
