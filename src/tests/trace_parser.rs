// SPDX-License-Identifier: GPL-2.0

//! The `kalloc-replay` trace format: good lines parse, bad lines give an
//! error naming their line, and no input makes the parser panic.

use ikos_kalloc::allocator::CacheError;
use ikos_kalloc::host::replay::{replay_ikos, replay_ikos_with_classes, replay_system, Prepared};
use ikos_kalloc::host::trace::{parse, parse_line, Op};
use proptest::prelude::*;

mod common;

#[test]
fn good_lines() {
    let text = "# header\n\na 1 64\na 2 100 4096 # aligned\n  r 1 200\nf 1\nf 2\n\t# tail\n";
    let ops = parse(text).unwrap();
    assert_eq!(
        ops,
        vec![
            Op::Alloc {
                id: 1,
                size: 64,
                align: 8
            },
            Op::Alloc {
                id: 2,
                size: 100,
                align: 4096
            },
            Op::Realloc { id: 1, size: 200 },
            Op::Free { id: 1 },
            Op::Free { id: 2 },
        ]
    );
    assert_eq!(parse("").unwrap(), vec![]);
    assert_eq!(parse_line("   # only a comment").unwrap(), None);
    assert_eq!(
        parse_line("a 18446744073709551615 1").unwrap(),
        Some(Op::Alloc {
            id: u64::MAX,
            size: 1,
            align: 8
        })
    );
}

#[test]
fn bad_lines_name_their_line() {
    let cases = [
        ("x 1 2", "unknown operation"),
        ("a", "missing id"),
        ("a 1", "missing size"),
        ("a 1 0", "size must be > 0"),
        ("a 1 -5", "bad size"),
        ("a one 5", "bad id"),
        ("a 1 64 3", "power of two"),
        ("a 1 64 0", "power of two"),
        ("a 1 64 2147483648", "power of two"),
        ("a 1 99999999999999999999999", "bad size"),
        ("f", "missing id"),
        ("f 1 2", "trailing"),
        ("r 1", "missing size"),
        ("r 1 0", "size must be > 0"),
        ("a 1 64 8 9", "trailing"),
    ];
    for (bad, want) in cases {
        let text = format!("# ok\na 7 10\n\n{bad}\nf 7\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 4, "{bad:?}: {e}");
        assert!(e.msg.contains(want), "{bad:?}: {e}");
        assert!(e.to_string().starts_with("line 4: "), "{e}");
    }
}

#[test]
fn replay_counts_failures_and_peak() {
    // Freeing an unknown ID, double alloc of a live ID and a realloc of a
    // freed ID are failed ops; the peak counts requested sizes.
    let ops = parse("a 1 100\na 2 5000\nr 1 300\na 1 8\nf 9\nf 2\nr 2 10\nf 1\n").unwrap();
    let p = Prepared::new(&ops);
    let s = replay_system(&p);
    assert_eq!((s.ops, s.failed, s.peak_live), (8, 3, 5300));
    assert_eq!(s.footprint, None);
    let mut h = common::TestHeap::new(1 << 20);
    let k = replay_ikos(&mut h, &p);
    assert_eq!((k.ops, k.failed, k.peak_live), (8, 3, 5300));
    let f = k.footprint.unwrap();
    assert!(f > 5300 && f < (1 << 20), "{k:?}");
    assert!(k.fragmentation_milli().unwrap() > 1000);
    h.validate().unwrap();
    assert_eq!(h.stats().active_allocs, 0);
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC*") {
        let _ = parse(&s);
    }

    #[test]
    fn never_panics_on_op_like_input(
        lines in prop::collection::vec("[afrx#]? ?[0-9a-z-]{0,22} ?[0-9]{0,21} ?[0-9]{0,12}", 0..20)
    ) {
        let text = lines.join("\n");
        if let Err(e) = parse(&text) {
            prop_assert!(e.line >= 1 && e.line <= lines.len());
        }
    }
}

