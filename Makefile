# SPDX-License-Identifier: GPL-2.0
#
# ikos_kalloc: build the module, the test kernel and the VM runs.
# `make help` lists the targets. Kbuild (the module's object list) is in ./Kbuild.

include scripts/toolchain.env

FLAVOUR    ?= debug
IKOS_CACHE ?= $(HOME)/.cache/ikos-kalloc
export IKOS_CACHE LIBCLANG_PATH
BINDGEN    ?= $(or $(shell command -v bindgen 2>/dev/null),$(HOME)/.cargo/bin/bindgen)
CARGO      ?= cargo
# Extra arguments for the VM: run-vm.sh --args (module params in `run`,
# selftest group filters in `vm-test`).
VM_ARGS    ?=

# KDIR=/path/to/a/rust-enabled/kernel/build skips the cached test kernel.
ifeq ($(origin KDIR),undefined)
KDIR := $(shell scripts/build-kernel.sh --dir $(FLAVOUR))
OWN_KERNEL := 1
endif

# The benchmark runs on the perf kernel (no debug options) unless KDIR is given.
ifdef OWN_KERNEL
BENCH_KDIR := $(shell scripts/build-kernel.sh --dir perf)
else
BENCH_KDIR := $(KDIR)
endif
BENCH_ARGS  ?= ops=200000,runs=3
# Separate boots: under TCG one boot's ratios can sit 15% (sometimes 40%)
# away from another's (same module), more than the run-to-run spread inside
# a boot, so the medians take five.
BENCH_BOOTS ?= 5
BENCH_BUILD := $(CURDIR)/out/bench-build

KVARS = LLVM=$(LLVM) RUSTC=$(RUSTC) HOSTRUSTC=$(HOSTRUSTC) RUSTFMT=$(RUSTFMT) \
	CLIPPY_DRIVER=$(CLIPPY_DRIVER) BINDGEN=$(BINDGEN)
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) $(KVARS)
RUN_VM = scripts/run-vm.sh --kdir $(KDIR)

.PHONY: all deps modules kernel run shell check vm-test vm-test-scanner host-test lint bench \
	clippy rustdoc checkpatch fmt fmt-check rust-analyzer clean help fuzz-bin host-fuzz mutants

all: modules

help:
	@echo "make [modules]     build ikos_kalloc.ko against KDIR (default: the cached $(FLAVOUR) kernel)"
	@echo "make kernel        build the test kernel (FLAVOUR=debug|perf) into $(IKOS_CACHE)"
	@echo "make run           the main job: boot the VM, load the module, show stats, unload"
	@echo "make shell         the same VM with an interactive shell"
	@echo "make check         all tests: lint, host tests, VM selftests, scanner self-check"
	@echo "make vm-test       only the VM selftests (VM_ARGS=group filters and KEY=VALUE knobs)"
	@echo "make vm-test-scanner  a VM run with a planted WARNING must fail (the splat scanner works)"
	@echo "make fuzz-bin      the static in-VM fuzz/churn driver (kalloc-fuzz)"
	@echo "make host-test     only the host tests (cargo test)"
	@echo "make host-fuzz     cargo-fuzz the allocator core (nightly; HOST_FUZZ_SECONDS=N per target)"
	@echo "make mutants       cargo-mutants on the allocator core (MUTANTS_FILES=src/allocator/depot.rs narrows it)"
	@echo "make bench         in-kernel benchmark against kmalloc on the perf kernel (BENCH_ARGS=ops=N,runs=N, BENCH_BOOTS=N)"
	@echo "make lint          fmt-check + clippy + rustdoc + checkpatch"
	@echo "make deps          install what is missing (apt-get as root, cargo install)"
	@echo "make clippy        host clippy + kernel CLIPPY=1 W=1 build, warnings are errors"
	@echo "make rustdoc       cargo doc of the core with warnings as errors (broken doc links)"
	@echo "make checkpatch    checkpatch.pl --strict on the C files, kernel-doc -Wall on the API header"
	@echo "make fmt           rustfmt everything; make fmt-check only checks"
	@echo "make rust-analyzer write rust-project.json so editors resolve kernel::"
	@echo "make clean         remove build products (the cached kernel stays)"

