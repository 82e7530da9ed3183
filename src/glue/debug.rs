// SPDX-License-Identifier: GPL-2.0

//! Kernel side of the debug features (module parameter `debug`): the clock
//! of owner tracking, the debugfs `leaks` and `scribble` files, naming the
//! handle behind a red-zone or poison report, and the unload summary of
//! what was still live.

use super::{
    errors::{inject_errno, reject, Shown},
    state::{Handle, Kalloc},
};
use crate::{
    abi::{self, SCRIBBLE_BYTE},
    allocator::{Corruption, CorruptionKind, Heap, LiveAlloc},
};
use kernel::{
    fmt,
    prelude::*,
    rbtree::RBTree,
    sync::atomic::Relaxed,
    sync::Arc,
    time::{ClockSource, Monotonic},
    uaccess::UserSliceReader,
};

/// Most allocations the unload summary names one by one.
const EXIT_LISTED: usize = 10;

/// Monotonic time in ns: the clock of owner tracking.
pub(crate) fn now_ns() -> u64 {
    u64::try_from(<Monotonic as ClockSource>::ktime_get()).unwrap_or(0)
}

/// Milliseconds between an owner record's time and now.
fn age_ms(time: u64, now: u64) -> u64 {
    now.saturating_sub(time) / 1_000_000
}

/// Whether a report is about user data (red zone or poison).
fn is_data_damage(c: &Corruption) -> bool {
    matches!(c.kind, CorruptionKind::RedZone | CorruptionKind::Poison)
}

/// Logs which byte of handle `id` (at heap offset `offset`) a red-zone or
/// poison report `c` is about.
pub(crate) fn report_handle_damage(id: u64, offset: usize, c: &Corruption) {
    if is_data_damage(c) {
        pr_err!(
            "handle {}: {} at byte {} of the allocation (bytes found:{})\n",
            id,
            Shown(&c.kind),
            c.offset as isize - offset as isize,
            Shown(&FoundShown(c))
        );
    }
}

/// The bytes a red-zone or poison report found, as ` xx xx ...`.
pub(crate) struct FoundShown<'a>(pub(crate) &'a Corruption);

impl core::fmt::Display for FoundShown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (bytes, n) = self.0.found_bytes();
        for b in bytes.iter().take(n) {
            write!(f, " {b:02x}")?;
        }
        Ok(())
    }
}

/// For `validate`: the handle whose slot or block holds the damage `c`,
/// as `(id, byte offset from the allocation start)`.
pub(crate) fn handle_of(
    heap: &Heap,
    handles: &RBTree<u64, Handle>,
    c: &Corruption,
) -> Option<(u64, isize)> {
    if !is_data_damage(c) {
        return None;
    }
    let obj = heap.object_at(c.offset)?;
    handles
        .iter()
        .find(|(_, h)| h.offset == obj)
        .map(|(id, h)| (*id, c.offset as isize - h.offset as isize))
}

/// The owner column of `leaks` and the unload summary.
struct OwnerShown(u64);

impl core::fmt::Display for OwnerShown {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("-"),
            tag => write!(f, "handle:{}", tag - 1),
        }
    }
}

/// The cache column: a cache name or `large`.
fn cache_name(heap: &Heap, l: &LiveAlloc, f: &mut dyn core::fmt::Write) -> core::fmt::Result {
    match l.cache.and_then(|i| heap.cache_info(i)) {
        Some(c) => f.write_str(c.name()),
        None => f.write_str("large"),
    }
}

/// One allocation as `OWNER SEQ AGE_MS SIZE CACHE OFFSET`.
struct LiveShown<'a>(&'a Heap, &'a LiveAlloc, u64);

impl core::fmt::Display for LiveShown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let l = self.1;
        write!(
            f,
            "{} {} {} {} ",
            OwnerShown(l.owner.tag),
            l.owner.seq,
            age_ms(l.owner.time, self.2),
            l.size
        )?;
        cache_name(self.0, l, f)?;
        write!(f, " {}", l.offset)
    }
}

