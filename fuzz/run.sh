#!/usr/bin/env bash
# Fuzzes isofuse's image loading for SECONDS (default 60) with libFuzzer,
# AddressSanitizer and LeakSanitizer, starting from seed images (seeds.sh)
# and the regression corpus (corpus/). Stops at the first crash, hang, leak
# or out-of-memory and leaves the input in $FUZZ_WORK/artifacts/; the corpus
# it grows stays in $FUZZ_WORK/corpus/ for the next run.
#   usage: fuzz/run.sh [SECONDS]      (make fuzz FUZZ_SECONDS=...)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
work=${FUZZ_WORK:-/tmp/isofuse-fuzz}

# The toolset adds -sanitize=fuzzer,address and links with lld (gold fails on libFuzzer).
swift build -c release --toolset "$PWD/toolset.json"
./seeds.sh "$work/seeds"
mkdir -p "$work/corpus" "$work/artifacts"
# No Swift backtracer: under ASan it reads the stack in ways ASan reports as a second error.
SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=$PWD/lsan.supp .build/release/isofuse-fuzz "$work/corpus" "$work/seeds" corpus \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1