/// The heap size `kalloc-replay` reports as needed: the smallest page
/// multiple with room for its own metadata area plus the block area.
#[test]
fn heap_bytes_for_block_top_is_the_smallest_fitting_heap() {
    use ikos_kalloc::allocator::config::{MIN_HEAP_SIZE, PAGE_SIZE};
    use ikos_kalloc::allocator::Heap;
    use ikos_kalloc::host::replay::heap_bytes_for_block_top;
    // The 256 MiB heap of the tool: 572,416 bytes of metadata, 40,832 of
    // them the magazine depot's.
    assert_eq!(Heap::metadata_bytes_for(256 << 20), Some(572_416));
    assert_eq!(heap_bytes_for_block_top(1), Some(MIN_HEAP_SIZE));
    for top in [100_000, 2_560_896, 26_556_528, 112_890_112, 1 << 29] {
        let len = heap_bytes_for_block_top(top).unwrap();
        assert_eq!(len % PAGE_SIZE, 0);
        assert!(len >= Heap::metadata_bytes_for(len).unwrap() + top);
        let less = len - PAGE_SIZE;
        assert!(less < Heap::metadata_bytes_for(less).unwrap() + top);
        // A real heap of that size has exactly that metadata area.
        let layout = std::alloc::Layout::from_size_align(len, PAGE_SIZE).unwrap();
        // SAFETY: non-zero size.
        let p = std::ptr::NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        {
            // SAFETY: fresh region, exclusively used by this heap, which
            // ends with this block, before the region is freed.
            let h = unsafe { Heap::new(p, len) }.unwrap();
            assert_eq!(Some(h.metadata_bytes()), Heap::metadata_bytes_for(len));
            assert!(h.stats().largest_free_block + 16 >= top);
        }
        // SAFETY: allocated above with this layout; the heap is gone.
        unsafe { std::alloc::dealloc(p.as_ptr(), layout) };
    }
}

#[test]
fn what_if_classes_serve_their_sizes_and_leave_nothing_behind() {
    // 200 objects of 80 bytes: the built-in 128-byte class, or a what-if
    // 96-byte class.
    let trace = |extra: &str| {
        let mut text = String::new();
        for i in 1..=200 {
            text.push_str(&format!("a {i} 80\n"));
        }
        text.push_str(extra);
        for i in 1..=200 {
            text.push_str(&format!("f {i}\n"));
        }
        Prepared::new(&parse(&text).unwrap())
    };
    let p = trace("");
    let mut h = common::TestHeap::new(1 << 20);
    let base = replay_ikos(&mut h, &p);
    let what = replay_ikos_with_classes(&mut h, &p, &[96, 192]).unwrap();
    assert_eq!((base.failed, base.peak_live), (0, 16_000));
    assert_eq!((what.failed, what.peak_live), (0, 16_000));
    // 32 bytes less per object (6,400), give or take how the slab spans
    // of the two object sizes end (6,472 here).
    let saved = base.footprint.unwrap() - what.footprint.unwrap();
    assert!((6_000..=7_000).contains(&saved), "{base:?} {what:?}");
    h.validate().unwrap();
    assert_eq!(h.stats().active_allocs, 0);

    // A realloc within the what-if class stays in place (the footprint
    // does not move); one out of it moves to the built-in class.
    let within = replay_ikos_with_classes(&mut h, &trace("r 1 96\n"), &[96]).unwrap();
    assert_eq!((within.failed, within.footprint), (0, what.footprint));
    let out = replay_ikos_with_classes(&mut h, &trace("r 2 100\n"), &[96]).unwrap();
    assert_eq!((out.failed, out.peak_live), (0, 16_020));
    assert!(out.footprint > what.footprint, "{out:?}");
    h.validate().unwrap();
    assert_eq!(h.stats().active_allocs, 0);

    // Sizes that are not a finer class are refused, and a refusal after
    // a created cache leaves none behind (the names are free again).
    for bad in [&[64][..], &[100], &[4104], &[96, 100]] {
        assert_eq!(
            replay_ikos_with_classes(&mut h, &p, bad).unwrap_err(),
            CacheError::InvalidSize,
            "{bad:?}"
        );
    }
    let again = replay_ikos_with_classes(&mut h, &p, &[96]).unwrap();
    assert_eq!(again.footprint, what.footprint);
    h.validate().unwrap();
}
