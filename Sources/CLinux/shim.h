// Linux and glibc headers that Swift's Glibc module leaves out.
#pragma once
#include <sys/xattr.h>   // getxattr, setxattr, XATTR_CREATE, XATTR_REPLACE
#include <malloc.h>      // malloc_trim
#include <sys/types.h>
#include <linux/falloc.h> // FALLOC_FL_KEEP_SIZE

// fallocate(2) is declared only with _GNU_SOURCE.
int fallocate(int fd, int mode, off_t offset, off_t len);

// ThreadSanitizer's hooks, present only in a sanitized build (weak: NULL otherwise).
void __tsan_acquire(void *address) __attribute__((weak));
void __tsan_release(void *address) __attribute__((weak));
static inline void isofuse_tsan_acquire(void *address) { if (__tsan_acquire) __tsan_acquire(address); }
static inline void isofuse_tsan_release(void *address) { if (__tsan_release) __tsan_release(address); }
