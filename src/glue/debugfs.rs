// SPDX-License-Identifier: GPL-2.0

//! The debugfs interface under `/sys/kernel/debug/ikos_kalloc/`.
//!
//! The ABI (file names, formats, errnos) is documented in
//! `Documentation/debugfs-ikos_kalloc.rst`; command parsing lives in
//! `src/abi/` so the host can test it. Every rejected write fails with an
//! errno, changes nothing and logs one (rate-limited) line.

use super::{
    bench, debug,
    debugfs_dir::{ro, rw, wo, DebugfsDir, FileSpec, State},
    errors::{alloc_errno, cache_errno, free_errno, inject_errno, reject, reject_then, Shown},
    heapmap, selftest,
    state::{Handle, Origin},
    stress,
};
use crate::{
    abi::{self, AllocCmd, CachesCmd, InjectCmd, MAX_LINE},
    allocator::{
        config::{MIN_SIZE, NUM_CACHES},
        Flags, FreeError, Heap, ReallocError, BUILTIN_NAMES,
    },
};
use core::ptr::NonNull;
use kernel::{fmt, prelude::*, rbtree::RBTreeNodeReservation, uaccess::UserSliceReader};

/// Every file but the fault-injection ones.
const FILES: [FileSpec; 15] = [
    ro(c"stats", show_stats),
    rw(c"caches", show_caches, write_caches),
    wo(c"alloc", write_alloc),
    wo(c"free", write_free),
    wo(c"realloc", write_realloc),
    wo(c"fill", write_fill),
    wo(c"verify", write_verify),
    ro(c"handles", show_handles),
    ro(c"validate", show_validate),
    rw(c"selftest", show_selftest, write_selftest),
    rw(c"bench", show_bench, write_bench),
    ro(c"heapmap", show_heapmap).sized(heapmap::read_size),
    rw(c"shrink", show_shrink, write_shrink),
    rw(c"stress", show_stress, write_stress),
    rw(c"leaks", show_leaks, write_leaks).sized(debug::leaks_read_size),
];

/// With `fault_injection=1` only.
const FAULT_FILES: [FileSpec; 2] = [wo(c"inject", write_inject), wo(c"scribble", write_scribble)];

/// `/sys/kernel/debug/ikos_kalloc/` and its files. Dropping it removes them
/// all, after the reads and writes in progress.
pub(crate) struct DebugfsFiles {
    _dir: DebugfsDir,
}

impl DebugfsFiles {
    /// Creates `/sys/kernel/debug/ikos_kalloc/` and its files; `inject`
    /// and `scribble` only when `fault_injection` is set.
    pub(crate) fn new(state: &State, fault_injection: bool) -> Result<Self> {
        let extra: &[FileSpec] = if fault_injection { &FAULT_FILES } else { &[] };
        Ok(Self {
            _dir: DebugfsDir::new(c"ikos_kalloc", state, Iterator::chain(FILES.iter(), extra))?,
        })
    }
}

/// Reads one command line (at most [`MAX_LINE`] bytes) from a write.
pub(crate) fn read_line(file: &str, reader: &mut UserSliceReader) -> Result<KVec<u8>> {
    let len = reader.len();
    if len > MAX_LINE {
        return Err(reject(file, EINVAL, &abi::ParseError::TooLong));
    }
    let mut buf = KVec::from_elem(0u8, len, GFP_KERNEL)?;
    reader.read_slice(&mut buf)?;
    Ok(buf)
}

/// The logged `ENOENT` of a command naming a handle that does not exist.
pub(crate) fn no_such_handle(file: &str) -> Error {
    reject(file, ENOENT, &"no such handle")
}

/// Parses with `parse`, turning a parse error into a logged `EINVAL`.
fn parsed<'a, T>(
    file: &str,
    line: &'a [u8],
    parse: fn(&'a [u8]) -> Result<T, abi::ParseError>,
) -> Result<T> {
    parse(line).map_err(|e| reject(file, EINVAL, &e))
}

// ---------------------------------------------------------------- stats ---

