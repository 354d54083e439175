/* kvtier — LMCache's GDS file layout (contract §9.4). Internal to backends/gds.
 *
 *   {root}/{h[0:2]}/{h[2:4]}/{quote(key string)}.kvcache.safetensors        data file
 *   {data file}.metadata                                                    sidecar
 *
 * h is the chunk hash in decimal (with '-' when negative); quote() percent-encodes every
 * byte but A-Z a-z 0-9 _ . - ~. The data file starts with a 4096-byte header: a
 * little-endian u64 length, then Python json.dumps() text of
 *   {"kvcache": {"dtype": "BF16", "shape": [...], "data_offsets": [0, n], "fmt": 1,
 *                "__metadata__": {"lmcache_version": "1"}}}
 * padded with spaces; the payload follows at offset 4096. The sidecar is the header alone. */
#ifndef KVTIER_GDS_LAYOUT_H
#define KVTIER_GDS_LAYOUT_H

#include <limits.h>

#include "src/internal.h"

#define KVT__GDS_HEADER 4096u
#define KVT__GDS_SUFFIX ".kvcache.safetensors"
#define KVT__GDS_META_SUFFIX ".metadata"

/* What a header says about its payload. */
struct kvt__gds_meta {
    uint64_t nbytes;
    kvt_chunk_meta meta; /* fmt, dtype_code, shape; num_tokens is not persisted by LMCache */
};

/* The data file's path under `root`; KVT_ETOOSMALL when it does not fit `cap`. */
int kvt__gds_path(const char *root, const kvt_key *key, char *buf, size_t cap);
/* The directory part of kvt__gds_path() ("{root}/{h[0:2]}/{h[2:4]}"). */
int kvt__gds_dir(const char *root, const kvt_key *key, char *buf, size_t cap);
/* Builds the 4096-byte header for a payload of `nbytes` with `meta`. KVT_EINVAL when the
 * dtype has no safetensors name or the text would not fit. */
int kvt__gds_header(const kvt_chunk_meta *meta, uint64_t nbytes, unsigned char out[KVT__GDS_HEADER]);
/* Parses a header; KVT_ECORRUPT (with a detail) for anything malformed, an unknown
 * dtype, a negative or inconsistent offset, or another lmcache_version. */
int kvt__gds_parse(const unsigned char *buf, size_t len, struct kvt__gds_meta *out);
/* The key encoded in a sidecar's file name ("...kvcache.safetensors.metadata");
 * KVT_EINVAL when it is not one. */
int kvt__gds_key_of(const char *file_name, kvt_key *out);

#endif
