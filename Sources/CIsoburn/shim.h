// libisofs.h and libisoburn.h use uint32_t, uid_t, ... without including the
// headers that declare them, and libisoburn.h needs libburn's and libisofs'
// types first: this order is the only one that compiles.
#pragma once
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <libburn/libburn.h>
#include <libisofs/libisofs.h>
#include <libisoburn/libisoburn.h>

// libisofs error codes are unsigned hex literals, returned as negative int.
static inline int isofuse_err_sb_tree_corrupted(void) { return (int) ISO_SB_TREE_CORRUPTED; }
static inline int isofuse_err_node_name_not_unique(void) { return (int) ISO_NODE_NAME_NOT_UNIQUE; }

// The four-letter class of a stream: "fsrc" (plain image data), "osiz"
// (zisofs, decompressed on read), "gzip", ... Swift cannot reach s->class->type.
static inline int isofuse_stream_is_filtered(IsoStream *s)
{
    return iso_stream_get_input_stream(s, 0) != NULL;
}