fn show_stats(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = k.quiesced(false, |h, _| h.stats());
    let rows: [(&str, u64); 38] = [
        ("heap_size", s.heap_size as u64),
        ("used_bytes", s.used_bytes as u64),
        ("free_bytes", s.free_bytes as u64),
        ("requested_bytes", s.requested_bytes),
        ("usable_bytes", s.usable_bytes as u64),
        ("overhead_bytes", s.overhead_bytes as u64),
        ("largest_free_block", s.largest_free_block as u64),
        ("fragmentation_pct", u64::from(s.fragmentation_pct)),
        ("total_allocs", s.total_allocs),
        ("total_frees", s.total_frees),
        ("active_allocs", s.active_allocs),
        ("failed_allocs", s.failed_allocs),
        ("double_frees", s.double_frees),
        ("invalid_frees", s.invalid_frees),
        ("corruptions", s.corruptions),
        ("slabs_total", s.slabs_total as u64),
        ("slabs_empty", s.slabs_empty as u64),
        ("slabs_partial", s.slabs_partial as u64),
        ("slabs_full", s.slabs_full as u64),
        ("metadata_bytes", s.metadata_bytes as u64),
        ("wrong_cache_frees", s.wrong_cache_frees),
        ("dma_refusals", s.dma_refusals),
        ("requested_total", s.requested_total),
        ("usable_total", s.usable_total),
        ("object_reuses", s.object_reuses),
        ("reuse_pct", u64::from(s.reuse_pct)),
        ("large_allocs", s.large_allocs as u64),
        ("slab_bytes", s.slab_bytes as u64),
        ("magazine_objects", s.magazine_objects),
        ("magazine_bytes", s.magazine_bytes),
        ("depot_objects", s.depot_objects),
        ("fast_allocs", s.fast_allocs),
        ("fast_frees", s.fast_frees),
        ("magazine_refills", s.magazine_refills),
        ("magazine_drains", s.magazine_drains),
        ("redzone_errors", s.redzone_errors),
        ("poison_errors", s.poison_errors),
        ("sanity_errors", s.sanity_errors),
    ];
    for (key, value) in rows {
        writeln!(f, "{key}: {value}")?;
    }
    Ok(())
}

// --------------------------------------------------------------- caches ---

fn show_caches(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "name objsize align active_objs total_objs slabs_empty slabs_partial slabs_full allocs frees magazine_objs debug"
    )?;
    // Formatting into the seq_file buffer never sleeps, so it may run under
    // the spinlock; it is a few dozen short lines.
    k.quiesced(false, |heap, _| {
        for c in heap.caches() {
            writeln!(
                f,
                "{} {} {} {} {} {} {} {} {} {} {} {}",
                c.name(),
                c.object_size,
                c.align,
                c.active_objs,
                c.total_objs,
                c.slabs_empty,
                c.slabs_partial,
                c.slabs_full,
                c.allocs,
                c.frees,
                c.magazine_objs,
                c.debug
            )?;
        }
        Ok(())
    })
}

fn write_caches(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "caches";
    let line = read_line(FILE, reader)?;
    match parsed(FILE, &line, abi::parse_caches)? {
        CachesCmd::Create {
            name,
            object_size,
            align,
        } => {
            let mut heap = k.heap.lock();
            heap.cache_create(name, object_size, align)
                .map(|_| ())
                .map_err(|e| reject(FILE, cache_errno(e), &e))
        }
        CachesCmd::Destroy { name } => {
            let mut heap = k.heap.lock();
            let id = heap
                .cache_by_name(name)
                .ok_or_else(|| reject(FILE, ENOENT, &"no such cache"))?;
            heap.cache_destroy(id)
                .map_err(|e| reject(FILE, cache_errno(e), &e))
        }
        CachesCmd::Debug { name, flags } => {
            let id = k
                .heap
                .lock()
                .cache_by_name(name)
                .ok_or_else(|| reject(FILE, ENOENT, &"no such cache"))?;
            k.set_cache_debug(id, flags)
                .map_err(|e| reject(FILE, cache_errno(e), &e))?;
            pr_info!("caches: {} debug={}\n", name, Shown(&flags));
            Ok(())
        }
    }
}

// ---------------------------------------------------- alloc and friends ---

