//! A simulated device under the log, for power-loss tests (written by the power-loss
//! test work; see src/power_loss.rs).
//!
//! Each file has the bytes on the device (`durable`: what a sync made durable; `create`
//! is durable at once, as the real one syncs the file, renames it and syncs the
//! directory), the bytes the running system sees (`cache`: the page cache), and the
//! writes made since the file's last sync, in order. A power loss keeps the device's
//! bytes and, for each write not yet synced, at random: nothing, all of it, or some of
//! its 512-byte sectors.
//!
//! Faults:
//! - [`SimMedia::power_off`] (or [`SimMedia::power_off_after`] a number of operations):
//!   from then on every write, sync, create and remove fails with `EIO` — the machine
//!   lost power and the running process can only fail. Reads still return the cache.
//! - [`SimMedia::fail_next_sync_dropping_pages`]: fsyncgate. The next sync of a file
//!   fails with `EIO` and the device never gets that file's unsynced writes, while the
//!   page cache keeps showing them until the power is lost (the nastier real case: a
//!   later process reads bytes that are not on the device). Later writes and syncs work.
//! - [`SimMedia::fail_next_sync_keeping_pages`]: the next sync fails with `EIO` but the
//!   writes stay pending: they may still reach the device (a later sync of the file, or
//!   at random at power loss), as when the kernel writes the pages back later.
//! - [`SimMedia::fail_next_create`]: the next segment creation fails with `ENOSPC`
//!   (preallocated segments still take writes on a full disk; a new one does not fit).
//!
//! Randomness comes from [`SimRng`] (splitmix64), so a seed reproduces every choice.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use super::media::{Media, SegmentFile};
use crate::sync::Mutex;

/// A small deterministic PRNG (splitmix64).
#[derive(Clone, Debug)]
pub(crate) struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// An independent generator derived from this one (for another thread).
    pub fn fork(&mut self) -> SimRng {
        SimRng(self.next_u64())
    }
}

/// The sector size a torn write is made of.
pub(crate) const SECTOR: u64 = 512;

#[derive(Clone, Default)]
struct Inode {
    /// On the device.
    durable: Vec<u8>,
    /// What reads return.
    cache: Vec<u8>,
    /// Writes since the last sync, in order: offset and bytes.
    pending: Vec<(u64, Vec<u8>)>,
}

/// Applies `data` at `off` in `buf`, growing it with zeros as needed.
fn put(buf: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = usize::try_from(off).unwrap_or(usize::MAX);
    let end = off.saturating_add(data.len());
    if buf.len() < end {
        buf.extend_from_slice(&vec![0u8; end - buf.len()]);
    }
    if let Some(dst) = buf.get_mut(off..end) {
        dst.copy_from_slice(data);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SyncFault {
    DropPages,
    KeepPages,
}

/// Counters of what the device was asked to do, for test diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SimStats {
    pub writes: u64,
    pub syncs: u64,
    pub creates: u64,
    /// Operations refused because the power was off.
    pub refused: u64,
    /// Syncs failed by an injected fault.
    pub failed_syncs: u64,
    /// Creates failed by an injected fault.
    pub failed_creates: u64,
    /// What the last power loss did to the unsynced writes.
    pub lost_writes: u64,
    pub applied_writes: u64,
    pub torn_writes: u64,
}

#[derive(Default)]
struct Device {
    names: BTreeMap<String, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    off: bool,
    /// Mutating operations so far (writes, syncs, creates, removes).
    ops: u64,
    /// The power goes off at this operation (which fails).
    off_at: Option<u64>,
    sync_fault: Option<SyncFault>,
    /// The next this many creates fail with `ENOSPC`.
    create_failures: u64,
    /// Creates that fail once the armed sync fault fires.
    create_failures_after_sync_fault: u64,
    stats: SimStats,
    /// Syncs succeed and persist nothing.
    lying: bool,
}

impl Device {
    /// Counts a mutating operation; fails it if the power is (or now goes) off.
    fn op(&mut self) -> io::Result<()> {
        if !self.off {
            self.ops += 1;
            if self.off_at.is_some_and(|at| self.ops >= at) {
                self.off = true;
            }
        }
        if self.off {
            self.stats.refused += 1;
            return Err(io::Error::from_raw_os_error(libc_eio()));
        }
        Ok(())
    }

    fn inode(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "stale simulated file"))
    }
}

