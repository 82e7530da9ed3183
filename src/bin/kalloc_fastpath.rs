// SPDX-License-Identifier: GPL-2.0

//! `kalloc-fastpath SIZE N [raw|global|percpu|system|mimalloc] [hold] [holes=K] [batch=K]`: N alloc+free
//! pairs of SIZE bytes on a 64 MiB heap, through the raw `Heap` API
//! (default), the `GlobalAlloc` adapter (its per-thread cache in front of
//! a shared magazine and the heap, each behind a mutex) or a per-CPU
//! magazine (`CpuCache`, the kernel's fast path without its uncontended
//! lock; sizes that are not a size class take the raw path); `system` runs
//! the same loop as `global` on the system allocator (glibc), and
//! `mimalloc` on mimalloc (built with the feature `fastpath-mimalloc`), for
//! comparison. With `hold`, one object of the same size stays allocated
//! during the loop, so a size-class cache keeps its slab; without it,
//! every pair on an otherwise empty cache creates and releases a slab (the
//! core's empty-slab policy). With `holes=K` (raw mode) the heap is 1 GiB
//! and fragmented first with K free blocks in the TLSF index
//! (`host::holes::make_holes`, as the `large_index` bench): the
//! instructions per pair must not grow with K. With `batch=K` (percpu
//! mode) the pairs run in rounds of K allocations and then their K frees,
//! so objects go through magazine refills and drains (the kernel
//! benchmark's `batch64` at K = 1,000). Built to be run under
//! `valgrind --tool=callgrind` twice with different N by
//! `scripts/callgrind-fastpath.sh`, so that setup cost cancels out in the
//! difference of the instruction counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::ExitCode;
use std::ptr::NonNull;

use ikos_kalloc::allocator::{size_class_for, CpuCache, FastFree, Heap};
use ikos_kalloc::host::global_alloc::KallocGlobal;
use ikos_kalloc::host::holes::make_holes;

const HEAP: usize = 64 << 20;
const USAGE: &str =
    "usage: kalloc-fastpath SIZE N [raw|global|percpu|system|mimalloc] [hold] [holes=K] [batch=K]";

/// How the pairs reach the allocator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Raw,
    Global,
    PerCpu,
    System,
    /// Only with the feature `fastpath-mimalloc`.
    #[cfg(feature = "fastpath-mimalloc")]
    Mimalloc,
}

/// N + 1 pairs through a `CpuCache` on the locked heap `h`; with
/// `batch` = K > 1 in rounds of K allocations, then their K frees (the
/// `batch64` workload of the kernel benchmark at K = 1,000).
fn percpu_pairs(h: &mut Heap, size: usize, n: u64, batch: usize) -> u64 {
    // SAFETY: the view is dropped at the end of this function, while the
    // heap (owned by the caller's adapter) lives on.
    let v = unsafe { h.fast_view() };
    let mut cpu = CpuCache::new();
    let mut failed = 0u64;
    let class = size_class_for(size, 8);
    let alloc = |h: &mut Heap, cpu: &mut CpuCache| match class {
        Some(c) => cpu
            .alloc_with(&v, c, size, false, |cc| h.magazine_refill(cc, c))
            .ok(),
        None => cpu
            .alloc_large(&v, black_box(size), 16, false)
            .or_else(|| h.alloc(size)),
    };
    // False when the free failed.
    let free = |h: &mut Heap, cpu: &mut CpuCache, p: NonNull<u8>| {
        let r = cpu.free_with(&v, black_box(p.as_ptr()), |cc, c, keep| {
            let _ = h.magazine_drain(cc, c, keep);
        });
        let parked = r == FastFree::Done || cpu.free_large(&v, p.as_ptr()) == FastFree::Done;
        parked || h.free(p.as_ptr()).is_ok()
    };
    if batch <= 1 {
        // The plain loop, so that pairs pay no batch bookkeeping.
        for _ in 0..=n {
            let Some(p) = alloc(h, &mut cpu) else {
                failed += 1;
                continue;
            };
            if !free(h, &mut cpu, p) {
                failed += 1;
            }
        }
    } else {
        let mut held = Vec::with_capacity(batch);
        let mut done = 0u64;
        while done <= n {
            for _ in 0..batch {
                match alloc(h, &mut cpu) {
                    Some(p) => held.push(p),
                    None => failed += 1,
                }
            }
            for p in held.drain(..) {
                failed += u64::from(!free(h, &mut cpu, p));
            }
            done += batch as u64;
        }
    }
    if h.magazine_flush(&mut cpu).is_err() {
        failed += 1;
    }
    failed
}