fn write_alloc(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "alloc";
    let line = read_line(FILE, reader)?;
    let cmd = parsed(FILE, &line, abi::parse_alloc)?;
    let id = match cmd {
        AllocCmd::Sized { id, .. } | AllocCmd::FromCache { id, .. } => id,
    };
    // Allocate the table node before taking any lock: nothing below sleeps.
    let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
    let mut handles = k.handles.lock();
    if handles.get(&id).is_some() {
        return Err(reject(FILE, EEXIST, &"handle ID is live"));
    }
    let (ptr, size, align, origin) = match cmd {
        AllocCmd::Sized {
            size,
            align,
            flags: fl,
            ..
        } => {
            let mut flags = Flags::NONE;
            for (set, bit) in [
                (fl.zero, Flags::ZERO),
                (fl.atomic, Flags::ATOMIC),
                (fl.dma, Flags::DMA),
                (fl.high, Flags::HIGH),
            ] {
                if set {
                    flags = flags.union(bit);
                }
            }
            let p = k
                .alloc(size, align, flags)
                .map_err(|e| reject(FILE, alloc_errno(e), &e))?;
            (p, size, align, Origin::sized(size, align))
        }
        AllocCmd::FromCache { cache, .. } => {
            let mut heap = k.heap.lock();
            let cid = heap
                .cache_by_name(cache)
                .ok_or_else(|| reject(FILE, ENOENT, &"no such cache"))?;
            let info = heap.cache_info(cid.index()).ok_or(ENOENT)?;
            let p = heap
                .cache_alloc(cid)
                .map_err(|e| reject(FILE, alloc_errno(e), &e))?;
            let origin = if cid.index() < NUM_CACHES {
                Origin::Class(cid.index())
            } else {
                Origin::Cache(cid)
            };
            (p, info.object_size, info.align, origin)
        }
    };
    let (offset, usable) = tag_handle(k, id, ptr, size);
    handles.insert(node.into_node(
        id,
        Handle {
            offset,
            size,
            align,
            usable,
            origin,
        },
    ));
    Ok(())
}

/// Names handle `id` as the owner of the allocation at `ptr` (owner
/// tracking; tag = ID + 1, 0 means untagged) and returns the allocation's
/// region offset and usable size (`size` if the allocator does not say).
fn tag_handle(k: &State, id: u64, ptr: NonNull<u8>, size: usize) -> (usize, usize) {
    let mut heap = k.heap.lock();
    heap.set_owner(ptr.as_ptr(), id.wrapping_add(1));
    let usable = heap.usable_size(ptr.as_ptr()).unwrap_or(size);
    (heap.region_offset(ptr.as_ptr()).unwrap_or(0), usable)
}

fn write_free(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "free";
    let line = read_line(FILE, reader)?;
    let id = parsed(FILE, &line, abi::parse_free)?;
    let mut handles = k.handles.lock();
    let h = handles.get(&id).ok_or_else(|| no_such_handle(FILE))?;
    // A free refused on damaged metadata keeps the handle: the allocation
    // is still live for the allocator (and `active_allocs` counts it).
    if let Err(e) = k.release(h) {
        let offset = h.offset;
        return Err(reject_then(FILE, free_errno(e), &e, || {
            if let FreeError::Corrupted(c) = e {
                debug::report_handle_damage(id, offset, &c);
            }
        }));
    }
    handles.remove(&id);
    Ok(())
}

fn write_realloc(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "realloc";
    let line = read_line(FILE, reader)?;
    let cmd = parsed(FILE, &line, abi::parse_realloc)?;
    let mut handles = k.handles.lock();
    let h = handles
        .get_mut(&cmd.id)
        .ok_or_else(|| no_such_handle(FILE))?;
    if let Origin::Cache(_) = h.origin {
        return Err(reject(
            FILE,
            EINVAL,
            &"an object of a custom cache has a fixed size",
        ));
    }
    let old = k.at(h.offset);
    let p = match k.realloc(old.as_ptr(), cmd.size) {
        Ok(Some(p)) => p,
        // The parser refuses size 0, the only way to get no pointer.
        Ok(None) => return Err(EINVAL),
        Err(e @ ReallocError::Alloc(a)) => return Err(reject(FILE, alloc_errno(a), &e)),
        // A handle is a known live allocation: a refusal means damage.
        Err(e @ ReallocError::Free(_)) => return Err(reject(FILE, EIO, &e)),
    };
    (h.offset, h.usable) = tag_handle(k, cmd.id, p, cmd.size);
    // Moved: a new allocation with the default alignment.
    if p != old {
        h.align = MIN_SIZE;
        h.origin = Origin::sized(cmd.size, MIN_SIZE);
    }
    h.size = cmd.size;
    Ok(())
}

