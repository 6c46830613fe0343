// Linux and glibc headers that Swift's Glibc module leaves out.
#pragma once
#include <sys/xattr.h>   // getxattr, setxattr, XATTR_CREATE, XATTR_REPLACE
#include <malloc.h>      // malloc_trim
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
