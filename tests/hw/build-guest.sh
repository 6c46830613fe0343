#!/usr/bin/env bash
# Builds the small Debian guest the drive tests boot: a kernel and a root
# filesystem packed as an initramfs (the guest runs from RAM, so it needs no
# disk, no root-device drivers and no mkfs). Everything comes from Debian's
# packages. The result is cached; a changed recipe (this file) builds anew.
#
# Usage: build-guest.sh            prints the guest's directory (vmlinuz, rootfs.cpio)
# Env:   ISOFUSE_HW_CACHE          cache root (default ${XDG_CACHE_HOME:-~/.cache}/isofuse-hw)
#        ISOFUSE_HW_MIRROR         Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

suite=bookworm
mirror=${ISOFUSE_HW_MIRROR:-http://deb.debian.org/debian}
# What the checks run in the guest: xorriso as the judge (it pulls libburn,
# libisofs, libisoburn), fuse3, eject, dd, modprobe.
packages=xorriso,fuse3,eject,kmod,util-linux,procps,attr
# Kernel modules for the drives (virtio-scsi and AHCI), the host share and FUSE.
modules="virtio_pci virtio_scsi sr_mod sg ahci 9pnet_virtio 9p fuse"

cache=${ISOFUSE_HW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isofuse-hw}
key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
guest=$cache/guest-$key
if [[ -f $guest/rootfs.cpio && -f $guest/vmlinuz ]]; then
    echo "$guest"
    exit 0
fi

say() { echo "build-guest: $*" >&2; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

say "debootstrap $suite (minbase + $packages) from $mirror"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

say "kernel"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
chroot "$root" apt-get update -qq >&2
kernel_package=$(chroot "$root" apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
chroot "$root" sh -c "cd /tmp && apt-get download -qq $kernel_package"
# Unpacked inside the guest's tree, so that its own kmod tools do the work.
dpkg-deb -x "$root"/tmp/*.deb "$root/tmp/kernel"
kernel_version=$(ls "$root/tmp/kernel/lib/modules")
cp "$root/tmp/kernel/boot/vmlinuz-$kernel_version" "$work/vmlinuz"
chroot "$root" depmod -b /tmp/kernel "$kernel_version"
# The wanted modules and what they depend on ("builtin" ones need nothing).
for module in $modules; do
    chroot "$root" modprobe -d /tmp/kernel -S "$kernel_version" --show-depends "$module" | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r path; do
    relative=${path#/tmp/kernel}
    mkdir -p "$root$(dirname "$relative")"
    cp "$root$path" "$root$relative"
done
cp "$root/tmp/kernel/lib/modules/$kernel_version"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kernel_version/"
chroot "$root" depmod "$kernel_version"
rm -rf "$root"/tmp/*

say "pruning and packing"
rm -rf "$root"/usr/share/{doc,man,info,locale} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
# The guest's first process: the system's mounts, the drivers, the host
# share; then the run's own script from the share, then power off.
cat >"$root/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
for module in $modules; do modprobe \$module; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /host
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
[ -x /host/guest-main ] && /host/guest-main
echo 1 >/proc/sys/kernel/sysrq
echo o >/proc/sysrq-trigger
sleep 10
EOF
chmod 755 "$root/init"
(cd "$root" && find . -xdev | cpio --quiet -o -H newc) >"$work/rootfs.cpio"

mkdir -p "$guest.tmp"
mv "$work/vmlinuz" "$work/rootfs.cpio" "$guest.tmp/"
rm -rf "$guest"
mv "$guest.tmp" "$guest"
# Older recipes' guests are of no use any more.
find "$cache" -maxdepth 1 -name 'guest-*' ! -name "guest-$key" -exec rm -rf {} +
say "guest ready: $(du -sh "$guest" | cut -f1)"
echo "$guest"