/// Module exit, before the handles are freed: what is still live.
pub(crate) fn exit_summary(heap: &Heap) {
    if !heap.tracking() {
        return;
    }
    let now = now_ns();
    let (mut n, mut bytes, mut tagged) = (0usize, 0usize, 0usize);
    let walk = heap.for_each_live(|l| {
        if n < EXIT_LISTED {
            pr_info!("exit: still live: {}\n", Shown(&LiveShown(heap, l, now)));
        }
        n += 1;
        bytes += l.size;
        tagged += usize::from(l.owner.tag != 0);
    });
    match walk {
        Ok(_) => pr_info!(
            "exit: {} tracked allocations still live at unload ({} bytes; {} debugfs handles, {} other; {} listed)\n",
            n,
            bytes,
            tagged,
            n - tagged,
            n.min(EXIT_LISTED)
        ),
        Err(c) => pr_err!("exit: live-allocation walk stopped: {}\n", Shown(&c)),
    }
}

/// `leaks` (r): tracked live allocations older than the threshold.
/// The bytes a read of `leaks` takes at most, about: a line per live
/// allocation while owners are tracked (the size hint of its buffer).
pub(crate) fn leaks_read_size(k: &Arc<Kalloc>) -> usize {
    let heap = k.heap.lock();
    if heap.tracking() {
        256 + (heap.stats().active_allocs as usize).saturating_mul(128)
    } else {
        0
    }
}

pub(crate) fn show_leaks(k: &Kalloc, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let threshold = u64::from(k.leaks_threshold_ms.load(Relaxed));
    let heap = k.heap.lock();
    let tracking = if heap.tracking() { "on" } else { "off" };
    writeln!(f, "# threshold_ms: {threshold} owner_tracking: {tracking}")?;
    writeln!(f, "owner seq age_ms size cache offset")?;
    let now = now_ns();
    let (mut listed, mut res) = (0usize, Ok(()));
    let walk = heap.for_each_live(|l| {
        if res.is_ok() && age_ms(l.owner.time, now) >= threshold {
            listed += 1;
            res = writeln!(f, "{}", LiveShown(&heap, l, now));
        }
    });
    res?;
    match walk {
        Ok(n) => writeln!(f, "# listed: {listed} tracked_live: {n}"),
        Err(c) => writeln!(f, "# walk stopped: {c}"),
    }
}

/// `leaks` (w): `threshold_ms N`.
pub(crate) fn write_leaks(k: &Kalloc, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "leaks";
    let line = super::debugfs::read_line(FILE, reader)?;
    let ms = abi::parse_leaks(&line).map_err(|e| reject(FILE, EINVAL, &e))?;
    k.leaks_threshold_ms.store(ms, Relaxed);
    Ok(())
}

/// `scribble` (w, only with `fault_injection=1`): `ID OFFSET LEN [free]`.
pub(crate) fn write_scribble(k: &Kalloc, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "scribble";
    let line = super::debugfs::read_line(FILE, reader)?;
    let c = abi::parse_scribble(&line).map_err(|e| reject(FILE, EINVAL, &e))?;
    let mut handles = k.handles.lock();
    let h = handles
        .get(&c.id)
        .ok_or_else(|| super::debugfs::no_such_handle(FILE))?;
    let p = k.at(h.offset).as_ptr();
    let mut heap = k.heap.lock();
    let r = heap.scribble(p, c.offset, c.len, SCRIBBLE_BYTE, c.after_free);
    let freed = heap.usable_size(p).is_none();
    drop(heap);
    if c.after_free && freed {
        handles.remove(&c.id);
    }
    let inj = r.map_err(|e| reject(FILE, inject_errno(e), &e))?;
    pr_info!(
        "scribble: handle {}{}: wrote {} bytes of {:#04x} at byte {} (heap offset {})\n",
        c.id,
        if c.after_free {
            " after freeing it"
        } else {
            ""
        },
        inj.len,
        SCRIBBLE_BYTE,
        c.offset,
        inj.offset
    );
    Ok(())
}
