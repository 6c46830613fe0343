#!/usr/bin/env bash
# The spec's "Typical use", on an image file standing in for a 700 MB disc:
# mount, copy in, commit (session 1), change things, commit (session 2),
# look at session 1 as it was, check every MD5, unmount.
set -euo pipefail
isofuse=$(realpath "${1:-.build/release/isofuse}")
work=$(mktemp -d /tmp/isofuse-demo.XXXXXX)
image=$work/backup.iso
disc=$work/disc
mkdir "$disc"
cleanup() {
    mountpoint -q "$disc" && "$isofuse" unmount "$disc"
    rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run "$isofuse" mount "$image" "$disc" --capacity 700M --staging "$work/staging"
run cp -a Sources "$disc/"
run "$isofuse" status "$disc"
run "$isofuse" commit "$disc"

say "echo 'second session' > $disc/NOTES.txt; mv $disc/Sources $disc/code; rm -r $disc/code/CFuse3"
echo 'second session' > "$disc/NOTES.txt"
mv "$disc/Sources" "$disc/code"
rm -r "$disc/code/CFuse3"
run "$isofuse" commit "$disc"

run ls "$disc" "$disc/.isofuse/sessions/1/"
run "$isofuse" toc "$image"
run "$isofuse" unmount "$disc"
run "$isofuse" check "$image"
