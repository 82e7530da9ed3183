// SPDX-License-Identifier: GPL-2.0

//! `kalloc-replay [--heap-size BYTES] [--runs N] [--extra-classes LIST] TRACE`:
//! replays an allocation trace
//! (format: `ikos_kalloc::host::trace`) against the ikos core, on a heap of
//! `--heap-size` bytes (default 256 MiB, page aligned, from `std::alloc`),
//! and against the system allocator, and prints ops, ns/op, peak live
//! bytes, peak footprint, fragmentation (footprint / peak live) and failed
//! ops for both. Each replay runs `--runs` times (default 3) and the fastest
//! time is reported, to damp noise on a shared machine; all other figures
//! are identical between runs.
//!
//! Footprint, two ways:
//!
//! * `footprint` on the `ikos` line: the highest byte ever handed out
//!   (offset + usable size), counted from the start of the region, so it
//!   includes the whole metadata area of the `--heap-size` heap (its page
//!   map covers all of it, whatever the trace uses).
//! * `heap needed`: the smallest region (page multiple, metadata area
//!   included) whose block area reaches the highest block byte handed out
//!   above, i.e. the memory a heap needs to serve the trace. The trace is
//!   then replayed on a heap of exactly that size to check it: `failed`
//!   must be the same as on the big heap (0 for the shipped traces); if
//!   not, the size grows a page at a time (the highest object handed out
//!   can sit in a slab span whose unused tail reaches further), after 8
//!   pages by 1/64, at most 24 times. The size that passes is reported
//!   as `heap needed`, and its `fragmentation` is `heap needed / peak
//!   live`.
//!
//! `--extra-classes 48,96,192,384` is a what-if: requests that fit one of
//! these object sizes (multiples of 8 below 4096, not powers of two) and
//! would round up to a larger built-in class go to a custom cache of that
//! size (`replay_ikos_with_classes`), to measure what a finer class table
//! would do to the footprint. The allocator itself has the 10 power-of-two
//! classes of the design. Its ns/op include the what-if bookkeeping (a hash
//! map of the objects in what-if classes).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::process::ExitCode;
use std::ptr::NonNull;

use ikos_kalloc::allocator::Heap;
use ikos_kalloc::host::replay::{
    heap_bytes_for_block_top, replay_ikos_with_classes, replay_system, Prepared, Report,
};
use ikos_kalloc::host::trace::parse;

const USAGE: &str =
    "usage: kalloc-replay [--heap-size BYTES] [--runs N] [--extra-classes SIZE,SIZE,...] TRACE";
const PAGE: usize = 4096;

