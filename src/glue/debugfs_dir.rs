// SPDX-License-Identifier: GPL-2.0

//! A debugfs directory of files backed by show and write functions on the
//! module state, through the file operations of
//! `src/ikos_kalloc_debugfs.c`.
//!
//! Not the kernel crate's `kernel::debugfs`: its file operations (Linux
//! 7.3) leave `owner` unset, so an open file does not pin the module, and
//! closing it after `rmmod` runs code that went away with the module. With
//! `owner` set, `rmmod` fails (`EBUSY`-like "in use") while a file is open,
//! as for any C module's debugfs files.

use super::state::Kalloc;
use core::ffi::c_void;
use kernel::{
    bindings,
    ffi::{c_char, c_int},
    fmt,
    prelude::*,
    seq_file::{seq_print, SeqFile},
    sync::Arc,
    uaccess::{UserPtr, UserSlice, UserSliceReader},
};

/// The state every file's functions get.
pub(crate) type State = Arc<Kalloc>;
/// Writes a file's contents (a read of it).
pub(crate) type ShowFn = fn(&State, &mut fmt::Formatter<'_>) -> fmt::Result;
/// Takes one write to a file.
pub(crate) type WriteFn = fn(&State, &mut UserSliceReader) -> Result;
/// The bytes a read is expected to take, 0 for "small" (one page).
pub(crate) type SizeFn = fn(&State) -> usize;

/// One file: its name and what a read and a write do (mode 0400, 0600 or
/// 0200 by which are present), and for a file whose contents grow with
/// the heap, the size a read is expected to take: the `seq_file` buffer
/// is then allocated at open, so the show function (a walk of the heap
/// under its lock) runs once rather than again for every doubling of a
/// one-page buffer.
pub(crate) struct FileSpec {
    pub(crate) name: &'static CStr,
    pub(crate) show: Option<ShowFn>,
    pub(crate) write: Option<WriteFn>,
    pub(crate) size: Option<SizeFn>,
}

/// A file that can be read.
pub(crate) const fn ro(name: &'static CStr, show: ShowFn) -> FileSpec {
    FileSpec {
        name,
        show: Some(show),
        write: None,
        size: None,
    }
}

/// A file that can be read and written.
pub(crate) const fn rw(name: &'static CStr, show: ShowFn, write: WriteFn) -> FileSpec {
    FileSpec {
        name,
        show: Some(show),
        write: Some(write),
        size: None,
    }
}

/// A file that can only be written.
pub(crate) const fn wo(name: &'static CStr, write: WriteFn) -> FileSpec {
    FileSpec {
        name,
        show: None,
        write: Some(write),
        size: None,
    }
}

impl FileSpec {
    /// The same file, whose reads take about `size` bytes.
    pub(crate) const fn sized(self, size: SizeFn) -> FileSpec {
        FileSpec {
            size: Some(size),
            ..self
        }
    }
}

/// What a file's inode points to.
struct Entry {
    name: &'static CStr,
    state: State,
    show: Option<ShowFn>,
    write: Option<WriteFn>,
    size: Option<SizeFn>,
}

extern "C" {
    fn ikos_debugfs_create_dir(name: *const c_char) -> *mut c_void;
    fn ikos_debugfs_create_file(
        name: *const c_char,
        read: bool,
        write: bool,
        dir: *mut c_void,
        data: *mut c_void,
    ) -> *mut c_void;
    fn ikos_debugfs_remove(dir: *mut c_void);
}

/// A directory under `/sys/kernel/debug/` and its files. Dropping it
/// removes them, after the reads and writes in progress.
pub(crate) struct DebugfsDir {
    dentry: *mut c_void,
    // Read by the callbacks through the inodes' private data until `drop`
    // has removed the files; never changed after `new`.
    entries: KVec<Entry>,
}

// SAFETY: `dentry` is only passed to `debugfs_remove` (once, in `drop`),
// from whichever thread drops the value; the entries hold an `Arc<Kalloc>`
// (`Send`) and function pointers.
unsafe impl Send for DebugfsDir {}
// SAFETY: no method takes `&self`. The file callbacks read the entries from
// any thread through the inodes' private data, which is sound as an
// `Entry` is `Sync` (an `Arc<Kalloc>`, function pointers) and never
// written after `new`.
unsafe impl Sync for DebugfsDir {}

impl DebugfsDir {
    /// Creates directory `name` with one file per spec. As is the debugfs
    /// convention, a directory or file that cannot be created is left out
    /// (debugfs disabled, no memory); the module works without them.
    pub(crate) fn new<'a>(
        name: &CStr,
        state: &State,
        specs: impl IntoIterator<Item = &'a FileSpec>,
    ) -> Result<Self> {
        let mut entries = KVec::new();
        for s in specs {
            entries.push(
                Entry {
                    name: s.name,
                    state: state.clone(),
                    show: s.show,
                    write: s.write,
                    size: s.size,
                },
                GFP_KERNEL,
            )?;
        }
        // SAFETY: `name` is NUL-terminated.
        let dentry = unsafe { ikos_debugfs_create_dir(name.as_char_ptr()) };
        let dir = Self { dentry, entries };
        for e in dir.entries.iter() {
            // SAFETY: the name is NUL-terminated; `e` lives in the vector's
            // heap buffer, which neither moves nor changes until `drop` has
            // removed the file (and waited for its callbacks).
            unsafe {
                ikos_debugfs_create_file(
                    e.name.as_char_ptr(),
                    e.show.is_some(),
                    e.write.is_some(),
                    dir.dentry,
                    core::ptr::from_ref(e).cast_mut().cast(),
                )
            };
        }
        Ok(dir)
    }
}

