// Linux and glibc headers that Swift's Glibc module leaves out.
#pragma once
#include <sys/xattr.h>   // getxattr, setxattr, XATTR_CREATE, XATTR_REPLACE
#include <malloc.h>      // malloc_trim
#include <sys/types.h>
#include <linux/falloc.h> // FALLOC_FL_KEEP_SIZE

// fallocate(2) is declared only with _GNU_SOURCE.
int fallocate(int fd, int mode, off_t offset, off_t len);
