// SPDX-License-Identifier: GPL-2.0

//! Tests of `scripts/scan-log`, the kernel-splat scanner that gates every VM
//! run: a clean console log passes, and every sample log in
//! `scripts/testdata/logs/` (one per splat kind, named `KIND.log` or
//! `KIND-variant.log`) is rejected with a finding of that kind.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the scanner; returns (exit code, findings).
fn scan(log: &Path) -> (i32, Vec<String>) {
    let out = Command::new(root().join("scripts/scan-log"))
        .arg(log)
        .output()
        .expect("scripts/scan-log runs");
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code().unwrap_or(-1), findings)
}

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("scripts/testdata/logs"))
        .expect("sample dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn clean_log_passes() {
    let (code, findings) = scan(&root().join("scripts/testdata/logs/clean.log"));
    assert_eq!(findings, Vec::<String>::new());
    assert_eq!(code, 0);
}

#[test]
fn every_splat_kind_is_caught() {
    let mut kinds = Vec::new();
    for log in samples() {
        let stem = log.file_stem().unwrap().to_string_lossy().into_owned();
        if stem == "clean" {
            continue;
        }
        let kind = stem.split('-').next().unwrap().to_owned();
        let kind = if stem.starts_with("hung-task") || stem.starts_with("rust-panic") {
            stem.clone()
        } else {
            kind
        };
        let (code, findings) = scan(&log);
        assert_eq!(code, 1, "{stem}: scanner must fail, findings {findings:?}");
        assert!(
            findings
                .iter()
                .any(|f| f.starts_with(&format!("splat: {kind}: "))),
            "{stem}: expected a '{kind}' finding, got {findings:?}"
        );
        kinds.push(kind);
    }
    kinds.sort();
    kinds.dedup();
    // One sample per kind the issue lists (lockdep has two).
    let want = [
        "bug",
        "hung-task",
        "kasan",
        "kmemleak",
        "lockdep",
        "oops",
        "panic",
        "rust-panic",
        "ubsan",
        "warning",
    ];
    assert_eq!(kinds, want);
}

#[test]
fn a_splat_in_an_otherwise_clean_log_is_found() {
    let clean = std::fs::read_to_string(root().join("scripts/testdata/logs/clean.log")).unwrap();
    let mut lines: Vec<&str> = clean.lines().collect();
    let mid = lines.len() / 2;
    lines.insert(
        mid,
        "[   12.000000] WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:1 x+0x0/0x0",
    );
    let dir = std::env::temp_dir().join(format!("ikos-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("planted.log");
    std::fs::write(&log, lines.join("\n")).unwrap();
    let (code, findings) = scan(&log);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].starts_with(&format!("splat: warning: {}: ", mid + 1)));
}

#[test]
fn unreadable_log_is_an_error_not_a_pass() {
    let (code, _) = scan(Path::new("/nonexistent/ikos.log"));
    assert_eq!(code, 2);
}
