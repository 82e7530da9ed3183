// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked access to the caller-supplied memory region.
//!
//! Every read or write of metadata goes through [`Region`], which checks the
//! offset against the region length and the alignment of the accessed type,
//! so a damaged offset can never turn into an access outside the region.
//!
//! Words that the per-CPU fast path ([`super::magazine`],
//! [`super::large_cache`]) reads or changes without the heap lock (page-map
//! entries, slab bitmap words, large-block headers) are accessed with
//! relaxed atomics on both sides: `rd32`/`wr32`, `cas32` and the `*64`
//! helpers, and `header`/`pair32`, which check the bounds of a whole
//! block header or of a free block's two list links once and hand out its
//! words as atomics. On x86-64 these are the same plain moves (and one
//! locked `or`/`and` for the bitmap), but they keep concurrent access well
//! defined.

use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Plain-old-data types that may be read from arbitrary region bytes.
///
/// # Safety
///
/// Implementors must be `repr(C)` (or primitive) types without padding for
/// which every bit pattern is a valid value.
pub(super) unsafe trait Pod: Copy {}

// SAFETY: primitive integers accept every bit pattern.
unsafe impl Pod for u32 {}
// SAFETY: plain integer, any bit pattern is valid.
unsafe impl Pod for u8 {}
// SAFETY: primitive integers accept every bit pattern.
unsafe impl Pod for u64 {}

