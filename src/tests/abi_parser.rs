// SPDX-License-Identifier: GPL-2.0

//! Tests of the debugfs command parser (`src/abi/command.rs`): examples of
//! every accepted and rejected form, and property tests that any byte string
//! either parses to a well-formed command or is an error, never a panic.

use ikos_kalloc::abi::*;
use ikos_kalloc::allocator::DebugFlags;
use proptest::prelude::*;

#[test]
fn alloc_forms() {
    assert_eq!(
        parse_alloc(b"7 100\n"),
        Ok(AllocCmd::Sized {
            id: 7,
            size: 100,
            align: 8,
            flags: AllocFlags::default()
        })
    );
    assert_eq!(
        parse_alloc(b"  0x10\t4096 64 zero,atomic,dma,high "),
        Ok(AllocCmd::Sized {
            id: 16,
            size: 4096,
            align: 64,
            flags: AllocFlags {
                zero: true,
                atomic: true,
                dma: true,
                high: true
            }
        })
    );
    // The longest name the core takes (32 bytes) is accepted.
    assert_eq!(
        parse_alloc(b"1 cache=abcdefghijklmnopqrstuvwxyz012345"),
        Ok(AllocCmd::FromCache {
            id: 1,
            cache: "abcdefghijklmnopqrstuvwxyz012345"
        })
    );
    // FLAGS right after SIZE: the default alignment.
    assert_eq!(
        parse_alloc(b"3 64 zero"),
        Ok(AllocCmd::Sized {
            id: 3,
            size: 64,
            align: 8,
            flags: AllocFlags {
                zero: true,
                ..AllocFlags::default()
            }
        })
    );
    assert_eq!(
        parse_alloc(b"18446744073709551615 cache=my_cache.1"),
        Ok(AllocCmd::FromCache {
            id: u64::MAX,
            cache: "my_cache.1"
        })
    );
}