const fn libc_eio() -> i32 {
    5
}

const fn libc_enospc() -> i32 {
    28
}

/// A simulated directory of segment files on a device that can lose power. Clones
/// share the device.
#[derive(Clone, Default)]
pub(crate) struct SimMedia {
    dev: Arc<Mutex<Device>>,
}

impl SimMedia {
    pub fn new() -> SimMedia {
        SimMedia::default()
    }

    /// From now on every write, sync, create and remove fails with `EIO`.
    pub fn power_off(&self) {
        self.dev.lock().off = true;
    }

    /// The power goes off at the `n`-th mutating operation from now (that operation
    /// already fails); `n` = 1 is the next one.
    pub fn power_off_after(&self, n: u64) {
        let mut d = self.dev.lock();
        d.off_at = Some(d.ops + n.max(1));
    }

    pub fn is_off(&self) -> bool {
        self.dev.lock().off
    }

    /// fsyncgate: the next sync fails with `EIO`; its file's unsynced writes never reach
    /// the device, but reads keep returning them until the power is lost.
    pub fn fail_next_sync_dropping_pages(&self) {
        self.dev.lock().sync_fault = Some(SyncFault::DropPages);
    }

    /// The next sync fails with `EIO`; the writes it covered stay pending and may still
    /// reach the device.
    pub fn fail_next_sync_keeping_pages(&self) {
        self.dev.lock().sync_fault = Some(SyncFault::KeepPages);
    }

    /// Whether an armed sync fault has not fired yet.
    pub fn sync_fault_pending(&self) -> bool {
        self.dev.lock().sync_fault.is_some()
    }

    /// The next create fails with `ENOSPC`, leaving nothing behind.
    pub fn fail_next_create(&self) {
        self.dev.lock().create_failures += 1;
    }

    /// Once the armed sync fault fires, the next `n` creates fail with `ENOSPC` (a full
    /// disk: the failed sync's new segment cannot be made, while writes into
    /// preallocated segments still work).
    pub fn fail_creates_after_the_failed_sync(&self, n: u64) {
        self.dev.lock().create_failures_after_sync_fault = n;
    }

    /// Disarms every injected fault not yet fired (the power stays as it is).
    pub fn clear_faults(&self) {
        let mut d = self.dev.lock();
        d.sync_fault = None;
        d.create_failures = 0;
        d.create_failures_after_sync_fault = 0;
    }

    pub fn stats(&self) -> SimStats {
        self.dev.lock().stats
    }

    /// Files, their sizes and how many writes of each are not yet on the device.
    pub fn describe(&self) -> String {
        let d = self.dev.lock();
        let mut out = String::new();
        for (name, id) in &d.names {
            if let Some(i) = d.inodes.get(id) {
                let differs = i.cache != i.durable;
                out.push_str(&format!(
                    "{name}: {} bytes, {} unsynced writes{}\n",
                    i.cache.len(),
                    i.pending.len(),
                    if differs {
                        ", cache differs from device"
                    } else {
                        ""
                    }
                ));
            }
        }
        out.push_str(&format!("{:?}", d.stats));
        out
    }

