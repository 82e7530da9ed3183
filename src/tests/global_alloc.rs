// SPDX-License-Identifier: GPL-2.0

//! `GlobalAlloc` adapter: the heap is the global allocator of this test
//! binary (each `[[test]]` is its own binary). The heap manages a 64 MiB
//! static region and sits behind a `std::sync::Mutex`; the adapter itself
//! never allocates. Foreign pointers (none expected) are refused loudly.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::Mutex;

use ikos_kalloc::allocator::{Flags, Heap};

const REGION_LEN: usize = 64 << 20;

#[repr(C, align(65536))]
struct Region(UnsafeCell<[u8; REGION_LEN]>);

// SAFETY: the bytes are only handed to the heap, which is behind a mutex.
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; REGION_LEN]));

struct KallocGlobal {
    heap: Mutex<Option<Heap>>,
}

impl KallocGlobal {
    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        let mut g = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            let base = NonNull::new(REGION.0.get().cast::<u8>()).unwrap();
            // SAFETY: the static region is used by nobody else and lives forever.
            *g = Some(unsafe { Heap::new(base, REGION_LEN) }.expect("heap"));
        }
        f(g.as_mut().unwrap())
    }
}

// SAFETY: the heap returns suitably aligned, non-overlapping blocks of at
// least the requested size or null; frees only pointers it handed out.
unsafe impl GlobalAlloc for KallocGlobal {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.with(|h| {
            h.alloc_flags(l.size().max(1), l.align(), Flags::NONE)
                .map_or(std::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.with(|h| {
            h.alloc_flags(l.size().max(1), l.align(), Flags::ZERO)
                .map_or(std::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        if let Err(e) = self.with(|h| h.free(p)) {
            // No allocation possible here; abort on a broken invariant.
            let _ = e;
            std::process::abort();
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if l.align() <= 8 {
            return self.with(|h| {
                h.realloc(p, new.max(1))
                    .map_or(std::ptr::null_mut(), |q| q.as_ptr())
            });
        }
        // SAFETY: forwarded contract; copy then free the old block.
        unsafe {
            let n = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
            if !n.is_null() {
                std::ptr::copy_nonoverlapping(p, n, l.size().min(new));
                self.dealloc(p, l);
            }
            n
        }
    }
}

#[global_allocator]
static GLOBAL: KallocGlobal = KallocGlobal {
    heap: Mutex::new(None),
};

fn validate() -> ikos_kalloc::allocator::Stats {
    GLOBAL.with(|h| {
        h.validate().expect("heap valid");
        h.stats()
    })
}

#[test]
fn collections_grow_and_drop() {
    let before = validate();
    {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..200_000 {
            v.push(i);
        }
        assert_eq!(v.iter().sum::<u64>(), 199_999 * 200_000 / 2);
        let mut m = HashMap::new();
        for i in 0..20_000u32 {
            m.insert(i, format!("value-{i}"));
        }
        assert_eq!(m[&777], "value-777");
        let mut b = BTreeMap::new();
        for i in 0..20_000u32 {
            b.insert(i.wrapping_mul(2_654_435_761), vec![i; (i % 17) as usize]);
        }
        assert_eq!(b.len(), 20_000);
        let mut s = String::new();
        for i in 0..10_000 {
            s.push_str(&i.to_string());
        }
        assert!(s.len() > 30_000);
        let mid = validate();
        assert!(mid.used_bytes > before.used_bytes);
        let boxed: Vec<Box<[u8; 4096]>> = (0..100).map(|_| Box::new([7u8; 4096])).collect();
        assert!(boxed.iter().all(|b| b[4095] == 7));
        #[repr(align(4096))]
        struct Page([u8; 4096]);
        let pages: Vec<Box<Page>> = (0..10).map(|_| Box::new(Page([1; 4096]))).collect();
        assert!(pages
            .iter()
            .all(|p| (std::ptr::from_ref::<Page>(p) as usize).is_multiple_of(4096) && p.0[0] == 1));
    }
    let after = validate();
    assert!(after.total_frees > 1000);
    println!(
        "global allocator: {} allocs, {} frees, {} live, frag {}bp",
        after.total_allocs, after.total_frees, after.active_allocs, after.fragmentation_bp
    );
}

#[test]
fn threads_share_the_heap() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                for i in 0..5_000 {
                    v.push(vec![t as u8; i % 300]);
                }
                v.iter().map(|x| x.len()).sum::<usize>()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() > 0);
    }
    validate();
}
