// SPDX-License-Identifier: GPL-2.0

//! A heap with a given number of free blocks in its TLSF index: the fixture
//! of the large-block flatness measurements (`cargo bench --features bench
//! --bench alloc`, group `large_index`, and `kalloc-fastpath ... holes=N`
//! under callgrind).

use std::ptr::NonNull;
use std::vec::Vec;

use crate::allocator::Heap;
use crate::selftest::Rng;

/// Block size of the measured alloc+free pairs: it fits many of the holes.
pub const HOLE_PROBE: usize = 4200;

/// Fragments `h` with `n` holes: `n` pairs of blocks are allocated, one of
/// a random size in 4,112..=5,136 bytes (fixed seed), then a 4,097-byte
/// separator; the first block of every pair is freed, so the separators
/// keep the holes from coalescing. Returns the separators (free them to
/// undo it), or `None` if the heap is too small.
pub fn make_holes(h: &mut Heap, n: usize) -> Option<Vec<NonNull<u8>>> {
    let mut rng = Rng::new(0x0b1_0c4);
    let mut holes = Vec::with_capacity(n);
    let mut seps = Vec::with_capacity(n);
    for _ in 0..n {
        holes.push(h.alloc(rng.range(4112, 5136))?);
        seps.push(h.alloc(4097)?);
    }
    for p in holes {
        h.free(p.as_ptr()).ok()?;
    }
    Some(seps)
}
