#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Check for every tool ikos_kalloc needs (see shared/TOOLCHAIN.md) and install
# what is missing: Debian packages with apt-get when running as root, bindgen
# with `cargo install --locked bindgen-cli`. Idempotent; when everything is
# present it only runs a few `command -v`/`dpkg-query` checks (well under 5 s).
#
# Usage: scripts/deps.sh [kernel|vm|host|all]   (default: all)
# (host: what the host-side scripts need, e.g. matplotlib for scripts/heapmap)
set -euo pipefail

what=${1:-all}

# Debian packages and a file each one provides, checked without invoking apt.
declare -A probe=(
	[clang-19]=/usr/bin/clang-19
	[lld-19]=/usr/bin/ld.lld-19
	[llvm-19]=/usr/bin/llvm-ar-19
	[libclang-19-dev]=/usr/lib/llvm-19/lib/libclang.so
	[rustc-web]=/usr/bin/rustc
	[rust-web-src]=/usr/lib/rustlib/src/rust/library/core/src/lib.rs
	[rust-web-clippy]=/usr/bin/clippy-driver
	[rustfmt-web]=/usr/bin/rustfmt
	[flex]=/usr/bin/flex
	[bison]=/usr/bin/bison
	[bc]=/usr/bin/bc
	[libelf-dev]=/usr/include/libelf.h
	[libssl-dev]=/usr/include/openssl/ssl.h
	[cpio]=/usr/bin/cpio
	[kmod]=/usr/bin/kmod
	[xz-utils]=/usr/bin/xz
	[qemu-system-x86]=/usr/bin/qemu-system-x86_64
	[busybox-static]=/bin/busybox
	[python3]=/usr/bin/python3
	[perl]=/usr/bin/cpan
	[make]=/usr/bin/make
	[python3-matplotlib]=/usr/lib/python3/dist-packages/matplotlib/__init__.py
)

kernel_pkgs="clang-19 lld-19 llvm-19 libclang-19-dev rustc-web rust-web-src rust-web-clippy rustfmt-web flex bison bc libelf-dev libssl-dev cpio kmod xz-utils make python3 perl"
vm_pkgs="qemu-system-x86 busybox-static cpio"
host_pkgs="python3-matplotlib"

case "$what" in
kernel) want="$kernel_pkgs" ;;
vm) want="$vm_pkgs" ;;
host) want="$host_pkgs" ;;
all) want="$kernel_pkgs $vm_pkgs $host_pkgs" ;;
*)
	echo "deps.sh: unknown set '$what' (kernel|vm|host|all)" >&2
	exit 2
	;;
esac

missing=()
for p in $want; do
	[ -e "${probe[$p]}" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	# De-duplicate (cpio is in two sets).
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	cmd="apt-get install -y --no-install-recommends ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
		echo "deps.sh: run as root:  apt-get update && $cmd" >&2
		exit 1
	fi
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine has no package lists yet; refresh them once per run.
	apt-get update -qq
	$cmd >/dev/null
fi

if [ "$what" = kernel ] || [ "$what" = all ]; then
	bindgen=${BINDGEN:-$HOME/.cargo/bin/bindgen}
	if ! [ -x "$bindgen" ] && ! command -v bindgen >/dev/null 2>&1; then
		if ! command -v cargo >/dev/null 2>&1; then
			echo "deps.sh: cargo not found; install Rust (rustup) first" >&2
			exit 1
		fi
		echo "deps.sh: cargo install --locked bindgen-cli"
		cargo install --locked --quiet bindgen-cli
	fi
fi

if [ "$what" = host ] || [ "$what" = all ]; then
	if ! command -v cargo >/dev/null 2>&1; then
		echo "deps.sh: cargo not found; the host tests need a Rust toolchain (rustup)" >&2
		exit 1
	fi
fi
exit 0
