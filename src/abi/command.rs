// SPDX-License-Identifier: GPL-2.0

//! Parsers for the one-line commands of the debugfs files.
//!
//! A command is one line of whitespace-separated tokens; one trailing newline
//! is allowed. Numbers are decimal or `0x`-prefixed hexadecimal and must fit
//! their type. Every parser either returns a well-formed command or a
//! [`ParseError`]; none of them panics on any input (see the property tests in
//! `src/tests/abi_parser.rs`). The kernel glue maps every [`ParseError`] to
//! `EINVAL`.

use core::fmt;

use crate::allocator::config::CACHE_NAME_LEN;
use crate::allocator::DebugFlags;

/// Longest accepted command line in bytes (one page, newline included).
pub const MAX_LINE: usize = 4096;
/// Longest cache name in bytes: the core's limit, so every cache a C
/// caller can name with `[A-Za-z0-9_.-]` can be named here too.
pub const MAX_NAME: usize = CACHE_NAME_LEN;

/// Why a command line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The line is longer than [`MAX_LINE`].
    TooLong,
    /// The line is not valid UTF-8 or contains a NUL or control character.
    NotText,
    /// The line has no tokens.
    Empty,
    /// A required argument is missing.
    MissingArgument,
    /// There are more tokens than the command takes.
    TrailingGarbage,
    /// A number is malformed or does not fit its type.
    BadNumber,
    /// A size of zero.
    ZeroSize,
    /// An alignment that is not a power of two.
    BadAlign,
    /// An unknown flag in a flag list.
    BadFlag,
    /// A cache name that is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    BadName,
    /// An unknown command word.
    UnknownCommand,
    /// Debug flags that are not letters of `ZPUF` (or `-`).
    BadDebugFlags,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "line longer than 4096 bytes",
            Self::NotText => "not printable UTF-8 text",
            Self::Empty => "empty command",
            Self::MissingArgument => "missing argument",
            Self::TrailingGarbage => "unexpected extra arguments",
            Self::BadNumber => "malformed or overflowing number",
            Self::ZeroSize => "size 0",
            Self::BadAlign => "alignment is not a power of two",
            Self::BadFlag => "unknown flag (want zero,atomic,dma,high)",
            Self::BadName => "bad cache name (1-32 chars of [A-Za-z0-9_.-])",
            Self::UnknownCommand => "unknown command",
            Self::BadDebugFlags => "bad debug flags (letters of ZPUF, or - for none)",
        })
    }
}

/// Allocation flags as written in the ABI (`zero,atomic,dma,high`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocFlags {
    /// `zero`: the memory is zeroed.
    pub zero: bool,
    /// `atomic`: the allocation must not sleep.
    pub atomic: bool,
    /// `dma`: DMA-capable memory (refused by a vmalloc heap).
    pub dma: bool,
    /// `high`: high memory allowed (no highmem on x86_64).
    pub high: bool,
}

/// A write to `alloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocCmd<'a> {
    /// `ID SIZE [ALIGN] [FLAGS]`.
    Sized {
        /// Caller-chosen handle.
        id: u64,
        /// Requested size in bytes (non-zero).
        size: usize,
        /// Requested alignment (power of two, default 8).
        align: usize,
        /// Flags (default none).
        flags: AllocFlags,
    },
    /// `ID cache=NAME`.
    FromCache {
        /// Caller-chosen handle.
        id: u64,
        /// Name of the cache.
        cache: &'a str,
    },
}

/// A write to `realloc`: `ID NEWSIZE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReallocCmd {
    /// Handle.
    pub id: u64,
    /// New size in bytes (non-zero).
    pub size: usize,
}

/// A write to `fill` or `verify`: `ID BYTE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteCmd {
    /// Handle.
    pub id: u64,
    /// Byte value 0..=255.
    pub byte: u8,
}

/// A write to `caches`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachesCmd<'a> {
    /// `create NAME OBJSIZE [ALIGN]`.
    Create {
        /// Cache name.
        name: &'a str,
        /// Object size in bytes (non-zero).
        object_size: usize,
        /// Object alignment (power of two, default 8).
        align: usize,
    },
    /// `destroy NAME`.
    Destroy {
        /// Cache name.
        name: &'a str,
    },
    /// `debug NAME FLAGS`: FLAGS letters of `ZPUF` or `-`.
    Debug {
        /// Cache name.
        name: &'a str,
        /// The new debug flags.
        flags: DebugFlags,
    },
}

