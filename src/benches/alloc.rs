// SPDX-License-Identifier: GPL-2.0

//! Host benchmarks (`cargo bench --features bench --bench alloc`): the ikos
//! core (raw `Heap`, no lock; `ikos_percpu`, the kernel's fast path: a
//! per-CPU magazine used without a lock (the kernel uses it with preemption
//! off) and the heap behind a mutex, taken only to refill or drain; and
//! `ikos_global`, the `GlobalAlloc` adapter: per-thread object caches in
//! front of one such magazine layer behind a mutex and the heap mutex)
//! against glibc malloc (`std::alloc::System`) and mimalloc
//! (`mimalloc::MiMalloc` called directly, not installed as the global
//! allocator).
//!
//! Workloads (one criterion group each, throughput in allocator ops):
//!
//! * `pair64`: 64 B alloc + free on an otherwise empty heap;
//! * `pair64_warm`: the same while one other 64 B object stays live (for
//!   ikos this keeps the slab; in `pair64` every pair creates and releases
//!   one, the core's empty-slab policy);
//! * `batch64`: 1,000 allocs of 64 B, then 1,000 frees;
//! * `random`: 1,000 allocs of random sizes 8..=4096 (fixed seed), then
//!   the frees in a shuffled order;
//! * `pair16k`: 16 KiB alloc + free;
//! * `frag_mix`: 10,000 steps over 1,000 slots with random lifetimes, 75 %
//!   small (8..512 B) and 25 % large (4 KiB..64 KiB) allocations;
//! * `large_index`: ikos raw only, alloc + free of 4,200 B with 10, 1,000
//!   and 100,000 free blocks in the TLSF index.
//!
//! Warm-up 1 s and measurement 3 s by default (command-line options of
//! criterion override). `scripts/bench-ratios.py` turns the results into
//! ikos/glibc and ikos/mimalloc ratios.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ikos_kalloc::allocator::{size_class_for, CpuCache, FastFree, FastView, Heap};
use ikos_kalloc::host::global_alloc::KallocGlobal;
use ikos_kalloc::host::holes::{make_holes, HOLE_PROBE};
use mimalloc::MiMalloc;
use std::sync::Mutex;

const HEAP: usize = 256 << 20;

/// The allocator interface the workloads are written against.
trait Alloc {
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8;
    fn free(&mut self, p: *mut u8, size: usize, align: usize);
}

/// A raw `Heap` (no lock) over its own page-aligned region.
struct Raw {
    heap: Option<Heap>,
    region: NonNull<u8>,
    layout: Layout,
}

impl Raw {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 64 * 1024).expect("layout");
        // SAFETY: non-zero size.
        let region = NonNull::new(unsafe { System.alloc_zeroed(layout) }).expect("region");
        // SAFETY: the region is fresh and owned by `Raw`, which drops the
        // heap before freeing it.
        let heap = unsafe { Heap::new(region, len) }.expect("heap");
        Raw {
            heap: Some(heap),
            region,
            layout,
        }
    }

    fn heap(&mut self) -> &mut Heap {
        self.heap.as_mut().expect("heap")
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.heap = None;
        // SAFETY: allocated in `new` with this layout; the heap is gone.
        unsafe { System.dealloc(self.region.as_ptr(), self.layout) }
    }
}

impl Alloc for Raw {
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.heap()
            .alloc_aligned(size, align)
            .map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }
    fn free(&mut self, p: *mut u8, _size: usize, _align: usize) {
        if self.heap().free(p).is_err() {
            panic!("ikos free failed");
        }
    }
}

/// The kernel glue's structure on the host: a raw heap behind a mutex
/// taken only for refills, drains and the slow path, plus the cache of the
/// one "CPU", used without a lock as `glue/percpu.rs` does (there with
/// preemption disabled and a busy flag taken, a few inline instructions
/// not counted here).
struct PerCpu {
    raw: Mutex<Raw>,
    cpu: CpuCache,
    view: FastView,
    /// Whether large blocks go through the cache's parked blocks (off
    /// only for the `ikos_percpu_nolarge` comparison).
    large: bool,
}

impl PerCpu {
    fn new(len: usize) -> Self {
        Self::with_large(len, true)
    }

