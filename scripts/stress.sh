#!/bin/sh
# Stress run on a real mount: readers, writers, `ls -lR`/`find`, stat, xattrs
# and commits at once for SECONDS (default 300), in rounds that each end with
# unmount, `xorriso -check_md5_r`, remount and a byte-exact comparison with
# what the writers expect. A hang fails the run and leaves every thread's stack
# in /tmp/isofuse-stress-hang-*.txt. Prints the figures (operations, commits, failures).
#
#   scripts/stress.sh [SECONDS] [SEED]     (as root, with /dev/fuse; `make stress`)
set -eu
cd "$(dirname "$0")/.."
export ISOFUSE_STRESS_SECONDS="${1:-300}" ISOFUSE_STRESS_SEED="${2:-1}"
swift test -c release --filter StressTests 2>&1 | grep -E '^stress|Expectation failed|^↳|✔ Test|✘ Test'
