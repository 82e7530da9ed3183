// SPDX-License-Identifier: GPL-2.0

//! Allocation traces: one operation per line.
//!
//! ```text
//! # comment (also after an operation)
//! a ID SIZE [ALIGN]   allocate SIZE bytes (ALIGN: a power of two, default 8)
//! f ID                free
//! r ID NEWSIZE        resize
//! ```
//!
//! `ID` is any `u64` naming an allocation; it may be reused after its free.
//! Sizes are decimal and non-zero. Blank lines are ignored. Every error names
//! its 1-based line; parsing never panics.

use std::fmt;
use std::string::String;
use std::vec::Vec;

/// Largest alignment accepted (the largest heap the core manages).
pub const MAX_ALIGN: usize = 1 << 30;

/// One trace operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `a ID SIZE [ALIGN]`.
    Alloc {
        /// Allocation name.
        id: u64,
        /// Requested bytes (> 0).
        size: usize,
        /// Requested alignment (power of two).
        align: usize,
    },
    /// `f ID`.
    Free {
        /// Allocation name.
        id: u64,
    },
    /// `r ID NEWSIZE`.
    Realloc {
        /// Allocation name.
        id: u64,
        /// New size in bytes (> 0).
        size: usize,
    },
}

/// A parse error and the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for TraceError {}

fn field<'a>(it: &mut impl Iterator<Item = &'a str>, what: &str) -> Result<&'a str, String> {
    it.next().ok_or_else(|| std::format!("missing {what}"))
}

fn num<T: core::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| std::format!("bad {what} '{}'", s.escape_debug()))
}

fn size(s: &str) -> Result<usize, String> {
    match num::<usize>(s, "size")? {
        0 => Err(String::from("size must be > 0")),
        n => Ok(n),
    }
}

/// Parses one line: `Ok(None)` for a blank or comment-only line. The error
/// carries no line number (see [`parse`]).
pub fn parse_line(line: &str) -> Result<Option<Op>, String> {
    let body = line.split('#').next().unwrap_or("");
    let mut it = body.split_ascii_whitespace();
    let Some(kind) = it.next() else {
        return Ok(None);
    };
    let op = match kind {
        "a" => {
            let id = num(field(&mut it, "id")?, "id")?;
            let size = size(field(&mut it, "size")?)?;
            let align = match it.next() {
                None => 8,
                Some(s) => {
                    let a: usize = num(s, "alignment")?;
                    if !a.is_power_of_two() || a > MAX_ALIGN {
                        return Err(std::format!(
                            "alignment {a} is not a power of two up to {MAX_ALIGN}"
                        ));
                    }
                    a
                }
            };
            Op::Alloc { id, size, align }
        }
        "f" => Op::Free {
            id: num(field(&mut it, "id")?, "id")?,
        },
        "r" => {
            let id = num(field(&mut it, "id")?, "id")?;
            Op::Realloc {
                id,
                size: size(field(&mut it, "size")?)?,
            }
        }
        other => {
            return Err(std::format!(
                "unknown operation '{}' (expected a, f or r)",
                other.escape_debug()
            ))
        }
    };
    match it.next() {
        Some(extra) => Err(std::format!(
            "unexpected trailing field '{}'",
            extra.escape_debug()
        )),
        None => Ok(Some(op)),
    }
}

/// Parses a whole trace; stops at the first error.
pub fn parse(text: &str) -> Result<Vec<Op>, TraceError> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => {}
            Err(msg) => return Err(TraceError { line: i + 1, msg }),
        }
    }
    Ok(ops)
}
