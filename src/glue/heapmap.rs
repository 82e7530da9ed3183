// SPDX-License-Identifier: GPL-2.0

//! The debugfs `heapmap` file: one character per page of the heap, then one
//! line per slab with its occupancy (format in the debugfs ABI document;
//! `scripts/heapmap` turns it into a PNG).

use super::state::Kalloc;
use crate::allocator::{Heap, SlabOccupancy};
use kernel::{fmt, sync::Arc};

/// Pages per row of the picture.
const ROW: usize = 64;

/// The bytes a read takes, about: the header, one row per 64 pages and
/// one line per slab (the size hint of `heapmap`'s buffer).
pub(crate) fn read_size(k: &Arc<Kalloc>) -> usize {
    let (pages, slabs) = {
        let heap = k.heap.lock();
        (heap.len() / 4096, heap.stats().slabs_total)
    };
    512 + pages.div_ceil(ROW) * (ROW + 8) + slabs * 64
}

/// Writes the heap map. Runs under the heap lock (fast path paused): it
/// only formats into the seq_file buffer, which never sleeps.
pub(crate) fn show(k: &Kalloc, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    k.quiesced(false, |heap, _| show_locked(heap, f))
}

fn show_locked(heap: &mut Heap, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = heap.stats();
    writeln!(
        f,
        "# one character per 4096-byte page, {ROW} per row, for what holds most of its bytes:"
    )?;
    writeln!(
        f,
        "# M metadata, . free, L large block, 0-9 size-8 .. size-4096 slab, c custom-cache slab"
    )?;
    writeln!(f, "pages: {}", heap.len() / 4096)?;
    writeln!(f, "free_bytes: {}", s.free_bytes)?;
    writeln!(f, "largest_free_block: {}", s.largest_free_block)?;
    writeln!(f, "fragmentation_pct: {}", s.fragmentation_pct)?;
    let mut row = [b' '; ROW];
    let mut err = Ok(());
    let walk = heap.for_each_page(
        |p, u| {
            let col = p % ROW;
            // Symbols are ASCII by construction.
            row[col] = u.symbol() as u8;
            if col == ROW - 1 && err.is_ok() {
                let text = core::str::from_utf8(&row).unwrap_or("?");
                err = writeln!(f, "{:06} {}", p + 1 - ROW, text);
            }
        },
        |_| {},
    );
    err?;
    let pages = heap.len() / 4096;
    if pages % ROW != 0 {
        let text = core::str::from_utf8(&row[..pages % ROW]).unwrap_or("?");
        writeln!(f, "{:06} {}", pages - pages % ROW, text)?;
    }
    if let Err(c) = walk {
        writeln!(f, "# walk stopped: {c}")?;
        return Ok(());
    }
    writeln!(f, "# slab offset cache inuse capacity")?;
    let mut err = Ok(());
    let _ = heap.for_each_page(
        |_, _| {},
        |o: SlabOccupancy| {
            if err.is_ok() {
                let name = heap.cache_info(o.cache);
                let name = name.as_ref().map_or("?", |c| c.name());
                err = writeln!(f, "slab {} {} {} {}", o.offset, name, o.inuse, o.capacity);
            }
        },
    );
    err
}
