# The two commands a new user runs on a fresh Debian machine:
#   make demo   installs what is missing, builds, and shows isofuse on a made-up disc image
#   make test   installs what is missing, builds, and runs every test
# And, outside the tests: make bench (QUICK=1 for a few minutes' version), see bench/RESULTS.md.

DEBIAN_PACKAGES := libfuse3-dev fuse3 libburn-dev libisofs-dev libisoburn-dev xorriso pkg-config genisoimage attr acl
# What `make bench` compares isofuse with, and measures with.
BENCH_PACKAGES := fuseiso fuseiso9660 squashfuse squashfs-tools fuse-overlayfs fio python3 linux-perf strace valgrind
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ISOFUSE := .build/release/isofuse

.PHONY: deps bench-deps build demo test test-hw bench fuzz stress tsan clean

deps bench-deps: PACKAGES = $(if $(filter bench-deps,$@),$(BENCH_PACKAGES),$(DEBIAN_PACKAGES))
deps bench-deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	swift build -c release

demo: build
	scripts/demo.sh $(ISOFUSE)

# Release mode: the tests reuse what `build` compiled, and hashing runs at full speed.
test: build
	swift test -c release

# libFuzzer on the image-loading path for FUZZ_SECONDS (fuzz/run.sh); not part of `test`.
FUZZ_SECONDS ?= 600
fuzz: deps
	fuzz/run.sh $(FUZZ_SECONDS)

# Minutes of concurrent readers, writers, listings and commits on a real mount:
# make stress STRESS_SECONDS=600 (gdb records the stacks should it hang).
stress: build
	@$(MAKE) --no-print-directory deps DEBIAN_PACKAGES=gdb
	scripts/stress.sh $(or $(STRESS_SECONDS),300)

# ThreadSanitizer (not in `make test`: a build of its own, and slow): the core
# driven from many threads, and a stress run on a mount served by a sanitized
# daemon. Every report lands in .build-tsan/reports/ and fails the target.
TSAN_REPORTS := $(CURDIR)/.build-tsan/reports
tsan: deps
	@rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	@status=0; TSAN_OPTIONS="log_path=$(TSAN_REPORTS)/report" ISOFUSE_STRESS_SECONDS=$(or $(STRESS_SECONDS),30) \
	    swift test --sanitize=thread --scratch-path .build-tsan --filter 'MountedFileSystemTests|StressTests' || status=$$?; \
	if ls $(TSAN_REPORTS)/report.* >/dev/null 2>&1; then cat $(TSAN_REPORTS)/report.*; exit 1; fi; \
	echo "ThreadSanitizer: no reports"; exit $$status

# A real MMC drive: QEMU's virtual SCSI and AHCI CD drives in a small Debian
# guest (built from Debian's packages once, then cached). A few minutes.
test-hw: build
	tests/hw/run.sh $(ISOFUSE)

# Not part of `test`: tens of minutes on 2 cores (QUICK=1: a few), needs root.
# Writes bench/RESULTS.md (QUICK=1: /tmp/isofuse-bench/RESULTS-quick.md).
bench: build bench-deps
	$(SUDO) bench/run $(if $(QUICK),--quick)

clean:
	rm -rf .build .build-tsan
