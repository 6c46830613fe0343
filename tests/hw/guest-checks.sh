#!/bin/bash
# Runs inside the guest (started by its /init; the host's folder is /host):
# isofuse against real MMC drives, judged by xorriso, dd, diff and cmp.
# Each check prints "hw: ok NAME (Ts)" or "hw: FAIL NAME (Ts)" and the
# output that shows why; measurements print "hw: measure ..."; the last
# line is "hw: summary ...". The host (tests/hw/run.sh) swaps media when
# asked through /host/ctl.
set -u
echo "hw: booted; guest uptime $(cut -d' ' -f1 /proc/uptime)s"

ln -sf /proc/self/fd /dev/fd
mkdir -p /opt/isofuse
cp -a /host/bin/. /opt/isofuse/
export LD_LIBRARY_PATH=/opt/isofuse/lib
isofuse=/opt/isofuse/isofuse
media=/host/media
mnt=/mnt/disc
mkdir -p $mnt /mnt/other
T="timeout 120"
passed=0
failed=0

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
exec 3>&1
hw() { echo "hw: $*" >&3; }

# check NAME FUNCTION [ARGS...]: runs one check and reports it.
check() {
    local name=$1 started output
    shift
    started=$(now)
    # errexit: a check stops at its first failing step (outside an if, or it would be ignored).
    output=$(set -e; "$@" 2>&1)
    if [ $? = 0 ]; then
        passed=$((passed + 1))
        hw "ok   $name ($(since "$started")s)"
    else
        failed=$((failed + 1))
        hw "FAIL $name ($(since "$started")s)"
        printf '%s\n' "$output" | tail -25 | sed 's/^/hw:      | /'
        ps -eo pid,stat,wchan:24,args | grep -v ' \[' | grep -v 'ps -eo\|grep\|sed' | sed 's/^/hw:      ps /'
    fi
}

fail() { echo "$*"; return 1; }

# "N START BLOCKS VOLID" per session, from xorriso and from isofuse.
xorriso_sessions() {
    $T xorriso -indev "$1" -toc 2>&1 | awk -F, '/^ISO session/ {
        sub(/^ISO session *: */, "", $1); sub(/s *$/, "", $3)
        for (i = 1; i <= 4; i++) gsub(/^ +| +$/, "", $i)
        print $1, $2, $3, $4 }'
}
isofuse_sessions() {
    $T $isofuse toc "$1" | awk '$1 ~ /^[0-9]+$/ { print $1, $2, $3, $6 }'
}

# The host's monitor: "change FILE" (a forced eject, then FILE in the
# tray, as a person swapping discs) or "eject" (a forced eject).
host() {
    # Checks run in subshells: the count lives in a file.
    local requests=$(($(cat /tmp/host-requests 2>/dev/null || echo 0) + 1))
    echo $requests >/tmp/host-requests
    echo "$*" >/host/ctl/request-$requests.tmp
    mv /host/ctl/request-$requests.tmp /host/ctl/request-$requests
    for _ in $(seq 1 300); do
        [ -f /host/ctl/done-$requests ] && return 0
        sleep 0.2
    done
    fail "the host did not answer '$*'"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# A read through the mount that must fail with ENOMEDIUM, at once, and must
# not show the other disc's bytes.
expect_no_medium() {
    local output
    if output=$($T dd if="$1" of=/dev/stdout bs=64k count=1 ${2:+skip=$2} status=none 2>&1 | head -c 200 | tr -d '\0'); then
        :
    fi
    case $output in
        *"No medium found"*) return 0 ;;
    esac
    fail "reading $1 gave: ${output:-no error and no data}"
}

# Whatever status says must be clear: the daemon answers and names the change.
expect_status_mentions() {
    local status
    status=$($T $isofuse status $mnt) || fail "status failed: $status"
    grep -q "$1" <<<"$status" || fail "status does not mention '$1': $status"
}

expect_erofs() {
    local output
    if output=$("$@" 2>&1); then fail "'$*' succeeded on a read-only medium"; fi
    grep -q "Read-only file system" <<<"$output" || fail "'$*' failed otherwise: $output"
}

