// SPDX-License-Identifier: GPL-2.0

//! The `fuzz` mode: generated hostile and valid lines to every writable
//! debugfs file, with a model of filled bytes to catch wrong `verify`
//! results.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::kfile::{self, Histogram, Rng};
use crate::Opts;

/// Every writable file except `inject`, which damages the heap on purpose.
const FILES: &[&str] = &[
    "alloc", "free", "realloc", "fill", "verify", "caches", "selftest", "bench", "stress",
];

/// Handle IDs the fuzzer uses, so that frees and fills hit live handles.
const IDS: u64 = 200;

/// Numbers that are malformed, negative, huge or overflow their type.
const BAD_NUMBERS: &[&str] = &[
    "-1",
    "-0",
    "+5",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999",
    "0x",
    "0xg1",
    "0x10000000000000000",
    "0xffffffffffffffff",
    "0X7fffffffffffffff",
    "000000000000000000000000000000000000001",
    "1e9",
    "1.5",
    "\u{ff19}",
    "9223372036854775808",
    "18446744073709551600",
    "4294967296",
    "256",
    "",
];

/// Alignments that are not powers of two or are larger than any heap.
const BAD_ALIGNS: &[&str] = &[
    "0",
    "3",
    "6",
    "24",
    "100",
    "1099511627776",
    "9223372036854775808",
    "0x8000000000000001",
    "2147483648",
];

/// Flag lists and command words the ABI does not know (or spells otherwise).
const BAD_WORDS: &[&str] = &[
    "zero,bogus",
    "ZERO",
    "zero,,atomic",
    ",zero",
    "dma,",
    "Zero",
    "cache=",
    "cache=a/b",
    "cache=way_too_long_cache_name_for_the_abi_limit",
    "CREATE",
    "Destroy",
    "run!",
    "RUN",
    "Run",
    "stop",
    "inject",
    "header",
];

/// A command whose effect the model tracks when its write succeeds.
#[derive(Clone, Copy)]
enum Cmd {
    Alloc {
        id: u64,
        zero: bool,
    },
    Free(u64),
    /// Resized: the bytes past the old size are unknown.
    Realloc(u64),
    Fill(u64, u8),
    Verify(u64, u8),
    /// A valid command that does not touch handle contents.
    Neutral,
    /// A mangled or random line.
    Untracked,
}

/// A valid command line for a random file.
fn valid(r: &mut Rng) -> (&'static str, String, Cmd) {
    let id = r.below(IDS);
    match r.below(100) {
        0..=29 => {
            let size = match r.below(10) {
                0..=6 => 1 + r.below(5000),
                7 | 8 => 1 + r.below(200_000),
                _ => {
                    let c = r.below(4);
                    return (
                        "alloc",
                        format!("{id} cache=fz{c}"),
                        Cmd::Alloc { id, zero: false },
                    );
                }
            };
            let align = 8u64 << r.below(10);
            let zero = r.one_in(3);
            let line = match r.below(3) {
                0 => format!("{id} {size}"),
                1 => format!("{id} {size} {align}"),
                _ => format!(
                    "{id} {size} {align} {}",
                    r.pick(&[
                        "zero",
                        "atomic",
                        "high",
                        "zero,atomic",
                        "high,zero,atomic",
                        "dma"
                    ])
                )
                .replace("zero", if zero { "zero" } else { "atomic" }),
            };
            let zero = zero && line.contains("zero");
            ("alloc", line, Cmd::Alloc { id, zero })
        }
        30..=49 => ("free", format!("{id}"), Cmd::Free(id)),
        50..=64 => {
            let b = r.below(256) as u8;
            ("fill", format!("{id} {b}"), Cmd::Fill(id, b))
        }
        65..=79 => {
            let b = r.below(256) as u8;
            ("verify", format!("{id} {b:#x}"), Cmd::Verify(id, b))
        }
        80..=84 => {
            let size = match r.below(4) {
                0..=2 => 1 + r.below(5000),
                _ => 1 + r.below(200_000),
            };
            ("realloc", format!("{id} {size}"), Cmd::Realloc(id))
        }
        85..=97 => {
            let c = r.below(4);
            let line = if r.one_in(2) {
                format!("create fz{c} {} {}", 1 + r.below(3000), 8u64 << r.below(6))
            } else {
                format!("destroy fz{c}")
            };
            ("caches", line, Cmd::Neutral)
        }
        _ => match r.below(40) {
            0 => ("selftest", "run".into(), Cmd::Neutral),
            1 => ("bench", "run 1000".into(), Cmd::Neutral),
            2 => ("stress", "run 1".into(), Cmd::Neutral),
            _ => ("verify", format!("{id} 0"), Cmd::Verify(id, 0)),
        },
    }
}