/// N + 1 alloc+free pairs of `layout` (non-zero size) through `a`.
/// Returns the number of failed allocations.
fn global_pairs(a: &impl GlobalAlloc, layout: Layout, n: u64) -> u64 {
    let mut failed = 0u64;
    for _ in 0..=n {
        // SAFETY: non-zero size; the pointer is freed with its layout.
        unsafe {
            let p = a.alloc(black_box(layout));
            if p.is_null() {
                failed += 1;
            } else {
                a.dealloc(black_box(p), layout);
            }
        }
    }
    failed
}

/// The `system` and `mimalloc` modes: [`global_pairs`] on another
/// allocator `a`, with the held object (if any) from the same allocator.
fn run_other(a: &impl GlobalAlloc, layout: Layout, n: u64, hold: bool) -> Result<(), String> {
    // SAFETY: non-zero size (checked in `main`); freed below with it.
    let held = hold.then(|| unsafe { a.alloc(layout) });
    if held.is_some_and(|p| p.is_null()) {
        return Err("cannot allocate the held object".into());
    }
    let failed = global_pairs(a, layout, n);
    if let Some(p) = held {
        // SAFETY: allocated above with this layout, not freed yet.
        unsafe { a.dealloc(p, layout) };
    }
    match failed {
        0 => Ok(()),
        failed => Err(format!("{failed} failed operations")),
    }
}

fn run(
    size: usize,
    n: u64,
    mode: Mode,
    hold: bool,
    holes: Option<usize>,
    batch: usize,
) -> Result<(), String> {
    let layout = Layout::from_size_align(size, 8).map_err(|e| e.to_string())?;
    if mode == Mode::System {
        return run_other(&System, layout, n, hold);
    }
    #[cfg(feature = "fastpath-mimalloc")]
    if mode == Mode::Mimalloc {
        return run_other(&mimalloc::MiMalloc, layout, n, hold);
    }
    let global = mode == Mode::Global;
    let g = KallocGlobal::new(if holes.is_some() { 1 << 30 } else { HEAP });
    if let Some(k) = holes {
        if mode != Mode::Raw {
            return Err("holes=K needs the raw mode".into());
        }
        g.with(|h| make_holes(h, k))
            .ok_or("the heap is too small for the holes")?;
    }
    let held = if hold {
        let p = g
            .with(|h| h.alloc(size))
            .ok_or("cannot allocate the held object")?;
        Some(p)
    } else {
        None
    };
    // N + 1 pairs: the first one creates the slab / splits the first
    // block, which is setup common to both runs, not the measured loop.
    let failed = if global {
        global_pairs(&g, layout, n)
    } else if mode == Mode::PerCpu {
        g.with(|h| percpu_pairs(h, size, n, batch))
    } else {
        // One lock for the whole loop: the pairs themselves are lock-free.
        g.with(|h| {
            let mut failed = 0u64;
            for _ in 0..=n {
                match h.alloc(black_box(size)) {
                    Some(p) => {
                        if h.free(black_box(p.as_ptr())).is_err() {
                            failed += 1;
                        }
                    }
                    None => failed += 1,
                }
            }
            failed
        })
    };
    if let Some(p) = held {
        g.with(|h| h.free(p.as_ptr()))
            .map_err(|e| format!("{e:?}"))?;
    }
    if failed > 0 {
        return Err(format!("{failed} failed operations"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut holes = None;
    let mut batch = 1usize;
    while let Some((key, k)) = args.last().and_then(|a| a.split_once('=')) {
        let (Ok(k), "holes" | "batch") = (k.parse::<usize>(), key) else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        if key == "holes" {
            holes = Some(k);
        } else {
            batch = k;
        }
        args.pop();
    }
    let hold = args.last().is_some_and(|a| a == "hold");
    let args = &args[..args.len() - usize::from(hold)];
    let mode = match args.get(2).map(String::as_str) {
        None | Some("raw") => Some(Mode::Raw),
        Some("global") => Some(Mode::Global),
        Some("percpu") => Some(Mode::PerCpu),
        Some("system") => Some(Mode::System),
        #[cfg(feature = "fastpath-mimalloc")]
        Some("mimalloc") => Some(Mode::Mimalloc),
        Some(_) => None,
    };
    let size = args.first().and_then(|s| s.parse::<usize>().ok());
    let n = args.get(1).and_then(|s| s.parse::<u64>().ok());
    let (Some(size), Some(n), Some(mode), true) = (size, n, mode, args.len() <= 3) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if size == 0 || batch == 0 || (batch > 1 && mode != Mode::PerCpu) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(size, n, mode, hold, holes, batch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kalloc-fastpath: {e}");
            ExitCode::FAILURE
        }
    }
}