    /// The device after the power was lost and came back: each file holds its durable
    /// bytes plus, for each write not yet synced (in order), at random nothing, all of it,
    /// or some of its sectors. The new device is on, has no faults armed, and shares
    /// nothing with this one.
    pub fn after_power_loss(&self, rng: &mut SimRng) -> SimMedia {
        self.rebuilt(|bytes, off, data, stats| match rng.below(3) {
            0 => stats.lost_writes += 1,
            1 => {
                stats.applied_writes += 1;
                put(bytes, off, data);
            }
            _ => {
                stats.torn_writes += 1;
                // Sectors are aligned to the file, not to the write.
                let end = off + data.len() as u64;
                let mut s = off / SECTOR * SECTOR;
                while s < end {
                    let lo = s.max(off);
                    let hi = (s + SECTOR).min(end);
                    if rng.chance(1, 2) {
                        let a = (lo - off) as usize;
                        let b = (hi - off) as usize;
                        put(bytes, lo, data.get(a..b).unwrap_or_default());
                    }
                    s += SECTOR;
                }
            }
        })
    }

    /// The device after a power loss that kept no unsynced write at all.
    pub fn synced_only(&self) -> SimMedia {
        self.rebuilt(|_, _, _, stats| stats.lost_writes += 1)
    }

    /// From now on syncs report success and make nothing durable (a lying device).
    pub fn lie_about_syncs(&self) {
        self.dev.lock().lying = true;
    }

    /// A new device holding each file's durable bytes and what `pending` makes of each
    /// unsynced write.
    fn rebuilt(
        &self,
        mut pending: impl FnMut(&mut Vec<u8>, u64, &[u8], &mut SimStats),
    ) -> SimMedia {
        let d = self.dev.lock();
        let mut stats = SimStats::default();
        let mut next = Device {
            next_inode: d.next_inode,
            ..Device::default()
        };
        for (name, id) in &d.names {
            let Some(i) = d.inodes.get(id) else { continue };
            let mut bytes = i.durable.clone();
            for (off, data) in &i.pending {
                pending(&mut bytes, *off, data, &mut stats);
            }
            next.names.insert(name.clone(), *id);
            next.inodes.insert(
                *id,
                Inode {
                    durable: bytes.clone(),
                    cache: bytes,
                    pending: Vec::new(),
                },
            );
        }
        next.stats = stats;
        SimMedia {
            dev: Arc::new(Mutex::new(next)),
        }
    }

    /// The bytes reads of `name` return now (the page cache view).
    pub fn cached(&self, name: &str) -> Option<Vec<u8>> {
        let d = self.dev.lock();
        let id = d.names.get(name)?;
        d.inodes.get(id).map(|i| i.cache.clone())
    }

    /// The bytes of `name` on the device.
    pub fn durable(&self, name: &str) -> Option<Vec<u8>> {
        let d = self.dev.lock();
        let id = d.names.get(name)?;
        d.inodes.get(id).map(|i| i.durable.clone())
    }
}

struct SimFile {
    dev: Arc<Mutex<Device>>,
    inode: u64,
    write: bool,
}

impl SegmentFile for SimFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let mut d = self.dev.lock();
        let i = d.inode(self.inode)?;
        let src = usize::try_from(off)
            .ok()
            .and_then(|o| i.cache.get(o..o.checked_add(buf.len())?));
        match src {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of a simulated file",
            )),
        }
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        if !self.write {
            return Err(io::Error::from_raw_os_error(9)); // EBADF
        }
        let mut d = self.dev.lock();
        d.op()?;
        d.stats.writes += 1;
        let i = d.inode(self.inode)?;
        put(&mut i.cache, off, buf);
        i.pending.push((off, buf.to_vec()));
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut d = self.dev.lock();
        d.op()?;
        d.stats.syncs += 1;
        if d.lying {
            return Ok(());
        }
        let fault = d.sync_fault.take();
        if fault.is_some() {
            d.stats.failed_syncs += 1;
            d.create_failures += std::mem::take(&mut d.create_failures_after_sync_fault);
        }
        let i = d.inode(self.inode)?;
        match fault {
            Some(SyncFault::DropPages) => {
                // The device lost them; the cache still shows them until power loss.
                i.pending.clear();
                Err(io::Error::from_raw_os_error(libc_eio()))
            }
            Some(SyncFault::KeepPages) => Err(io::Error::from_raw_os_error(libc_eio())),
            None => {
                for (off, data) in std::mem::take(&mut i.pending) {
                    put(&mut i.durable, off, &data);
                }
                Ok(())
            }
        }
    }

    fn len(&self) -> io::Result<u64> {
        let mut d = self.dev.lock();
        Ok(d.inode(self.inode)?.cache.len() as u64)
    }
}

