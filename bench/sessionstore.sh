#!/usr/bin/env bash
# SessionStore figures for the notes, each against the tool users have:
#   - bytes per node of a loaded 100,000-file session (and the load time);
#   - reading a 1 GiB file through its extents against `dd` of the same image bytes;
#   - appending a session (1 GiB file, MD5s on) against `xorriso -md5 on -add` of the same data.
# Usage: bench/sessionstore.sh [WORKDIR]   (needs ~5 GB free; builds the release binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sessionstore-bench >/dev/null
bench=$PWD/.build/release/sessionstore-bench
work=${1:-$(mktemp -d /tmp/isofuse-bench.XXXXXX)}
mkdir -p "$work"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "== 100,000 files in 100 directories"
if [ ! -f "$work/files.iso" ]; then
    rm -rf "$work/files"; mkdir -p "$work/files"
    for d in $(seq 1 100); do
        mkdir "$work/files/d$d"
        (cd "$work/files/d$d" && seq 1 1000 | sed 's/^/file_/' | xargs touch)
    done
    xorriso -md5 on -outdev "stdio:$work/files.iso" -map "$work/files" / -commit >/dev/null 2>&1
fi
for i in 1 2 3; do "$bench" tree "$work/files.iso"; done | tee "$work/tree.txt"
echo "median load_s: $(field load_s < "$work/tree.txt" | median)"

echo "== 1 GiB file: reading through the extents vs dd of the same bytes"
if [ ! -f "$work/big.iso" ]; then
    mkdir -p "$work/big"; head -c 1073741824 /dev/urandom > "$work/big/big.bin"
    xorriso -md5 on -outdev "stdio:$work/big.iso" -map "$work/big" / -commit >/dev/null 2>&1
fi
lba=$(xorriso -indev "stdio:$work/big.iso" -find /big.bin -exec report_lba -- 2>/dev/null | awk -F, '/File data lba/ {gsub(/ /, "", $2); print $2}')
for pass in cold warm; do
    for i in 1 2 3; do
        [ $pass = cold ] && sync && echo 3 > /proc/sys/vm/drop_caches
        "$bench" read "$work/big.iso" /big.bin | field mb_per_s
    done | median | sed "s/^/isofuse read $pass MB\/s: /"
    for i in 1 2 3; do
        [ $pass = cold ] && sync && echo 3 > /proc/sys/vm/drop_caches
        dd if="$work/big.iso" of=/dev/null bs=1M iflag=skip_bytes skip=$((lba * 2048)) count=1024 2>&1 \
            | awk '/copied/ {print $(NF-1) * ($NF == "GB/s" ? 1000 : 1)}'
    done | median | sed "s/^/dd same bytes $pass MB\/s: /"
done

echo "== appending the 1 GiB file as a new session (MD5s on)"
for i in 1 2 3; do
    cp "$work/big.iso" "$work/append.iso"; sync
    "$bench" append "$work/append.iso" "$work/big" | tee -a "$work/append.txt" | field append_s
done | median | sed 's/^/isofuse append (write) s: /'
echo "isofuse read-back check s: $(field check_s < "$work/append.txt" | median)"; rm -f "$work/append.txt"
for i in 1 2 3; do
    cp "$work/big.iso" "$work/append.iso"; sync
    { TIMEFORMAT=%R; time xorriso -md5 on -dev "stdio:$work/append.iso" -add "$work/big" -- -commit >/dev/null 2>&1; } 2>&1
done | median | sed 's/^/xorriso -md5 on -add s: /'
rm -f "$work/append.iso"
