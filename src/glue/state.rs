// SPDX-License-Identifier: GPL-2.0

//! The module's shared state, reachable from every debugfs file.

use super::region::VmallocRegion;

/// Everything the module owns while it is loaded.
pub(crate) struct Kalloc {
    region: VmallocRegion,
}

impl Kalloc {
    /// Wraps a freshly allocated region.
    pub(crate) fn new(region: VmallocRegion) -> Self {
        Self { region }
    }

    /// Size of the heap region in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.region.len()
    }
}