impl Drop for DebugfsDir {
    fn drop(&mut self) {
        // SAFETY: the directory created in `new` (or an error pointer, which
        // `debugfs_remove` ignores), removed once; it returns after every
        // callback in progress, so the entries may go after it.
        unsafe { ikos_debugfs_remove(self.dentry) }
    }
}

/// Runs a show function as a `Display`, for `seq_print!`.
struct Shown<'a>(&'a State, ShowFn);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.1)(self.0, f)
    }
}

/// The `single_open` show callback of every readable file.
///
/// # Safety
///
/// `m` is a live `seq_file` opened by `ikos_debugfs_seq_open`, whose
/// private data is an [`Entry`] of a live [`DebugfsDir`].
#[no_mangle]
unsafe extern "C" fn ikos_debugfs_show(m: *mut bindings::seq_file, _unused: *mut c_void) -> c_int {
    // SAFETY: by the function's contract.
    let e = unsafe { &*(*m).private.cast::<Entry>() };
    let Some(show) = e.show else {
        return EINVAL.to_errno();
    };
    // SAFETY: `m` is live for the call and only this thread uses it.
    let seq = unsafe { SeqFile::from_raw(m) };
    seq_print!(seq, "{}", Shown(&e.state, show));
    0
}

/// Largest `seq_file` buffer a size hint asks for at open.
const MAX_SIZE_HINT: usize = 16 << 20;

/// The open callback's size hint for a readable file: 0 (a one-page
/// buffer that grows as needed) or the expected size plus a quarter.
///
/// # Safety
///
/// `data` is the private data of a file of a live [`DebugfsDir`] (an
/// [`Entry`]).
#[no_mangle]
unsafe extern "C" fn ikos_debugfs_size_hint(data: *mut c_void) -> usize {
    // SAFETY: by the function's contract.
    let e = unsafe { &*data.cast::<Entry>() };
    match e.size.map(|f| f(&e.state)) {
        Some(n) if n > kernel::page::PAGE_SIZE => n.saturating_add(n / 4).min(MAX_SIZE_HINT),
        _ => 0,
    }
}

/// The write callback of every writable file: `count` bytes at `buf`.
///
/// # Safety
///
/// `data` is the private data of a file of a live [`DebugfsDir`] (an
/// [`Entry`]); `buf` is a user pointer.
#[no_mangle]
unsafe extern "C" fn ikos_debugfs_write(
    data: *mut c_void,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: by the function's contract.
    let e = unsafe { &*data.cast::<Entry>() };
    let Some(write) = e.write else {
        return EINVAL.to_errno() as isize;
    };
    let mut reader = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
    match write(&e.state, &mut reader) {
        Ok(()) => count as isize,
        Err(err) => err.to_errno() as isize,
    }
}
