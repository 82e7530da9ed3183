#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or find in the cache) the Rust-enabled test kernel for ikos_kalloc.
#
#   scripts/build-kernel.sh [debug|perf]        build if needed, print the build dir
#   scripts/build-kernel.sh --dir [debug|perf]  only print where it would be
#
# The kernel source is Debian's linux-source-$KERNEL_SERIES (suite
# trixie-backports), fetched with a private apt configuration that reuses the
# mirror of the system's own apt sources and never edits them. The build is
# configured as tinyconfig + scripts/kconfig/base.config + <flavour>.config,
# every requested option is checked in the final .config, and bzImage +
# modules are built out of tree into
#   $IKOS_CACHE/build/linux-$KERNEL_SERIES-<flavour>-<fragment hash>/
# (IKOS_CACHE defaults to ~/.cache/ikos-kalloc). A finished build is reused.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=toolchain.env
. "$here/toolchain.env"
export LIBCLANG_PATH

only_dir=0
if [ "${1:-}" = --dir ]; then
	only_dir=1
	shift
fi
flavour=${1:-debug}
case "$flavour" in
debug | perf) ;;
*)
	echo "build-kernel.sh: unknown flavour '$flavour' (debug|perf)" >&2
	exit 2
	;;
esac

cache=${IKOS_CACHE:-$HOME/.cache/ikos-kalloc}
fragments=("$here/kconfig/base.config" "$here/kconfig/$flavour.config")
hash=$(cat "${fragments[@]}" "$here/toolchain.env" | sha256sum | cut -c1-12)
out="$cache/build/linux-$KERNEL_SERIES-$flavour-$hash"
if [ "$only_dir" = 1 ]; then
	echo "$out"
	exit 0
fi
if [ -f "$out/.ikos-built" ]; then
	echo "$out"
	exit 0
fi

log() { echo "build-kernel.sh: $*" >&2; }

"$here/deps.sh" kernel >&2
bindgen=${BINDGEN:-$(command -v bindgen || echo "$HOME/.cargo/bin/bindgen")}

mkdir -p "$cache"
# One build at a time per cache (make check and make bench may race).
exec 9>"$cache/.lock"
flock 9

src="$cache/src/linux-source-$KERNEL_SERIES"
if ! [ -f "$src/.ikos-unpacked" ]; then
	apt_dir="$cache/apt"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/cache"
	# The mirror the system already uses: first non-security URI of its sources.
	uri=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
			/etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' \
			/etc/apt/sources.list)
	fi
	if [ -z "$uri" ]; then
		log "cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
		exit 1
	fi
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie-backports main" \
		>"$apt_dir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o "Dir::Cache::Archives=$apt_dir/archives"
		-o APT::Sandbox::User=root
		-q)
	log "fetching linux-source-$KERNEL_SERIES from $uri (trixie-backports)"
	apt-get "${apt_opts[@]}" update >&2
	(cd "$apt_dir/archives" && apt-get "${apt_opts[@]}" download "linux-source-$KERNEL_SERIES" >&2)
	deb=$(ls "$apt_dir"/archives/linux-source-"$KERNEL_SERIES"_*.deb | head -n 1)
	log "unpacking $(basename "$deb")"
	rm -rf "$src" "$cache/src/.tmp"
	mkdir -p "$cache/src/.tmp"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$cache/src/.tmp" "./usr/src/linux-source-$KERNEL_SERIES.tar.xz"
	tar -xJf "$cache/src/.tmp/usr/src/linux-source-$KERNEL_SERIES.tar.xz" -C "$cache/src"
	rm -rf "$cache/src/.tmp" "$deb"
	basename "$deb" >"$src/.ikos-unpacked"
fi

kmake() {
	make -C "$src" O="$out" LLVM="$LLVM" RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC" \
		RUSTFMT="$RUSTFMT" CLIPPY_DRIVER="$CLIPPY_DRIVER" BINDGEN="$bindgen" "$@"
}

log "configuring $flavour kernel in $out"
mkdir -p "$out"
kmake tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${fragments[@]}" >/dev/null
kmake olddefconfig >/dev/null

# olddefconfig silently drops options whose dependencies are not met: check
# that every line of every fragment made it into the final .config. A later
# fragment overrides an earlier one (as merge_config.sh does), so only the
# last line for each option is checked.
dropped=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		if ! grep -qxF "$line" "$out/.config"; then
			log "requested '$line' but .config has: $(grep -E "^(# )?${line%%=*}[= ]" "$out/.config" || echo 'nothing')"
			dropped=1
		fi
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		if grep -qE "^$opt=" "$out/.config"; then
			log "requested '$line' but .config has: $(grep -E "^$opt=" "$out/.config")"
			dropped=1
		fi
		;;
	esac
done < <(cat "${fragments[@]}" |
	awk 'match($0, /^(# )?CONFIG_[A-Za-z0-9_]+/) { opt = substr($0, RSTART, RLENGTH); sub(/^# /, "", opt); last[opt] = $0; order[++n] = opt }
	     END { for (i = 1; i <= n; i++) if (!(order[i] in done)) { done[order[i]] = 1; print last[order[i]] } }')
if [ "$dropped" = 1 ]; then
	log "kernel configuration is missing requested options (see above)"
	exit 1
fi

log "building bzImage and modules ($(nproc) jobs); this takes several minutes the first time"
start=$(date +%s)
kmake -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1 || {
	tail -n 40 "$out/build.log" >&2
	log "kernel build failed; full log: $out/build.log"
	exit 1
}
log "kernel built in $(($(date +%s) - start)) s"
echo "$flavour $KERNEL_SERIES $(cat "$src/.ikos-unpacked")" >"$out/.ikos-built"
echo "$out"