# Drives: virtio-scsi and AHCI, told apart by where they sit in sysfs.
scsi= ahci=
for block in /sys/block/sr*; do
    case $(readlink -f "$block") in
        *virtio*) scsi=/dev/${block##*/} ;;
        *ata*) ahci=/dev/${block##*/} ;;
    esac
done
hw "drives: virtio-scsi $scsi, AHCI $ahci"

# --- what a drive holds -------------------------------------------------

devices() {
    local list
    list=$($T $isofuse devices) || fail "$list"
    echo "$list"
    grep -q "$scsi" <<<"$list" || fail "$scsi is not listed"
    grep -q "$ahci" <<<"$list" || fail "$ahci is not listed"
}
check "isofuse devices lists both drives" devices

same_toc() {
    local expected actual
    expected=$(xorriso_sessions "$1")
    actual=$(isofuse_sessions "$1")
    echo "xorriso:"; echo "$expected"; echo "isofuse:"; echo "$actual"
    [ "$(wc -l <<<"$expected")" = 3 ] || fail "xorriso does not see 3 sessions"
    [ "$expected" = "$actual" ] || fail "the sessions differ"
}
check_passes() { $T $isofuse check "$1"; }
for drive in $scsi $ahci; do
    check "isofuse toc $drive = xorriso -toc" same_toc $drive
    check "isofuse check $drive" check_passes $drive
done

# --- throughput: a big file through the mount against dd of its blocks -------

mbps() { awk -v bytes="$1" -v seconds="$2" 'BEGIN { printf "%.1f", bytes / seconds / 1e6 }'; }
throughput() {
    local lba bytes started seconds_mount seconds_dd seconds_dd64
    lba=$($T xorriso -indev $scsi -find /big.bin -exec report_lba -- 2>/dev/null | awk -F, '/File data lba/ { gsub(/ /, "", $2); print $2; exit }')
    [ -n "$lba" ] || fail "xorriso reports no block of /big.bin"
    bytes=$(stat -c %s $media/s3/big.bin)
    # dd as the kernel reads (large requests, its read-ahead), and dd in
    # 64 KiB direct reads: one READ(10) each, as libburn reads.
    drop_caches
    started=$(now)
    $T dd if=$scsi of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip=$((lba * 2048)) count=$bytes status=none || fail "dd of $scsi failed"
    seconds_dd=$(since "$started")
    started=$(now)
    $T dd if=$scsi of=/dev/null bs=64k iflag=direct,skip_bytes,count_bytes skip=$((lba * 2048)) count=$bytes status=none || fail "dd of $scsi failed"
    seconds_dd64=$(since "$started")
    started=$(now)
    $T $isofuse mount $scsi $mnt || fail "mount failed"
    hw "measure mount: $(since "$started")s"
    drop_caches
    started=$(now)
    $T dd if=$mnt/big.bin of=/dev/null bs=1M status=none || fail "reading big.bin through the mount failed"
    seconds_mount=$(since "$started")
    started=$(now)
    $T $isofuse unmount $mnt || fail "unmount failed"
    hw "measure unmount: $(since "$started")s"
    hw "measure big.bin ($((bytes / 1048576)) MiB): through the mount ${seconds_mount}s = $(mbps $bytes $seconds_mount) MB/s; dd of $scsi, same blocks: ${seconds_dd}s = $(mbps $bytes $seconds_dd) MB/s; dd in 64 KiB direct reads: ${seconds_dd64}s = $(mbps $bytes $seconds_dd64) MB/s"
}
check "read throughput: mount against dd" throughput

# --- the mount: sessions, contents, read-only -------------------------------

contents() {
    $T $isofuse mount $scsi $mnt || fail "mount failed"
    diff -r $mnt $media/s3 || fail "the mount differs from session 3's tree"
    diff -r $mnt/.isofuse/sessions/1 $media/s1 || fail "sessions/1 differs"
    diff -r $mnt/.isofuse/sessions/2 $media/s2 || fail "sessions/2 differs"
    # The newest session's view is the mount's tree: one file is enough (it gave EBADF).
    [ "$(readlink $mnt/.isofuse/sessions/latest)" = 3 ] || fail "sessions/latest does not point at 3"
    cmp $mnt/.isofuse/sessions/latest/a/hello.txt $media/s3/a/hello.txt || fail "sessions/latest/a/hello.txt differs"
}
check "mount $scsi: newest session and sessions/N equal their sources" contents

read_only() {
    local status
    status=$($T $isofuse status $mnt) || fail "status failed: $status"
    echo "$status"
    grep -q "read-only" <<<"$status" || fail "status does not say read-only"
    grep -q "rom" <<<"$status" || fail "status does not say the medium is a ROM"
    expect_erofs touch $mnt/new-file
    expect_erofs sh -c "echo more >>$mnt/a/hello.txt"
    expect_erofs truncate -s 0 $mnt/a/hello.txt
    expect_erofs mkdir $mnt/new-dir
    expect_erofs rm $mnt/a/hello.txt
    expect_erofs rmdir $mnt/docs/deep/er
    expect_erofs mv $mnt/a/hello.txt $mnt/a/moved.txt
    expect_erofs chmod 600 $mnt/a/hello.txt
    expect_erofs ln -s somewhere $mnt/link
    expect_erofs setfattr -n user.test -v 1 $mnt/a/hello.txt
    expect_erofs touch $mnt/.isofuse/commit
    expect_erofs touch $mnt/.isofuse/discard
    local commit
    if commit=$($T $isofuse commit $mnt 2>&1); then fail "isofuse commit succeeded: $commit"; fi
    echo "isofuse commit: $commit"
    grep -q "read-only\|cannot be written" <<<"$commit" || fail "isofuse commit does not say why: $commit"
    cmp $mnt/a/hello.txt $media/s3/a/hello.txt || fail "the medium changed"
    $T $isofuse unmount $mnt || fail "unmount failed"
}
check "read-only medium: status says so, every write and commit gives EROFS" read_only

mount_ahci() {
    $T $isofuse mount $ahci $mnt || fail "mount failed"
    diff -r $mnt/.isofuse/sessions/2 $media/s2 || fail "sessions/2 differs"
    cmp $mnt/a/random-3M.bin $media/s3/a/random-3M.bin || fail "a/random-3M.bin differs"
    $T $isofuse unmount $mnt
}
check "mount $ahci (AHCI): sessions/2 and a file equal their sources" mount_ahci

# --- mmc: a drive node without a /dev/sr* name ------------------------------

mmc_address() {
    local expected node=/tmp/cd-node link=/tmp/cd-link
    ln -sf $scsi $link
    rm -f $node
    mknod $node b $(stat -c '%Hr %Lr' $scsi)
    expected=$(xorriso_sessions $scsi)
    for address in mmc:$link mmc:$node; do
        [ "$(isofuse_sessions $address)" = "$expected" ] || fail "isofuse toc $address differs from xorriso -toc $scsi"
    done
    $T $isofuse mount mmc:$node $mnt || fail "mount mmc:$node failed"
    cmp $mnt/b/data.bin $media/s3/b/data.bin || fail "b/data.bin differs"
    $T $isofuse status $mnt | grep -q "mmc:$node" || fail "status does not name mmc:$node"
    $T $isofuse unmount $mnt
}
check "mmc: address through a symlink and a copied device node" mmc_address

# --- media swap while mounted -----------------------------------------------

swap_mount() {
    $T $isofuse mount $scsi $mnt || fail "mount failed"
    cmp $mnt/a/hello.txt $media/s3/a/hello.txt || fail "a/hello.txt differs before the swap"
    head -c 1048576 $mnt/big.bin | cmp - <(head -c 1048576 $media/s3/big.bin) || fail "big.bin differs before the swap"
}
check "swap: mount $scsi, read some files" swap_mount

swapped() {
    host change swap.iso
    drop_caches
    for file in a/hello.txt a/numbers.txt b/data.bin; do expect_no_medium $mnt/$file; done
    expect_no_medium $mnt/big.bin 0
    expect_no_medium $mnt/big.bin 500
    grep -q "OTHER" $mnt/a/hello.txt 2>/dev/null && fail "the mount served the other disc's bytes"
    expect_status_mentions "remount"
}
check "swap: another disc in the drive: reads fail (ENOMEDIUM), nothing of it shown" swapped

tray_open() {
    host eject
    drop_caches
    expect_no_medium $mnt/a/hello.txt
    expect_no_medium $mnt/big.bin 100
    ls $mnt >/dev/null || fail "listing the mount failed"
    expect_status_mentions "remount"
}
check "swap: tray open: reads fail at once, the daemon answers" tray_open

back_again() {
    host change multi.iso
    drop_caches
    cmp $mnt/a/hello.txt $media/s3/a/hello.txt || fail "a/hello.txt differs"
    cmp $mnt/big.bin $media/s3/big.bin || fail "big.bin differs"
}
check "swap: the same disc back: the mount reads it again" back_again

unmount_empty() {
    host eject
    expect_no_medium $mnt/a/numbers.txt
    $T $isofuse unmount $mnt || fail "unmount failed"
    ! mountpoint -q $mnt || fail "still mounted"
}
check "swap: unmount with the tray open" unmount_empty

remount_other() {
    host change swap.iso
    $T $isofuse mount $scsi $mnt || fail "mount failed"
    diff -r $mnt $media/swap || fail "the mount differs from the other disc"
    $T $isofuse unmount $mnt
}
check "swap: a new mount shows the other disc" remount_other

hw "summary passed=$passed failed=$failed guest-uptime=$(cut -d' ' -f1 /proc/uptime)s"
