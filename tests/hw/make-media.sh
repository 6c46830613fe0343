#!/usr/bin/env bash
# The test media, made by xorriso: multi.iso (three sessions, with MD5s) and
# swap.iso (another disc with some of the same names), in DIR; the trees each
# session must show, in TREES/s1, s2, s3 and TREES/swap.
#
# Usage: make-media.sh DIR TREES
set -euo pipefail
dir=$1
trees=$2
cd "$trees"

mkdir -p s1/a s1/docs/deep/er
echo "hello from session 1" >s1/a/hello.txt
seq 1 5000 >s1/a/numbers.txt
echo "read me" >s1/docs/readme
echo "deep" >s1/docs/deep/er/file
ln -s ../a/hello.txt s1/docs/link
head -c 3000000 /dev/urandom >s1/a/random-3M.bin

cp -a s1 s2
echo "hello from session 2" >s2/a/hello.txt
rm s2/docs/readme
mkdir s2/b
head -c 1048576 /dev/urandom >s2/b/data.bin

cp -a s2 s3
mkdir s3/c
for i in $(seq 1 200); do echo "small file $i" >s3/c/small-$i.txt; done
# Big enough that a read of it measures the drive path, not its caches.
head -c $((64 * 1048576)) /dev/urandom >s3/big.bin

mkdir -p swap/a
echo "hello from the OTHER disc" >swap/a/hello.txt
head -c $((8 * 1048576)) /dev/urandom >swap/big.bin

image=$dir/multi.iso
xorriso -dev "stdio:$image" -md5 on -volid HW_SESSION_1 -map s1 / -commit
xorriso -dev "stdio:$image" -md5 on -volid HW_SESSION_2 -rm /docs/readme -- -map s2 / -commit
xorriso -dev "stdio:$image" -md5 on -volid HW_SESSION_3 -map s3 / -commit
xorriso -outdev "stdio:$dir/swap.iso" -md5 on -volid HW_OTHER_DISC -map swap / -commit
xorriso -indev "stdio:$image" -toc