/// Whitespace and number-spelling variants that keep the meaning.
fn respell(r: &mut Rng, line: &str) -> Vec<u8> {
    let sep = r.pick(&[" ", "\t", "  ", " \t "]);
    let mut out: String = line
        .split(' ')
        .map(|t| match t.parse::<u64>() {
            Ok(n) if r.one_in(4) => format!("{}{n:x}", r.pick(&["0x", "0X"])),
            _ => t.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(sep);
    if r.one_in(3) {
        out.insert_str(0, r.pick(&[" ", "\t", "   "]));
    }
    if r.one_in(3) {
        out.push_str(r.pick(&[" ", "\t", "  "]));
    }
    if !r.one_in(4) {
        out.push('\n');
    }
    out.into_bytes()
}

/// A damaged version of a valid line: one hostile change.
fn damage(r: &mut Rng, file: &str, line: &str, big: &[u8]) -> Vec<u8> {
    let toks: Vec<&str> = line.split(' ').collect();
    let at = r.below(toks.len() as u64) as usize;
    let mut b: Vec<u8> = match r.below(12) {
        0 => {
            let mut v = line.as_bytes().to_vec();
            v.insert(r.below(v.len() as u64 + 1) as usize, 0);
            v
        }
        1 => {
            let mut v = line.as_bytes().to_vec();
            const JUNK: &[&[u8]] = &[
                &[0xff],
                &[0xc3],
                &[0xe2, 0x82],
                &[0xed, 0xa0, 0x80],
                &[0x80],
            ];
            let junk: &[u8] = r.pick(JUNK);
            let pos = r.below(v.len() as u64 + 1) as usize;
            v.splice(pos..pos, junk.iter().copied());
            v
        }
        2 | 3 => replace(&toks, at, r.pick(BAD_NUMBERS)),
        4 if file == "alloc" => replace(&toks, 2.min(toks.len()), r.pick(BAD_ALIGNS)),
        4 | 5 => replace(&toks, at, r.pick(BAD_WORDS)),
        6 if file == "alloc" || file == "realloc" => {
            let n = r.pick(&[
                usize::MAX,
                usize::MAX - 15,
                usize::MAX - 4096,
                1 << 63,
                (1 << 30) + 1,
                isize::MAX as usize,
            ]);
            replace(&toks, 1.min(toks.len()), &n.to_string())
        }
        6 | 7 => {
            let mut v = toks.join(" ");
            v.push_str(r.pick(&[
                " extra",
                " 1",
                " zero",
                " \u{00e9}",
                "\r",
                "\x0b",
                "\n\n",
                "\x1b[0m",
            ]));
            v.into_bytes()
        }
        8 if !matches!(file, "bench" | "stress" | "selftest") => {
            let mut t = toks.clone();
            t.remove(at);
            t.join(" ").into_bytes()
        }
        9 => {
            // Case variants of every word.
            line.chars()
                .map(|c| {
                    if r.one_in(2) {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect::<String>()
                .into_bytes()
        }
        10 => big[..4097 + r.below(4000) as usize].to_vec(),
        _ => {
            let mut v = line.as_bytes().to_vec();
            v.push(b'\n');
            v.extend_from_slice(line.as_bytes());
            v
        }
    };
    if r.one_in(2) {
        b.push(b'\n');
    }
    b
}

fn replace(toks: &[&str], at: usize, with: &str) -> Vec<u8> {
    let mut t: Vec<&str> = toks.to_vec();
    if at < t.len() {
        t[at] = with;
    } else {
        t.push(with);
    }
    t.join(" ").into_bytes()
}

/// Random bytes, sometimes printable only.
fn random_bytes(r: &mut Rng) -> Vec<u8> {
    let n = if r.one_in(10) {
        r.below(5000)
    } else {
        r.below(80)
    };
    let printable = r.one_in(2);
    (0..n)
        .map(|_| {
            let b = r.next() as u8;
            if printable {
                b' ' + b % 95
            } else {
                b
            }
        })
        .collect()
}

/// Runs the fuzzer for `limit`; false on a wrong `verify` result or an
/// errno the ABI never returns.
pub(crate) fn fuzz(o: &Opts, limit: Duration) -> bool {
    let mut r = Rng::new(o.seed);
    println!("kalloc-fuzz: fuzz seed {} for {} s", o.seed, o.seconds);
    // Long lines: more than 4 KiB, and more than 1 MiB (rare, below).
    let big: Vec<u8> = b"1 8 "
        .iter()
        .copied()
        .cycle()
        .take((1 << 20) + 1)
        .collect();
    // Live handles the fuzzer created, with the byte they hold if known.
    let mut model: HashMap<u64, Option<u8>> = HashMap::new();
    let mut hist = Histogram::default();
    let mut per_file: HashMap<&str, Histogram> = HashMap::new();
    let (mut mismatches, mut unexpected) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < limit {
        let (file, line, cmd) = valid(&mut r);
        let (file, bytes, cmd) = match r.below(100) {
            0..=29 => (file, respell(&mut r, &line), cmd),
            30..=74 => (file, damage(&mut r, file, &line, &big), Cmd::Untracked),
            75..=94 => (r.pick(FILES), random_bytes(&mut r), Cmd::Untracked),
            _ if r.one_in(50) => (r.pick(FILES), big.clone(), Cmd::Untracked),
            _ => (file, line.clone().into_bytes(), cmd),
        };
        let res = kfile::write(&o.dir, file, &bytes);
        hist.add(res);
        per_file.entry(file).or_default().add(res);
        let expected = matches!(
            res,
            Ok(())
                | Err("EINVAL"
                    | "ENOENT"
                    | "EEXIST"
                    | "ENOMEM"
                    | "EBUSY"
                    | "EOPNOTSUPP"
                    | "ENOSPC")
        ) || (res == Err("EIO") && file == "verify");
        if !expected {
            unexpected += 1;
            eprintln!(
                "kalloc-fuzz: unexpected {res:?} from {file} <- {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        match (cmd, res) {
            (Cmd::Alloc { id, zero }, Ok(())) => {
                model.insert(id, zero.then_some(0));
            }
            (Cmd::Free(id), Ok(())) => {
                model.remove(&id);
            }
            (Cmd::Realloc(id), Ok(())) => {
                model.insert(id, None);
            }
            (Cmd::Fill(id, b), Ok(())) => {
                model.insert(id, Some(b));
            }
            (Cmd::Verify(id, b), res) => {
                if let Some(Some(want)) = model.get(&id) {
                    if (*want == b) != res.is_ok() {
                        mismatches += 1;
                        eprintln!(
                            "kalloc-fuzz: verify {id} {b} gave {res:?}, last fill was {want}"
                        );
                    }
                }
            }
            (Cmd::Untracked, Ok(())) => {
                // A mangled or random line that still did something (a
                // respelled command is tracked; this is the rare rest):
                // forget what is known about handle contents.
                for v in model.values_mut() {
                    *v = None;
                }
            }
            _ => {}
        }
    }
    println!(
        "kalloc-fuzz: fuzz lines {} in {} ms",
        hist.total(),
        start.elapsed().as_millis()
    );
    println!("kalloc-fuzz: fuzz errno {}", hist.line());
    let mut files: Vec<_> = per_file.iter().collect();
    files.sort_by_key(|(f, _)| **f);
    for (f, h) in files {
        println!("kalloc-fuzz: fuzz file {f} {}", h.line());
    }
    println!("kalloc-fuzz: fuzz verify mismatches {mismatches} unexpected errnos {unexpected}");
    mismatches == 0 && unexpected == 0
}
