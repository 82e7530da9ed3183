// SPDX-License-Identifier: GPL-2.0

//! ikos_kalloc: the IKOS kernel allocator running inside one vmalloc region.
//!
//! Layering, one directory each:
//! - `allocator/`: the allocator core, plain `no_std` Rust without kernel
//!   types; the host crate (`src/lib.rs`) compiles the very same files.
//! - `abi/`: parsing of the debugfs commands (no kernel types either).
//! - `selftest/`: the self-tests, written against the core API only.
//! - `glue/`: everything that needs the kernel: the vmalloc region, the lock,
//!   the handle table, the debugfs files and the exported C API.

use allocator::DebugFlags;
use kernel::{prelude::*, sync::Arc};

pub mod abi;
pub mod allocator;
mod glue;
pub mod selftest;

use glue::{debugfs::DebugfsFiles, errors::Shown, region::VmallocRegion, state::Kalloc};

module! {
    type: IkosKalloc,
    name: "ikos_kalloc",
    authors: ["ikos_kalloc developers"],
    description: "IKOS kernel allocator (SLAB caches + large blocks) in a vmalloc heap",
    license: "GPL",
    params: {
        heap_size: usize {
            default: 8 * 1024 * 1024,
            description: "Heap size in bytes: a multiple of 4096, 64 KiB .. 1 GiB (default 8 MiB)",
        },
        selftest_on_load: bool {
            default: true,
            description: "Run the self-tests on a scratch heap at load (default true)",
        },
        percpu: bool {
            default: true,
            description: "Per-CPU object caches (the lock-free fast path) for the size classes (default true)",
        },
        fault_injection: bool {
            default: false,
            description: "Create the debugfs inject and scribble files (corruption injection, tests only; default false)",
        },
    },
}

/// Smallest `heap_size` accepted.
const HEAP_SIZE_MIN: usize = 64 * 1024;
/// Largest `heap_size` accepted.
const HEAP_SIZE_MAX: usize = 1024 * 1024 * 1024;

struct IkosKalloc {
    // Taken first by `drop`, so no reader or writer can still be inside the
    // state when it is torn down, nor using the C API when it stops.
    files: Option<DebugfsFiles>,
    _state: Arc<Kalloc>,
}

extern "C" {
    /// The `debug` string parameter (src/ikos_kalloc_param.c).
    fn ikos_kalloc_debug_param() -> *const c_char;
}

/// Parses the `debug` parameter, with one dmesg line on rejection.
fn checked_debug() -> Result<DebugFlags> {
    // SAFETY: the C side returns its static, NUL-terminated parameter
    // buffer; the module loader wrote it before init and never again.
    let raw = unsafe { CStr::from_char_ptr(ikos_kalloc_debug_param()) };
    DebugFlags::parse(raw.to_bytes()).map_err(|bad| {
        pr_err!(
            "debug={} rejected: '{}' is not one of Z (red zones), P (poison), U (owner tracking), F (sanity checks) (EINVAL)\n",
            Shown(&BytesShown(raw.to_bytes())),
            Shown(&BytesShown(&[bad])),
        );
        EINVAL
    })
}

/// Prints parameter bytes as text (non-UTF-8 bytes as `?`).
struct BytesShown<'a>(&'a [u8]);

impl core::fmt::Display for BytesShown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            let c = if b.is_ascii_graphic() { b as char } else { '?' };
            core::fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

/// Checks the `heap_size` parameter, with one dmesg line on rejection.
fn checked_heap_size(size: usize) -> Result<usize> {
    if size % kernel::page::PAGE_SIZE != 0 || !(HEAP_SIZE_MIN..=HEAP_SIZE_MAX).contains(&size) {
        pr_err!(
            "heap_size={} rejected: must be a multiple of 4096 in {}..={} (EINVAL)\n",
            size,
            HEAP_SIZE_MIN,
            HEAP_SIZE_MAX
        );
        return Err(EINVAL);
    }
    Ok(size)
}

impl kernel::Module for IkosKalloc {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let size = checked_heap_size(module_parameters::heap_size.value())?;
        let debug = checked_debug()?;
        let region = VmallocRegion::new(size).inspect_err(|e| {
            pr_err!(
                "heap_size={} rejected: vmalloc cannot provide it (errno {})\n",
                size,
                e.to_errno()
            );
        })?;
        let state = Arc::pin_init(
            Kalloc::new(region, module_parameters::percpu.value(), debug),
            GFP_KERNEL,
        )?;
        // Published before the debugfs files appear: `bench` and `stress`
        // go through the C API, which returns NULL and ENODEV until then.
        // No other module can call it before init returns.
        glue::export::publish(&state);
        let files = DebugfsFiles::new(&state, module_parameters::fault_injection.value())
            .inspect_err(|_| glue::export::retract())?;
        if debug.is_empty() {
            pr_info!("loaded: heap of {} bytes\n", size);
        } else {
            pr_info!("loaded: heap of {} bytes, debug={}\n", size, Shown(&debug));
        }
        if module_parameters::selftest_on_load.value() {
            // A failed self-test is reported (dmesg, `selftest` file), it does
            // not fail the load.
            if let Err(e) = glue::selftest::run(&mut state.selftest.lock()) {
                pr_err!("KALLOC: self-tests could not run: {:?}\n", e);
            }
        }
        Ok(Self {
            files: Some(files),
            _state: state,
        })
    }
}

impl Drop for IkosKalloc {
    fn drop(&mut self) {
        // No debugfs file is open (an open file pins the module, see
        // `glue::debugfs_dir`). Removing the files first still orders the
        // teardown: nothing of theirs runs after the C API stops reaching
        // the heap (`stress` and `bench` use the C API from this module's
        // own threads, which hold no reference on it), nor after the state
        // goes away.
        drop(self.files.take());
        glue::export::retract();
        pr_info!("unloaded\n");
    }
}
