#!/usr/bin/env bash
# Makes a two-session image of this project's own code with xorriso, then
# shows what isofuse reads from it: the sessions, and a check of every MD5.
set -euo pipefail
isofuse=${1:-.build/release/isofuse}
work=$(mktemp -d /tmp/isofuse-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
image=$work/demo.iso

echo "== session 1: Sources/, session 2: Tests/ and README.md (written by xorriso -md5 on)"
xorriso -abort_on FAILURE -md5 on -for_backup -outdev "stdio:$image" -volid DEMO_1 \
    -map Sources /Sources -commit 2>/dev/null
xorriso -abort_on FAILURE -md5 on -for_backup -dev "stdio:$image" -volid DEMO_2 \
    -map Tests /Tests -map README.md /README.md -commit 2>/dev/null

echo; echo "== isofuse toc $image"
"$isofuse" toc "$image"
echo; echo "== isofuse check $image"
"$isofuse" check "$image"
