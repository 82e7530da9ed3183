// SPDX-License-Identifier: GPL-2.0

//! The debugfs interface under `/sys/kernel/debug/ikos_kalloc/`.
//!
//! The ABI is documented in `Documentation/ikos_kalloc-debugfs.rst`.

use super::state::Kalloc;
use kernel::{
    debugfs::{Dir, File},
    fmt,
    prelude::*,
    sync::Arc,
};

/// The debugfs directory and its files. Dropping it removes them all.
#[pin_data]
pub(crate) struct DebugfsFiles {
    #[pin]
    stats: File<Arc<Kalloc>>,
    // Dropped after the files it contains.
    _dir: Dir,
}

fn show_stats(k: &Arc<Kalloc>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "heap_size: {}", k.heap_size())
}

impl DebugfsFiles {
    /// Creates `/sys/kernel/debug/ikos_kalloc/` and its files.
    pub(crate) fn new(state: Arc<Kalloc>) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"ikos_kalloc");
        pin_init::pin_init_scope(move || {
            Ok(try_pin_init!(Self {
                stats <- dir.read_callback_file(c"stats", state, &show_stats),
                _dir: dir,
            }? Error))
        })
    }
}
