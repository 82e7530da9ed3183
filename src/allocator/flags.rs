// SPDX-License-Identifier: GPL-2.0

//! Allocation flags (`KALLOC_*` of the design document).

/// Bit set of allocation flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u32);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// Atomic allocation; accepted always, the core never sleeps.
    pub const ATOMIC: Flags = Flags(0x1);
    /// Zero the whole usable size of the allocation.
    pub const ZERO: Flags = Flags(0x2);
    /// DMA-capable memory; the core cannot guarantee it and refuses.
    pub const DMA: Flags = Flags(0x4);
    /// High memory; accepted, there is no highmem on x86_64.
    pub const HIGH: Flags = Flags(0x8);
    /// All bits the core knows.
    pub const ALL: Flags = Flags(0xf);

    /// Builds flags from raw bits; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u32) -> Flags {
        Flags(bits & Self::ALL.0)
    }

    /// Raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union of two flag sets.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// `self` without the bits of `other`.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}