# Installs whatever is missing (apt-get as root, cargo install); a few
# file checks when everything is there.
deps:
	scripts/deps.sh all

kernel: deps
ifdef OWN_KERNEL
	scripts/build-kernel.sh $(FLAVOUR) >/dev/null
else
	@echo "KDIR=$(KDIR) given: not building a kernel"
endif

modules: kernel
	$(KMAKE) modules

run: modules
	$(RUN_VM) --mode run $(if $(VM_ARGS),--args $(VM_ARGS))
	@for m in before after; do \
		awk -v m="$$m" '{ sub(/\r$$/, "") } $$0 == "=== heapmap begin: " m { on = 1; next } /^=== heapmap end/ { on = 0 } on' \
			out/vm-run.tap >out/heapmap-$$m.txt; \
		scripts/heapmap out/heapmap-$$m.txt out/heapmap-$$m.png "ikos_kalloc heap map: $$m a fragmentation-heavy workload"; \
	done
	@echo "heap maps: out/heapmap-before.png out/heapmap-after.png (text: out/heapmap-*.txt)"

shell: modules fuzz-bin
	$(RUN_VM) --mode shell

vm-test: modules fuzz-bin
	$(RUN_VM) --mode test $(if $(VM_ARGS),--args $(VM_ARGS))

# The static driver of the reliability groups (copied into the initramfs).
FUZZ_TARGET = x86_64-unknown-linux-gnu
FUZZ_BIN    = target/$(FUZZ_TARGET)/release/kalloc-fuzz
fuzz-bin:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --locked --release \
		--bin kalloc-fuzz --target $(FUZZ_TARGET)

# The scanner must turn a planted kernel warning into a failed run.
vm-test-scanner: modules
	scripts/check-scanner-gate.sh $(KDIR)

# The module is built for the perf kernel in a copy of the sources, so the
# debug build's objects in the tree are left alone.
bench: deps
ifdef OWN_KERNEL
	scripts/build-kernel.sh perf >/dev/null
endif
	rm -rf $(BENCH_BUILD) && mkdir -p $(BENCH_BUILD)
	cp -r Kbuild src include selftests $(BENCH_BUILD)/
	$(MAKE) -C $(BENCH_KDIR) M=$(BENCH_BUILD) $(KVARS) clean >/dev/null
	$(MAKE) -C $(BENCH_KDIR) M=$(BENCH_BUILD) $(KVARS) modules
	rm -rf out/bench && mkdir -p out/bench
	for boot in $$(seq $(BENCH_BOOTS)); do \
		scripts/run-vm.sh --kdir $(BENCH_KDIR) --modules $(BENCH_BUILD) --mode bench \
			--args $(BENCH_ARGS) --out $(CURDIR)/out/bench/boot$$boot || exit 1; \
		cat out/bench/boot$$boot/vm-bench.tap >> out/bench/vm-bench.tap; \
	done
	scripts/bench-medians out/bench/vm-bench.tap

host-test: deps
	$(CARGO) test --locked
	@# The committed traces are what their generator writes, byte for byte.
	rm -rf out/traces && python3 scripts/traces/gen-traces.py out/traces >/dev/null
	for t in churn realloc mixed; do cmp out/traces/$$t.trace scripts/traces/$$t.trace || exit 1; done