/// The managed region: base pointer and length.
pub(super) struct Region {
    base: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Wraps a region.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be valid for reads and writes, page aligned and
    /// exclusively owned by the returned value for its whole lifetime.
    pub(super) unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Region { base, len }
    }

    /// Base pointer.
    pub(super) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Length in bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether `off..off + size` lies inside the region and `off` is aligned.
    fn fits(&self, off: usize, size: usize, align: usize) -> bool {
        match off.checked_add(size) {
            Some(end) => end <= self.len && off.is_multiple_of(align),
            None => false,
        }
    }

    /// Reads a `T` at `off`, or `None` when out of bounds or misaligned.
    pub(super) fn read<T: Pod>(&self, off: usize) -> Option<T> {
        if !self.fits(off, size_of::<T>(), align_of::<T>()) {
            return None;
        }
        // SAFETY: `off..off + size_of::<T>()` is inside the owned region and
        // suitably aligned (the base is page aligned); `T: Pod` accepts any
        // bit pattern.
        Some(unsafe { self.base.as_ptr().add(off).cast::<T>().read() })
    }

    /// Writes a `T` at `off`; does nothing when out of bounds or misaligned
    /// (callers only write to offsets they validated before).
    pub(super) fn write<T: Pod>(&mut self, off: usize, val: T) {
        if !self.fits(off, size_of::<T>(), align_of::<T>()) {
            return;
        }
        // SAFETY: bounds and alignment checked above; the region is owned
        // exclusively and `&mut self` rules out concurrent access.
        unsafe { self.base.as_ptr().add(off).cast::<T>().write(val) }
    }

    /// A reference to the `T` at `off`, or `None` when out of bounds or
    /// misaligned: [`Region::read`] without the copy, for metadata that
    /// nothing else accesses while the caller holds the heap (not for words
    /// the lock-free fast path uses).
    pub(super) fn get<T: Pod>(&self, off: usize) -> Option<&T> {
        if !self.fits(off, size_of::<T>(), align_of::<T>()) {
            return None;
        }
        // SAFETY: `off..off + size_of::<T>()` is inside the owned region and
        // suitably aligned, `T: Pod` accepts any bit pattern, and nothing
        // writes it while `&self` is borrowed (see above).
        Some(unsafe { &*self.base.as_ptr().add(off).cast::<T>() })
    }

    /// [`Region::get`] for writing.
    pub(super) fn get_mut<T: Pod>(&mut self, off: usize) -> Option<&mut T> {
        if !self.fits(off, size_of::<T>(), align_of::<T>()) {
            return None;
        }
        // SAFETY: as for `get`; `&mut self` rules out any other access
        // through this region while the reference lives.
        Some(unsafe { &mut *self.base.as_ptr().add(off).cast::<T>() })
    }

    /// The `n` 8-byte words at `off`, with one bounds and alignment check,
    /// or `None` when they are not inside the region. Only for metadata that
    /// nothing else accesses while the caller holds the heap (the magazine
    /// depot), never for words the lock-free fast path uses (page map,
    /// bitmaps, large-block headers).
    pub(super) fn words(&self, off: usize, n: usize) -> Option<&[u64]> {
        if !self.fits(off, n.checked_mul(8)?, 8) {
            return None;
        }
        // SAFETY: `off..off + 8 * n` is inside the owned region and 8-byte
        // aligned (checked above), any bit pattern is a valid `u64`, and
        // nothing writes these words while `&self` is borrowed (see above).
        Some(unsafe { core::slice::from_raw_parts(self.base.as_ptr().add(off).cast(), n) })
    }

    /// [`Region::words`] for writing.
    pub(super) fn words_mut(&mut self, off: usize, n: usize) -> Option<&mut [u64]> {
        if !self.fits(off, n.checked_mul(8)?, 8) {
            return None;
        }
        // SAFETY: as for `words`; `&mut self` rules out any other access
        // through this region while the slice lives.
        Some(unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr().add(off).cast(), n) })
    }

    /// The atomic `u32` at `off`, if in bounds and aligned.
    fn atomic32(&self, off: usize) -> Option<&AtomicU32> {
        if !self.fits(off, 4, 4) {
            return None;
        }
        // SAFETY: in bounds and 4-byte aligned (checked above) inside the
        // owned region, which outlives `&self`; every access to words that
        // are shared with the lock-free fast path is atomic.
        Some(unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) })
    }

    /// The atomic `u64` at `off`, if in bounds and aligned.
    #[inline(always)]
    fn atomic64(&self, off: usize) -> Option<&AtomicU64> {
        if !self.fits(off, 8, 8) {
            return None;
        }
        // SAFETY: as for `atomic32`, with 8-byte alignment checked.
        Some(unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) })
    }

    /// The words of the 16-byte block header at `off` (16-byte aligned),
    /// with one bounds and alignment check, or `None` when it is not inside
    /// the region: words 0 and 1 as `u32`s, words 2 and 3 as the one `u64`
    /// they are always read and written as (see `block`).
    #[inline(always)]
    pub(super) fn header(&self, off: usize) -> Option<(&AtomicU32, &AtomicU32, &AtomicU64)> {
        if !self.fits(off, 16, 16) {
            return None;
        }
        // SAFETY: `off..off + 16` is inside the region and 16-byte aligned
        // (checked above), so it holds the two words and, at `off + 8`, an
        // aligned `u64`; every access to a block header's words, which the
        // lock-free fast path shares, is atomic.
        unsafe {
            let (w0, w1) = self.pair32_at(off);
            let w23 = AtomicU64::from_ptr(self.base.as_ptr().add(off).add(8).cast());
            Some((w0, w1, w23))
        }
    }

    /// The two `u32` words at `off` (8-byte aligned), with one bounds and
    /// alignment check, or `None` when they are not inside the region: a
    /// free block's list links.
    #[inline(always)]
    pub(super) fn pair32(&self, off: usize) -> Option<(&AtomicU32, &AtomicU32)> {
        if !self.fits(off, 8, 8) {
            return None;
        }
        // SAFETY: in bounds and 8-byte aligned (checked above). The links of
        // free blocks are only accessed atomically while `&self` is
        // borrowed: a non-atomic access needs `&mut self` here, and the
        // lock-free fast path, which has its own view of the region, never
        // touches them.
        Some(unsafe { self.pair32_at(off) })
    }

    /// The two `u32` words at `off`, unchecked.
    ///
    /// # Safety
    ///
    /// `off..off + 8` must be inside the region, `off` 4-byte aligned, and
    /// the words accessed only atomically while the references live.
    #[inline(always)]
    unsafe fn pair32_at(&self, off: usize) -> (&AtomicU32, &AtomicU32) {
        // SAFETY: the caller guarantees bounds, alignment and atomic-only
        // access; the region outlives `&self`.
        unsafe {
            let p = self.base.as_ptr().add(off);
            (
                AtomicU32::from_ptr(p.cast()),
                AtomicU32::from_ptr(p.add(4).cast()),
            )
        }
    }

    /// Reads a `u32` at `off` (0 when out of bounds); a relaxed atomic load.
    pub(super) fn rd32(&self, off: usize) -> u32 {
        self.atomic32(off).map_or(0, |a| a.load(Relaxed))
    }

    /// Writes a `u32` at `off` (ignored when out of bounds); a relaxed
    /// atomic store.
    pub(super) fn wr32(&mut self, off: usize, val: u32) {
        if let Some(a) = self.atomic32(off) {
            a.store(val, Relaxed)
        }
    }

    /// Reads the `u64` at `off` atomically (0 when out of bounds).
    #[inline(always)]
    pub(super) fn load64(&self, off: usize) -> u64 {
        self.atomic64(off).map_or(0, |a| a.load(Relaxed))
    }

    /// Writes the `u64` at `off` atomically (ignored when out of bounds).
    /// Takes `&self`: the fast path also rewrites words 2 and 3 of a block
    /// header it hands out, which the heap may read concurrently (see
    /// `large_cache`).
    #[inline(always)]
    pub(super) fn store64(&self, off: usize, val: u64) {
        if let Some(a) = self.atomic64(off) {
            a.store(val, Relaxed)
        }
    }

    /// Atomically sets (`on`) or clears the bits `mask` of the `u64` at
    /// `off` and returns the previous value (0 when out of bounds). Takes
    /// `&self`: the fast path flips bitmap bits without the heap lock.
    #[inline(always)]
    pub(super) fn update64(&self, off: usize, mask: u64, on: bool) -> u64 {
        match self.atomic64(off) {
            Some(a) if on => a.fetch_or(mask, Relaxed),
            Some(a) => a.fetch_and(!mask, Relaxed),
            None => 0,
        }
    }

    /// Replaces the `u32` at `off` with `new` if it is `current`, atomically;
    /// false when it was not (or out of bounds). Takes `&self`: the fast
    /// path marks large-block headers cached and live without the heap
    /// lock (see `large_cache`).
    #[inline(always)]
    pub(super) fn cas32(&self, off: usize, current: u32, new: u32) -> bool {
        self.atomic32(off)
            .is_some_and(|a| a.compare_exchange(current, new, Relaxed, Relaxed).is_ok())
    }

    /// Fills `off..off + len` with `byte` (ignored when out of bounds).
    pub(super) fn fill(&mut self, off: usize, len: usize, byte: u8) {
        if !self.fits(off, len, 1) {
            return;
        }
        // SAFETY: bounds checked above; the region is exclusively owned.
        unsafe { core::ptr::write_bytes(self.base.as_ptr().add(off), byte, len) }
    }

    /// Copies `len` bytes from `src` to `dst` (ranges may overlap; ignored
    /// when either range is out of bounds).
    pub(super) fn copy(&mut self, src: usize, dst: usize, len: usize) {
        if !self.fits(src, len, 1) || !self.fits(dst, len, 1) {
            return;
        }
        // SAFETY: both ranges checked to be inside the owned region;
        // `copy` handles overlap.
        unsafe {
            let b = self.base.as_ptr();
            core::ptr::copy(b.add(src), b.add(dst), len)
        }
    }

    /// Offset of `ptr` from the base, if it points into the region.
    pub(super) fn offset_of(&self, ptr: *const u8) -> Option<usize> {
        let off = (ptr as usize).checked_sub(self.base.as_ptr() as usize)?;
        if off < self.len {
            Some(off)
        } else {
            None
        }
    }

    /// Address of the byte at `off` as an integer (for alignment math).
    pub(super) fn addr(&self, off: usize) -> usize {
        (self.base.as_ptr() as usize).wrapping_add(off)
    }

    /// Pointer to the byte at `off`; `off` must be inside the region (an
    /// offset past it gives the base, never a pointer outside).
    pub(super) fn ptr(&self, off: usize) -> NonNull<u8> {
        let off = if off < self.len { off } else { 0 };
        // SAFETY: `off` is inside the region (clamped above), so the result
        // is in bounds of the same allocation and non-null.
        unsafe { NonNull::new_unchecked(self.base.as_ptr().add(off)) }
    }
}

