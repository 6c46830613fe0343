// Linux and glibc headers that Swift's Glibc module leaves out.
#pragma once
#include <sys/xattr.h>   // getxattr, setxattr, XATTR_CREATE, XATTR_REPLACE
#include <malloc.h>      // malloc_trim
