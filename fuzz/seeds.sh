#!/usr/bin/env bash
# Makes the fuzzer's seed images in DIR: small images as xorriso and
# genisoimage write them (several sessions, Rock Ridge, hard links, symlinks,
# a FIFO, xattrs, a zisofs file, MD5s and checksum tags, Joliet).
set -euo pipefail
dir=$1
mkdir -p "$dir"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
export LANG=C LC_ALL=C
xorriso() { command xorriso -no_rc -abort_on FAILURE -padding 0 "$@" >/dev/null 2>&1; }

mkdir -p "$src/docs/deep/er" "$src/empty"
echo "hello" > "$src/docs/a.txt"
ln "$src/docs/a.txt" "$src/b.txt"
ln -s docs/a.txt "$src/link"
mkfifo "$src/fifo"
head -c 5000 /dev/zero | tr '\0' 'x' > "$src/docs/deep/er/five-k.txt"
printf 'caf\xc3\xa9\n' > "$src/$(printf 'caf\xc3\xa9')"
setfattr -n user.note -v hello "$src/b.txt"


rm -f "$dir"/*.iso
xorriso -md5 on -for_backup -outdev "stdio:$dir/sessions.iso" -volid ONE -map "$src" / -commit
echo "second" > "$src/second.txt"
xorriso -md5 on -for_backup -dev "stdio:$dir/sessions.iso" -volid TWO \
    -map "$src/second.txt" /second.txt -rm /link -- -mv /docs/deep /deep -- -commit
xorriso -md5 on -dev "stdio:$dir/sessions.iso" -volid THREE \
    -set_filter_r --zisofs /deep/er/five-k.txt -- -commit

xorriso -joliet on -outdev "stdio:$dir/plain.iso" -volid PLAIN -map "$src" / -commit
genisoimage -quiet -no-pad -R -V GENISO -o "$dir/genisoimage.iso" "$src"
