// SPDX-License-Identifier: GPL-2.0

//! `GlobalAlloc` adapter (`ikos_kalloc::host::global_alloc`): the heap is
//! the global allocator of this test binary (each `[[test]]` is its own
//! binary). The heap manages a 64 MiB region taken from the system
//! allocator and sits behind a `std::sync::Mutex`; the adapter itself never
//! allocates. Foreign pointers (none expected) are refused loudly.

use std::collections::{BTreeMap, HashMap};

use ikos_kalloc::host::global_alloc::KallocGlobal;

#[global_allocator]
static GLOBAL: KallocGlobal = KallocGlobal::new(64 << 20);

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
