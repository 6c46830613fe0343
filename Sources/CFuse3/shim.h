// A module map cannot define macros, so the FUSE API version lives here.
#pragma once
#define FUSE_USE_VERSION 314   // 3.12+ loop configuration, fuse_lowlevel inode API
#include <fuse_lowlevel.h>