/// Default alignment when a command does not give one.
const DEFAULT_ALIGN: usize = 8;

/// Checks length and encoding, strips one trailing newline.
fn text(line: &[u8]) -> Result<&str, ParseError> {
    if line.len() > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let s = core::str::from_utf8(line).map_err(|_| ParseError::NotText)?;
    // Tabs and spaces separate tokens; any other control character is refused.
    if s.chars().any(|c| c.is_control() && c != '\t' && c != ' ') {
        return Err(ParseError::NotText);
    }
    Ok(s)
}

/// Token cursor over one command line.
struct Tokens<'a>(core::str::SplitAsciiWhitespace<'a>);

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Result<Self, ParseError> {
        Ok(Self(text(line)?.split_ascii_whitespace()))
    }

    fn next(&mut self) -> Option<&'a str> {
        self.0.next()
    }

    fn required(&mut self) -> Result<&'a str, ParseError> {
        self.next().ok_or(ParseError::MissingArgument)
    }

    fn end(mut self) -> Result<(), ParseError> {
        match self.next() {
            None => Ok(()),
            Some(_) => Err(ParseError::TrailingGarbage),
        }
    }
}

/// Parses a decimal or `0x` hexadecimal unsigned number.
fn number(tok: &str) -> Result<u64, ParseError> {
    let (digits, radix) = match tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (tok, 10),
    };
    // from_str_radix accepts a leading '+'; the ABI does not.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::BadNumber);
    }
    u64::from_str_radix(digits, radix).map_err(|_| ParseError::BadNumber)
}

fn usize_number(tok: &str) -> Result<usize, ParseError> {
    usize::try_from(number(tok)?).map_err(|_| ParseError::BadNumber)
}

fn size(tok: &str) -> Result<usize, ParseError> {
    match usize_number(tok)? {
        0 => Err(ParseError::ZeroSize),
        n => Ok(n),
    }
}

fn align(tok: Option<&str>) -> Result<usize, ParseError> {
    let Some(tok) = tok else {
        return Ok(DEFAULT_ALIGN);
    };
    let a = usize_number(tok)?;
    if a.is_power_of_two() {
        Ok(a)
    } else {
        Err(ParseError::BadAlign)
    }
}

fn flags(tok: &str) -> Result<AllocFlags, ParseError> {
    let mut f = AllocFlags::default();
    for name in tok.split(',') {
        match name {
            "zero" => f.zero = true,
            "atomic" => f.atomic = true,
            "dma" => f.dma = true,
            "high" => f.high = true,
            _ => return Err(ParseError::BadFlag),
        }
    }
    Ok(f)
}

fn name(tok: &str) -> Result<&str, ParseError> {
    let ok = !tok.is_empty()
        && tok.len() <= MAX_NAME
        && tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(tok)
    } else {
        Err(ParseError::BadName)
    }
}

/// Parses a write to `alloc`: `ID SIZE [ALIGN] [FLAGS]` or `ID cache=NAME`;
/// FLAGS may follow SIZE directly.
pub fn parse_alloc(line: &[u8]) -> Result<AllocCmd<'_>, ParseError> {
    let mut t = Tokens::new(line)?;
    let id = number(t.next().ok_or(ParseError::Empty)?)?;
    let second = t.required()?;
    if let Some(cache) = second.strip_prefix("cache=") {
        let cache = name(cache)?;
        t.end()?;
        return Ok(AllocCmd::FromCache { id, cache });
    }
    let size = size(second)?;
    // ALIGN is a number, so starts with a digit; a flag never does.
    let mut next = t.next();
    let align = match next {
        Some(tok) if tok.starts_with(|c: char| c.is_ascii_digit()) => {
            next = t.next();
            align(Some(tok))?
        }
        _ => DEFAULT_ALIGN,
    };
    let flags = match next {
        Some(tok) => flags(tok)?,
        None => AllocFlags::default(),
    };
    t.end()?;
    Ok(AllocCmd::Sized {
        id,
        size,
        align,
        flags,
    })
}