/// Runs `op` on the usable bytes of handle `id`. The handles mutex is held
/// throughout, so the allocation cannot be freed underneath.
fn with_handle_bytes(
    k: &State,
    file: &str,
    id: u64,
    op: impl FnOnce(&mut [u8]) -> Result,
) -> Result {
    let handles = k.handles.lock();
    let h = handles.get(&id).ok_or_else(|| no_such_handle(file))?;
    // SAFETY: `h` is a live allocation of `h.usable` bytes in the heap; the
    // handles mutex keeps it live, and handle memory is only ever accessed
    // by these file operations, which all hold that mutex.
    let bytes = unsafe { core::slice::from_raw_parts_mut(k.at(h.offset).as_ptr(), h.usable) };
    op(bytes)
}

fn write_fill(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "fill";
    let line = read_line(FILE, reader)?;
    let c = parsed(FILE, &line, abi::parse_byte_cmd)?;
    with_handle_bytes(k, FILE, c.id, |b| {
        b.fill(c.byte);
        Ok(())
    })
}

/// What `verify` found instead of the expected byte.
struct Mismatch {
    id: u64,
    at: usize,
    found: u8,
    want: u8,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handle {}: byte {} is {:#04x}, expected {:#04x}",
            self.id, self.at, self.found, self.want
        )
    }
}

fn write_verify(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "verify";
    let line = read_line(FILE, reader)?;
    let c = parsed(FILE, &line, abi::parse_byte_cmd)?;
    with_handle_bytes(k, FILE, c.id, |b| {
        match b.iter().enumerate().find(|&(_, &x)| x != c.byte) {
            None => Ok(()),
            Some((at, &found)) => {
                let m = Mismatch {
                    id: c.id,
                    at,
                    found,
                    want: c.byte,
                };
                Err(reject(FILE, EIO, &m))
            }
        }
    })
}

// -------------------------------------------------------------- handles ---

fn write_origin(k: &State, o: Origin, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match o {
        Origin::Class(i) => f.write_str(BUILTIN_NAMES.get(i).copied().unwrap_or("?")),
        Origin::Large => f.write_str("large"),
        // Only custom-cache names need the heap lock, and only briefly.
        Origin::Cache(id) => match k.heap.lock().cache_info(id.index()) {
            Some(c) => f.write_str(c.name()),
            None => f.write_str("?"),
        },
    }
}

fn show_handles(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "id size align usable cache offset")?;
    let handles = k.handles.lock();
    for (id, h) in handles.iter() {
        write!(f, "{} {} {} {} ", id, h.size, h.align, h.usable)?;
        write_origin(k, h.origin, f)?;
        writeln!(f, " {}", h.offset)?;
    }
    Ok(())
}

// ------------------------------------------------------------- validate ---

fn show_validate(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // Lock order: handles, then the CPU caches and the heap (to name the
    // handle behind a report).
    let handles = k.handles.lock();
    let (result, owner) = k.quiesced(false, |heap, mags| {
        let r = mags.and_then(|m| Ok((heap.validate_with(&m)?, m.objects())));
        let owner = r
            .as_ref()
            .err()
            .and_then(|c| debug::handle_of(heap, &handles, c));
        (r, owner)
    });
    drop(handles);
    match result {
        Ok((r, mags)) => {
            writeln!(f, "ok")?;
            writeln!(f, "blocks_checked: {}", r.blocks_checked)?;
            writeln!(f, "free_blocks: {}", r.free_blocks)?;
            writeln!(f, "used_blocks: {}", r.used_blocks)?;
            writeln!(f, "slabs_checked: {}", r.slabs_checked)?;
            writeln!(f, "objects_checked: {}", r.objects_checked)?;
            writeln!(f, "free_list_links: {}", r.free_list_links)?;
            writeln!(f, "slab_free_links: {}", r.slab_free_links)?;
            writeln!(f, "pages_checked: {}", r.pages_checked)?;
            writeln!(f, "bytes_accounted: {}", r.bytes_accounted)?;
            // The depot's objects count as magazine objects (`stats`).
            let mags = mags + r.depot_objects_checked;
            writeln!(f, "magazine_objects_checked: {mags}")
        }
        Err(c) => {
            writeln!(f, "corrupt")?;
            writeln!(f, "problem: {c}")?;
            match owner {
                Some((id, at)) => writeln!(f, "handle: {id} byte: {at}"),
                None => Ok(()),
            }
        }
    }
}

// ------------------------------------------------------------- selftest ---

fn show_selftest(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    k.selftest.lock().write_tap(f)
}