# Coverage-guided fuzzing of the allocator core with cargo-fuzz (nightly
# Rust, libFuzzer, AddressSanitizer, overflow checks). Not part of `check`:
# its gate is `cargo test --test fuzz_replay`, which runs the same target
# bodies (src/host/fuzz.rs) on stable over src/fuzz/seeds/. New inputs go
# to out/fuzz/corpus/, crashes and timeouts to out/fuzz/artifacts/; copy a
# fixed crash into src/fuzz/seeds/TARGET/ as its regression test.
HOST_FUZZ_SECONDS ?= 60
HOST_FUZZ_TARGETS ?= heap_ops heap_damage
host-fuzz:
	@rustup run nightly rustc --version >/dev/null 2>&1 || \
		{ echo "host-fuzz needs nightly Rust: rustup toolchain install nightly"; exit 1; }
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	for t in $(HOST_FUZZ_TARGETS); do \
		mkdir -p out/fuzz/corpus/$$t out/fuzz/artifacts && \
		cargo +nightly fuzz run --fuzz-dir src/fuzz --target-dir $(CURDIR)/out/fuzz/target $$t \
			out/fuzz/corpus/$$t src/fuzz/seeds/$$t -- -max_total_time=$(HOST_FUZZ_SECONDS) \
			-timeout=10 -max_len=4096 -len_control=0 -artifact_prefix=out/fuzz/artifacts/$$t- || exit 1; \
	done

# Mutation testing of the allocator core with cargo-mutants (settings and
# the reviewed equivalent mutants in .cargo/mutants.toml). Every mutant the
# host tests miss is listed in out/mutants/mutants.out/missed.txt, and the
# target fails. Not part of `check`: the whole core is about 2,350 mutants,
# about 4 hours on 2 cores. MUTANTS_FILES narrows it to some files;
# MUTANTS_ARGS=--iterate skips what the previous run caught.
MUTANTS_FILES ?= src/allocator/*.rs
MUTANTS_JOBS  ?= 2
MUTANTS_ARGS  ?=
mutants:
	command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants
	$(CARGO) mutants --jobs $(MUTANTS_JOBS) -o out/mutants \
		$(foreach f,$(wildcard $(MUTANTS_FILES)),--file $(f)) $(MUTANTS_ARGS)

lint: fmt-check clippy rustdoc checkpatch

# The host crate's documentation, private items included: a broken
# intra-doc link (an item renamed or removed under its docs) fails.
rustdoc: deps
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --locked --no-deps --document-private-items

# The kernel tree's checkpatch.pl --strict and kernel-doc on the C side.
checkpatch: kernel
	scripts/check-kernel-style.sh $(KDIR)

check: lint host-test vm-test vm-test-scanner

clippy: kernel
	$(CARGO) clippy --locked --all-targets --all-features -- -D warnings
	$(KMAKE) clean >/dev/null
	mkdir -p out
	@# pipefail: a failed build must fail here, not pass through tee.
	bash -o pipefail -c '$(KMAKE) CLIPPY=1 W=1 modules 2>&1 | tee out/clippy-kernel.log'
	@# Any warning fails: clippy's and rustc's (`warning: ...`) and the C
	@# compiler's (`FILE:LINE:COL: warning: ...`) in the same clean build,
	@# with the kernel's extra warnings (W=1) on.
	@! grep -qE '^warning|: warning:' out/clippy-kernel.log || { echo "kernel build warnings (see out/clippy-kernel.log)"; exit 1; }

RUST_ROOTS = src/ikos_kalloc.rs selftests/modules/ikos_kalloc_kunit.rs src/lib.rs $(wildcard src/bin/*.rs) src/bin/kalloc_fuzz/main.rs \
	$(wildcard src/fuzz/fuzz_targets/*.rs)
fmt: deps
	$(RUSTFMT) --edition 2021 $(RUST_ROOTS) $(wildcard src/tests/*.rs)

fmt-check: deps
	$(RUSTFMT) --edition 2021 --check $(RUST_ROOTS) $(wildcard src/tests/*.rs)

rust-analyzer: kernel
	$(KMAKE) rust-analyzer
	scripts/rust-analyzer-module.py rust-project.json src/ikos_kalloc.rs
	@echo "wrote rust-project.json (kernel crates + ikos_kalloc)"

clean:
	-$(KMAKE) clean
	$(CARGO) clean
	rm -rf out