/// Parses a write to `free`: `ID`.
pub fn parse_free(line: &[u8]) -> Result<u64, ParseError> {
    let mut t = Tokens::new(line)?;
    let id = number(t.next().ok_or(ParseError::Empty)?)?;
    t.end()?;
    Ok(id)
}

/// Parses a write to `realloc`: `ID NEWSIZE`.
pub fn parse_realloc(line: &[u8]) -> Result<ReallocCmd, ParseError> {
    let mut t = Tokens::new(line)?;
    let id = number(t.next().ok_or(ParseError::Empty)?)?;
    let size = size(t.required()?)?;
    t.end()?;
    Ok(ReallocCmd { id, size })
}

/// Parses a write to `fill` or `verify`: `ID BYTE`.
pub fn parse_byte_cmd(line: &[u8]) -> Result<ByteCmd, ParseError> {
    let mut t = Tokens::new(line)?;
    let id = number(t.next().ok_or(ParseError::Empty)?)?;
    let byte = u8::try_from(number(t.required()?)?).map_err(|_| ParseError::BadNumber)?;
    t.end()?;
    Ok(ByteCmd { id, byte })
}

/// Parses debug flags: letters of `ZPUF` (at most 4 tokens' worth) or `-`.
pub fn debug_flags(tok: &str) -> Result<DebugFlags, ParseError> {
    if tok.is_empty() || tok.len() > 8 {
        return Err(ParseError::BadDebugFlags);
    }
    DebugFlags::parse(tok.as_bytes()).map_err(|_| ParseError::BadDebugFlags)
}

/// Parses a write to `caches`: `create NAME OBJSIZE [ALIGN]`, `destroy
/// NAME` or `debug NAME FLAGS`.
pub fn parse_caches(line: &[u8]) -> Result<CachesCmd<'_>, ParseError> {
    let mut t = Tokens::new(line)?;
    let cmd = match t.next().ok_or(ParseError::Empty)? {
        "create" => {
            let name = name(t.required()?)?;
            let object_size = size(t.required()?)?;
            let align = align(t.next())?;
            CachesCmd::Create {
                name,
                object_size,
                align,
            }
        }
        "destroy" => CachesCmd::Destroy {
            name: name(t.required()?)?,
        },
        "debug" => CachesCmd::Debug {
            name: name(t.required()?)?,
            flags: debug_flags(t.required()?)?,
        },
        _ => return Err(ParseError::UnknownCommand),
    };
    t.end()?;
    Ok(cmd)
}

/// Parses a write to `selftest` or `shrink`: `run`.
pub fn parse_run(line: &[u8]) -> Result<(), ParseError> {
    let mut t = Tokens::new(line)?;
    match t.next().ok_or(ParseError::Empty)? {
        "run" => t.end(),
        _ => Err(ParseError::UnknownCommand),
    }
}

/// Operations per workload when `bench` gets a bare `run`.
pub const BENCH_DEFAULT_OPS: u64 = 100_000;
/// Accepted range of `OPS` for `bench`.
pub const BENCH_OPS: core::ops::RangeInclusive<u64> = 1_000..=100_000_000;

/// Parses `run [N]`: N (default `default`) must lie in `range`.
fn run_count(
    line: &[u8],
    default: u64,
    range: core::ops::RangeInclusive<u64>,
) -> Result<u64, ParseError> {
    let mut t = Tokens::new(line)?;
    match t.next().ok_or(ParseError::Empty)? {
        "run" => {
            let n = match t.next() {
                Some(tok) => number(tok)?,
                None => default,
            };
            t.end()?;
            if range.contains(&n) {
                Ok(n)
            } else {
                Err(ParseError::BadNumber)
            }
        }
        _ => Err(ParseError::UnknownCommand),
    }
}

/// Parses a write to `bench`: `run [OPS]`, OPS in [`BENCH_OPS`].
pub fn parse_bench(line: &[u8]) -> Result<u64, ParseError> {
    run_count(line, BENCH_DEFAULT_OPS, BENCH_OPS)
}

/// A write to `inject` (only with `fault_injection=1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectCmd {
    /// `header ID`: the block header or slab descriptor magic.
    Header(u64),
    /// `freelist ID`: free the handle, then damage its free-list link.
    Freelist(u64),
    /// `boundary ID`: the boundary tag of the next block.
    Boundary(u64),
    /// `overflow ID N`: N bytes past the usable size.
    Overflow(u64, usize),
}

