# The two commands a new user runs on a fresh Debian machine:
#   make demo   installs what is missing, builds, and shows isofuse on a made-up disc image
#   make test   installs what is missing, builds, and runs every test

DEBIAN_PACKAGES := libfuse3-dev fuse3 libburn-dev libisofs-dev libisoburn-dev xorriso pkg-config genisoimage attr
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ISOFUSE := .build/release/isofuse

.PHONY: deps build demo test test-hw clean

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
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

# A real MMC drive: QEMU's virtual SCSI and AHCI CD drives in a small Debian
# guest (built from Debian's packages once, then cached). A few minutes.
test-hw: build
	tests/hw/run.sh $(ISOFUSE)

clean:
	rm -rf .build