#[test]
fn alloc_rejections() {
    use ParseError::*;
    let cases: &[(&[u8], ParseError)] = &[
        (b"", Empty),
        (b"\n", Empty),
        (b"1", MissingArgument),
        (b"1 0", ZeroSize),
        (b"1 10 3", BadAlign),
        (b"1 10 0", BadAlign),
        (b"1 10 8 zero,bogus", BadFlag),
        (b"1 10 8 zero,", BadFlag),
        (b"1 10 8 ZERO", BadFlag),
        (b"1 10 8 zero extra", TrailingGarbage),
        (b"1 10 zero 8", TrailingGarbage),
        (b"1 10 x", BadFlag),
        (b"1 10 zero zero", TrailingGarbage),
        (b"1 10 0x", BadNumber),
        (b"1 -5", BadNumber),
        (b"1 +5", BadNumber),
        (b"-1 5", BadNumber),
        (b"18446744073709551616 5", BadNumber),
        (b"1 99999999999999999999999", BadNumber),
        (b"1 0x", BadNumber),
        (b"x 5", BadNumber),
        (b"1 cache=", BadName),
        (b"1 cache=a/b", BadName),
        (b"1 cache=abcdefghijklmnopqrstuvwxyz0123456", BadName),
        (b"1 cache=ok extra", TrailingGarbage),
        (b"1 5\0", NotText),
        (b"1\x005", NotText),
        (b"1 \xff\xfe", NotText),
        (b"1 5\n\n", NotText),
    ];
    for (line, err) in cases {
        assert_eq!(
            parse_alloc(line).err(),
            Some(*err),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    let long = vec![b' '; MAX_LINE + 1];
    assert_eq!(parse_alloc(&long), Err(ParseError::TooLong));
}

#[test]
fn other_files() {
    assert_eq!(parse_free(b"42\n"), Ok(42));
    assert_eq!(parse_free(b"42 43"), Err(ParseError::TrailingGarbage));
    assert_eq!(
        parse_realloc(b"42 0x1000\n"),
        Ok(ReallocCmd { id: 42, size: 4096 })
    );
    assert_eq!(parse_realloc(b"42 0"), Err(ParseError::ZeroSize));
    assert_eq!(parse_realloc(b"42"), Err(ParseError::MissingArgument));
    assert_eq!(parse_realloc(b"42 100 8"), Err(ParseError::TrailingGarbage));
    assert_eq!(parse_realloc(b"x 100"), Err(ParseError::BadNumber));
    assert_eq!(parse_byte_cmd(b"3 255"), Ok(ByteCmd { id: 3, byte: 255 }));
    assert_eq!(parse_byte_cmd(b"3 0xAa"), Ok(ByteCmd { id: 3, byte: 0xaa }));
    assert_eq!(parse_byte_cmd(b"3 256"), Err(ParseError::BadNumber));
    assert_eq!(parse_byte_cmd(b"3"), Err(ParseError::MissingArgument));
    assert_eq!(
        parse_caches(b"create obj 24\n"),
        Ok(CachesCmd::Create {
            name: "obj",
            object_size: 24,
            align: 8
        })
    );
    assert_eq!(
        parse_caches(b"create obj 24 64"),
        Ok(CachesCmd::Create {
            name: "obj",
            object_size: 24,
            align: 64
        })
    );
    assert_eq!(
        parse_caches(b"destroy obj"),
        Ok(CachesCmd::Destroy { name: "obj" })
    );
    assert_eq!(parse_caches(b"create obj 0"), Err(ParseError::ZeroSize));
    assert_eq!(parse_caches(b"create obj 24 48"), Err(ParseError::BadAlign));
    assert_eq!(
        parse_caches(b"Create obj 24"),
        Err(ParseError::UnknownCommand)
    );
    assert_eq!(parse_caches(b"destroy"), Err(ParseError::MissingArgument));
    assert_eq!(parse_run(b"run\n"), Ok(()));
    assert_eq!(parse_run(b"run now"), Err(ParseError::TrailingGarbage));
    assert_eq!(parse_run(b"RUN"), Err(ParseError::UnknownCommand));
    assert_eq!(parse_bench(b"run\n"), Ok(BENCH_DEFAULT_OPS));
    assert_eq!(parse_bench(b"run 5000"), Ok(5000));
    assert_eq!(parse_bench(b"run 999"), Err(ParseError::BadNumber));
    assert_eq!(parse_bench(b"run 100000001"), Err(ParseError::BadNumber));
    assert_eq!(parse_bench(b"run 5000 6"), Err(ParseError::TrailingGarbage));
    assert_eq!(parse_bench(b"walk"), Err(ParseError::UnknownCommand));
}

/// What a well-formed parse must satisfy, whatever the input was.
fn check_alloc(line: &[u8]) {
    match parse_alloc(line) {
        Ok(AllocCmd::Sized { size, align, .. }) => {
            assert!(size > 0);
            assert!(align.is_power_of_two());
            assert!(line.len() <= MAX_LINE);
        }
        Ok(AllocCmd::FromCache { cache, .. }) => {
            assert!(!cache.is_empty() && cache.len() <= MAX_NAME);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Lines assembled from ABI-like tokens, so the parser's deep paths are hit.
fn token_line() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("0x{n:x}")),
        (0u32..70).prop_map(|s| (1u128 << s).to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("zero,atomic".to_owned()),
        Just("dma".to_owned()),
        Just("high,bogus".to_owned()),
        "[a-z_.-]{0,40}".prop_map(|n| format!("cache={n}")),
        Just("create".to_owned()),
        Just("destroy".to_owned()),
        Just("run".to_owned()),
        "[ -~]{0,12}",
    ];
    (
        prop::collection::vec(token, 0..7),
        prop_oneof![Just(" "), Just("\t"), Just("  ")],
    )
        .prop_map(|(toks, sep)| (toks.join(sep) + "\n").into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(line in prop::collection::vec(any::<u8>(), 0..200)) {
        check_alloc(&line);
        let _ = parse_free(&line);
        if let Ok(c) = parse_realloc(&line) {
            prop_assert!(c.size > 0);
        }
        let _ = parse_byte_cmd(&line);
        let _ = parse_caches(&line);
        let _ = parse_run(&line);
        if let Ok(ops) = parse_bench(&line) {
            prop_assert!(BENCH_OPS.contains(&ops));
        }
        if let Ok(InjectCmd::Overflow(_, n)) = parse_inject(&line) {
            prop_assert!((1..=INJECT_MAX_OVERFLOW).contains(&n));
        }
        if let Ok(c) = parse_scribble(&line) {
            prop_assert!(c.len >= 1 && c.len <= SCRIBBLE_MAX_LEN);
            prop_assert!(c.offset.unsigned_abs() < 1 << 31);
        }
        let _ = parse_leaks(&line);
        if let Ok(s) = parse_stress(&line) {
            prop_assert!(STRESS_SECONDS.contains(&s));
        }
    }

    #[test]
    fn token_lines_parse_or_fail_cleanly(line in token_line()) {
        check_alloc(&line);
        if let Ok(CachesCmd::Create { object_size, align, name }) = parse_caches(&line) {
            prop_assert!(object_size > 0 && align.is_power_of_two() && name.len() <= MAX_NAME);
        }
        if let Ok(ByteCmd { .. }) = parse_byte_cmd(&line) {
            prop_assert!(line.len() <= MAX_LINE);
        }
    }

    #[test]
    fn numbers_round_trip(id in any::<u64>(), size in 1usize.., shift in 0u32..63) {
        let line = format!("{id} {size} {} zero", 1usize << shift);
        prop_assert_eq!(
            parse_alloc(line.as_bytes()),
            Ok(AllocCmd::Sized { id, size, align: 1 << shift, flags: AllocFlags { zero: true, ..Default::default() } })
        );
    }
}

#[test]
fn inject_forms() {
    assert_eq!(parse_inject(b"header 7\n"), Ok(InjectCmd::Header(7)));
    assert_eq!(parse_inject(b"freelist 0x10"), Ok(InjectCmd::Freelist(16)));
    assert_eq!(parse_inject(b"boundary\t1"), Ok(InjectCmd::Boundary(1)));
    assert_eq!(
        parse_inject(b"overflow 1 4096"),
        Ok(InjectCmd::Overflow(1, 4096))
    );
    for (line, e) in [
        (&b"overflow 1 4097"[..], ParseError::BadNumber),
        (b"overflow 1 0", ParseError::ZeroSize),
        (b"overflow 1", ParseError::MissingArgument),
        (b"header", ParseError::MissingArgument),
        (b"header 1 2", ParseError::TrailingGarbage),
        (b"HEADER 1", ParseError::UnknownCommand),
        (b"header -1", ParseError::BadNumber),
        (b"", ParseError::Empty),
    ] {
        assert_eq!(
            parse_inject(line),
            Err(e),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn stress_forms() {
    assert_eq!(parse_stress(b"run\n"), Ok(STRESS_DEFAULT_SECONDS));
    assert_eq!(parse_stress(b"run 3600"), Ok(3600));
    assert_eq!(parse_stress(b"run 0"), Err(ParseError::BadNumber));
    assert_eq!(parse_stress(b"run 3601"), Err(ParseError::BadNumber));
    assert_eq!(parse_stress(b"run 4294967296"), Err(ParseError::BadNumber));
    assert_eq!(parse_stress(b"stop"), Err(ParseError::UnknownCommand));
}

#[test]
fn debug_files() {
    use ParseError::*;
    assert_eq!(
        parse_caches(b"debug size-64 ZP\n"),
        Ok(CachesCmd::Debug {
            name: "size-64",
            flags: DebugFlags::REDZONE.union(DebugFlags::POISON)
        })
    );
    assert_eq!(
        parse_caches(b"debug obj -"),
        Ok(CachesCmd::Debug {
            name: "obj",
            flags: DebugFlags::NONE
        })
    );
    assert_eq!(
        parse_caches(b"debug obj FUPZ"),
        Ok(CachesCmd::Debug {
            name: "obj",
            flags: DebugFlags::ALL
        })
    );
    for (line, err) in [
        (&b"debug obj"[..], MissingArgument),
        (b"debug obj zp", BadDebugFlags),
        (b"debug obj ZPX", BadDebugFlags),
        (b"debug obj ZPUFZPUFZ", BadDebugFlags),
        (b"debug obj Z P", TrailingGarbage),
        (b"debug a/b Z", BadName),
    ] {
        assert_eq!(
            parse_caches(line),
            Err(err),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(
        parse_scribble(b"7 -8 4\n"),
        Ok(ScribbleCmd {
            id: 7,
            offset: -8,
            len: 4,
            after_free: false
        })
    );
    assert_eq!(
        parse_scribble(b"7 0x40 1 free"),
        Ok(ScribbleCmd {
            id: 7,
            offset: 64,
            len: 1,
            after_free: true
        })
    );
    for (line, err) in [
        (&b"7 0"[..], MissingArgument),
        (b"7 0 0", ZeroSize),
        (b"7 0 4097", BadNumber),
        (b"7 2147483648 1", BadNumber),
        (b"7 -2147483648 1", BadNumber),
        (b"7 --1 1", BadNumber),
        (b"7 +1 1", BadNumber),
        (b"7 1 1 later", UnknownCommand),
        (b"7 1 1 free x", TrailingGarbage),
        (b"", Empty),
    ] {
        assert_eq!(
            parse_scribble(line),
            Err(err),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(parse_leaks(b"threshold_ms 1500\n"), Ok(1500));
    assert_eq!(parse_leaks(b"threshold_ms 0"), Ok(0));
    assert_eq!(parse_leaks(b"threshold_ms 4294967296"), Err(BadNumber));
    assert_eq!(parse_leaks(b"threshold_ms"), Err(MissingArgument));
    assert_eq!(parse_leaks(b"threshold 5"), Err(UnknownCommand));
}