fn write_selftest(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "selftest";
    let line = read_line(FILE, reader)?;
    parsed(FILE, &line, abi::parse_run)?;
    let mut log = k.selftest.lock();
    match selftest::run(&mut log)? {
        0 => Ok(()),
        _ => Err(EIO),
    }
}

// ---------------------------------------------------------------- bench ---

fn show_bench(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    k.bench.lock().write(f)
}

fn write_bench(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "bench";
    let line = read_line(FILE, reader)?;
    let ops = parsed(FILE, &line, abi::parse_bench)?;
    bench::run(&mut k.bench.lock(), ops)
}

// -------------------------------------------------------- heapmap, shrink ---

fn show_heapmap(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    heapmap::show(k, f)
}

fn show_shrink(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (slabs, bytes) = *k.last_shrink.lock();
    writeln!(f, "slabs_released: {slabs}")?;
    writeln!(f, "bytes_reclaimed: {bytes}")
}

fn write_shrink(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "shrink";
    let line = read_line(FILE, reader)?;
    parsed(FILE, &line, abi::parse_run)?;
    let mut last = k.last_shrink.lock();
    // Slabs before, then empty every magazine into the slabs (which returns
    // the slabs that became empty) and drop the empty-slab reserves: the
    // difference is what went back to the large pool.
    let count = |heap: &Heap| {
        let s = heap.stats();
        (s.slabs_total, s.slab_bytes)
    };
    let before = k.quiesced(false, |heap, _| count(heap));
    let after = k.quiesced(true, |heap, _| {
        heap.shrink().map_err(|c| {
            pr_err!("shrink: {}\n", Shown(&c));
            EIO
        })?;
        Ok::<_, Error>(count(heap))
    })?;
    let slabs = before.0.saturating_sub(after.0);
    let bytes = before.1.saturating_sub(after.1);
    pr_info!("shrink: released {} empty slabs, {} bytes\n", slabs, bytes);
    *last = (slabs, bytes);
    Ok(())
}

// --------------------------------------------------------------- stress ---

fn show_stress(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    k.stress.lock().write(f)
}

fn write_stress(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "stress";
    let line = read_line(FILE, reader)?;
    let seconds = parsed(FILE, &line, abi::parse_stress)?;
    stress::run(&mut k.stress.lock(), seconds)
}

// ------------------------------------------------------ leaks, scribble ---

fn show_leaks(k: &State, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    debug::show_leaks(k, f)
}

fn write_leaks(k: &State, reader: &mut UserSliceReader) -> Result {
    debug::write_leaks(k, reader)
}

fn write_scribble(k: &State, reader: &mut UserSliceReader) -> Result {
    debug::write_scribble(k, reader)
}

// --------------------------------------------------------------- inject ---

fn write_inject(k: &State, reader: &mut UserSliceReader) -> Result {
    const FILE: &str = "inject";
    let line = read_line(FILE, reader)?;
    let cmd = parsed(FILE, &line, abi::parse_inject)?;
    let (id, kind) = match cmd {
        InjectCmd::Header(id) => (id, "header"),
        InjectCmd::Freelist(id) => (id, "freelist"),
        InjectCmd::Boundary(id) => (id, "boundary"),
        InjectCmd::Overflow(id, _) => (id, "overflow"),
    };
    let mut handles = k.handles.lock();
    let h = handles.get(&id).ok_or_else(|| no_such_handle(FILE))?;
    let p = k.at(h.offset).as_ptr();
    let mut heap = k.heap.lock();
    let r = match cmd {
        InjectCmd::Header(_) => heap.inject_header(p),
        InjectCmd::Freelist(_) => heap.inject_freelist(p),
        InjectCmd::Boundary(_) => heap.inject_boundary(p),
        InjectCmd::Overflow(_, n) => heap.inject_overflow(p, n),
    };
    // `freelist` frees the handle first: once that happened it is gone,
    // whatever the damage step said.
    let freed = heap.usable_size(p).is_none();
    drop(heap);
    if matches!(cmd, InjectCmd::Freelist(_)) && freed {
        handles.remove(&id);
    }
    let inj = r.map_err(|e| reject(FILE, inject_errno(e), &e))?;
    pr_info!(
        "inject: {} of handle {}: damaged {} at offset {} ({} bytes)\n",
        kind,
        id,
        inj.what,
        inj.offset,
        inj.len
    );
    Ok(())
}