#[cfg(test)]
mod tests {
    //! `Region`'s bounds at the region's last byte, which no heap
    //! operation reaches (the heap never hands it an offset out of range).
    //! The region is the first page of a two-page buffer, so an access
    //! past it would land in the second page, where the test sees it.

    use super::Region;
    use core::ptr::{addr_of_mut, NonNull};

    const LEN: usize = 4096;

    #[repr(C, align(4096))]
    struct Pages([u8; 2 * LEN]);

    /// Runs `f` on a region over the first page of a buffer whose byte
    /// `i` is `i as u8`, with a raw pointer to the buffer's start.
    fn with_region(f: impl FnOnce(&mut Region, *mut u8)) {
        let mut pages = Pages([0; 2 * LEN]);
        let base = addr_of_mut!(pages.0).cast::<u8>();
        for i in 0..2 * LEN {
            // SAFETY: `i` is inside the buffer.
            unsafe { base.add(i).write(i as u8) };
        }
        let Some(nn) = NonNull::new(base) else {
            return;
        };
        // SAFETY: the first page of `pages` is valid, page aligned, and
        // reached only through the region and `base` until `f` returns.
        let mut r = unsafe { Region::new(nn, LEN) };
        f(&mut r, base);
    }

    /// The byte at `i` of the buffer behind `base`.
    fn byte(base: *mut u8, i: usize) -> u8 {
        // SAFETY: the callers pass `i` below `2 * LEN`, inside the buffer.
        unsafe { base.add(i).read() }
    }

    #[test]
    fn a_copy_with_either_range_outside_is_ignored() {
        with_region(|r, base| {
            r.copy(0, LEN - 4, 8);
            r.copy(LEN - 4, 0, 8);
            for i in (0..8).chain(LEN - 8..LEN + 8) {
                assert_eq!(byte(base, i), i as u8, "byte {i}");
            }
            r.copy(0, LEN - 8, 8);
            for i in 0..8 {
                assert_eq!(byte(base, LEN - 8 + i), i as u8);
            }
            assert_eq!(byte(base, LEN), LEN as u8);
        });
    }

    #[test]
    fn offsets_and_pointers_stay_inside_the_region() {
        with_region(|r, base| {
            let last = base.wrapping_add(LEN - 1);
            assert_eq!(r.offset_of(last), Some(LEN - 1));
            assert_eq!(r.offset_of(base.wrapping_add(LEN)), None);
            assert_eq!(r.offset_of(base.wrapping_sub(1)), None);
            assert_eq!(r.ptr(LEN - 1).as_ptr(), last);
            // Past the end: the base, never a pointer outside.
            assert_eq!(r.ptr(LEN).as_ptr(), base);
        });
    }
}