impl Media for SimMedia {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.dev.lock().names.keys().cloned().collect())
    }

    fn open(&self, name: &str, write: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let d = self.dev.lock();
        let inode = *d.names.get(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no simulated file {name}"))
        })?;
        Ok(Arc::new(SimFile {
            dev: Arc::clone(&self.dev),
            inode,
            write,
        }))
    }

    fn create(&self, name: &str, header: &[u8], len: u64) -> io::Result<()> {
        let mut d = self.dev.lock();
        d.op()?;
        if d.create_failures > 0 {
            d.create_failures -= 1;
            d.stats.failed_creates += 1;
            return Err(io::Error::from_raw_os_error(libc_enospc()));
        }
        d.stats.creates += 1;
        // vec! of zeros is one zeroed allocation (`resize` is a byte loop in debug builds).
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).max(header.len())];
        if let Some(h) = bytes.get_mut(..header.len()) {
            h.copy_from_slice(header);
        }
        let id = d.next_inode;
        d.next_inode += 1;
        d.inodes.insert(
            id,
            Inode {
                durable: bytes.clone(),
                cache: bytes,
                pending: Vec::new(),
            },
        );
        d.names.insert(name.to_string(), id);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut d = self.dev.lock();
        d.op()?;
        match d.names.remove(name) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no simulated file {name}"),
            )),
        }
    }
    fn path(&self, name: &str) -> std::path::PathBuf {
        // No file system: the name alone, marked as simulated.
        std::path::PathBuf::from(format!("<simulated>/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(m: &SimMedia, name: &str) -> Arc<dyn SegmentFile> {
        m.open(name, true).unwrap()
    }

    #[test]
    fn synced_writes_survive_and_unsynced_ones_may_not() {
        let m = SimMedia::new();
        m.create("a", b"HEAD", 4096).unwrap();
        let f = file(&m, "a");
        f.write_at(b"one", 10).unwrap();
        f.sync().unwrap();
        f.write_at(b"two", 20).unwrap();
        let mut buf = [0u8; 3];
        f.read_at(&mut buf, 20).unwrap();
        assert_eq!(&buf, b"two");
        let mut seen = [false; 2];
        for seed in 0..64 {
            let after = m.after_power_loss(&mut SimRng::new(seed));
            let bytes = after.durable("a").unwrap();
            assert_eq!(bytes.len(), 4096);
            assert_eq!(&bytes[..4], b"HEAD");
            assert_eq!(&bytes[10..13], b"one", "seed {seed}");
            seen[usize::from(&bytes[20..23] == b"two")] = true;
            assert_eq!(after.cached("a"), Some(bytes));
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn torn_writes_keep_whole_sectors_only() {
        let m = SimMedia::new();
        m.create("a", b"", 8 * SECTOR).unwrap();
        let f = file(&m, "a");
        let data = vec![0xAB; (5 * SECTOR) as usize];
        f.write_at(&data, SECTOR / 2).unwrap();
        let mut torn = false;
        for seed in 0..64 {
            let after = m.after_power_loss(&mut SimRng::new(seed));
            let bytes = after.durable("a").unwrap();
            for s in bytes.chunks(SECTOR as usize) {
                let written = s.iter().filter(|&&b| b == 0xAB).count();
                // A sector is written whole or not at all (within the write's range).
                assert!(written == 0 || s.iter().all(|&b| b == 0xAB) || written == 256);
            }
            let sectors = bytes
                .chunks(SECTOR as usize)
                .filter(|s| s.contains(&0xAB))
                .count();
            torn |= sectors > 0 && sectors < 6;
            assert_eq!(
                after.stats().lost_writes
                    + after.stats().applied_writes
                    + after.stats().torn_writes,
                1
            );
        }
        assert!(torn);
    }

    #[test]
    fn power_off_fails_every_mutation_but_reads() {
        let m = SimMedia::new();
        m.create("a", b"HEAD", 64).unwrap();
        let f = file(&m, "a");
        m.power_off_after(2);
        f.write_at(b"x", 8).unwrap();
        assert_eq!(f.write_at(b"y", 9).unwrap_err().raw_os_error(), Some(5));
        assert!(f.sync().is_err());
        assert!(m.create("b", b"", 64).is_err());
        assert!(m.remove("a").is_err());
        let mut buf = [0u8; 1];
        f.read_at(&mut buf, 8).unwrap();
        assert_eq!(&buf, b"x");
        assert!(m.is_off());
        assert!(!m.after_power_loss(&mut SimRng::new(1)).is_off());
    }

    #[test]
    fn fsyncgate_drops_pages_from_the_device_but_not_the_cache() {
        let m = SimMedia::new();
        m.create("a", b"", 64).unwrap();
        let f = file(&m, "a");
        f.write_at(b"lost", 0).unwrap();
        m.fail_next_sync_dropping_pages();
        assert!(f.sync().is_err());
        let mut buf = [0u8; 4];
        f.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"lost", "the cache still shows the dropped write");
        f.write_at(b"kept", 8).unwrap();
        f.sync().unwrap();
        for seed in 0..16 {
            let bytes = m
                .after_power_loss(&mut SimRng::new(seed))
                .durable("a")
                .unwrap();
            assert_eq!(&bytes[..4], &[0; 4]);
            assert_eq!(&bytes[8..12], b"kept");
        }
    }

    #[test]
    fn a_failed_sync_that_keeps_pages_may_still_write_them() {
        let m = SimMedia::new();
        m.create("a", b"", 64).unwrap();
        let f = file(&m, "a");
        f.write_at(b"late", 0).unwrap();
        m.fail_next_sync_keeping_pages();
        assert!(f.sync().is_err());
        f.sync().unwrap();
        assert_eq!(&m.durable("a").unwrap()[..4], b"late");
    }

    #[test]
    fn creates_can_fail_once_the_armed_sync_fails() {
        let m = SimMedia::new();
        m.create("a", b"", 64).unwrap();
        let f = file(&m, "a");
        m.fail_next_sync_dropping_pages();
        m.fail_creates_after_the_failed_sync(2);
        m.create("b", b"", 64).unwrap();
        f.write_at(b"x", 0).unwrap();
        assert!(f.sync().is_err());
        assert_eq!(m.create("c", b"", 64).unwrap_err().raw_os_error(), Some(28));
        assert!(m.create("c", b"", 64).is_err());
        m.create("c", b"", 64).unwrap();
        m.fail_next_create();
        m.fail_next_sync_keeping_pages();
        m.clear_faults();
        m.create("d", b"", 64).unwrap();
        f.sync().unwrap();
        assert_eq!(m.stats().failed_creates, 2);
        assert_eq!(m.stats().failed_syncs, 1);
    }

    #[test]
    fn read_only_handles_refuse_writes_and_reads_past_the_end_fail() {
        let m = SimMedia::new();
        m.create("a", b"HEAD", 8).unwrap();
        let f = m.open("a", false).unwrap();
        assert!(f.write_at(b"x", 0).is_err());
        let mut buf = [0u8; 4];
        assert!(f.read_at(&mut buf, 6).is_err());
        assert_eq!(f.len().unwrap(), 8);
        m.fail_next_create();
        assert!(m.create("b", b"", 8).is_err());
        assert_eq!(m.list().unwrap(), vec!["a".to_string()]);
    }
}
