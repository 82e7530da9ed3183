// SPDX-License-Identifier: GPL-2.0

//! The cargo-fuzz targets' bodies (`ikos_kalloc::host::fuzz`) on stable
//! Rust, in `cargo test`: every committed seed in `src/fuzz/seeds/TARGET/`
//! (inputs the fuzzer found interesting, and any crash it ever found), then
//! pseudo-random inputs (`FUZZ_REPLAY_CASES`, default 300 per target).
//! The coverage-guided runs themselves need nightly: `make host-fuzz`.
//! `FUZZ_REPLAY_FILE=F cargo test --test fuzz_replay TARGET` runs one
//! input instead (a crash file from `src/fuzz/artifacts/`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Rng;
use ikos_kalloc::host::fuzz::{heap_damage, heap_ops};

/// Longest a committed seed may run (each takes milliseconds).
const SEED_TIME_LIMIT: Duration = Duration::from_secs(10);

fn cases() -> usize {
    std::env::var("FUZZ_REPLAY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Runs `body` on `FUZZ_REPLAY_FILE` if it is set; whether it was.
fn one_file(body: fn(&[u8])) -> bool {
    let Some(f) = std::env::var_os("FUZZ_REPLAY_FILE") else {
        return false;
    };
    let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.to_string_lossy()));
    body(&data);
    true
}

/// Runs `body` on every file of the target's seed directory; how many.
fn seeds(target: &str, body: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let t = Instant::now();
        body(&data);
        // Each takes milliseconds; a damaged cache descriptor once made one
        // run for a minute (a loop bounded by its capacity).
        let took = t.elapsed();
        assert!(took < SEED_TIME_LIMIT, "{}: {took:?}", f.display());
    }
    files.len()
}

/// Runs `body` on pseudo-random inputs of 16 to 4096 bytes.
fn random(seed: u64, body: fn(&[u8])) {
    let mut rng = Rng::new(seed);
    for _ in 0..cases() {
        let len = rng.range(16, 4096);
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        body(&data);
    }
}

/// One target: the file in `FUZZ_REPLAY_FILE` if set, else its seeds and
/// random inputs from `rng_seed`.
fn replay(target: &str, body: fn(&[u8]), rng_seed: u64) {
    if one_file(body) {
        return;
    }
    let n = seeds(target, body);
    assert!(n > 0, "no seeds for {target}");
    random(rng_seed, body);
}

#[test]
fn heap_ops_seeds_and_random_inputs() {
    replay("heap_ops", heap_ops, 0x6f70_7321);
}

#[test]
fn heap_damage_seeds_and_random_inputs() {
    replay("heap_damage", heap_damage, 0x6461_6d21);
}
