// SPDX-License-Identifier: GPL-2.0

//! The `insmod-nth` mode: loads a module with the kernel's fail-nth fault
//! injection armed for exactly the `finit_module(2)` call, so that the K-th
//! allocation (slab or page, with failslab and fail_page_alloc enabled) of
//! the load fails, and tells whether that fault fired at all.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

/// `finit_module` on x86_64.
const SYS_FINIT_MODULE: i64 = 313;

extern "C" {
    /// glibc's raw system call entry.
    fn syscall(num: i64, ...) -> i64;
}

/// Loads `ko` with `params`, the `k`-th fault-injection point of the load
/// failing. Prints `insmod-nth K: loaded|failed ERRNO, fault fired|not
/// reached` and returns whether the line could be produced.
pub(crate) fn insmod_nth(k: u64, ko: &str, params: &str) -> bool {
    // Opened before arming: opening allocates, and only the load may
    // consume the count.
    let path = "/proc/thread-self/fail-nth";
    // Two handles: the file has no llseek, so the read needs its own.
    let (Ok(f), Ok(p), Ok(mut nth), Ok(mut back)) = (
        File::open(ko),
        CString::new(params),
        OpenOptions::new().write(true).open(path),
        File::open(path),
    ) else {
        eprintln!("kalloc-fuzz: cannot open {ko} or {path}, or bad params");
        return false;
    };
    if nth.write(format!("{k}").as_bytes()).is_err() {
        eprintln!("kalloc-fuzz: cannot arm {path}");
        return false;
    }
    // SAFETY: finit_module takes a file descriptor (open for the whole
    // call), a NUL-terminated parameter string that outlives the call and
    // a flags word; it does not retain either pointer.
    let rc = unsafe { syscall(SYS_FINIT_MODULE, i64::from(f.as_raw_fd()), p.as_ptr(), 0i64) };
    let err = std::io::Error::last_os_error();
    // Still armed: the load needed fewer than K allocations.
    let mut left = String::new();
    let read = back.read_to_string(&mut left);
    let reached = read.is_ok() && left.trim() == "0";
    if !reached {
        // The write ignores the file position.
        let _ = nth.write(b"0");
    }
    let outcome = if rc == 0 {
        "loaded".to_owned()
    } else {
        format!("failed {}", crate::kfile::errno_name(err.raw_os_error()))
    };
    let fired = if reached {
        "fault fired"
    } else {
        "not reached"
    };
    println!("insmod-nth {k}: {outcome}, {fired}");
    true
}
