#!/usr/bin/env bash
# Figures of the mount for the notes, each against what users have:
#   - dd of a 1 GiB disc file through the mount vs dd of the same image bytes (cold, warm);
#   - tar cf - of a 50,000-file tree through the mount, and find | wc -l;
#   - committing the tree and the 1 GiB file vs xorriso -md5 on -add of the same data;
#   - the daemon's RSS with 100,000 files mounted.
# Usage: bench/mount.sh [WORKDIR]   (needs ~6 GB free; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product isofuse >/dev/null
isofuse=$PWD/.build/release/isofuse
work=${1:-$(mktemp -d /tmp/isofuse-bench.XXXXXX)}
mkdir -p "$work"
mnt=$work/mnt
mkdir -p "$mnt"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { local start=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $start" | bc; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
unmount() { mountpoint -q "$mnt" && "$isofuse" unmount "$mnt" || true; }
trap unmount EXIT

echo "== 1 GiB file: dd through the mount vs dd of the image bytes"
if [ ! -f "$work/big.iso" ]; then
    mkdir -p "$work/big"; head -c 1073741824 /dev/urandom > "$work/big/big.bin"
    xorriso -md5 on -outdev "stdio:$work/big.iso" -map "$work/big" / -commit >/dev/null 2>&1
fi
lba=$(xorriso -indev "stdio:$work/big.iso" -find /big.bin -exec report_lba -- 2>/dev/null | awk -F, '/File data lba/ {gsub(/ /, "", $2); print $2}')
mbps() { awk '/copied/ {v=$(NF-1); u=$NF; print (u=="GB/s") ? v*1000 : v}'; }
"$isofuse" mount "$work/big.iso" "$mnt" --read-only
for pass in cold warm; do
    for i in 1 2 3; do [ $pass = cold ] && drop; dd if="$mnt/big.bin" of=/dev/null bs=1M 2>&1 | mbps; done \
        | median | sed "s/^/mount $pass MB\/s: /"
    for i in 1 2 3; do [ $pass = cold ] && drop
        dd if="$work/big.iso" of=/dev/null bs=1M iflag=skip_bytes skip=$((lba * 2048)) count=1024 2>&1 | mbps
    done | median | sed "s/^/image $pass MB\/s: /"
done
unmount

echo "== 50,000 files (100 directories, 1-20 KiB each)"
if [ ! -f "$work/tree.iso" ]; then
    rm -rf "$work/tree"; mkdir -p "$work/tree"
    python3 - "$work/tree" <<'PY'
import os, random, sys
random.seed(1)
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(500):
        with open(f"{root}/d{d}/f{f}.dat", "wb") as out:
            out.write(random.randbytes(random.randint(1024, 20480)))
PY
    xorriso -md5 on -outdev "stdio:$work/tree.iso" -map "$work/tree" / -commit >/dev/null 2>&1
fi
"$isofuse" mount "$work/tree.iso" "$mnt" --read-only
for pass in cold warm; do
    for i in 1 2 3; do [ $pass = cold ] && drop; seconds sh -c "tar cf - -C '$mnt' . | cat >/dev/null"; done \
        | median | sed "s/^/tar through the mount $pass s: /"
    for i in 1 2 3; do [ $pass = cold ] && drop; seconds sh -c "find '$mnt' | wc -l"; done \
        | median | sed "s/^/find | wc -l $pass s: /"
done
unmount

echo "== commit vs xorriso -md5 on -add (the 50,000-file tree; the 1 GiB file)"
for data in tree big; do
    for i in 1 2 3; do
        rm -f "$work/c.iso" && rm -rf "$work/staging"
        "$isofuse" mount "$work/c.iso" "$mnt" --staging "$work/staging"
        cp -a "$work/$data" "$mnt/"
        seconds "$isofuse" commit "$mnt"
        unmount
    done | median | sed "s/^/isofuse commit ($data) s: /"
    for i in 1 2 3; do
        rm -f "$work/c.iso"
        seconds xorriso -md5 on -dev "stdio:$work/c.iso" -add "$work/$data" -- -commit
    done | median | sed "s/^/xorriso -add ($data) s: /"
done
rm -f "$work/c.iso"

echo "== daemon RSS with 100,000 files"
if [ ! -f "$work/files.iso" ]; then
    rm -rf "$work/files"; mkdir -p "$work/files"
    for d in $(seq 1 100); do mkdir "$work/files/d$d"; (cd "$work/files/d$d" && seq 1 1000 | sed 's/^/file_/' | xargs touch); done
    xorriso -md5 on -outdev "stdio:$work/files.iso" -map "$work/files" / -commit >/dev/null 2>&1
fi
"$isofuse" mount "$work/files.iso" "$mnt" --read-only
pid=$(getfattr --only-values -n user.isofuse.status "$mnt/.isofuse/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
echo "after mount: RSS $(awk '/VmRSS/ {print $2}' /proc/$pid/status) KiB"
find "$mnt" | wc -l >/dev/null
echo "after find: RSS $(awk '/VmRSS/ {print $2}' /proc/$pid/status) KiB"
