// SPDX-License-Identifier: GPL-2.0

//! The `churn` and `read` modes of the concurrency test: writers working
//! on their own handle IDs, readers of every readable file.

use std::time::{Duration, Instant};

use crate::kfile::{self, Histogram, Rng};
use crate::Opts;

/// Handles per churn process.
const SLOTS: u64 = 64;

/// One live handle of this process: its ID, size and the byte it holds.
#[derive(Clone, Copy)]
struct Live {
    id: u64,
    size: u64,
    byte: u8,
}

/// Alloc / fill / verify / free / realloc-like churn on IDs
/// `o.ids..o.ids + 2 * SLOTS`; false on a failed verify or an errno other
/// than ENOMEM.
pub(crate) fn churn(o: &Opts, limit: Duration) -> bool {
    let mut r = Rng::new(o.seed ^ o.ids);
    let mut slots: Vec<Option<Live>> = vec![None; SLOTS as usize];
    let mut hist = Histogram::default();
    let (mut bad, mut verify_failures) = (0u64, 0u64);
    let op = |file: &str, line: String, hist: &mut Histogram, bad: &mut u64| {
        let res = kfile::write(&o.dir, file, line.as_bytes());
        hist.add(res);
        if !matches!(res, Ok(()) | Err("ENOMEM")) {
            *bad += 1;
            eprintln!("kalloc-fuzz: churn {file} <- {line}: {res:?}");
        }
        res.is_ok()
    };
    let start = Instant::now();
    while start.elapsed() < limit {
        let i = r.below(SLOTS) as usize;
        match slots[i] {
            None => {
                let size = if r.one_in(5) {
                    4097 + r.below(60_000)
                } else {
                    1 + r.below(4096)
                };
                let id = o.ids + i as u64;
                if op("alloc", format!("{id} {size}"), &mut hist, &mut bad) {
                    let byte = r.next() as u8;
                    op("fill", format!("{id} {byte}"), &mut hist, &mut bad);
                    slots[i] = Some(Live { id, size, byte });
                }
            }
            Some(l) => {
                let verified =
                    kfile::write(&o.dir, "verify", format!("{} {}", l.id, l.byte).as_bytes());
                hist.add(verified);
                if verified.is_err() {
                    verify_failures += 1;
                    eprintln!(
                        "kalloc-fuzz: churn verify {} {}: {verified:?}",
                        l.id, l.byte
                    );
                }
                if r.one_in(3) {
                    // Realloc-like: a bigger or smaller copy under the
                    // other ID of the slot, then the old one goes.
                    let id = if l.id < o.ids + SLOTS {
                        l.id + SLOTS
                    } else {
                        l.id - SLOTS
                    };
                    let size = (l.size * (1 + r.below(3)) / 2).max(1);
                    if op("alloc", format!("{id} {size}"), &mut hist, &mut bad) {
                        op("fill", format!("{id} {}", l.byte), &mut hist, &mut bad);
                        op("free", format!("{}", l.id), &mut hist, &mut bad);
                        slots[i] = Some(Live { id, size, ..l });
                    }
                } else {
                    op("free", format!("{}", l.id), &mut hist, &mut bad);
                    slots[i] = None;
                }
            }
        }
    }
    for l in slots.iter().flatten() {
        op("free", format!("{}", l.id), &mut hist, &mut bad);
    }
    println!(
        "kalloc-fuzz: churn ids {}: ops {} verify failures {verify_failures} bad errnos {bad} ({})",
        o.ids,
        hist.total(),
        hist.line()
    );
    bad == 0 && verify_failures == 0
}

/// Reads `stats`, `caches`, `handles` and `validate` in a loop; false if
/// `validate` ever says `corrupt` or a read fails.
pub(crate) fn read(o: &Opts, limit: Duration) -> bool {
    let (mut reads, mut bad) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < limit {
        for f in ["stats", "caches", "handles", "validate"] {
            reads += 1;
            match kfile::read(&o.dir, f) {
                Some(t) if f == "validate" && !t.starts_with("ok") => {
                    bad += 1;
                    eprintln!("kalloc-fuzz: read validate: {t}");
                }
                Some(_) => {}
                None => bad += 1,
            }
        }
    }
    println!("kalloc-fuzz: read ops {reads} failures {bad}");
    bad == 0
}
