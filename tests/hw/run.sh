#!/usr/bin/env bash
# isofuse on a drive that speaks MMC: boots a small Debian guest under QEMU
# with a virtio-scsi CD drive (scsi-cd) and an AHCI one (ide-cd), both
# holding a multisession ISO, and runs tests/hw/guest-checks.sh in it
# against the release binary. The host swaps media through the QEMU monitor
# when the guest asks (files in the shared folder's ctl/).
#
# Usage: tests/hw/run.sh [ISOFUSE]     (default .build/release/isofuse; `make test-hw`)
# Env:   ISOFUSE_HW_KEEP=1             keep the run directory (console log, results)
#        ISOFUSE_HW_CHECKS=SCRIPT      run SCRIPT in the guest instead of guest-checks.sh
#        ISOFUSE_HW_TIMEOUT=SECONDS    give up on the guest after this long (default 1200)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
isofuse=$(realpath "${1:-$here/../../.build/release/isofuse}")
timeout=${ISOFUSE_HW_TIMEOUT:-1200}
start=$SECONDS
say() { printf 'test-hw [%3ds] %s\n' $((SECONDS - start)) "$*"; }

# What the host needs: QEMU, debootstrap and cpio for the guest, socat for
# the monitor, xorriso for the test media.
host_packages="qemu-system-x86 debootstrap cpio socat xorriso"
missing=$(for p in $host_packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"; done)
if [[ -n $missing ]]; then
    say "installing:" $missing
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

say "guest"
guest=$("$here/build-guest.sh")
say "guest at $guest"

run=$(mktemp -d /tmp/isofuse-hw.XXXXXX)
qemu_pid=
cleanup() {
    [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
    if [[ ${ISOFUSE_HW_KEEP:-} == 1 ]]; then echo "run directory kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
share=$run/share
mkdir -p "$share"/{bin/lib,ctl,media}

# The binary and the Swift runtime it links from the toolchain.
cp "$isofuse" "$share/bin/isofuse"
ldd "$isofuse" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
    case $lib in
        */lib/swift/linux/*) cp "$lib" "$share/bin/lib/" ;;
    esac
done
cp "${ISOFUSE_HW_CHECKS:-$here/guest-checks.sh}" "$share/guest-main"
chmod +x "$share/guest-main"

say "media"
"$here/make-media.sh" "$run" "$share/media" >"$run/make-media.log" 2>&1 || { cat "$run/make-media.log"; exit 1; }

say "booting (QEMU, software emulation)"
monitor=$run/monitor.sock
console=$run/console.log
qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -smp 2 -m 1536 \
    -nodefaults -display none -no-reboot -serial "file:$console" \
    -kernel "$guest/vmlinuz" -initrd "$guest/rootfs.cpio" -append "console=ttyS0 quiet panic=-1" \
    -device virtio-scsi-pci,id=scsi0 \
    -drive if=none,id=cd0,media=cdrom,readonly=on,format=raw,file="$run/multi.iso" \
    -device scsi-cd,bus=scsi0.0,drive=cd0 \
    -drive if=none,id=cd1,media=cdrom,readonly=on,format=raw,file="$run/multi.iso" \
    -device ide-cd,bus=ide.0,drive=cd1 \
    -fsdev local,security_model=none,id=f0,path="$share" -device virtio-9p-pci,fsdev=f0,mount_tag=hostshare \
    -monitor "unix:$monitor,server=on,wait=off" &
qemu_pid=$!

# The guest asks for media changes with ctl/request-N ("eject", "change
# FILE"); the host does them through the monitor and answers with ctl/done-N.
monitor_command() {
    printf '%s\n' "$1" | socat -t 2 - "UNIX-CONNECT:$monitor" | tr -d '\r' | grep -v '^(qemu)\|^QEMU .* monitor' || true
}
served=0
shown=0
show_guest_lines() {
    { grep -a '^hw: ' "$console" || true; } | tail -n +$((shown + 1)) | sed "s/^/test-hw [$(printf '%3d' $((SECONDS - start)))s] /"
}
while kill -0 "$qemu_pid" 2>/dev/null; do
    if (( SECONDS - start > timeout )); then
        say "the guest did not finish in ${timeout}s; its console:"
        tail -50 "$console"
        exit 1
    fi
    next=$((served + 1))
    if [[ -f $share/ctl/request-$next ]]; then
        read -r verb argument <"$share/ctl/request-$next"
        case $verb in
            eject) answer=$(monitor_command "eject -f cd0") ;;
            change) answer=$(monitor_command "eject -f cd0"; monitor_command "change cd0 $run/$argument raw read-only") ;;
            *) answer="unknown request $verb" ;;
        esac
        say "monitor: $verb $argument ${answer:+($answer)}"
        echo "$answer" >"$share/ctl/done-$next.tmp"
        mv "$share/ctl/done-$next.tmp" "$share/ctl/done-$next"
        served=$next
    fi
    # Show the guest's check lines as they come.
    if [[ -f $console ]]; then
        lines=$(grep -ac '^hw: ' "$console" || true)
        if (( lines > shown )); then
            show_guest_lines
            shown=$lines
        fi
    fi
    sleep 0.2
done
wait "$qemu_pid" || true
qemu_pid=
show_guest_lines

if ! grep -aq '^hw: summary' "$console"; then
    say "the guest stopped before the checks ended; its console:"
    tail -50 "$console"
    exit 1
fi
if grep -aq '^hw: FAIL' "$console"; then
    say "FAILED"
    exit 1
fi
say "all checks passed"