    fn with_large(len: usize, large: bool) -> Self {
        let raw = Raw::new(len);
        // SAFETY: the view lives in the same `PerCpu` as the heap's region
        // and is only used through `&mut self` methods while both exist.
        let view = unsafe { raw.heap.as_ref().expect("heap").fast_view() };
        PerCpu {
            raw: Mutex::new(raw),
            cpu: CpuCache::new(),
            view,
            large,
        }
    }
}

impl Alloc for PerCpu {
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        if let Some(class) = size_class_for(size, align) {
            let raw = &self.raw;
            let r = self.cpu.alloc_with(&self.view, class, size, false, |c| {
                raw.lock().expect("heap").heap().magazine_refill(c, class)
            });
            if let Ok(p) = r {
                return p.as_ptr();
            }
        } else if let Some(p) = self
            .large
            .then(|| self.cpu.alloc_large(&self.view, size, align, false))
            .flatten()
        {
            return p.as_ptr();
        }
        self.raw.lock().expect("heap").alloc(size, align)
    }
    fn free(&mut self, p: *mut u8, size: usize, align: usize) {
        let raw = &self.raw;
        let r = self.cpu.free_with(&self.view, p, |c, class, keep| {
            let _ = raw
                .lock()
                .expect("heap")
                .heap()
                .magazine_drain(c, class, keep);
        });
        if r != FastFree::Done
            && !(self.large && self.cpu.free_large(&self.view, p) == FastFree::Done)
        {
            self.raw.lock().expect("heap").free(p, size, align);
        }
    }
}

/// Any `GlobalAlloc`, called directly.
struct Global<G: GlobalAlloc>(G);

impl<G: GlobalAlloc> Alloc for Global<G> {
    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        // SAFETY: every workload size is non-zero and its align a power of two.
        unsafe { self.0.alloc(Layout::from_size_align_unchecked(size, align)) }
    }
    fn free(&mut self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: `p` was allocated by `alloc` above with this layout.
        unsafe {
            self.0
                .dealloc(p, Layout::from_size_align_unchecked(size, align))
        }
    }
}

use ikos_kalloc::selftest::Rng;

/// A fixed script of allocator operations: `(slot, size)`, size 0 = free.
struct Script {
    steps: Vec<(usize, usize)>,
    slots: usize,
    ops: u64,
}

fn random_script() -> Script {
    let mut rng = Rng::new(0x1c05_ca11);
    let n = 1000;
    let mut steps: Vec<(usize, usize)> = (0..n).map(|i| (i, rng.range(8, 4096))).collect();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.range(0, i));
    }
    steps.extend(order.into_iter().map(|i| (i, 0)));
    Script {
        steps,
        slots: n,
        ops: 2 * n as u64,
    }
}

fn frag_script() -> Script {
    let mut rng = Rng::new(0xf4a9);
    let slots = 1000;
    let mut live = vec![false; slots];
    let mut steps = Vec::new();
    for _ in 0..10_000 {
        let s = rng.range(0, slots - 1);
        if live[s] {
            steps.push((s, 0));
        } else if rng.range(0, 99) < 75 {
            steps.push((s, rng.range(8, 512)));
        } else {
            steps.push((s, rng.range(4097, 64 << 10)));
        }
        live[s] = !live[s];
    }
    for (s, l) in live.iter().enumerate() {
        if *l {
            steps.push((s, 0));
        }
    }
    let ops = steps.len() as u64;
    Script { steps, slots, ops }
}

/// Runs a script once; `ptrs` holds `(pointer, size)` per slot.
fn run_script<A: Alloc>(a: &mut A, s: &Script, ptrs: &mut [(*mut u8, usize)]) {
    for &(slot, size) in &s.steps {
        if size == 0 {
            let (p, sz) = ptrs[slot];
            a.free(p, sz, 8);
        } else {
            let p = a.alloc(black_box(size), 8);
            assert!(!p.is_null());
            ptrs[slot] = (p, size);
        }
    }
}

fn pair<A: Alloc>(a: &mut A, size: usize) {
    let p = a.alloc(black_box(size), 8);
    a.free(black_box(p), size, 8);
}

