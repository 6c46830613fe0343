# The two commands a new user runs on a fresh Debian machine:
#   make demo   installs what is missing, builds, and shows isofuse on a made-up disc image
#   make test   installs what is missing, builds, and runs every test
# And, outside the tests: make bench (QUICK=1 for a few minutes' version), see bench/RESULTS.md.

DEBIAN_PACKAGES := libfuse3-dev fuse3 libburn-dev libisofs-dev libisoburn-dev xorriso pkg-config genisoimage attr
# What `make bench` compares isofuse with, and measures with.
BENCH_PACKAGES := fuseiso fuseiso9660 squashfuse squashfs-tools fio python3 linux-perf strace valgrind
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ISOFUSE := .build/release/isofuse

.PHONY: deps bench-deps build demo test bench clean

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

# Not part of `test`: tens of minutes on 2 cores (QUICK=1: a few), needs root.
# Writes bench/RESULTS.md (QUICK=1: /tmp/isofuse-bench/RESULTS-quick.md).
bench: build bench-deps
	$(SUDO) bench/run $(if $(QUICK),--quick)

clean:
	rm -rf .build
