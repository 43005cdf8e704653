//! Batched map access (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_UPDATE_BATCH`,
//! `BPF_MAP_DELETE_BATCH`, Linux >= 5.6), which aya 0.14 does not offer:
//! reading a million-entry client table one `bpf(2)` call per entry takes
//! seconds, in chunks of thousands it takes a fraction of that.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{Pod, maps::MapData};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// `union bpf_attr`'s `batch` member.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf(command: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: bpf(2) with a batch attribute whose pointers reference live
    // buffers of `count` elements, as the callers build it.
    let result = unsafe {
        libc::syscall(libc::SYS_bpf, command, std::ptr::from_mut(attr), size_of::<BatchAttr>())
    };
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn map_fd(map: &MapData) -> u32 {
    u32::try_from(map.fd().as_fd().as_raw_fd()).unwrap_or(u32::MAX)
}

/// Where a walk of a map stands between batches: the kernel's batch token
/// (a bucket index for hash maps, a key for arrays). A walk can be spread
/// over many calls, with other work between them.
#[derive(Debug, Default)]
pub struct Cursor {
    token: Option<[u64; 4]>,
    done: bool,
}

impl Cursor {
    /// Whether the walk has read the last entry.
    pub const fn done(&self) -> bool {
        self.done
    }
}

/// Reads the next batch of at most `chunk` entries of a hash or array map
/// from where `cursor` stands, calling `each` for each; returns how many.
/// Entries added or removed meanwhile may or may not be seen, as with any
/// walk of a live map.
pub(super) fn next_batch<K: Pod, V: Pod>(
    map: &MapData,
    cursor: &mut Cursor,
    chunk: usize,
    mut each: impl FnMut(&K, &V),
) -> io::Result<usize> {
    let mut chunk = chunk.max(1);
    loop {
        if cursor.done {
            return Ok(0);
        }
        // SAFETY: K and V are Pod: every bit pattern (zeroes too) is valid.
        let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; chunk];
        // SAFETY: as above.
        let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; chunk];
        let mut next = [0u64; 4];
        let mut attr = BatchAttr {
            in_batch: cursor.token.as_ref().map_or(0, |token| token.as_ptr() as u64),
            out_batch: next.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(chunk).unwrap_or(u32::MAX),
            map_fd: map_fd(map),
            ..BatchAttr::default()
        };
        let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let got = attr.count as usize;
        match result {
            Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => {
                // One hash bucket holds more entries than a chunk: nothing
                // was read, try again with room for it.
                chunk *= 2;
                continue;
            }
            // ENOENT: that was the last batch.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => cursor.done = true,
            Err(error) => return Err(error),
            Ok(()) => cursor.token = Some(next),
        }
        for (key, value) in keys.iter().zip(&values).take(got) {
            each(key, value);
        }
        return Ok(got);
    }
}

/// Calls `each` for every entry of a hash or array map, reading `chunk`
/// entries per system call.
pub(super) fn for_each<K: Pod, V: Pod>(
    map: &MapData,
    chunk: usize,
    mut each: impl FnMut(&K, &V),
) -> io::Result<()> {
    let mut cursor = Cursor::default();
    while !cursor.done() {
        next_batch(map, &mut cursor, chunk, &mut each)?;
    }
    Ok(())
}

/// Writes `keys[i]` = `values[i]` in one system call, with `elem_flags`
/// (BPF_ANY but for the test switch of `fault.rs`).
pub(super) fn update<K: Pod, V: Pod>(
    map: &MapData,
    keys: &[K],
    values: &[V],
    elem_flags: u64,
) -> io::Result<()> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    if keys.is_empty() {
        return Ok(());
    }
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: u32::try_from(keys.len()).unwrap_or(u32::MAX),
        map_fd: map_fd(map),
        elem_flags,
        ..BatchAttr::default()
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)?;
    if attr.count as usize != keys.len() {
        return Err(io::Error::other(format!(
            "batch update wrote {} of {} entries",
            attr.count,
            keys.len()
        )));
    }
    Ok(())
}

/// Deletes `keys` from a hash map; keys already gone are skipped. Returns
/// how many were deleted. `elem_flags` as in [`update`].
pub(super) fn delete<K: Pod>(map: &MapData, keys: &[K], elem_flags: u64) -> io::Result<usize> {
    let mut deleted = 0;
    let mut rest = keys;
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: u32::try_from(rest.len()).unwrap_or(u32::MAX),
            map_fd: map_fd(map),
            elem_flags,
            ..BatchAttr::default()
        };
        let result = bpf(BPF_MAP_DELETE_BATCH, &mut attr);
        let done = attr.count as usize;
        deleted += done;
        match result {
            Ok(()) => break,
            // The key after the deleted ones is missing: skip it.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
                rest = rest.get(done + 1..).unwrap_or_default();
            }
            Err(error) => return Err(error),
        }
    }
    Ok(deleted)
}