fn batch<A: Alloc>(a: &mut A, ptrs: &mut Vec<*mut u8>) {
    for _ in 0..1000 {
        ptrs.push(a.alloc(black_box(64), 8));
    }
    for p in ptrs.drain(..) {
        a.free(black_box(p), 64, 8);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Pair64,
    Pair64Warm,
    Batch64,
    Random,
    Pair16k,
    FragMix,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Pair64,
        Kind::Pair64Warm,
        Kind::Batch64,
        Kind::Random,
        Kind::Pair16k,
        Kind::FragMix,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Pair64 => "pair64",
            Kind::Pair64Warm => "pair64_warm",
            Kind::Batch64 => "batch64",
            Kind::Random => "random",
            Kind::Pair16k => "pair16k",
            Kind::FragMix => "frag_mix",
        }
    }
}

struct Scripts {
    random: Script,
    frag: Script,
}

impl Scripts {
    fn ops(&self, k: Kind) -> u64 {
        match k {
            Kind::Pair64 | Kind::Pair64Warm | Kind::Pair16k => 2,
            Kind::Batch64 => 2000,
            Kind::Random => self.random.ops,
            Kind::FragMix => self.frag.ops,
        }
    }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Benchmarks workload `k` on allocator `a` under `name`.
fn workload<A: Alloc>(g: &mut Group<'_>, name: &str, mut a: A, k: Kind, s: &Scripts) {
    match k {
        Kind::Pair64 => g.bench_function(name, |b| b.iter(|| pair(&mut a, 64))),
        Kind::Pair64Warm => {
            let keep = a.alloc(64, 8);
            g.bench_function(name, |b| b.iter(|| pair(&mut a, 64)));
            a.free(keep, 64, 8);
            g
        }
        Kind::Batch64 => {
            let mut ptrs = Vec::with_capacity(1000);
            g.bench_function(name, |b| b.iter(|| batch(&mut a, &mut ptrs)))
        }
        Kind::Pair16k => g.bench_function(name, |b| b.iter(|| pair(&mut a, 16 << 10))),
        Kind::Random | Kind::FragMix => {
            let sc = if matches!(k, Kind::Random) {
                &s.random
            } else {
                &s.frag
            };
            let mut ptrs = vec![(std::ptr::null_mut(), 0); sc.slots];
            g.bench_function(name, |b| b.iter(|| run_script(&mut a, sc, &mut ptrs)))
        }
    };
}

fn workloads(c: &mut Criterion) {
    let s = Scripts {
        random: random_script(),
        frag: frag_script(),
    };
    for k in Kind::ALL {
        let mut g = c.benchmark_group(k.name());
        g.throughput(Throughput::Elements(s.ops(k)));
        workload(&mut g, "ikos_raw", Raw::new(HEAP), k, &s);
        workload(&mut g, "ikos_percpu", PerCpu::new(HEAP), k, &s);
        if matches!(k, Kind::FragMix) {
            // The one workload the large-block cache slows down
            // (Documentation/performance-log.md, Host benchmarks).
            let a = PerCpu::with_large(HEAP, false);
            workload(&mut g, "ikos_percpu_nolarge", a, k, &s);
        }
        workload(
            &mut g,
            "ikos_global",
            Global(KallocGlobal::new(HEAP)),
            k,
            &s,
        );
        workload(&mut g, "glibc", Global(System), k, &s);
        workload(&mut g, "mimalloc", Global(MiMalloc), k, &s);
        g.finish();
    }
}

/// Alloc + free of a fixed size with `n` free blocks in the TLSF index
/// (`host::holes::make_holes` on a 1 GiB heap).
fn large_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("large_index");
    g.throughput(Throughput::Elements(2));
    for n in [10usize, 1_000, 100_000] {
        let mut raw = Raw::new(1 << 30);
        let seps = make_holes(raw.heap(), n).expect("holes");
        let free_blocks = raw.heap().stats().blocks_free;
        assert!(free_blocks > n, "{free_blocks} free blocks for n = {n}");
        g.bench_with_input(BenchmarkId::new("ikos_raw", n), &n, |b, _| {
            b.iter(|| pair(&mut raw, HOLE_PROBE))
        });
        for p in seps {
            raw.free(p.as_ptr(), 0, 8);
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = workloads, large_index
}
criterion_main!(benches);