/// Longest `overflow` accepted, in bytes.
pub const INJECT_MAX_OVERFLOW: usize = 4096;

/// Parses a write to `inject`: `header ID`, `freelist ID`, `boundary ID` or
/// `overflow ID N` with N in 1..=[`INJECT_MAX_OVERFLOW`].
pub fn parse_inject(line: &[u8]) -> Result<InjectCmd, ParseError> {
    let mut t = Tokens::new(line)?;
    let word = t.next().ok_or(ParseError::Empty)?;
    let cmd = match word {
        "header" | "freelist" | "boundary" | "overflow" => {
            let id = number(t.required()?)?;
            match word {
                "header" => InjectCmd::Header(id),
                "freelist" => InjectCmd::Freelist(id),
                "boundary" => InjectCmd::Boundary(id),
                _ => {
                    let n = size(t.required()?)?;
                    if n > INJECT_MAX_OVERFLOW {
                        return Err(ParseError::BadNumber);
                    }
                    InjectCmd::Overflow(id, n)
                }
            }
        }
        _ => return Err(ParseError::UnknownCommand),
    };
    t.end()?;
    Ok(cmd)
}

/// Seconds per `stress run` when none are given.
pub const STRESS_DEFAULT_SECONDS: u32 = 5;
/// Accepted range of `SECONDS` for `stress`.
pub const STRESS_SECONDS: core::ops::RangeInclusive<u32> = 1..=3600;

/// Parses a write to `stress`: `run [SECONDS]`, SECONDS in [`STRESS_SECONDS`].
pub fn parse_stress(line: &[u8]) -> Result<u32, ParseError> {
    let range = u64::from(*STRESS_SECONDS.start())..=u64::from(*STRESS_SECONDS.end());
    let secs = run_count(line, u64::from(STRESS_DEFAULT_SECONDS), range)?;
    // In range, so it fits.
    u32::try_from(secs).map_err(|_| ParseError::BadNumber)
}

/// A write to `scribble` (only with `fault_injection=1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScribbleCmd {
    /// Handle.
    pub id: u64,
    /// Offset from the allocation start; negative reaches a left red zone.
    pub offset: isize,
    /// Bytes to write, 1..=[`SCRIBBLE_MAX_LEN`].
    pub len: usize,
    /// `free`: free the handle first (a write after free).
    pub after_free: bool,
}

/// Longest `scribble` accepted, in bytes.
pub const SCRIBBLE_MAX_LEN: usize = 4096;
/// The byte `scribble` writes.
pub const SCRIBBLE_BYTE: u8 = 0x42;

/// Parses a signed offset: an optional `-`, then a number below 2^31.
fn offset(tok: &str) -> Result<isize, ParseError> {
    let (neg, digits) = match tok.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, tok),
    };
    let v = number(digits)?;
    if v >= 1 << 31 {
        return Err(ParseError::BadNumber);
    }
    let v = v as isize;
    Ok(if neg { -v } else { v })
}

/// Parses a write to `scribble`: `ID OFFSET LEN [free]`.
pub fn parse_scribble(line: &[u8]) -> Result<ScribbleCmd, ParseError> {
    let mut t = Tokens::new(line)?;
    let id = number(t.next().ok_or(ParseError::Empty)?)?;
    let offset = offset(t.required()?)?;
    let len = size(t.required()?)?;
    if len > SCRIBBLE_MAX_LEN {
        return Err(ParseError::BadNumber);
    }
    let after_free = match t.next() {
        None => false,
        Some("free") => true,
        Some(_) => return Err(ParseError::UnknownCommand),
    };
    t.end()?;
    Ok(ScribbleCmd {
        id,
        offset,
        len,
        after_free,
    })
}

/// Parses a write to `leaks`: `threshold_ms N` (N fits u32).
pub fn parse_leaks(line: &[u8]) -> Result<u32, ParseError> {
    let mut t = Tokens::new(line)?;
    match t.next().ok_or(ParseError::Empty)? {
        "threshold_ms" => {
            let n = u32::try_from(number(t.required()?)?).map_err(|_| ParseError::BadNumber)?;
            t.end()?;
            Ok(n)
        }
        _ => Err(ParseError::UnknownCommand),
    }
}
