// Linux and glibc headers that Swift's Glibc module leaves out.
#pragma once
#include <sys/xattr.h>   // getxattr, setxattr, XATTR_CREATE, XATTR_REPLACE
#include <malloc.h>      // malloc_trim
#include <sys/types.h>
#include <sys/sysmacros.h> // gnu_dev_major, gnu_dev_minor (major and minor are macros)
#include <linux/falloc.h> // FALLOC_FL_KEEP_SIZE

// fallocate(2) is declared only with _GNU_SOURCE.
int fallocate(int fd, int mode, off_t offset, off_t len);

// ThreadSanitizer's hooks, present only in a sanitized build (weak: NULL otherwise).
void __tsan_acquire(void *address) __attribute__((weak));
void __tsan_release(void *address) __attribute__((weak));
static inline void isofuse_tsan_acquire(void *address) { if (__tsan_acquire) __tsan_acquire(address); }
static inline void isofuse_tsan_release(void *address) { if (__tsan_release) __tsan_release(address); }
#include <limits.h>
#include <sys/ioctl.h>
#include <linux/cdrom.h>

// ioctl is variadic, which Swift cannot call.

/// CDROM_MEDIA_CHANGED: 1 when the drive's medium changed since the last such
/// call (the kernel gathers the drive's media events and unit attentions for
/// it), 0 when not, -1 with errno when the node is no CD/DVD/BD drive.
static inline int isofuse_cdrom_media_changed(int fd) {
    return ioctl(fd, CDROM_MEDIA_CHANGED, CDSL_CURRENT);
}

/// CDROM_DRIVE_STATUS: CDS_DISC_OK, CDS_NO_DISC, CDS_TRAY_OPEN,
/// CDS_DRIVE_NOT_READY, or -1 with errno.
static inline int isofuse_cdrom_drive_status(int fd) {
    return ioctl(fd, CDROM_DRIVE_STATUS, CDSL_CURRENT);
}