/// Parses `256M`, `1G`, `65536`, `64K` (binary units).
fn parse_bytes(s: &str) -> Option<usize> {
    let (num, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<usize>().ok()?.checked_mul(1usize << shift)
}

fn milli(v: Option<u128>) -> String {
    v.map_or_else(
        || "n/a".to_string(),
        |m| format!("{}.{:03}", m / 1000, m % 1000),
    )
}

fn print(name: &str, r: &Report) {
    println!(
        "{name:<7} ops {:>8}  ns/op {:>6}  peak_live {:>11}  footprint {:>11}  fragmentation {:>6}  failed {}",
        r.ops,
        r.ns_per_op(),
        r.peak_live,
        r.footprint.map_or_else(|| "n/a".to_string(), |f| f.to_string()),
        milli(r.fragmentation_milli()),
        r.failed
    );
}

fn run(args: &[String]) -> Result<(), String> {
    let mut heap_size = 256usize << 20;
    let mut runs = 3usize;
    let mut extra = Vec::new();
    let mut trace = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--heap-size" => {
                let v = it.next().ok_or("--heap-size needs a value")?;
                heap_size = parse_bytes(v).ok_or_else(|| format!("bad --heap-size '{v}'"))?;
            }
            "--runs" => {
                let v = it.next().ok_or("--runs needs a value")?;
                runs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad --runs '{v}'"))?;
            }
            "--extra-classes" => {
                let v = it.next().ok_or("--extra-classes needs a value")?;
                extra = v
                    .split(',')
                    .map(|x| x.parse::<usize>().ok())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("bad --extra-classes '{v}'"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if trace.is_none() && !a.starts_with('-') => trace = Some(a.clone()),
            _ => return Err(format!("unexpected argument '{a}'\n{USAGE}")),
        }
    }
    let path = trace.ok_or(USAGE)?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let ops = parse(&text).map_err(|e| format!("{path}: {e}"))?;
    let prepared = Prepared::new(&ops);

    let (ikos, sys, meta) = replay_on(heap_size, &prepared, runs, &extra)?;
    println!(
        "trace {path}: {} ops, heap {heap_size} bytes, best of {runs} runs",
        ops.len()
    );
    if !extra.is_empty() {
        println!("what-if: extra size classes {extra:?} (custom caches)");
    }
    print("ikos", &ikos);
    print("system", &sys.unwrap_or_default());
    // The footprint counts from the heap start, so it includes the
    // metadata area (TLSF index, cache descriptors, page map), which
    // grows with --heap-size; show its share separately.
    let block_top = ikos.footprint.unwrap_or(0).saturating_sub(meta);
    let blocks_only = Report {
        footprint: Some(block_top),
        ..ikos
    };
    println!(
        "ikos metadata area {meta} bytes; fragmentation without it {}",
        milli(blocks_only.fragmentation_milli())
    );
    let sys_ns = sys.map_or(0, |s| s.elapsed_ns);
    let ratio = (ikos.elapsed_ns * 1000).checked_div(sys_ns);
    println!("ikos/system time {}", milli(ratio));
    // The memory the trace needs: the smallest heap whose block area
    // reaches `block_top`, checked by replaying on a heap of that size.
    let mut need = heap_bytes_for_block_top(block_top).ok_or("heap size overflow")?;
    for attempt in 0..24 {
        let (r, _, m) = replay_on(need, &prepared, 0, &extra)?;
        if r.failed == ikos.failed {
            let fit = Report {
                footprint: Some(need),
                ..r
            };
            println!(
                "ikos heap needed {need} bytes (metadata area {m}, highest byte handed out {}, failed {}): fragmentation {}",
                r.footprint.unwrap_or(0),
                r.failed,
                milli(fit.fragmentation_milli())
            );
            return Ok(());
        }
        // A slab span at the top reaches past the highest object handed
        // out; a page at a time covers that, then bigger steps.
        let step = if attempt < 8 { PAGE } else { need / 64 };
        need = (need + step).next_multiple_of(PAGE);
    }
    Err(format!(
        "no heap up to {need} bytes replays {path} without failures"
    ))
}

/// Replays on a fresh heap of `heap_size` bytes; `runs` timed runs of both
/// allocators (best time kept), or with `runs == 0` one ikos replay and no
/// system replay. `extra` are what-if classes (`--extra-classes`).
/// Returns the ikos and system reports and the heap's metadata bytes.
fn replay_on(
    heap_size: usize,
    prepared: &Prepared,
    runs: usize,
    extra: &[usize],
) -> Result<(Report, Option<Report>, usize), String> {
    let layout = Layout::from_size_align(heap_size, PAGE)
        .ok()
        .filter(|l| l.size() > 0)
        .ok_or_else(|| format!("bad --heap-size {heap_size}"))?;
    // SAFETY: non-zero size.
    let region = NonNull::new(unsafe { alloc_zeroed(layout) })
        .ok_or_else(|| format!("cannot allocate a {heap_size}-byte region"))?;
    // SAFETY: the region is fresh, exclusively ours, and freed only after
    // the heap is dropped below.
    let heap = unsafe { Heap::new(region, heap_size) };
    let result = match heap {
        Ok(mut heap) => replay_runs(&mut heap, prepared, runs, extra)
            .map(|(ikos, sys)| (ikos, sys, heap.metadata_bytes())),
        Err(e) => Err(format!("heap of {heap_size} bytes: {e:?}")),
    };
    // SAFETY: allocated above with this layout; the heap is gone.
    unsafe { dealloc(region.as_ptr(), layout) };
    result
}

/// The replays of [`replay_on`] on its heap: the ikos report (fastest of
/// `runs`, at least one) and, with `runs > 0`, the system one.
fn replay_runs(
    heap: &mut Heap,
    prepared: &Prepared,
    runs: usize,
    extra: &[usize],
) -> Result<(Report, Option<Report>), String> {
    let ikos = |heap: &mut Heap| {
        replay_ikos_with_classes(heap, prepared, extra)
            .map_err(|e| format!("--extra-classes {extra:?}: {e:?}"))
    };
    let mut best = ikos(heap)?;
    let mut sys = (runs > 0).then(|| replay_system(prepared));
    for _ in 1..runs {
        best.elapsed_ns = best.elapsed_ns.min(ikos(heap)?.elapsed_ns);
        if let Some(s) = sys.as_mut() {
            s.elapsed_ns = s.elapsed_ns.min(replay_system(prepared).elapsed_ns);
        }
    }
    Ok((best, sys))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kalloc-replay: {e}");
            ExitCode::from(2)
        }
    }
}
